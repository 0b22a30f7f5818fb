"""Shared fixtures: a tiny generated sample, a database after one real `recgen run-batch` on it, and where the real
KuaiRec files are (`real_kuairec_files`)."""

import hashlib
import os
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
from recgen.constants import CAPTION_CATEGORY, ITEM_CATEGORIES, USER_FEATURES
from recgen.sample.generate import generate_sample

# The three real KuaiRec files (third-party data, CC BY-SA 4.0, never copied into the project) are found through
# this one setting, else in ../shared/kuairec beside the checkout; the tests that need them request the fixture
# `real_kuairec_files`, which marks them `real_kuairec` and skips them when the files are absent. Setting the
# variable says the files must be there: a real-file test that skips is then a failure (CI sets it).
REAL_FILES_SETTING = "RECGEN_KUAIREC_FILES"
REAL_FILES_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "kuairec"
REAL_FILES_MD5 = {  # kuairec/README.md: the genuine files, whose exact counts the real-file tests assert
    ITEM_CATEGORIES: "c53dbd1f0bdb4b352763025e86833a37",
    USER_FEATURES: "33b5d7ae19378fb7c68c2238eed7720c",
    CAPTION_CATEGORY: "31bc38cdccdf75a71df137779035f8cb",
}


# The PostgreSQL tests run against $RECGEN_TEST_POSTGRES_URL (a server CI starts), else a throwaway server
# the fixture `postgres_server` starts from the PostgreSQL binaries it finds; without either they skip. Tests
# using it are marked `postgres` (`pytest -m "not postgres"` leaves them out). RECGEN_REQUIRE_SERVICES=1
# (CI) turns a skip of one of them into a failure.
POSTGRES_SETTING = "RECGEN_TEST_POSTGRES_URL"
# The Ray tests run against $RECGEN_TEST_RAY_ADDRESS (a cluster CI starts), else a cluster of two nodes the
# fixture `ray_cluster` starts on this machine; without Ray installed they skip. Marked `ray`.
RAY_SETTING = "RECGEN_TEST_RAY_ADDRESS"
REQUIRE_SERVICES_SETTING = "RECGEN_REQUIRE_SERVICES"
# fixture -> marker: a test requesting the fixture (directly or through another) gets the marker
SERVICE_MARKERS = {"real_kuairec_files": "real_kuairec", "postgres_server": "postgres", "ray_cluster": "ray"}


def pytest_collection_modifyitems(items):
    """A test needs the real files or a server exactly when it requests the fixture: it is marked so
    (`-m real_kuairec`, `-m postgres`)."""
    for item in items:
        for fixture, marker in SERVICE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(getattr(pytest.mark, marker))


def _required(item) -> str | None:
    """The setting that says this test must not skip, if one is set."""
    if item.get_closest_marker("real_kuairec") and os.environ.get(REAL_FILES_SETTING):
        return f"{REAL_FILES_SETTING}={os.environ[REAL_FILES_SETTING]}"
    services = item.get_closest_marker("postgres") or item.get_closest_marker("ray")
    if services and os.environ.get(REQUIRE_SERVICES_SETTING) == "1":
        return f"{REQUIRE_SERVICES_SETTING}=1"
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With RECGEN_KUAIREC_FILES set, a skipped real-file test fails, and with RECGEN_REQUIRE_SERVICES=1 a
    skipped PostgreSQL test: CI must never lose them silently."""
    outcome = yield
    report = outcome.get_result()
    required = _required(item)
    if required and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{required} is set, so this test must run: {reason}"


@pytest.fixture(scope="session")
def real_kuairec_files() -> Path:
    """The folder of the three real KuaiRec files, read where they are ($RECGEN_KUAIREC_FILES, else
    ../shared/kuairec beside the checkout); skips when they are not there, fails if they are other bytes."""
    setting = os.environ.get(REAL_FILES_SETTING)
    folder = Path(setting) if setting else REAL_FILES_DEFAULT
    missing = [name for name in REAL_FILES_MD5 if not (folder / name).is_file()]
    if missing:
        pytest.skip(f"real KuaiRec files not in {folder} (set {REAL_FILES_SETTING} to their folder)")
    for name, md5 in REAL_FILES_MD5.items():
        if hashlib.md5((folder / name).read_bytes()).hexdigest() != md5:
            pytest.fail(f"{folder / name} is not the real KuaiRec 2.0 file (md5 differs from {md5})")
    return folder


@pytest.fixture(scope="session")
def postgres_server():
    """A base URL (`postgresql://...`) of a PostgreSQL server the tests may create databases on."""
    setting = os.environ.get(POSTGRES_SETTING)
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the PostgreSQL drivers are not installed ({exc.name}): pip install -e '.[postgres]'")
    if setting:
        yield setting
        return
    from pg_server import find_binaries, throwaway_server

    if find_binaries() is None:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_SETTING}, or install PostgreSQL (initdb not found)")
    with throwaway_server() as url:
        yield url


@pytest.fixture(scope="session")
def ray_cluster():
    """The address of a Ray cluster for `--engine ray`: two nodes of one CPU each, so shards cross nodes."""
    try:
        from ray.cluster_utils import Cluster
    except ImportError as exc:
        pytest.skip(f"Ray is not installed ({exc.name}): pip install -e '.[ray]'")
    setting = os.environ.get(RAY_SETTING)
    if setting:
        yield setting
        return
    node = {"num_cpus": 1, "object_store_memory": 200 * 1024**2}
    cluster = Cluster(initialize_head=True, head_node_args=node)
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()


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
