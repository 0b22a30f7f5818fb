"""The data-analysis report: the seed notebook's exploration, computed from the database in seconds.

`write_report(engine, out_dir)` writes a self-contained `index.html` with its PNG charts beside it (relative
links, no external resources) and (re)writes the `data_profile` table: every number of the report in long
format (section, name, value, unit, description), for SQL users and for the Datasette pages.

Nothing here loads the interactions into Python. Four grouped scans do the work in SQLite and run two at a
time on separate connections (SQLite releases the GIL): interactions per (video, watch-ratio bin) for the
training and the evaluation matrix, and per user for both. Every figure of the report is derived from those
few hundred thousand aggregate rows with numpy, which keeps the full KuaiRec (16M rows) under a minute.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from sqlalchemy import Engine, inspect, text

from recgen import features
from recgen.constants import RELEVANT_WATCH_RATIO
from recgen.errors import MissingInputError, OutputError
from recgen.queries import CATEGORY_VIEWS_PREFIX, CATEGORY_VIEWS_SECTION, NO_CATEGORY, english_category
from recgen.schema import INPUT_TABLES, data_profile

Progress = Callable[[str], None]

# Until the lead moves it into recgen.schema (with a migration), the table is declared here and created on
# first use; the plugin reads its descriptions from this declaration.
DATA_PROFILE = data_profile  # declared with the other tables in recgen.schema

REPORT_FILE = "index.html"
# (id, heading) of every section, in order; the test checks that each heading is in the page.
SECTIONS = (
    ("overview", "Dataset overview and sizes"),
    ("quality", "Data quality"),
    ("users", "Users"),
    ("videos", "Videos"),
    ("watch_ratio", "Watch-ratio distribution"),
    ("duration", "Watch ratio and video duration"),
    ("exposure", "Exposure skew"),
    ("matrices", "Small matrix vs big matrix"),
    ("correlations", "Video feature correlations"),
    ("features", "Video features and watch ratio"),
    ("pca", "PCA of video features"),
    ("summary", "Summary"),
)
THRESHOLDS = (0.5, 0.8, 1.0, 1.2, 1.5, 2.0)
BINS_PER_UNIT = 20  # watch-ratio bins of 0.05: every threshold is a bin edge, so shares are exact
OVERFLOW_BIN = 5 * BINS_PER_UNIT + 1  # all watch ratios above 5
MIN_SUPPORT = 50  # rows a video needs before its mean watch ratio is ranked (best/worst lists)
TOP_VIDEOS = 10
DURATION_EDGES_S = (0, 5, 7, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, np.inf)
FEATURE_QUANTILES = 10


def _ceil_bin(dialect: str) -> str:
    """The watch-ratio bin of a row: ceil(ratio x 20), so bin b holds (b-1)/20 < ratio <= b/20."""
    scaled = f"watch_ratio * {BINS_PER_UNIT}"
    if dialect == "sqlite":
        ceil = f"CAST({scaled} AS INTEGER) + ({scaled} > CAST({scaled} AS INTEGER))"
        return f"min({ceil}, {OVERFLOW_BIN})"
    return f"least(CAST(ceil({scaled}) AS INTEGER), {OVERFLOW_BIN})"


@dataclass
class Profile:
    """The data_profile rows, collected while the report is computed."""

    rows: list[dict] = field(default_factory=list)

    def add(self, section: str, name: str, value, unit: str, description: str) -> None:
        number = None if value is None or (isinstance(value, float) and not np.isfinite(value)) else float(value)
        self.rows.append({"section": section, "name": name, "value": number, "unit": unit, "description": description})

    def get(self, section: str, name: str) -> float | None:
        return next((r["value"] for r in self.rows if r["section"] == section and r["name"] == name), None)


@dataclass
class Scans:
    """The grouped scans of both interaction tables."""

    train_bins: pd.DataFrame  # video_id, bin, n, sum_wr
    eval_bins: pd.DataFrame
    train_users: pd.DataFrame  # user_id, n, sum_wr, null_time, null_date, null_timestamp
    eval_users: pd.DataFrame


def _read(engine: Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.exec_driver_sql(sql)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _scan(engine: Engine) -> Scans:
    dialect = engine.dialect.name
    # NOT INDEXED: a sequential scan and one sort beat 11M index-ordered lookups by 3x in SQLite.
    hint = " NOT INDEXED" if dialect == "sqlite" else ""
    bin_expr = _ceil_bin(dialect)

    def bins(table: str) -> str:
        return (
            f"SELECT video_id, {bin_expr} AS bin, count(*) AS n, sum(watch_ratio) AS sum_wr "
            f"FROM {table}{hint} GROUP BY video_id, bin"
        )

    def users(table: str) -> str:
        nulls = ", ".join(
            f"sum(CASE WHEN {c} IS NULL THEN 1 ELSE 0 END) AS null_{c}" for c in ("time", "date", "timestamp")
        )
        return f"SELECT user_id, count(*) AS n, sum(watch_ratio) AS sum_wr, {nulls} FROM {table} GROUP BY user_id"

    queries = [
        bins("train_interactions"),
        bins("eval_interactions"),
        users("train_interactions"),
        users("eval_interactions"),
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        frames = list(pool.map(lambda sql: _read(engine, sql), queries))
    return Scans(*frames)


def _per_video(bins: pd.DataFrame) -> pd.DataFrame:
    grouped = bins.groupby("video_id").agg(n=("n", "sum"), sum_wr=("sum_wr", "sum"))
    grouped["mean_wr"] = grouped["sum_wr"] / grouped["n"]
    return grouped


def _histogram(bins: pd.DataFrame) -> np.ndarray:
    """Rows per watch-ratio bin 0..OVERFLOW_BIN."""
    counts = bins.groupby("bin")["n"].sum()
    out = np.zeros(OVERFLOW_BIN + 1)
    out[counts.index.to_numpy(int)] = counts.to_numpy(float)
    return out


def _share_above(hist: np.ndarray, threshold: float) -> float:
    total = hist.sum()
    return float(hist[int(round(threshold * BINS_PER_UNIT)) + 1 :].sum() / total) if total else float("nan")


def _gini(counts: np.ndarray) -> float:
    from recgen.charts import lorenz_points

    return lorenz_points(counts)[2]


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, int | np.integer) or float(value).is_integer() and abs(value) >= 100:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


class _Report:
    def __init__(self, engine: Engine, out_dir: Path, say: Progress):
        self.engine, self.out_dir, self.say = engine, out_dir, say
        self.profile = Profile()
        self.sections: dict[str, dict] = {key: {"heading": heading, "blocks": []} for key, heading in SECTIONS}

    # --- output helpers
    def chart(self, section: str, name: str, png: bytes, caption: str) -> None:
        path = self.out_dir / f"{name}.png"
        path.write_bytes(png)
        self.sections[section]["blocks"].append({"kind": "image", "src": path.name, "caption": caption})

    def para(self, section: str, html_text: str) -> None:
        self.sections[section]["blocks"].append({"kind": "text", "text": html_text})

    def table(self, section: str, header: list[str], rows: list[list], caption: str = "") -> None:
        cells = [
            [_fmt(v) if isinstance(v, float | int | np.number) and not isinstance(v, bool) else v for v in r]
            for r in rows
        ]
        self.sections[section]["blocks"].append({"kind": "table", "header": header, "rows": cells, "caption": caption})

    def add(self, section: str, name: str, value, unit: str, description: str) -> None:
        self.profile.add(section, name, value, unit, description)

    # --- sections
    def run(self) -> None:
        from recgen import charts

        self.charts = charts
        self.say("report: scanning interactions (4 grouped scans, 2 at a time)")
        started = time.perf_counter()
        self.scans = _scan(self.engine)
        self.say(f"report: scans done in {time.perf_counter() - started:.1f} s")
        self.videos = _read(
            self.engine,
            "SELECT video_id, caption, first_level_category_name AS category, video_duration FROM videos",
        ).set_index("video_id")
        self.train_video = _per_video(self.scans.train_bins)
        self.eval_video = _per_video(self.scans.eval_bins)
        self.train_hist = _histogram(self.scans.train_bins)
        self.eval_hist = _histogram(self.scans.eval_bins)
        for step in (
            self.overview,
            self.quality,
            self.users,
            self.video_stats,
            self.categories,
            self.watch_ratio,
            self.duration,
            self.exposure,
            self.matrices,
            self.video_features,
            self.summary,
        ):
            step()

    def overview(self) -> None:
        counts = {}
        with self.engine.connect() as conn:
            for name in ("users", "videos", "video_daily", "friendships"):
                counts[name] = conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
            span = conn.execute(text("SELECT min(date), max(date) FROM train_interactions")).one()
        counts["train_interactions"] = int(self.scans.train_users["n"].sum())
        counts["eval_interactions"] = int(self.scans.eval_users["n"].sum())
        n_train_users, n_train_videos = len(self.scans.train_users), len(self.train_video)
        n_eval_users, n_eval_videos = len(self.scans.eval_users), len(self.eval_video)
        pairs_eval = n_eval_users * n_eval_videos
        rows = []
        for table, n in counts.items():
            self.add("overview", f"{table}_rows", n, "rows", f"Rows in the {table} table")
            rows.append([table, INPUT_TABLES[table].comment, n])
        self.table("overview", ["table", "content", "rows"], rows)
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
            self.add("overview", name, value, unit, description)
        self.table(
            "overview",
            ["measure", "value", "unit"],
            [[d, str(v) if u == "YYYYMMDD" else v, u] for _, v, u, d in facts],
        )
        self.counts = counts

    def quality(self) -> None:
        rows = []
        for table_name, table in INPUT_TABLES.items():
            if table_name in ("train_interactions", "eval_interactions"):
                continue
            columns = [c.name for c in table.columns if c.nullable and not c.primary_key]
            if not columns:
                continue
            sql = ", ".join(f"count(*) - count({c})" for c in columns)
            with self.engine.connect() as conn:
                values = conn.execute(text(f"SELECT count(*), {sql} FROM {table_name}")).one()
            total = values[0]
            for column, missing in zip(columns, values[1:], strict=True):
                if missing:
                    rows.append([table_name, column, missing, missing / total if total else None])
                self.add(
                    "quality", f"missing.{table_name}.{column}", missing, "rows", f"NULLs in {table_name}.{column}"
                )
        for table_name, frame in (
            ("train_interactions", self.scans.train_users),
            ("eval_interactions", self.scans.eval_users),
        ):
            total = frame["n"].sum()
            for column in ("time", "date", "timestamp"):
                missing = int(frame[f"null_{column}"].sum())
                if missing:
                    rows.append([table_name, column, missing, missing / total if total else None])
                self.add(
                    "quality", f"missing.{table_name}.{column}", missing, "rows", f"NULLs in {table_name}.{column}"
                )
        rows.sort(key=lambda r: -r[2])
        self.para(
            "quality",
            "Missing values per column (NULL after loading: empty fields, <code>UNKNOWN</code> and <code>-124</code> "
            "placeholders). Columns without a missing value are left out of the table; every column is in "
            "<code>data_profile</code>.",
        )
        self.table("quality", ["table", "column", "missing rows", "share"], rows[:40])
        files = _read(self.engine, "SELECT name, table_name, rows_in_file, rows FROM source_files ORDER BY name")
        file_rows = []
        for record in files.itertuples():
            # Files whose lists become one row per item (item_categories -> video_tags) load more rows than
            # they have: nothing was dropped there.
            dropped = max(int(record.rows_in_file - record.rows), 0)
            file_rows.append([record.name, record.table_name, int(record.rows_in_file), int(record.rows), dropped])
            self.add(
                "quality",
                f"dropped.{record.name}",
                dropped,
                "rows",
                f"Rows of {record.name} not loaded (exact duplicates)",
            )
        self.table(
            "quality",
            ["file", "table", "rows in file", "rows loaded", "dropped (duplicates)"],
            file_rows,
            "Rows per source file (source_files). A file of lists (item_categories, social_network) loads one row "
            "per list item, so it can load more rows than it has.",
        )

    def users(self) -> None:
        frame = self.scans.train_users
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
                self.add(
                    "users", f"{name}.{stat}", value, unit, f"{stat} over training users of {name.replace('_', ' ')}"
                )
        bins = np.logspace(0, np.log10(max(per_user.max(), 10)), 40)
        self.chart(
            "users",
            "users_interactions",
            self.charts.histogram(
                {"users": per_user},
                bins=bins,
                title="Training interactions per user",
                xlabel="rows (log scale)",
                ylabel="users",
                log_x=True,
            ),
            f"Rows per user in big_matrix: median {np.median(per_user):,.0f}, mean {per_user.mean():,.0f}.",
        )
        self.chart(
            "users",
            "users_mean_watch_ratio",
            self.charts.histogram(
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

    def video_stats(self) -> None:
        video = self.train_video
        counts = video["n"].to_numpy(float)
        self.add("videos", "interactions_per_video.mean", counts.mean(), "rows", "Mean training rows per video")
        self.add("videos", "interactions_per_video.median", np.median(counts), "rows", "Median training rows per video")
        self.add(
            "videos",
            "videos_below_min_support",
            int((counts < MIN_SUPPORT).sum()),
            "videos",
            f"Videos with fewer than {MIN_SUPPORT} training rows",
        )
        bins = np.logspace(0, np.log10(max(counts.max(), 10)), 40)
        self.chart(
            "videos",
            "videos_interactions",
            self.charts.histogram(
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
        supported = video[video["n"] >= MIN_SUPPORT].join(self.videos, how="left")
        self.add(
            "videos", "videos_ranked", len(supported), "videos", f"Videos with at least {MIN_SUPPORT} training rows"
        )
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
            self.table(
                "videos",
                ["video", "caption", "category", "duration (s)", "rows", "mean watch ratio"],
                rows,
                f"{kind.capitalize()} {TOP_VIDEOS} videos by mean training watch ratio (at least {MIN_SUPPORT} rows)",
            )
            if len(frame):
                self.add(
                    "videos",
                    f"{kind}_mean_watch_ratio",
                    frame["mean_wr"].iloc[0],
                    "ratio",
                    f"Mean watch ratio of the {kind} video with enough support",
                )

    def watch_ratio(self) -> None:
        edges = np.arange(OVERFLOW_BIN + 1) / BINS_PER_UNIT  # bin b covers (edges[b-1], edges[b]]
        centers = np.r_[0.0, edges[1:] - 0.5 / BINS_PER_UNIT]
        centers[-1] = 5.0 + 0.5 / BINS_PER_UNIT
        for name, hist in (("train", self.train_hist), ("eval", self.eval_hist)):
            self.add(
                "watch_ratio",
                f"share_above_5.{name}",
                hist[OVERFLOW_BIN] / max(hist.sum(), 1),
                "share (0..1)",
                f"Share of {name} rows with watch ratio > 5",
            )
        rows = []
        for threshold in THRESHOLDS:
            train, evaluation = _share_above(self.train_hist, threshold), _share_above(self.eval_hist, threshold)
            rows.append([f"> {threshold:g}", train, evaluation])
            for name, value in (("train", train), ("eval", evaluation)):
                self.add(
                    "watch_ratio",
                    f"share_above_{threshold:g}.{name}",
                    value,
                    "share (0..1)",
                    f"Share of {name} rows with watch ratio > {threshold:g}",
                )
        self.chart(
            "watch_ratio",
            "watch_ratio_hist",
            self.charts.histogram(
                {"big_matrix (train)": centers, "small_matrix (eval)": centers},
                weights={
                    "big_matrix (train)": self.train_hist / self.train_hist.sum(),
                    "small_matrix (eval)": self.eval_hist / max(self.eval_hist.sum(), 1),
                },
                bins=np.r_[edges, 5.1] - 0.5 / BINS_PER_UNIT + 1e-9,
                title="Watch-ratio distribution (last bin: all ratios above 5)",
                xlabel="watch ratio (play time / video length)",
                ylabel="share of rows",
                markers=THRESHOLDS,
            ),
            "Share of rows per watch-ratio bin of 0.05; dotted lines at the thresholds 0.5, 0.8, 1, 1.2, 1.5 and 2.",
        )
        self.table(
            "watch_ratio",
            ["watch ratio", "share of big_matrix rows", "share of small_matrix rows"],
            rows,
            "Share of rows above each threshold (2 is the KuaiRec paper's positive).",
        )
        for name, frame in (("train", self.scans.train_users), ("eval", self.scans.eval_users)):
            total = frame["n"].sum()
            self.add(
                "watch_ratio",
                f"mean.{name}",
                frame["sum_wr"].sum() / total if total else None,
                "ratio",
                f"Mean watch ratio over {name} rows",
            )

    def categories(self) -> None:
        """Training views per first-level category, for the category_mix query and the dashboard."""
        frame = self.train_video.join(self.videos["category"], how="left")
        views = frame.groupby(frame["category"].fillna(NO_CATEGORY))["n"].sum()
        for category, n in views.items():
            self.add(
                CATEGORY_VIEWS_SECTION,
                f"{CATEGORY_VIEWS_PREFIX}{category}",
                n,
                "rows",
                f"Training views of videos of first-level category {category}",
            )

    def duration(self) -> None:
        frame = self.train_video.join(self.videos["video_duration"], how="inner").dropna(subset=["video_duration"])
        seconds = frame["video_duration"].to_numpy(float) / 1000
        edges = np.array(DURATION_EDGES_S, dtype=float)
        which = np.clip(np.searchsorted(edges, seconds, side="right") - 1, 0, len(edges) - 2)
        n = np.bincount(which, weights=frame["n"].to_numpy(float), minlength=len(edges) - 1)
        total = np.bincount(which, weights=frame["sum_wr"].to_numpy(float), minlength=len(edges) - 1)
        mean = np.divide(total, n, out=np.full_like(total, np.nan), where=n > 0)
        labels = [
            f"{edges[i]:g}-{edges[i + 1]:g} s" if np.isfinite(edges[i + 1]) else f">= {edges[i]:g} s"
            for i in range(len(edges) - 1)
        ]
        centers = np.array(
            [
                np.sqrt(max(edges[i], 1) * (edges[i + 1] if np.isfinite(edges[i + 1]) else edges[i] * 2))
                for i in range(len(edges) - 1)
            ]
        )
        keep = n > 0
        self.chart(
            "duration",
            "duration_watch_ratio",
            self.charts.binned_means(
                centers[keep],
                {"mean watch ratio": mean[keep]},
                n[keep],
                title="Mean watch ratio by video duration (training rows)",
                xlabel="video duration (s, log scale)",
                ylabel="mean watch ratio",
                log_x=True,
            ),
            (
                "Short videos are watched several times over, long ones abandoned: duration is the strongest "
                "single driver of watch ratio."
            ),
        )
        rows = [[labels[i], int(n[i]), mean[i]] for i in range(len(labels)) if n[i] > 0]
        self.table("duration", ["video duration", "training rows", "mean watch ratio"], rows)
        for i in np.flatnonzero(keep):
            self.add(
                "duration",
                f"mean_watch_ratio.{labels[i]}",
                mean[i],
                "ratio",
                f"Mean training watch ratio of videos lasting {labels[i]}",
            )
        corr = pd.Series(seconds).corr(pd.Series(frame["mean_wr"].to_numpy(float)), method="spearman")
        self.add(
            "duration",
            "spearman_duration_mean_watch_ratio",
            corr,
            "-1..1",
            "Rank correlation of video duration and the video's mean watch ratio",
        )
        self.duration_spread = (
            (mean[keep][0], mean[keep][-1], labels[np.flatnonzero(keep)[0]], labels[np.flatnonzero(keep)[-1]])
            if keep.any()
            else None
        )

    def exposure(self) -> None:
        counts = np.zeros(len(self.videos))
        present = self.train_video["n"].reindex(self.videos.index).fillna(0).to_numpy(float)
        counts[: len(present)] = present
        gini = _gini(counts)
        ordered = np.sort(counts)[::-1]
        total = ordered.sum()
        shares = {
            p: ordered[: max(int(round(len(ordered) * p)), 1)].sum() / total if total else np.nan
            for p in (0.01, 0.1, 0.5)
        }
        self.add(
            "exposure", "gini_rows_per_video", gini, "0..1", "Gini coefficient of training rows per catalogue video"
        )
        for p, share in shares.items():
            self.add(
                "exposure",
                f"share_top_{p:g}",
                share,
                "share (0..1)",
                f"Share of training rows on the top {p:.0%} most exposed videos",
            )
        self.add(
            "exposure",
            "videos_without_rows",
            int((counts == 0).sum()),
            "videos",
            "Catalogue videos without a training row",
        )
        user_counts = self.scans.train_users["n"].to_numpy(float)
        self.chart(
            "exposure",
            "exposure_lorenz",
            self.charts.lorenz(
                {"rows per video": counts, "rows per user": user_counts},
                title="Exposure skew (Lorenz curves)",
                xlabel="share of videos / users, least exposed first",
                ylabel="share of training rows",
            ),
            f"The top 1% of videos hold {shares[0.01]:.1%} of training rows, the top 10% {shares[0.1]:.1%} "
            f"(Gini {gini:.2f}): "
            "big_matrix exposure is missing not at random, which popularity baselines exploit.",
        )
        self.gini = gini

    def matrices(self) -> None:
        both = self.train_video.merge(self.eval_video, left_index=True, right_index=True, suffixes=("_train", "_eval"))
        both = both[both["n_train"] >= MIN_SUPPORT]
        corr = both["mean_wr_train"].corr(both["mean_wr_eval"]) if len(both) > 2 else np.nan
        self.add(
            "matrices",
            "videos_in_both",
            len(both),
            "videos",
            f"Small-matrix videos with at least {MIN_SUPPORT} training rows",
        )
        self.add(
            "matrices",
            "pearson_video_mean_train_eval",
            corr,
            "-1..1",
            "Correlation of a video's mean watch ratio in big_matrix and in small_matrix",
        )
        users = self.scans.train_users.merge(self.scans.eval_users, on="user_id", suffixes=("_train", "_eval"))
        user_corr = (
            (users["sum_wr_train"] / users["n_train"]).corr(users["sum_wr_eval"] / users["n_eval"])
            if len(users) > 2
            else np.nan
        )
        self.add(
            "matrices", "eval_users_in_train", len(users), "users", "Small-matrix users who also have training rows"
        )
        self.add(
            "matrices",
            "pearson_user_mean_train_eval",
            user_corr,
            "-1..1",
            "Correlation of a user's mean watch ratio in big_matrix and in small_matrix",
        )
        rows = []
        for label, hist, frame in (
            ("big_matrix (train)", self.train_hist, self.scans.train_users),
            ("small_matrix (eval)", self.eval_hist, self.scans.eval_users),
        ):
            total = frame["n"].sum()
            rows.append(
                [
                    label,
                    int(total),
                    frame["sum_wr"].sum() / total if total else None,
                    _share_above(hist, 1.0),
                    _share_above(hist, RELEVANT_WATCH_RATIO),
                ]
            )
        self.table("matrices", ["matrix", "rows", "mean watch ratio", "share > 1", "share > 2"], rows)
        if len(both):
            top = float(np.nanpercentile(np.r_[both["mean_wr_train"], both["mean_wr_eval"]], 99))
            self.chart(
                "matrices",
                "matrices_video_means",
                self.charts.scatter(
                    np.clip(both["mean_wr_train"], 0, top),
                    np.clip(both["mean_wr_eval"], 0, top),
                    title="Per-video mean watch ratio: big vs small matrix",
                    xlabel="big_matrix (train)",
                    ylabel="small_matrix (eval)",
                    diagonal=True,
                ),
                f"Each point a video of the small matrix (correlation {corr:.2f}); the small matrix shows every "
                "video to every user, "
                "so a video's mean there is free of the exposure bias of big_matrix.",
            )

    def video_features(self) -> None:
        video_ids = self.videos.index.to_numpy(np.int64)
        catalog = features.Catalog(user_ids=np.empty(0, np.int64), video_ids=np.sort(video_ids))
        matrix, names = features.seed_video_features(self.engine, catalog)
        frame = pd.DataFrame(matrix.astype(float), columns=list(names), index=catalog.video_ids)
        corr = frame.corr().to_numpy()
        self.chart(
            "correlations",
            "feature_correlations",
            self.charts.heatmap(corr, list(names), title="Correlations of the seed's 15 video features"),
            "Pearson correlations over videos (daily statistics averaged per video, missing values at the "
            "median, as the seed model sees them). "
            "Counts move together; rates carry separate information.",
        )
        upper = np.triu_indices(len(names), 1)
        for i, j in zip(*upper, strict=True):
            self.add(
                "correlations",
                f"pearson.{names[i]}.{names[j]}",
                corr[i, j],
                "-1..1",
                f"Correlation over videos of {names[i]} and {names[j]}",
            )
        strongest = np.argsort(-np.abs(corr[upper]))[:5]
        self.table(
            "correlations",
            ["feature", "feature", "correlation"],
            [[names[upper[0][i]], names[upper[1][i]], corr[upper][i]] for i in strongest],
            "Most correlated pairs",
        )
        target = self.train_video["mean_wr"].reindex(frame.index)
        supported = self.train_video["n"].reindex(frame.index).fillna(0) >= MIN_SUPPORT
        panels, rows = {}, []
        for name in names:
            x, y = frame.loc[supported, name], target[supported]
            spearman = x.corr(y, method="spearman") if supported.sum() > 2 else np.nan
            self.add(
                "features",
                f"spearman.{name}",
                spearman,
                "-1..1",
                f"Rank correlation of {name} and the video's mean training watch ratio",
            )
            rows.append([name, spearman])
            if supported.sum() >= FEATURE_QUANTILES:
                deciles = pd.qcut(x.rank(method="first"), FEATURE_QUANTILES, labels=False) + 1
                means = y.groupby(deciles).mean()
                panels[name] = (means.index.to_numpy(float), means.to_numpy(float))
        rows.sort(key=lambda r: -abs(r[1]) if np.isfinite(r[1]) else 0)
        self.chart(
            "features",
            "feature_spearman",
            self.charts.bars(
                [r[0] for r in rows],
                [r[1] for r in rows],
                title="Rank correlation with the video's mean watch ratio",
                xlabel="Spearman correlation",
                signed=True,
            ),
            f"Videos with at least {MIN_SUPPORT} training rows.",
        )
        if panels:
            self.chart(
                "features",
                "feature_deciles",
                self.charts.small_multiples(panels, ylabel="mean watch ratio"),
                "Mean watch ratio of the videos in each decile of a feature (1 = lowest tenth).",
            )
        self.feature_ranking = rows
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=0)
        points = pca.fit_transform(frame.to_numpy())
        ratio = pca.explained_variance_ratio_
        for i, value in enumerate(ratio):
            self.add(
                "pca",
                f"explained_variance_pc{i + 1}",
                value,
                "share (0..1)",
                f"Share of the scaled features' variance along principal component {i + 1}",
            )
        color = target.to_numpy(float)
        has = np.isfinite(color)
        self.chart(
            "pca",
            "pca_videos",
            self.charts.scatter(
                points[has, 0],
                points[has, 1],
                color=color[has],
                color_label="mean watch ratio",
                title="Videos on the first two principal components",
                xlabel=f"PC1 ({ratio[0]:.0%} of variance)",
                ylabel=f"PC2 ({ratio[1]:.0%} of variance)",
            ),
            (
                "Each point a video with training rows, coloured by its mean watch ratio (colour scale clipped to "
                "the 2nd-98th percentile)."
            ),
        )
        loadings = pd.DataFrame(pca.components_.T, index=list(names), columns=["PC1", "PC2"])
        top = loadings.abs().sum(axis=1).nlargest(6).index
        self.table(
            "pca",
            ["feature", "PC1 loading", "PC2 loading"],
            [[n, loadings.loc[n, "PC1"], loadings.loc[n, "PC2"]] for n in top],
        )

    def summary(self) -> None:
        p = self.profile
        items = [
            f"{self.counts['train_interactions']:,} training rows over {self.counts['users']:,} users and "
            f"{self.counts['videos']:,} videos; "
            f"{self.counts['eval_interactions']:,} rows in the fully observed small matrix (density "
            f"{p.get('overview', 'eval_density') or 0:.1%}).",
            f"Mean watch ratio {p.get('watch_ratio', 'mean.train') or 0:.2f} in big_matrix, "
            f"{p.get('watch_ratio', 'mean.eval') or 0:.2f} in small_matrix; "
            f"{p.get('watch_ratio', 'share_above_2.train') or 0:.1%} of training rows and "
            f"{p.get('watch_ratio', 'share_above_2.eval') or 0:.1%} "
            "of evaluation rows exceed 2 (the relevance threshold).",
        ]
        if self.duration_spread:
            short, long, short_label, long_label = self.duration_spread
            items.append(
                f"Duration dominates: videos of {short_label} average a watch ratio of {short:.2f}, videos of "
                f"{long_label} {long:.2f}."
            )
        items.append(
            f"Exposure is skewed (Gini {self.gini:.2f} of rows per video): popularity is a strong, biased signal."
        )
        if self.feature_ranking:
            best = self.feature_ranking[0]
            items.append(
                f"Of the seed's 15 features, {best[0]} tracks a video's mean watch ratio most closely (Spearman "
                f"{best[1]:.2f})."
            )
        self.sections["summary"]["blocks"].append({"kind": "list", "entries": items})


def _environment() -> jinja2.Environment:
    folder = resources.files("recgen") / "templates"
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True)


def write_data_profile(engine: Engine, rows: list[dict]) -> None:
    """Replace the data_profile table's rows (creating the table if the schema does not have it yet)."""
    with engine.begin() as conn:
        conn.execute(DATA_PROFILE.delete())
        if rows:
            conn.execute(DATA_PROFILE.insert(), rows)


def write_report(engine: Engine, out_dir: Path, progress: Progress | None = None) -> Path:
    """Compute the data-analysis report; write `out_dir/index.html`, its PNGs and the data_profile table.

    Returns the path of index.html. Raises MissingInputError when the database holds no interactions yet.
    """
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    existing = set(inspect(engine).get_table_names())
    if not {"videos", "train_interactions", "eval_interactions"} <= existing:
        raise MissingInputError("the database has no KuaiRec data yet: run `recgen ingest` or `recgen run-batch` first")
    with engine.connect() as conn:
        if conn.execute(text("SELECT count(*) FROM videos")).scalar_one() == 0:
            raise MissingInputError("the database has no videos yet: run `recgen ingest` or `recgen run-batch` first")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob("*.png"):
            old.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write the report folder {out_dir}: {exc}") from exc
    report = _Report(engine, out_dir, say)
    report.run()
    seconds = time.perf_counter() - started
    report.add("overview", "report_seconds", seconds, "s", "Time taken to compute the report")
    generated = dt.datetime.now(dt.UTC)
    report.add("overview", "generated_at", generated.timestamp(), "unix time (s)", "When the report was computed (UTC)")
    html = (
        _environment()
        .get_template("recgen_report.html")
        .render(
            sections=[{"id": key, **report.sections[key]} for key, _ in SECTIONS],
            generated=generated.isoformat(timespec="seconds"),
            seconds=seconds,
            database=engine.url.render_as_string(hide_password=True),
        )
    )
    path = out_dir / REPORT_FILE
    path.write_text(html, encoding="utf-8")
    write_data_profile(engine, report.profile.rows)
    n_charts = len(list(out_dir.glob("*.png")))
    say(f"report: {n_charts} charts, {len(report.profile.rows)} data_profile rows in {seconds:.1f} s -> {path}")
    return path
