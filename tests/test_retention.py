"""Years of nights: retention keeps the database bounded, and a damaged saved model is retrained with a
warning in the run record. Real CLI, real SQLite files."""

import hashlib
import os
import sqlite3

import pytest
from conftest import isolated_copy, query, run_cli

NIGHTS = 30
KEEP = 3


def on_disk(db) -> int:
    """Bytes of the database with its write-ahead log."""
    return sum(os.path.getsize(p) for p in (db, f"{db}-wal") if os.path.exists(p))


@pytest.mark.slow
def test_thirty_nights_keep_the_last_runs_and_the_file_stops_growing(published, tiny_sample, tmp_path):
    db = isolated_copy(published[0], tmp_path)
    sizes = []
    for _ in range(NIGHTS):
        result = run_cli("run-batch", "--data-dir", str(tiny_sample), "--db", str(db), "--keep-runs", str(KEEP))
        assert result.exit_code == 0, result.output
        sizes.append(on_disk(db))

    runs = query(db, "SELECT id, status, pruned_at FROM runs ORDER BY id")
    assert len(runs) == NIGHTS + 1 and (runs["status"] == "published").all()  # the history stays
    kept = runs["id"].tail(KEEP).tolist()
    assert runs["pruned_at"].isna().tolist() == [False] * (NIGHTS + 1 - KEEP) + [True] * KEEP
    for table in ("recommendations", "user_metrics", "run_metrics"):
        assert sorted(query(db, f"SELECT DISTINCT run_id FROM {table}")["run_id"]) == kept, table
    # the freed pages are reused: once KEEP nights are stored, later nights do not grow the file
    assert max(sizes[KEEP + 2 :]) <= sizes[KEEP + 1] * 1.02, sizes
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_damaged_saved_model_is_retrained_with_a_warning_in_the_run_record(published, tiny_sample, tmp_path):
    db = isolated_copy(published[0], tmp_path)
    hybrid = query(db, "SELECT path FROM models WHERE name = 'hybrid' ORDER BY id DESC LIMIT 1")["path"][0]
    with open(hybrid, "r+b") as handle:  # flip bytes in the middle of the saved file
        handle.seek(os.path.getsize(hybrid) // 2)
        handle.write(b"\x00garbage\x00")
    seed = query(db, "SELECT id, path FROM models WHERE name = 'seed' ORDER BY id DESC LIMIT 1").iloc[0]
    with open(seed["path"], "wb") as handle:  # not a model at all, but its recorded checksum matches
        handle.write(b"not a keras file")
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE models SET sha256 = ? WHERE id = ?",
            (hashlib.sha256(b"not a keras file").hexdigest(), int(seed["id"])),
        )
    conn.close()

    result = run_cli("run-batch", "--data-dir", str(tiny_sample), "--db", str(db))

    assert result.exit_code == 0, result.output
    run = query(db, "SELECT status, trained, warnings FROM runs ORDER BY id DESC LIMIT 1").iloc[0]
    assert run["status"] == "published" and run["trained"] == 1
    assert "hybrid model" in run["warnings"] and "sha256 mismatch" in run["warnings"]
    assert "seed model" in run["warnings"] and "cannot be loaded" in run["warnings"]
    assert "training the hybrid model" in result.stderr and "training the seed model" in result.stderr
