"""Report sections on the dataset itself: sizes, data quality, users, videos and their categories."""

from __future__ import annotations

import numpy as np
from sqlalchemy import text

from recgen.report.categories import CATEGORY_VIEWS_PREFIX, CATEGORY_VIEWS_SECTION, NO_CATEGORY, english_category
from recgen.report.page import ReportPage
from recgen.report.scans import MIN_SUPPORT, query_frame
from recgen.store.schema import INPUT_TABLES

TOP_VIDEOS = 10


def overview(page: ReportPage) -> None:
    counts = {}
    with page.engine.connect() as conn:
        for name in ("users", "videos", "video_daily", "friendships"):
            counts[name] = conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
        span = conn.execute(text("SELECT min(date), max(date) FROM train_interactions")).one()
    counts["train_interactions"] = int(page.scans.train_users["n"].sum())
    counts["eval_interactions"] = int(page.scans.eval_users["n"].sum())
    n_train_users, n_train_videos = len(page.scans.train_users), len(page.train_video)
    n_eval_users, n_eval_videos = len(page.scans.eval_users), len(page.eval_video)
    pairs_eval = n_eval_users * n_eval_videos
    rows = []
    for table, n in counts.items():
        page.add("overview", f"{table}_rows", n, "rows", f"Rows in the {table} table")
        rows.append([table, INPUT_TABLES[table].comment, n])
    page.table("overview", ["table", "content", "rows"], rows)
    facts = [
        ("train_users", n_train_users, "users", "Users with at least one training interaction (big_matrix)"),
        ("train_videos", n_train_videos, "videos", "Videos with at least one training interaction"),
        ("eval_users", n_eval_users, "users", "Users of the fully observed small_matrix"),
        ("eval_videos", n_eval_videos, "videos", "Videos of the fully observed small_matrix"),
        (
            "train_density",
            counts["train_interactions"] / max(counts["users"] * counts["videos"], 1),
            "rows per cell",
            "Training rows / (users x videos); re-watches count, so this is not the share of observed pairs",
        ),
        (
            "eval_density",
            counts["eval_interactions"] / max(pairs_eval, 1),
            "share (0..1)",
            "Observed share of the small matrix's user x video cells",
        ),
        ("first_date", span[0], "YYYYMMDD", "First log date in the training matrix"),
        ("last_date", span[1], "YYYYMMDD", "Last log date in the training matrix"),
    ]
    for name, value, unit, description in facts:
        page.add("overview", name, value, unit, description)
    page.table(
        "overview",
        ["measure", "value", "unit"],
        [[d, str(v) if u == "YYYYMMDD" else v, u] for _, v, u, d in facts],
    )
    page.counts = counts


def quality(page: ReportPage) -> None:
    rows = []
    for table_name, table in INPUT_TABLES.items():
        if table_name in ("train_interactions", "eval_interactions"):
            continue
        columns = [c.name for c in table.columns if c.nullable and not c.primary_key]
        if not columns:
            continue
        sql = ", ".join(f"count(*) - count({c})" for c in columns)
        with page.engine.connect() as conn:
            values = conn.execute(text(f"SELECT count(*), {sql} FROM {table_name}")).one()
        total = values[0]
        for column, missing in zip(columns, values[1:], strict=True):
            if missing:
                rows.append([table_name, column, missing, missing / total if total else None])
            page.add("quality", f"missing.{table_name}.{column}", missing, "rows", f"NULLs in {table_name}.{column}")
    for table_name, frame in (
        ("train_interactions", page.scans.train_users),
        ("eval_interactions", page.scans.eval_users),
    ):
        total = frame["n"].sum()
        for column in ("time", "date", "timestamp"):
            missing = int(frame[f"null_{column}"].sum())
            if missing:
                rows.append([table_name, column, missing, missing / total if total else None])
            page.add("quality", f"missing.{table_name}.{column}", missing, "rows", f"NULLs in {table_name}.{column}")
    rows.sort(key=lambda r: -r[2])
    page.para(
        "quality",
        "Missing values per column (NULL after loading: empty fields, <code>UNKNOWN</code> and <code>-124</code> "
        "placeholders). Columns without a missing value are left out of the table; every column is in "
        "<code>data_profile</code>.",
    )
    page.table("quality", ["table", "column", "missing rows", "share"], rows[:40])
    files = query_frame(page.engine, "SELECT name, table_name, rows_in_file, rows FROM source_files ORDER BY name")
    file_rows = []
    for record in files.itertuples():
        # Files whose lists become one row per item (item_categories -> video_tags) load more rows than
        # they have: nothing was dropped there.
        dropped = max(int(record.rows_in_file - record.rows), 0)
        file_rows.append([record.name, record.table_name, int(record.rows_in_file), int(record.rows), dropped])
        page.add(
            "quality",
            f"dropped.{record.name}",
            dropped,
            "rows",
            f"Rows of {record.name} not loaded (exact duplicates)",
        )
    page.table(
        "quality",
        ["file", "table", "rows in file", "rows loaded", "dropped (duplicates)"],
        file_rows,
        "Rows per source file (source_files). A file of lists (item_categories, social_network) loads one row "
        "per list item, so it can load more rows than it has.",
    )


def users(page: ReportPage) -> None:
    frame = page.scans.train_users
    per_user = frame["n"].to_numpy(float)
    mean_wr = (frame["sum_wr"] / frame["n"]).to_numpy(float)
    for name, values, unit in (
        ("interactions_per_user", per_user, "rows"),
        ("mean_watch_ratio_per_user", mean_wr, "ratio"),
    ):
        for stat, value in (
            ("mean", values.mean()),
            ("median", np.median(values)),
            ("p10", np.percentile(values, 10)),
            ("p90", np.percentile(values, 90)),
        ):
            page.add("users", f"{name}.{stat}", value, unit, f"{stat} over training users of {name.replace('_', ' ')}")
    bins = np.logspace(0, np.log10(max(per_user.max(), 10)), 40)
    page.chart(
        "users",
        "users_interactions",
        page.charts.histogram(
            {"users": per_user},
            bins=bins,
            title="Training interactions per user",
            xlabel="rows (log scale)",
            ylabel="users",
            log_x=True,
        ),
        f"Rows per user in big_matrix: median {np.median(per_user):,.0f}, mean {per_user.mean():,.0f}.",
    )
    page.chart(
        "users",
        "users_mean_watch_ratio",
        page.charts.histogram(
            {"users": np.clip(mean_wr, 0, 3)},
            bins=60,
            title="Mean watch ratio per user",
            xlabel="mean watch ratio (clipped at 3)",
            ylabel="users",
            markers=(1.0,),
        ),
        (
            f"Users' mean watch ratio: median {np.median(mean_wr):.2f}; users differ widely in how much of a "
            "video they watch."
        ),
    )


def video_stats(page: ReportPage) -> None:
    video = page.train_video
    counts = video["n"].to_numpy(float)
    page.add("videos", "interactions_per_video.mean", counts.mean(), "rows", "Mean training rows per video")
    page.add("videos", "interactions_per_video.median", np.median(counts), "rows", "Median training rows per video")
    page.add(
        "videos",
        "videos_below_min_support",
        int((counts < MIN_SUPPORT).sum()),
        "videos",
        f"Videos with fewer than {MIN_SUPPORT} training rows",
    )
    bins = np.logspace(0, np.log10(max(counts.max(), 10)), 40)
    page.chart(
        "videos",
        "videos_interactions",
        page.charts.histogram(
            {"videos": counts},
            bins=bins,
            title="Training interactions per video",
            xlabel="rows (log scale)",
            ylabel="videos",
            log_x=True,
            log_y=True,
        ),
        f"Rows per video: median {np.median(counts):,.0f}, max {counts.max():,.0f}.",
    )
    supported = video[video["n"] >= MIN_SUPPORT].join(page.videos, how="left")
    page.add("videos", "videos_ranked", len(supported), "videos", f"Videos with at least {MIN_SUPPORT} training rows")
    for kind, frame in (
        ("best", supported.nlargest(TOP_VIDEOS, "mean_wr")),
        ("worst", supported.nsmallest(TOP_VIDEOS, "mean_wr")),
    ):
        rows = [
            [
                int(vid),
                r.caption or "",
                english_category(r.category),
                (r.video_duration or 0) / 1000,
                int(r.n),
                r.mean_wr,
            ]
            for vid, r in frame.iterrows()
        ]
        page.table(
            "videos",
            ["video", "caption", "category", "duration (s)", "rows", "mean watch ratio"],
            rows,
            f"{kind.capitalize()} {TOP_VIDEOS} videos by mean training watch ratio (at least {MIN_SUPPORT} rows)",
        )
        if len(frame):
            page.add(
                "videos",
                f"{kind}_mean_watch_ratio",
                frame["mean_wr"].iloc[0],
                "ratio",
                f"Mean watch ratio of the {kind} video with enough support",
            )


def categories(page: ReportPage) -> None:
    """Training views per first-level category, for the category_mix query and the dashboard."""
    frame = page.train_video.join(page.videos["category"], how="left")
    views = frame.groupby(frame["category"].fillna(NO_CATEGORY))["n"].sum()
    for category, n in views.items():
        page.add(
            CATEGORY_VIEWS_SECTION,
            f"{CATEGORY_VIEWS_PREFIX}{category}",
            n,
            "rows",
            f"Training views of videos of first-level category {category}",
        )
