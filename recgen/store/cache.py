"""A numpy copy of the interaction tables beside a SQLite database (`recs.db.cache/`), for the stages after ingest.

Reading 11.5M rows back out of SQLite builds 11.5M Python tuples; a numpy file of the same three columns
loads in a fraction of a second. The cache holds the key of the load it was made from (the `source_files`
row of the table: file sha256, row count, load time) and is used only while that row is unchanged, so any
reload of the table makes it stale. Written to a temporary file and renamed, so a reader never sees half a
cache; anything unreadable counts as a miss; safe to delete.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, text

from recgen.store.engine import sqlite_file

INTERACTION_FIELDS = ("user_id", "video_id", "watch_ratio")


CACHE_FORMAT = 1  # bump when the cache's layout changes: older files are then ignored


def interaction_cache_path(engine: Engine, table: str) -> Path | None:
    """Where `table`'s cache lives: beside a SQLite database file; None for other databases (no cache)."""
    database = sqlite_file(engine)
    return None if database is None else Path(f"{database}.cache") / f"{table}.npz"


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
