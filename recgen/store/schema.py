"""The database, declared once: tables with a description of every table and column, and the views.

Alembic migrations in `migrations/` create and evolve these tables; the Datasette plugin publishes the
descriptions (`comment=`) as metadata, so what an analyst reads is what the code declares.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from recgen.constants import RUN_STATUSES, STATUS_PUBLISHED

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite's INTEGER is 64-bit; PostgreSQL's is not (KuaiRec's music ids pass 2**31): BIGINT there (migration 0003).
INTEGER = Integer().with_variant(BigInteger(), "postgresql")


def _col(name: str, type_, comment: str, *args, **kw) -> Column:
    return Column(name, INTEGER if type_ is Integer else type_, *args, comment=comment, **kw)


# ---------------------------------------------------------------- inputs (loaded from the KuaiRec CSVs)

source_files = Table(
    "source_files",
    metadata,
    _col("name", String, "File name, e.g. big_matrix.csv", primary_key=True),
    _col("path", Text, "Where the file was read from (a path, or zip path::member)", nullable=False),
    _col("sha256", String(64), "SHA-256 of the file's bytes; an unchanged hash skips re-loading", nullable=False),
    _col("size_bytes", Integer, "File size in bytes", nullable=False),
    _col("rows", Integer, "Rows loaded into the table (after dropping exact duplicates)", nullable=False),
    _col("rows_in_file", Integer, "Data rows in the file (header excluded)", nullable=False),
    _col("table_name", String, "Table the file was loaded into", nullable=False),
    _col("loaded_at", String, "When the file was loaded (UTC, ISO 8601)", nullable=False),
    comment="One row per KuaiRec CSV: its hash drives change detection and the data fingerprint of a run.",
)

users = Table(
    "users",
    metadata,
    _col("user_id", Integer, "User id (0..7175 in KuaiRec)", primary_key=True, autoincrement=False),
    _col("user_active_degree", String, "Activity level: full_active, high_active, middle_active; NULL if UNKNOWN"),
    _col("is_lowactive_period", Integer, "1 if the user was in a low-activity period (0/1)"),
    _col("is_live_streamer", Integer, "1 if the user is a live streamer (0/1)"),
    _col("is_video_author", Integer, "1 if the user has uploaded videos (0/1)"),
    _col("follow_user_num", Integer, "Number of users this user follows (count)"),
    _col("follow_user_num_range", String, "Bucket of follow_user_num as published, e.g. (10,50]"),
    _col("fans_user_num", Integer, "Number of followers (count)"),
    _col("fans_user_num_range", String, "Bucket of fans_user_num as published, e.g. [1,10)"),
    _col("friend_user_num", Integer, "Number of platform friends (count; not the friendships table)"),
    _col("friend_user_num_range", String, "Bucket of friend_user_num as published"),
    _col("register_days", Integer, "Days since the user registered (days)"),
    _col("register_days_range", String, "Bucket of register_days as published, e.g. 181-365"),
    *[
        _col(f"onehot_feat{i}", Integer, f"Encrypted categorical feature {i} (category index; NULL if missing)")
        for i in range(18)
    ],
    comment="Users and their (partly encrypted) profile features, from user_features.csv.",
)

videos = Table(
    "videos",
    metadata,
    _col("video_id", Integer, "Video id (0..10727 in KuaiRec 2.0)", primary_key=True, autoincrement=False),
    _col("author_id", Integer, "Uploader's id, from item_daily_features.csv (NULL if the video has no daily row)"),
    _col(
        "video_duration",
        Float,
        "Video length in milliseconds: median over item_daily_features rows, else over interactions",
    ),
    _col("upload_dt", String, "Upload date (YYYY-MM-DD)"),
    _col("upload_type", String, "How the video was made, e.g. ShortImport, ShortCamera"),
    _col("video_type", String, "NORMAL or AD (latest daily row)"),
    _col("music_id", Integer, "Background music id"),
    _col("video_tag_id", Integer, "Platform tag id from the daily file; NULL when 0 (no tag)"),
    _col("video_tag_name", String, "Platform tag name from the daily file"),
    _col("tags", Text, 'Feature tags (0..30) from item_categories.csv, as a JSON list, e.g. "[27, 9]"', nullable=False),
    _col("manual_cover_text", Text, "Text written on the cover; NULL where the file says UNKNOWN"),
    _col("caption", Text, "Author's caption (NULL if empty)"),
    _col("topic_tag", Text, "Caption topic tags as a JSON list of strings"),
    _col("first_level_category_id", Integer, "Top-level category id; NULL where the file says -124 (unknown)"),
    _col("first_level_category_name", String, "Top-level category name (Chinese)"),
    _col("second_level_category_id", Integer, "Second-level category id; NULL if unknown"),
    _col("second_level_category_name", String, "Second-level category name"),
    _col("third_level_category_id", Integer, "Third-level category id; NULL if unknown"),
    _col("third_level_category_name", String, "Third-level category name"),
    comment="Static video attributes: tags, captions and categories, author and duration.",
)

video_tags = Table(
    "video_tags",
    metadata,
    _col("video_id", Integer, "Video id", primary_key=True, autoincrement=False),
    _col("tag_id", Integer, "Feature tag id (0..30)", primary_key=True, autoincrement=False),
    Index(None, "tag_id"),
    comment="One row per (video, feature tag) of item_categories.csv, for joins by tag.",
)

_DAILY_COUNTERS = {
    "show_cnt": "Impressions that day (platform-wide count)",
    "show_user_num": "Users shown the video that day (count)",
    "play_cnt": "Plays that day (count)",
    "play_user_num": "Users who played it (count)",
    "play_duration": "Total play time that day (ms)",
    "complete_play_cnt": "Plays that reached the end (count)",
    "complete_play_user_num": "Users with a complete play (count)",
    "valid_play_cnt": "Valid plays: whole video if <= 7 s, else > 7 s (count)",
    "valid_play_user_num": "Users with a valid play (count)",
    "long_time_play_cnt": "Long plays: whole video if <= 18 s, else >= 18 s (count)",
    "long_time_play_user_num": "Users with a long play (count)",
    "short_time_play_cnt": "Short plays: < min(3 s, duration) (count)",
    "short_time_play_user_num": "Users with a short play (count)",
}
_DAILY_COUNTERS_2 = {
    "comment_stay_duration": "Total time spent in the comment section (ms)",
    "like_cnt": "Likes (count)",
    "like_user_num": "Users who liked (count)",
    "click_like_cnt": "Likes via the button (count)",
    "double_click_cnt": "Likes via double tap (count)",
    "cancel_like_cnt": "Likes withdrawn (count)",
    "cancel_like_user_num": "Users who withdrew a like (count)",
    "comment_cnt": "Comments (count)",
    "comment_user_num": "Users who commented (count)",
    "direct_comment_cnt": "Top-level comments (count)",
    "reply_comment_cnt": "Replies to comments (count)",
    "delete_comment_cnt": "Comments deleted (count)",
    "delete_comment_user_num": "Users who deleted a comment (count)",
    "comment_like_cnt": "Likes on comments (count)",
    "comment_like_user_num": "Users who liked a comment (count)",
    "follow_cnt": "Follows of the author caused by the video (count)",
    "follow_user_num": "Users who followed the author (count)",
    "cancel_follow_cnt": "Unfollows (count)",
    "cancel_follow_user_num": "Users who unfollowed (count)",
    "share_cnt": "Shares (count)",
    "share_user_num": "Users who shared (count)",
    "download_cnt": "Downloads (count)",
    "download_user_num": "Users who downloaded (count)",
    "report_cnt": "Reports (count)",
    "report_user_num": "Users who reported (count)",
    "reduce_similar_cnt": '"Show fewer like this" clicks (count)',
    "reduce_similar_user_num": 'Users who clicked "show fewer like this" (count)',
}
_DAILY_COLLECT = {
    "collect_cnt": "Favourites (count; NULL before logging started around 2020-07-28)",
    "collect_user_num": "Users who favourited (count; NULL when not logged)",
    "cancel_collect_cnt": "Favourites withdrawn (count; NULL when not logged)",
    "cancel_collect_user_num": "Users who withdrew a favourite (count; NULL when not logged)",
}

video_daily = Table(
    "video_daily",
    metadata,
    _col("video_id", Integer, "Video id", primary_key=True, autoincrement=False),
    _col("date", Integer, "Day of the statistics (YYYYMMDD)", primary_key=True, autoincrement=False),
    _col("author_id", Integer, "Uploader's id"),
    _col("video_type", String, "NORMAL or AD"),
    _col("upload_dt", String, "Upload date (YYYY-MM-DD)"),
    _col("upload_type", String, "How the video was made, e.g. ShortImport"),
    _col("visible_status", String, "Visibility, mostly public"),
    _col("video_duration", Float, "Video length (ms); NULL in about 3% of rows"),
    _col("video_width", Integer, "Width (pixels)"),
    _col("video_height", Integer, "Height (pixels)"),
    _col("music_id", Integer, "Background music id"),
    _col("video_tag_id", Integer, "Platform tag id; 0 means no tag"),
    _col("video_tag_name", String, "Platform tag name; NULL exactly when video_tag_id is 0"),
    *[_col(name, Integer, text) for name, text in _DAILY_COUNTERS.items()],
    _col("play_progress", Float, "Average play progress that day (ratio of the video watched)"),
    *[_col(name, Integer, text) for name, text in _DAILY_COUNTERS_2.items()],
    *[_col(name, Integer, text) for name, text in _DAILY_COLLECT.items()],
    comment="Platform-wide daily statistics per video, from item_daily_features.csv (counts are for all users).",
)

DAILY_COLUMNS = [c.name for c in video_daily.columns]


def _interaction_columns() -> list[Column]:
    return [
        _col("user_id", Integer, "User id", nullable=False),
        _col("video_id", Integer, "Video id", nullable=False),
        _col("play_duration", Integer, "Play time of this view (ms)", nullable=False),
        _col("video_duration", Integer, "Video length as logged with this view (ms)", nullable=False),
        _col("time", String, "Local time of the view, Asia/Shanghai (YYYY-MM-DD HH:MM:SS.fff); NULL if not logged"),
        _col("date", Integer, "Log partition date (YYYYMMDD); can disagree with time; NULL if not logged"),
        _col("timestamp", Float, "Unix time of the view (seconds, with milliseconds); NULL if not logged"),
        _col(
            "watch_ratio",
            Float,
            "play_duration / video_duration (ratio; > 1 means re-watched or looped)",
            nullable=False,
        ),
    ]


train_interactions = Table(
    "train_interactions",
    metadata,
    *_interaction_columns(),
    Index(None, "user_id"),
    Index(None, "video_id"),
    comment="Training log from big_matrix.csv (partially observed; exact duplicate rows dropped, re-watches kept).",
)

INTERACTION_COLUMNS = [c.name for c in train_interactions.columns]

eval_interactions = Table(
    "eval_interactions",
    metadata,
    *_interaction_columns(),
    UniqueConstraint("user_id", "video_id"),
    Index(None, "video_id"),
    comment=(
        "Evaluation matrix from small_matrix.csv: 1,411 users x 3,327 videos, fully observed, "
        "disjoint from the training log; rows without a logged time are kept."
    ),
)

friendships = Table(
    "friendships",
    metadata,
    _col("user_id", Integer, "User id", primary_key=True, autoincrement=False),
    _col("friend_id", Integer, "A friend's user id, from social_network.csv", primary_key=True, autoincrement=False),
    comment="Friend lists of social_network.csv, one row per (user, friend).",
)

INPUT_TABLES = {
    "users": users,
    "videos": videos,
    "video_tags": video_tags,
    "video_daily": video_daily,
    "train_interactions": train_interactions,
    "eval_interactions": eval_interactions,
    "friendships": friendships,
}

# ---------------------------------------------------------------- outputs (written by run-batch)

models = Table(
    "models",
    metadata,
    _col("id", Integer, "Model id", primary_key=True),
    _col("name", String, "Model family, e.g. seed", nullable=False),
    _col("path", Text, "Saved .keras file", nullable=False),
    _col("sha256", String(64), "SHA-256 of the saved file, checked before reloading", nullable=False),
    _col("architecture", Text, "Layer summary (JSON)", nullable=False),
    _col("params", Text, "Training settings (JSON): epochs, batch size, learning rate, seed", nullable=False),
    _col("n_parameters", Integer, "Trainable parameters (count)", nullable=False),
    _col("data_fingerprint", String(64), "Fingerprint of the input files the model was trained on", nullable=False),
    _col(
        "settings_key",
        String(64),
        "Hash of the model settings; with the data fingerprint it decides reloading",
        nullable=False,
    ),
    _col("val_loss", Float, "Best validation loss (the model's training loss, on the held-out lists or rows)"),
    _col("epochs_trained", Integer, "Epochs run before early stopping (count)"),
    _col("train_seconds", Float, "Training wall time (s)"),
    _col("train_rows", Integer, "Training examples (count)"),
    _col("created_at", String, "When the model was saved (UTC, ISO 8601)", nullable=False),
    comment="Trained models, one row per saved .keras file.",
)


model_user_tables = Table(
    "model_user_tables",
    metadata,
    _col("model_id", Integer, "Model the tables belong to", ForeignKey("models.id"), primary_key=True),
    _col(
        "first_user", Integer, "First user of the file (catalogue index: users sorted by id, from 0)", primary_key=True
    ),
    _col("stop_user", Integer, "One past the last user of the file (catalogue index)", nullable=False),
    _col("path", Text, "Parquet file: each user's refit correction and residual factors", nullable=False),
    _col("sha256", String(64), "SHA-256 of the file, checked before a worker reads it", nullable=False),
    comment="Per-user tables of a model trained with --engine ray, kept beside its .keras file instead of inside "
    "it: one file per range of users, each read only by the workers that score those users.",
)

runs = Table(
    "runs",
    metadata,
    _col("id", Integer, "Run id", primary_key=True),
    _col("started_at", String, "Start (UTC, ISO 8601)", nullable=False),
    _col("finished_at", String, "End (UTC, ISO 8601); NULL while running"),
    _col("status", String, " or ".join([", ".join(RUN_STATUSES[:-1]), RUN_STATUSES[-1]]), nullable=False),
    _col("exit_code", Integer, "Process exit code (0 success; see the README's table)"),
    _col("data_source", Text, "Where the data came from (a path, or synthetic sample path)"),
    _col("synthetic", Boolean, "1 if the data is recgen's synthetic sample, not real KuaiRec"),
    _col("data_fingerprint", String(64), "Hash over the SHA-256 of every input file"),
    _col("model_name", String, "Model family used, e.g. seed"),
    _col("model_id", Integer, "Model used", ForeignKey("models.id")),
    _col("trained", Boolean, "1 if the model was trained in this run, 0 if reloaded"),
    _col("k", Integer, "List length of recommendations and metrics (count)"),
    _col("n_users", Integer, "Users given recommendations (count)"),
    _col("n_videos", Integer, "Videos in the catalogue (count)"),
    _col("n_train_rows", Integer, "Training interactions (count)"),
    _col("n_recommendations", Integer, "Recommendation rows written (count)"),
    _col("n_eval_users", Integer, "Users evaluated on the fully observed matrix (count)"),
    _col("ingest_seconds", Float, "Loading the CSVs (s)"),
    _col("features_seconds", Float, "Building features (s)"),
    _col("train_seconds", Float, "Training or reloading the model (s)"),
    _col("recommend_seconds", Float, "Scoring all users and writing the top-k (s)"),
    _col("evaluate_seconds", Float, "Evaluating the model and baselines (s)"),
    _col("error", Text, "Why the run failed (NULL if it did not)"),
    _col("warnings", Text, "What went wrong but was handled, one per line, e.g. a corrupt saved model retrained"),
    _col("n_rejected_rows", Integer, "Input rows set aside in rejected_rows for the data this run used (count)"),
    _col(
        "pruned_at",
        String,
        "When retention (--keep-runs) removed this run's recommendations and metrics (UTC); NULL while kept",
    ),
    _col(
        "evaluation_key",
        String(64),
        "Hash of everything the metrics depend on (data, models, k, seed, scorer, recgen version): a run with "
        "the key of a kept run copies its metrics",
    ),
    comment="One row per run-batch invocation, with its timings per stage.",
)

recommendations = Table(
    "recommendations",
    metadata,
    _col("run_id", Integer, "Run that wrote the row", ForeignKey("runs.id"), primary_key=True, autoincrement=False),
    _col("user_id", Integer, "User id", primary_key=True, autoincrement=False),
    _col("rank", Integer, "Position in the user's list, 1 = best", primary_key=True, autoincrement=False),
    _col("video_id", Integer, "Recommended video (never one the user has in the training log)", nullable=False),
    _col("score", Float, "Model score; higher is better (predicted watch ratio for the seed model)", nullable=False),
    _col("source", String, "Which path produced the row: model, content or popularity", nullable=False),
    comment="Top-k recommendations per user per run; read the latest published run through latest_recommendations.",
    postgresql_partition_by="LIST (run_id)",  # one partition per run on PostgreSQL (migration 0003)
)

user_metrics = Table(
    "user_metrics",
    metadata,
    _col("run_id", Integer, "Run", ForeignKey("runs.id"), primary_key=True, autoincrement=False),
    _col("user_id", Integer, "Fully observed user", primary_key=True, autoincrement=False),
    _col("n_items", Integer, "Videos of this user in the evaluation matrix (count)", nullable=False),
    _col("n_relevant", Integer, "Of those, videos with watch_ratio > 2 (count)", nullable=False),
    _col("hit_ratio", Float, "Overlap of predicted and actual top-k by watch ratio / k (0..1)"),
    _col("ndcg", Float, "NDCG@k with gain min(watch_ratio, 5), ideal order of all the user's videos (0..1)"),
    _col("seed_ndcg", Float, "The seed notebook's NDCG, normalised by the predicted list itself (0..1; inflated)"),
    _col("precision", Float, "Share of the top-k with watch_ratio > 2 (0..1)"),
    _col("recall", Float, "Share of the user's watch_ratio > 2 videos found in the top-k (0..1; NULL if none)"),
    _col("mae", Float, "Mean absolute error of predicted vs actual watch ratio (ratio; NULL if not a predictor)"),
    _col("rmse", Float, "Root mean squared error of predicted vs actual watch ratio (ratio; NULL if not a predictor)"),
    _col("spearman", Float, "Rank correlation of score and watch ratio over the user's videos (-1..1)"),
    comment="Per-user evaluation of a run's model on the fully observed matrix, at k = runs.k.",
    postgresql_partition_by="LIST (run_id)",
)

# On PostgreSQL each run's rows of these tables live in a partition of their own, which retention drops.
PARTITIONED_TABLES = (recommendations, user_metrics)

run_metrics = Table(
    "run_metrics",
    metadata,
    _col("run_id", Integer, "Run", ForeignKey("runs.id"), primary_key=True, autoincrement=False),
    _col(
        "model_name", String, "model (the run's model) or a baseline: random, popularity, item_mean", primary_key=True
    ),
    _col("metric", String, "Metric name, e.g. ndcg@50, coverage@50", primary_key=True),
    _col("value", Float, "Mean over evaluated users, or the catalogue-level value"),
    comment="Run-level metrics of the model and the baselines, evaluated the same way.",
)

data_profile = Table(
    "data_profile",
    metadata,
    _col("section", String, "Report section, e.g. overview, quality, watch_ratio", primary_key=True),
    _col("name", String, "What is measured, e.g. train_rows or share_above_2.train", primary_key=True),
    _col("value", Float, "The measured value (NULL if it cannot be computed)"),
    _col("unit", String, "Unit of value, e.g. rows, users, ratio, share (0..1), seconds"),
    _col("description", Text, "What the value means, in one sentence", nullable=False),
    comment="Data profile written by `recgen report`: every number of the data-analysis report, one row each.",
)

rejected_rows = Table(
    "rejected_rows",
    metadata,
    _col("id", Integer, "Row id", primary_key=True),
    _col("file", String, "Input file the row came from, e.g. big_matrix.csv", nullable=False),
    _col("line", Integer, "Line number in that file (1 = the header)", nullable=False),
    _col("column", String, "Column holding the offending value (NULL if the row as a whole is the problem)"),
    _col("value", Text, "The offending value as read (NULL if missing)"),
    _col("reason", Text, "Why the row was set aside, e.g. watch_ratio is negative", nullable=False),
    _col("file_sha256", String(64), "SHA-256 of the file version the row came from (see source_files)", nullable=False),
    Index(None, "file"),
    comment=(
        "Input rows kept out of the tables, with the reason: the rest of their file was loaded. A file whose "
        "rejected share exceeds the threshold (--max-rejected, default 1%) fails the run instead."
    ),
)

# ---------------------------------------------------------------- views over the latest published run

LATEST_RUN = f"(SELECT max(id) FROM runs WHERE status = '{STATUS_PUBLISHED}')"

VIEWS = {
    "latest_recommendations": f"SELECT * FROM recommendations WHERE run_id = {LATEST_RUN}",
    "latest_user_metrics": f"SELECT * FROM user_metrics WHERE run_id = {LATEST_RUN}",
    "latest_run_metrics": f"SELECT * FROM run_metrics WHERE run_id = {LATEST_RUN}",
}

VIEW_DESCRIPTIONS = {
    "latest_recommendations": "Recommendations of the last published run (what users are shown now).",
    "latest_user_metrics": "Per-user metrics of the last published run.",
    "latest_run_metrics": "Model and baseline metrics of the last published run.",
}
