"""Shared fixtures: a tiny generated sample, and a database after one real `recgen run-batch` on it."""

import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from recgen.cli import cli
from recgen.sample.generate import generate_sample

REAL_KUAIREC = Path(__file__).resolve().parents[2] / "shared" / "kuairec"


@pytest.fixture(scope="session")
def real_kuairec() -> Path:
    """The three real KuaiRec files, read where they are (third-party data, never copied)."""
    if not (REAL_KUAIREC / "kuairec_caption_category.csv").is_file():
        pytest.skip(f"real KuaiRec files not found in {REAL_KUAIREC}")
    return REAL_KUAIREC


@pytest.fixture(scope="session")
def tiny_sample(tmp_path_factory) -> Path:
    """A tiny synthetic KuaiRec folder (the sample's root: `KuaiRec 2.0/data/` and ground_truth.csv)."""
    root = tmp_path_factory.mktemp("tiny-sample")
    generate_sample(root, scale="tiny", seed=42)
    return root


def backup_copy(source, target):
    """A consistent copy of a live WAL database (sqlite3's backup API, never a file copy)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    src.backup(dst)
    dst.close()
    src.close()
    return target


def isolated_copy(db, target_dir):
    """A copy of a published database with its own copy of the saved models (rows point at the copies), for
    tests that damage models or run more nights without touching the shared fixture."""
    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    copy = backup_copy(db, target_dir / "recs.db")
    shutil.copytree(Path(db).parent / "models", target_dir / "models")
    with sqlite3.connect(copy) as conn:
        for model_id, path in conn.execute("SELECT id, path FROM models").fetchall():
            conn.execute(
                "UPDATE models SET path = ? WHERE id = ?", (str(target_dir / "models" / Path(path).name), model_id)
            )
    conn.close()
    return copy


def query(db, sql, *params):
    """A query's result as a DataFrame, read through a fresh sqlite3 connection."""
    with sqlite3.connect(db) as conn:
        return pd.read_sql_query(sql, conn, params=params)


def run_cli(*args: str, env: dict | None = None):
    """Invoke the real CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="session")
def published(tmp_path_factory, tiny_sample):
    """A database (models beside it) after one successful run-batch on the tiny sample."""
    work = tmp_path_factory.mktemp("published")
    db = work / "recs.db"
    result = run_cli("run-batch", "--data-dir", str(tiny_sample), "--db", str(db))
    assert result.exit_code == 0, result.output
    return db, result


@contextmanager
def datasette_server(db, log_path):
    """The command analysts run, `datasette DB`, as a real server on a free 127.0.0.1 port; yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(log_path, "w")  # a file, not a pipe nobody reads, so the server never blocks
    command = [sys.executable, "-m", "datasette", str(db), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/versions.json", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"datasette did not start: {Path(log_path).read_text()}") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()
