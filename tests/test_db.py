"""Bulk loads (`bulk.replace_rows`): through a staging file into SQLite, the same rows, types and indexes as
`executemany`, inside the caller's transaction, and no staging file left behind."""

import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from recgen.constants import STAGE_MIN_ROWS, STAGE_SUFFIX
from recgen.store import bulk
from recgen.store.bulk import insert_frame, replace_rows
from recgen.store.engine import checkpoint, checkpoint_deferred, get_engine, migrate
from recgen.store.schema import eval_interactions, train_interactions


def interactions(n: int, seed: int = 0) -> pd.DataFrame:
    """Rows shaped like big_matrix after reading: missing times, dates and timestamps included."""
    rng = np.random.default_rng(seed)
    time = pd.array([f"2020-07-05 08:42:{i % 60:02d}.{i % 1000:03d}" for i in range(n)], dtype="str")
    time[rng.random(n) < 0.1] = None
    date = pd.array(rng.integers(20200701, 20200731, n), dtype="Int64")
    date[rng.random(n) < 0.1] = pd.NA
    timestamp = rng.uniform(1.59e9, 1.6e9, n).round(3)
    timestamp[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "user_id": np.sort(rng.integers(0, 50, n)),
            "video_id": rng.integers(0, 300, n),
            "play_duration": rng.integers(0, 60_000, n),
            "video_duration": rng.integers(1, 60_000, n),
            "time": time,
            "date": date,
            "timestamp": timestamp,
            "watch_ratio": rng.uniform(0, 5, n),
        }
    )


def migrated(path):
    engine = get_engine(path)
    migrate(engine)
    return engine


def contents(path, table: str = "train_interactions") -> list[tuple]:
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        typed = ", ".join(f'"{c}", typeof("{c}")' for c in columns)
        return conn.execute(f"SELECT rowid, {typed} FROM {table} ORDER BY rowid").fetchall()


def indexes(path, table: str = "train_interactions") -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
        ).fetchall()


def leftovers(folder) -> list:
    return [p.name for p in folder.iterdir() if STAGE_SUFFIX in p.name]


def test_a_staged_load_stores_exactly_what_executemany_stores(tmp_path):
    frame = interactions(STAGE_MIN_ROWS * 3)
    staged, plain = migrated(tmp_path / "staged.db"), migrated(tmp_path / "plain.db")

    with staged.begin() as conn:
        assert replace_rows(conn, train_interactions, frame) == len(frame)
    with plain.begin() as conn:
        insert_frame(conn, train_interactions, frame)

    assert contents(tmp_path / "staged.db") == contents(tmp_path / "plain.db")
    assert indexes(tmp_path / "staged.db") == indexes(tmp_path / "plain.db")
    with sqlite3.connect(tmp_path / "staged.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        plan = " ".join(
            r[3] for r in conn.execute("EXPLAIN QUERY PLAN SELECT * FROM train_interactions WHERE user_id = 3")
        )
        assert "ix_train_interactions_user_id" in str(plan)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("table", [train_interactions, eval_interactions])
def test_a_load_staged_in_slices_stores_exactly_what_executemany_stores(tmp_path, monkeypatch, table):
    """Large tables are written as slices into staging files at once; a table with a constraint's index
    (eval_interactions: UNIQUE) is staged in one file."""
    monkeypatch.setattr(bulk, "STAGE_ROWS_PER_WRITER", STAGE_MIN_ROWS)  # these rows make 2 slices
    frame = interactions(STAGE_MIN_ROWS * 2 - 1).drop_duplicates(["user_id", "video_id"])
    staged, plain = migrated(tmp_path / "staged.db"), migrated(tmp_path / "plain.db")

    with staged.begin() as conn:
        assert replace_rows(conn, table, frame) == len(frame)
        attached = [row[1] for row in conn.execute(text("PRAGMA database_list")) if row[1] not in ("main", "temp")]
    with plain.begin() as conn:
        insert_frame(conn, table, frame)

    assert len(attached) == (2 if table is train_interactions else 1)
    assert contents(tmp_path / "staged.db", table.name) == contents(tmp_path / "plain.db", table.name)
    assert indexes(tmp_path / "staged.db", table.name) == indexes(tmp_path / "plain.db", table.name)
    assert leftovers(tmp_path) == []


def test_a_deferred_checkpoint_leaves_the_commit_in_the_log_until_checkpoint(tmp_path):
    engine = migrated(tmp_path / "recs.db")
    size = (tmp_path / "recs.db").stat().st_size
    frame = interactions(80_000)  # ~6 MB: past the 1000 pages of log that make a commit checkpoint by itself

    with engine.connect() as conn:
        with checkpoint_deferred(conn), conn.begin():
            replace_rows(conn, train_interactions, frame)
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000  # the pooled connection's again
    assert (tmp_path / "recs.db").stat().st_size == size  # committed, in the log only
    with engine.connect() as conn:  # and readable
        assert conn.exec_driver_sql("SELECT count(*) FROM train_interactions").scalar() == len(frame)
    checkpoint(engine)
    assert (tmp_path / "recs.db").stat().st_size > size + 4_000_000


def test_a_second_load_replaces_the_rows(tmp_path):
    engine = migrated(tmp_path / "recs.db")
    first, second = interactions(STAGE_MIN_ROWS * 2, seed=1), interactions(STAGE_MIN_ROWS + 7, seed=2)
    with engine.begin() as conn:
        replace_rows(conn, train_interactions, first)
    with engine.begin() as conn:
        replace_rows(conn, train_interactions, second)

    with sqlite3.connect(tmp_path / "recs.db") as conn:
        stored = pd.read_sql_query("SELECT * FROM train_interactions ORDER BY rowid", conn)
    assert len(stored) == len(second)
    assert stored["video_id"].tolist() == second["video_id"].tolist()
    assert stored["time"].isna().sum() == second["time"].isna().sum()
    assert leftovers(tmp_path) == []


def test_a_failure_after_a_staged_load_rolls_it_back_and_cleans_up(tmp_path):
    engine = migrated(tmp_path / "recs.db")
    kept = interactions(STAGE_MIN_ROWS * 2, seed=3)
    with engine.begin() as conn:
        replace_rows(conn, train_interactions, kept)

    with pytest.raises(RuntimeError), engine.begin() as conn:
        replace_rows(conn, train_interactions, interactions(STAGE_MIN_ROWS * 2, seed=4))
        raise RuntimeError("a later file is bad")

    with sqlite3.connect(tmp_path / "recs.db") as conn:
        assert conn.execute("SELECT count(*), sum(video_id) FROM train_interactions").fetchone() == (
            len(kept),
            int(kept["video_id"].sum()),
        )
    assert leftovers(tmp_path) == []
    with engine.connect() as conn:  # the pooled connection has nothing attached any more
        assert not [row[1] for row in conn.execute(text("PRAGMA database_list")) if row[1] not in ("main", "temp")]


def test_staging_files_of_a_killed_process_are_removed_by_the_next_load(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"recs.db{STAGE_SUFFIX}{int(dead.stdout)}-train_interactions"
    stale.write_bytes(b"half a staging file")
    engine = migrated(tmp_path / "recs.db")

    with engine.begin() as conn:
        replace_rows(conn, train_interactions, interactions(STAGE_MIN_ROWS))

    assert leftovers(tmp_path) == []
