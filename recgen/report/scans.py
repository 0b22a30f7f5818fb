"""The grouped scans the report is computed from, and the aggregates derived from them.

Interactions per (video, watch-ratio bin) for the training and the evaluation matrix, and per user for both.
Every figure of the report is derived from those few hundred thousand aggregate rows. Beside a SQLite file
whose interaction cache (recgen.store.cache) matches the loaded tables, the counts and sums come from the
cache's columns with numpy, and only the rows missing a time, date or timestamp are grouped by SQLite: the
report then runs beside training without taking its cores for most of a minute. Otherwise four grouped
scans do the work in the database, two at a time on separate connections (SQLite releases the GIL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from recgen.store.cache import read_interaction_cache

TABLES = ("train_interactions", "eval_interactions")
NULLABLE = ("time", "date", "timestamp")
BINS_PER_UNIT = 20  # watch-ratio bins of 0.05: every threshold is a bin edge, so shares are exact
OVERFLOW_BIN = 5 * BINS_PER_UNIT + 1  # all watch ratios above 5
MIN_SUPPORT = 50  # rows a video needs before its mean watch ratio is ranked (best/worst lists)
_NULLS = ", ".join(f"sum(CASE WHEN {c} IS NULL THEN 1 ELSE 0 END) AS null_{c}" for c in NULLABLE)


def _ceil_bin(dialect: str) -> str:
    """The watch-ratio bin of a row: ceil(ratio x 20), so bin b holds (b-1)/20 < ratio <= b/20."""
    scaled = f"watch_ratio * {BINS_PER_UNIT}"
    if dialect == "sqlite":
        ceil = f"CAST({scaled} AS INTEGER) + ({scaled} > CAST({scaled} AS INTEGER))"
        return f"min({ceil}, {OVERFLOW_BIN})"
    return f"least(CAST(ceil({scaled}) AS INTEGER), {OVERFLOW_BIN})"


@dataclass
class Scans:
    """The grouped scans of both interaction tables."""

    train_bins: pd.DataFrame  # video_id, bin, n, sum_wr
    eval_bins: pd.DataFrame
    train_users: pd.DataFrame  # user_id, n, sum_wr, null_time, null_date, null_timestamp
    eval_users: pd.DataFrame


def query_frame(engine: Engine, sql: str) -> pd.DataFrame:
    """The rows of one SQL text (a constant of the report) as a frame."""
    with engine.connect() as conn:
        result = conn.exec_driver_sql(sql)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def scan(engine: Engine) -> Scans:
    cached = [read_interaction_cache(engine, table) for table in TABLES]
    if all(columns is not None for columns in cached):
        return _scan_cached(engine, cached)
    dialect = engine.dialect.name
    # NOT INDEXED: a sequential scan and one sort beat millions of index-ordered lookups in SQLite.
    hint = " NOT INDEXED" if dialect == "sqlite" else ""
    bin_expr = _ceil_bin(dialect)

    def bins(table: str) -> str:
        return (
            f"SELECT video_id, {bin_expr} AS bin, count(*) AS n, sum(watch_ratio) AS sum_wr "
            f"FROM {table}{hint} GROUP BY video_id, bin"
        )

    def users(table: str) -> str:
        return f"SELECT user_id, count(*) AS n, sum(watch_ratio) AS sum_wr, {_NULLS} FROM {table} GROUP BY user_id"

    queries = [
        bins("train_interactions"),
        bins("eval_interactions"),
        users("train_interactions"),
        users("eval_interactions"),
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        frames = list(pool.map(lambda sql: query_frame(engine, sql), queries))
    return Scans(*frames)


def _scan_cached(engine: Engine, cached: list[dict[str, np.ndarray]]) -> Scans:
    """`scan` from the interaction caches, with the same rows, columns and order as the SQL scans give."""
    frames = [pd.DataFrame(columns) for columns in cached]
    bins = []
    for frame in frames:
        scaled = frame["watch_ratio"].to_numpy(np.float64) * BINS_PER_UNIT  # the SQL's double arithmetic
        bin_of = np.minimum(np.ceil(scaled), OVERFLOW_BIN).astype(np.int64)
        # One integer key per (video, bin) groups (and sorts) faster than the pair of columns.
        frame["key"] = frame["video_id"].to_numpy(np.int64) * (OVERFLOW_BIN + 1) + bin_of
        grouped = _grouped(frame, ["key"])
        key = grouped.pop("key").to_numpy(np.int64)
        grouped.insert(0, "bin", key % (OVERFLOW_BIN + 1))
        grouped.insert(0, "video_id", key // (OVERFLOW_BIN + 1))
        bins.append(grouped)
    nulls = [_null_counts(engine, "train_interactions"), _null_counts(engine, "eval_interactions")]
    users = []
    for frame, counts in zip(frames, nulls, strict=True):
        grouped = _grouped(frame, ["user_id"]).merge(counts, on="user_id", how="left")
        for c in NULLABLE:
            grouped[f"null_{c}"] = grouped[f"null_{c}"].fillna(0).astype(np.int64)
        users.append(grouped)
    return Scans(*bins, *users)


def _null_counts(engine: Engine, table: str) -> pd.DataFrame:
    """Per user, the rows of `table` missing a time, a date or a timestamp (users with none left out)."""
    missing = " OR ".join(f"{c} IS NULL" for c in NULLABLE)
    # NOT INDEXED: a cache, and so this path, exists only beside a SQLite file.
    return query_frame(engine, f"SELECT user_id, {_NULLS} FROM {table} NOT INDEXED WHERE {missing} GROUP BY user_id")


def _grouped(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows and watch-ratio sum per `keys`, sorted by them, as a GROUP BY gives them."""
    grouped = frame.groupby(keys, sort=True)["watch_ratio"].agg(n="size", sum_wr="sum").reset_index()
    grouped["n"] = grouped["n"].astype(np.int64)
    return grouped


def per_video(bins: pd.DataFrame) -> pd.DataFrame:
    grouped = bins.groupby("video_id").agg(n=("n", "sum"), sum_wr=("sum_wr", "sum"))
    grouped["mean_wr"] = grouped["sum_wr"] / grouped["n"]
    return grouped


def histogram(bins: pd.DataFrame) -> np.ndarray:
    """Rows per watch-ratio bin 0..OVERFLOW_BIN."""
    counts = bins.groupby("bin")["n"].sum()
    out = np.zeros(OVERFLOW_BIN + 1)
    out[counts.index.to_numpy(int)] = counts.to_numpy(float)
    return out


def share_above(hist: np.ndarray, threshold: float) -> float:
    total = hist.sum()
    return float(hist[int(round(threshold * BINS_PER_UNIT)) + 1 :].sum() / total) if total else float("nan")
