"""The grouped scans the report is computed from, and the aggregates derived from them.

Nothing here loads the interactions into Python. Four grouped scans do the work in SQLite and run two at a
time on separate connections (SQLite releases the GIL): interactions per (video, watch-ratio bin) for the
training and the evaluation matrix, and per user for both. Every figure of the report is derived from those
few hundred thousand aggregate rows with numpy, which keeps the full KuaiRec (16M rows) under a minute.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine

BINS_PER_UNIT = 20  # watch-ratio bins of 0.05: every threshold is a bin edge, so shares are exact
OVERFLOW_BIN = 5 * BINS_PER_UNIT + 1  # all watch ratios above 5
MIN_SUPPORT = 50  # rows a video needs before its mean watch ratio is ranked (best/worst lists)


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
        frames = list(pool.map(lambda sql: query_frame(engine, sql), queries))
    return Scans(*frames)


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
