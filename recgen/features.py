"""Arrays for the models: id indexes, the seed's 15 video features, and the training interactions."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler
from sqlalchemy import Engine, text

from recgen.errors import DataError

INTERACTION_FIELDS = ("user_id", "video_id", "watch_ratio")
CACHE_FORMAT = 1  # bump when the cache's layout changes: older files are then ignored

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
    pos = np.searchsorted(sorted_ids, ids)
    pos = np.minimum(pos, len(sorted_ids) - 1)
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
    # A raw DB-API cursor into numpy is ~3x faster than read_sql for millions of rows of plain numbers;
    # rowid order is the table order (the order the rows were loaded in).
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.execute(f"SELECT {', '.join(columns)} FROM {table}")
        rows = cursor.fetchall()
        cursor.close()
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    del rows
    return {name: frame[name].to_numpy() for name in columns}


# ---------------------------------------------------------------- the interaction cache
#
# Reading 11.5M rows back out of SQLite builds 11.5M Python tuples (~17 s); a numpy file of the same three
# columns loads in a fraction of a second. The cache sits beside the database (`recs.db.cache/`), holds the
# key of the load it was made from (the `source_files` row of the table: file sha256, row count, load time)
# and is used only while that row is unchanged, so any reload of the table makes it stale. Written to a
# temporary file and renamed, so a reader never sees half a cache; anything unreadable counts as a miss.


def interaction_cache_path(engine: Engine, table: str) -> Path | None:
    """Where `table`'s cache lives: beside a SQLite database file; None for other databases (no cache)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(f"{url.database}.cache") / f"{table}.npz"


def _cache_key(engine: Engine, table: str) -> str | None:
    """The identity of the table's current load, from `source_files`; None if it was never loaded."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT name, sha256, rows, loaded_at FROM source_files WHERE table_name = :table ORDER BY name"),
            {"table": table},
        ).all()
    if len(rows) != 1:  # interaction tables come from exactly one file
        return None
    return json.dumps({"format": CACHE_FORMAT, "table": table, "source": list(rows[0])})


def read_interaction_cache(engine: Engine, table: str) -> dict[str, np.ndarray] | None:
    """The cached columns of `table` if the cache matches the table's current load, else None."""
    path = interaction_cache_path(engine, table)
    if path is None or not path.is_file():
        return None
    key = _cache_key(engine, table)
    try:
        with np.load(path, allow_pickle=False) as stored:
            if key is None or str(stored["key"]) != key:
                return None
            columns = {name: stored[name] for name in INTERACTION_FIELDS}
    except (OSError, ValueError, KeyError):
        return None
    expected = json.loads(key)["source"][2]
    return columns if all(len(values) == expected for values in columns.values()) else None


def write_interaction_cache(engine: Engine, table: str, columns: dict[str, np.ndarray]) -> Path | None:
    """Write `table`'s columns (user_id, video_id, watch_ratio, in table order) as its cache, atomically.

    Call it after the load that wrote those rows has committed: the key is read from `source_files` now.
    Returns the path, or None when there is no cache (not SQLite, table not recorded, folder not writable).
    """
    path = interaction_cache_path(engine, table)
    key = _cache_key(engine, table)
    if path is None or key is None:
        return None
    if len(columns["user_id"]) != json.loads(key)["source"][2]:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    except OSError:
        return None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            arrays = {name: np.ascontiguousarray(columns[name]) for name in INTERACTION_FIELDS}
            np.savez(handle, key=np.array(key), **arrays)
        os.replace(tmp, path)
    except OSError:
        return None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def seed_video_features(engine: Engine, catalog: Catalog) -> tuple[np.ndarray, tuple[str, ...]]:
    """The seed notebook's 15 video features, standardised: a (n_videos, 15) float32 matrix in catalogue order.

    Videos without daily statistics get the median of each feature before scaling (so they sit at the
    centre of the distribution rather than at an extreme).
    """
    means = ", ".join(f"avg({name}) AS {name}" for name in SEED_DAILY_MEANS)
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
    return StandardScaler().fit_transform(values.to_numpy()).astype(np.float32), SEED_FEATURES


def seen_matrix_indptr(interactions: Interactions, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the videos each user has in the training log: (indptr, sorted unique video indexes)."""
    # A sort and a neighbour comparison rather than np.unique: numpy 2.4's hash-based unique takes ~16 s on
    # these 11.5M packed keys (their low bits collide), the sort 0.2 s.
    key = np.sort(interactions.users.astype(np.int64) << 32 | interactions.videos.astype(np.int64))
    if key.size:
        key = key[np.r_[True, key[1:] != key[:-1]]]
    users = (key >> 32).astype(np.int64)
    videos = (key & 0xFFFFFFFF).astype(np.int32)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return indptr, videos
