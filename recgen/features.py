"""The features stage: arrays for the models and the stages after them, read from the input tables.

Id indexes (`Catalog`), the training interactions as index arrays, the videos each user has seen, each
video's exposure (its training rows), and the seed notebook's 15 video features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from recgen.errors import DataError
from recgen.store.cache import INTERACTION_FIELDS, read_interaction_cache, write_interaction_cache

# Means over a video's daily rows, as the seed notebook aggregated item_daily_features.
SEED_DAILY_MEANS = (
    "show_cnt",
    "play_cnt",
    "play_duration",
    "play_progress",
    "complete_play_cnt",
    "valid_play_cnt",
    "long_time_play_cnt",
    "like_cnt",
    "comment_cnt",
    "share_cnt",
)
# The seed's 15 features: the ten means, the duration and four rates derived from the means. The seed also
# carried author_id through its aggregation; an id is not a quantity, so it is not scaled into a feature.
SEED_FEATURES = (
    *SEED_DAILY_MEANS,
    "video_duration",
    "engagement_rate",
    "completion_rate",
    "like_rate",
    "avg_watch_ratio",
)


LOOKUP_SPAN = 4  # ids up to this many times the catalogue's size are mapped through a lookup table


@dataclass(frozen=True)
class Catalog:
    """Dense indexes for the ids: position i of `user_ids` is user index i (ids sorted ascending)."""

    user_ids: np.ndarray
    video_ids: np.ndarray

    def user_index(self, ids: np.ndarray) -> np.ndarray:
        return _index_of(self.user_ids, ids, "user_id")

    def video_index(self, ids: np.ndarray) -> np.ndarray:
        return _index_of(self.video_ids, ids, "video_id")


def _index_of(sorted_ids: np.ndarray, ids: np.ndarray, name: str) -> np.ndarray:
    ids = np.asarray(ids)
    if len(sorted_ids) and 0 <= sorted_ids[0] and sorted_ids[-1] < LOOKUP_SPAN * len(sorted_ids):
        # Ids are small integers (KuaiRec's run 0..n-1): one gather from a table instead of a binary search.
        table = np.full(int(sorted_ids[-1]) + 1, -1, dtype=np.int64)
        table[sorted_ids] = np.arange(len(sorted_ids))
        inside = (ids >= 0) & (ids < len(table))
        pos = np.where(inside, table[np.where(inside, ids, 0)], -1)
        unknown = pos < 0
    else:
        pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        unknown = sorted_ids[pos] != ids
    if unknown.any():
        raise DataError(f"{name} {ids[unknown][0]} is not in the catalogue ({int(unknown.sum())} unknown ids)")
    return pos.astype(np.int32)


@dataclass(frozen=True)
class Interactions:
    """Interaction rows as index arrays (users, videos) and the observed watch ratio."""

    users: np.ndarray
    videos: np.ndarray
    watch_ratio: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


def load_catalog(engine: Engine) -> Catalog:
    """Every user of `users` or `train_interactions`, every video of `videos`."""
    with engine.connect() as conn:
        user_ids = pd.read_sql_query(
            text("SELECT user_id FROM users UNION SELECT DISTINCT user_id FROM train_interactions ORDER BY 1"), conn
        )["user_id"].to_numpy(np.int64)
        video_ids = pd.read_sql_query(text("SELECT video_id FROM videos ORDER BY 1"), conn)["video_id"].to_numpy(
            np.int64
        )
    if len(user_ids) == 0 or len(video_ids) == 0:
        raise DataError("the database has no users or no videos: run `recgen ingest` first")
    return Catalog(user_ids=user_ids, video_ids=video_ids)


def load_interactions(engine: Engine, catalog: Catalog, table: str = "train_interactions") -> Interactions:
    """All rows of an interaction table as index arrays, in table order.

    Read from the table's numpy cache when it matches the load recorded in `source_files` (see
    `read_interaction_cache`), else from the database, refreshing the cache for the next run.
    """
    columns = read_interaction_cache(engine, table)
    if columns is None:
        columns = _read_columns(engine, table, INTERACTION_FIELDS)
        write_interaction_cache(engine, table, columns)
    return Interactions(
        users=catalog.user_index(np.asarray(columns["user_id"], dtype=np.int64)),
        videos=catalog.video_index(np.asarray(columns["video_id"], dtype=np.int64)),
        watch_ratio=np.asarray(columns["watch_ratio"], dtype=np.float32),
    )


def _read_columns(engine: Engine, table: str, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    if engine.dialect.name == "postgresql":  # binary COPY into Arrow: no Python object per row
        from recgen.store import postgres

        return postgres.read_columns(engine, table, columns)
    # A raw DB-API cursor into numpy is faster than read_sql for millions of rows of plain numbers;
    # rowid order is the table order (the order the rows were loaded in).
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.execute(f"SELECT {', '.join(columns)} FROM {table}")
        rows = cursor.fetchall()
        cursor.close()
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    del rows
    return {name: frame[name].to_numpy() for name in columns}


def seed_video_features(engine: Engine, catalog: Catalog) -> tuple[np.ndarray, tuple[str, ...]]:
    """The seed notebook's 15 video features, standardised: a (n_videos, 15) float32 matrix in catalogue order.

    Videos without daily statistics get the median of each feature before scaling (so they sit at the
    centre of the distribution rather than at an extreme).
    """
    # PostgreSQL's avg of integers is NUMERIC (Decimal in pandas); over doubles it is the double SQLite returns.
    cast = "CAST({} AS DOUBLE PRECISION)" if engine.dialect.name == "postgresql" else "{}"
    means = ", ".join(f"avg({cast.format(name)}) AS {name}" for name in SEED_DAILY_MEANS)
    with engine.connect() as conn:
        daily = pd.read_sql_query(
            text(f"SELECT video_id, {means}, avg(video_duration) AS daily_duration FROM video_daily GROUP BY video_id"),
            conn,
        )
        durations = pd.read_sql_query(text("SELECT video_id, video_duration FROM videos"), conn)
    frame = pd.DataFrame({"video_id": catalog.video_ids}).merge(daily, on="video_id", how="left")
    frame = frame.merge(durations, on="video_id", how="left")
    frame["video_duration"] = frame["daily_duration"].fillna(frame["video_duration"])
    frame["engagement_rate"] = frame["play_cnt"] / (frame["show_cnt"] + 1)
    frame["completion_rate"] = frame["complete_play_cnt"] / (frame["play_cnt"] + 1)
    frame["like_rate"] = frame["like_cnt"] / (frame["play_cnt"] + 1)
    frame["avg_watch_ratio"] = frame["play_duration"] / (frame["video_duration"] + 1)
    values = frame[list(SEED_FEATURES)].astype(float)
    values = values.fillna(values.median()).fillna(0.0)
    from sklearn.preprocessing import StandardScaler  # here: only a run that builds a model needs it (2 s)

    return StandardScaler().fit_transform(values.to_numpy()).astype(np.float32), SEED_FEATURES


def seen_matrix_indptr(interactions: Interactions, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the videos each user has in the training log: (indptr, sorted unique video indexes)."""
    # A sort and a neighbour comparison rather than np.unique, whose hash-based implementation is slow on
    # these packed keys (their low bits collide).
    key = np.sort(interactions.users.astype(np.int64) << 32 | interactions.videos.astype(np.int64))
    if key.size:
        key = key[np.r_[True, key[1:] != key[:-1]]]
    users = (key >> 32).astype(np.int64)
    videos = (key & 0xFFFFFFFF).astype(np.int32)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return indptr, videos


def exposure_counts(train: Interactions, n_videos: int) -> np.ndarray:
    """How many training rows each video has: the popularity a feed's exposure gave it."""
    return np.bincount(train.videos, minlength=n_videos).astype(np.float64)


@dataclass(frozen=True)
class Inputs:
    """What the stages after ingest read: the catalogue, the training log, who saw what, and exposure."""

    catalog: Catalog
    train: Interactions
    seen: tuple[np.ndarray, np.ndarray]  # CSR (indptr, video indexes) of each user's training videos
    exposure: np.ndarray  # training rows per video index: the popularity a feed's exposure gave it


def load_inputs(engine: Engine) -> Inputs:
    catalog = load_catalog(engine)
    train = load_interactions(engine, catalog)
    seen = seen_matrix_indptr(train, len(catalog.user_ids))
    return Inputs(catalog, train, seen, exposure_counts(train, len(catalog.video_ids)))
