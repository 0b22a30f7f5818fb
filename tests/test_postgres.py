"""PostgreSQL as the store: the whole nightly job, the same results as SQLite, partitions and retention, the
advisory lock, shared artifacts, kill -9, bad input, the server going away, and the SQLite export for
Datasette. A real server (conftest.postgres_server), the real CLI, real signals; each test its own database."""

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from alembic.script import ScriptDirectory
from conftest import isolated_copy, query, run_cli
from datasette.app import Datasette
from kill_at import POINTS
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url
from test_crash import KILL_AT, changed_copy, excerpt, recgen_process
from test_datasette import fetch, fetch_json, query_rows, recgen_columns

from recgen.constants import BIG_MATRIX, USER_FEATURES
from recgen.errors import UnavailableError
from recgen.plugin.queries import CANNED_QUERIES
from recgen.store.engine import alembic_config, database_url, get_engine, migrate
from recgen.store.lock import job_lock
from recgen.store.schema import models

_numbers = itertools.count(1)
OUTPUTS = {"recommendations": ["user_id", "rank"], "user_metrics": ["user_id"], "run_metrics": ["model_name", "metric"]}


def engine_for(url: str, **kwargs):
    return create_engine(database_url(url), **kwargs)


def pg_query(url: str, sql: str, **params) -> pd.DataFrame:
    """A query's result through a connection of its own, closed afterwards (no session left on the database)."""
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql), params)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def maintenance(postgres_server):
    engine = engine_for(postgres_server, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def create_database(maintenance, base_url: str, template: str | None = None) -> str:
    """A new database (a copy of `template`'s, if given) on the test server; returns its URL."""
    name = f"recgen_test_{os.getpid()}_{next(_numbers)}"
    with maintenance.connect() as conn:
        if template is not None:  # a template must have no other session
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": template}
            )
        conn.execute(text(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")))
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def drop_database(maintenance, url: str) -> None:
    with maintenance.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)"))


@pytest.fixture
def fresh_db(maintenance, postgres_server):
    url = create_database(maintenance, postgres_server)
    yield url
    drop_database(maintenance, url)


@pytest.fixture(scope="session")
def pg_published(maintenance, postgres_server, tiny_sample, tmp_path_factory):
    """(URL, artifacts folder, working folder) of a database after one real run-batch on the tiny sample."""
    url = create_database(maintenance, postgres_server)
    work = tmp_path_factory.mktemp("pg-published")
    artifacts = work / "artifacts"
    cwd = os.getcwd()
    os.chdir(work)  # the report goes under ./output for a PostgreSQL database
    try:
        result = run_cli("run-batch", "--data-dir", str(tiny_sample), "--db", url, "--artifacts", str(artifacts))
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    yield url, artifacts, work
    drop_database(maintenance, url)


@pytest.fixture
def pg_copy(maintenance, postgres_server, pg_published, tmp_path, monkeypatch):
    """(URL, artifacts) of a copy of the published database with its own copy of the models, in tmp_path."""
    url = create_database(maintenance, postgres_server, template=make_url(pg_published[0]).database)
    artifacts = tmp_path / "artifacts"
    shutil.copytree(pg_published[1], artifacts)
    engine = engine_for(url)
    with engine.begin() as conn:
        for model_id, path in conn.execute(text("SELECT id, path FROM models")).all():
            moved = str(artifacts / Path(path).name)
            conn.execute(text("UPDATE models SET path = :p WHERE id = :i"), {"p": moved, "i": model_id})
    engine.dispose()
    monkeypatch.chdir(tmp_path)
    yield url, artifacts
    drop_database(maintenance, url)


def partitions(url: str, table: str) -> list[str]:
    sql = "SELECT CAST(inhrelid AS regclass)::text AS name FROM pg_inherits WHERE inhparent = CAST(:t AS regclass)"
    return sorted(pg_query(url, sql, t=table)["name"])


def latest(url: str) -> pd.DataFrame:
    return pg_query(url, "SELECT * FROM latest_recommendations ORDER BY user_id, rank")


# ---------------------------------------------------------------- no server needed


def test_a_postgresql_url_without_the_drivers_is_one_clear_error():
    for missing in ("psycopg", "adbc_driver_postgresql"):
        hide = f"import sys; sys.modules[{missing!r}] = None; from recgen.cli import cli; cli(sys.argv[1:])"
        args = ["evaluate", "--db", "postgresql://recgen@db-host/recgen"]
        child = subprocess.run([sys.executable, "-c", hide, *args], capture_output=True, text=True, timeout=120)
        assert child.returncode == 78, child.stderr
        assert "pip install 'recgen[postgres]'" in child.stderr and missing in child.stderr
        assert "Traceback" not in child.stderr


def test_a_sqlite_run_imports_no_postgresql_code(published):
    check = (
        "import sys; from recgen.cli import cli\n"
        "try:\n    cli(sys.argv[1:])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "loaded = [m for m in ('psycopg', 'adbc_driver_postgresql', 'recgen.store.postgres') if m in sys.modules]\n"
        "assert not loaded, loaded"
    )
    child = subprocess.run(
        [sys.executable, "-c", check, "evaluate", "--db", str(published[0])], capture_output=True, text=True
    )
    assert child.returncode == 0, child.stderr


def test_an_unreachable_server_is_exit_69_in_one_line(tmp_path):
    pytest.importorskip("psycopg", reason="the PostgreSQL drivers are not installed: pip install -e '.[postgres]'")
    pytest.importorskip("adbc_driver_postgresql", reason="the PostgreSQL drivers are not installed")
    url = f"postgresql://recgen@/recgen?host={tmp_path}"  # no server listens there
    for args in (["evaluate", "--db", url], ["run-batch", "--db", url, "--data-dir", str(tmp_path)]):
        result = run_cli(*args)
        assert result.exit_code == 69, result.output
        assert "database server is unavailable" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- the whole job


def test_run_batch_runs_the_whole_job_and_the_readers_read_it(pg_published, tmp_path):
    url, artifacts, _ = pg_published
    run = pg_query(url, "SELECT * FROM runs").iloc[0]
    assert run["status"] == "published" and run["trained"] and run["exit_code"] == 0
    assert run["n_recommendations"] == len(latest(url)) > 0
    head = ScriptDirectory.from_config(alembic_config(get_engine(url))).get_current_head()
    assert pg_query(url, "SELECT version_num FROM alembic_version")["version_num"].tolist() == [head]
    assert partitions(url, "recommendations") == ["recommendations_run_1"]
    assert partitions(url, "user_metrics") == ["user_metrics_run_1"]
    paths = pg_query(url, "SELECT path FROM models")["path"]
    assert len(paths) == 2 and all(Path(p).parent == artifacts and Path(p).is_file() for p in paths)

    evaluated = run_cli("evaluate", env={"RECGEN_DB": url})  # the URL from the environment
    assert evaluated.exit_code == 0 and "run 1" in evaluated.output and "item_mean" in evaluated.output
    reported = run_cli("report", "--db", url, "--out", str(tmp_path / "report"))
    assert reported.exit_code == 0, reported.output
    assert (tmp_path / "report" / "index.html").is_file()
    assert pg_query(url, "SELECT count(*) AS n FROM data_profile")["n"].iloc[0] > 100


def test_same_data_and_saved_model_give_the_same_results_as_sqlite(pg_published, tiny_sample, tmp_path):
    url, artifacts, _ = pg_published
    sqlite_db = tmp_path / "recs.db"
    engine = get_engine(sqlite_db)
    migrate(engine)
    with engine.begin() as conn:  # the models the PostgreSQL run trained, in the shared artifacts folder
        conn.execute(insert(models), pg_query(url, "SELECT * FROM models").to_dict("records"))
    engine.dispose()
    result = run_cli("run-batch", "--data-dir", str(tiny_sample), "--db", str(sqlite_db), "--artifacts", str(artifacts))
    assert result.exit_code == 0, result.output
    assert "reloaded hybrid model" in result.stderr and "reloaded seed model" in result.stderr

    for table, key in OUTPUTS.items():
        expected = pg_query(url, f"SELECT * FROM {table} WHERE run_id = 1")
        actual = query(sqlite_db, f"SELECT * FROM {table} WHERE run_id = 1")
        expected = expected.sort_values(key, ignore_index=True)
        actual = actual.sort_values(key, ignore_index=True).astype(expected.dtypes.to_dict())
        assert len(actual) == len(expected) > 0, table
        pd.testing.assert_frame_equal(actual, expected, check_exact=False, rtol=0, atol=1e-6)
        exact = expected.select_dtypes(exclude="number").columns.union(key)
        pd.testing.assert_frame_equal(actual[exact], expected[exact])  # the same lists, rank for rank


def test_nights_drop_old_partitions_and_artifacts_are_verified(pg_copy, tiny_sample, tmp_path):
    url, artifacts = pg_copy
    models = pg_query(url, "SELECT id, name, path FROM models ORDER BY id")
    changed, missing = (Path(p) for p in models["path"])
    changed.write_bytes(changed.read_bytes() + b"tampered")
    missing.unlink()
    night = run_cli(
        "run-batch", "--data-dir", str(tiny_sample), "--db", url, "--artifacts", str(artifacts), "--keep-runs", "1"
    )
    assert night.exit_code == 0, night.output
    runs = pg_query(url, "SELECT id, status, trained, warnings, pruned_at FROM runs ORDER BY id")
    assert runs["trained"].tolist() == [True, True]
    assert runs["warnings"].iloc[1].count("missing or changed (sha256 mismatch); retrained") == 2
    assert runs["pruned_at"].isna().tolist() == [False, True]  # retention: run 1 dropped
    assert partitions(url, "recommendations") == ["recommendations_run_2"]
    assert partitions(url, "user_metrics") == ["user_metrics_run_2"]
    assert pg_query(url, "SELECT DISTINCT run_id FROM run_metrics")["run_id"].tolist() == [2]
    assert set(latest(url)["run_id"]) == {2}

    # another host mounts the shared folder elsewhere: the recorded paths do not exist there
    elsewhere = tmp_path / "mounted-elsewhere"
    artifacts.rename(elsewhere)
    night = run_cli("run-batch", "--data-dir", str(tiny_sample), "--db", url, "--artifacts", str(elsewhere))
    assert night.exit_code == 0, night.output
    last = pg_query(url, "SELECT trained, warnings FROM runs ORDER BY id DESC LIMIT 1").iloc[0]
    assert not last["trained"] and last["warnings"] is None
    assert "metrics copied from run 2" in night.stderr  # the same models on the same data
    copied = [
        pg_query(url, f"SELECT * FROM user_metrics WHERE run_id = {run_id} ORDER BY user_id").drop(columns="run_id")
        for run_id in (2, 3)
    ]
    assert len(copied[0]) > 0
    pd.testing.assert_frame_equal(copied[1], copied[0])


def test_migration_0003_moves_existing_rows_into_partitions(fresh_db):
    from alembic import command

    engine = get_engine(fresh_db)
    command.upgrade(alembic_config(engine), "0002")
    with engine.begin() as conn:
        for run_id in (1, 2):
            conn.execute(
                text("INSERT INTO runs (id, started_at, status) VALUES (:i, '2026-12-01', 'published')"), {"i": run_id}
            )
            conn.execute(text("INSERT INTO recommendations VALUES (:i, 7, 1, 42, 0.5, 'model')"), {"i": run_id})
            conn.execute(
                text("INSERT INTO user_metrics (run_id, user_id, n_items, n_relevant) VALUES (:i, 7, 3, 1)"),
                {"i": run_id},
            )
    migrate(engine)  # to head, views recreated
    assert partitions(fresh_db, "recommendations") == ["recommendations_run_1", "recommendations_run_2"]
    assert partitions(fresh_db, "user_metrics") == ["user_metrics_run_1", "user_metrics_run_2"]
    assert latest(fresh_db)[["run_id", "user_id", "rank"]].values.tolist() == [[2, 7, 1]]
    types = pg_query(fresh_db, "SELECT DISTINCT data_type FROM information_schema.columns WHERE table_name = 'videos'")
    assert "integer" not in set(types["data_type"])  # 64-bit, as in SQLite
    command.downgrade(alembic_config(engine), "0002")
    assert partitions(fresh_db, "recommendations") == []
    assert len(pg_query(fresh_db, "SELECT * FROM recommendations")) == 2
    engine.dispose()


# ---------------------------------------------------------------- faults


@pytest.mark.slow
def test_kill_9_during_ingest_training_and_publish_leaves_the_published_run(pg_copy, tiny_sample, tmp_path):
    url, artifacts = pg_copy
    data = changed_copy(tiny_sample, tmp_path / "data")
    shown = latest(url)
    points = ("ingest", "train", "publish")
    for killed, point in enumerate(points, start=1):
        args = [str(KILL_AT), point, "run-batch", "--data-dir", str(data), "--db", url, "--artifacts", str(artifacts)]
        child = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert child.returncode == -signal.SIGKILL, f"{point}: {excerpt(child.stderr)}"
        pd.testing.assert_frame_equal(latest(url), shown)
        statuses = pg_query(url, "SELECT status FROM runs ORDER BY id")["status"].tolist()
        assert statuses == ["published"] + ["failed"] * (killed - 1) + ["running"], point
    assert set(POINTS) >= set(points)

    result = run_cli("run-batch", "--data-dir", str(data), "--db", url, "--artifacts", str(artifacts))
    assert result.exit_code == 0, result.output
    runs = pg_query(url, "SELECT id, status, error FROM runs ORDER BY id")
    assert runs["status"].tolist() == ["published"] + ["failed"] * len(points) + ["published"]
    assert runs["error"].iloc[1:-1].str.startswith("abandoned").all()
    newest = int(runs["id"].iloc[-1])
    assert set(latest(url)["run_id"]) == {newest}
    # the killed runs' partitions went with retention; no half-written model file is left
    assert partitions(url, "recommendations") == [f"recommendations_run_{i}" for i in (1, newest)]
    assert not list(artifacts.glob(".tmp-*"))


def test_a_bad_input_file_is_refused_as_on_sqlite_and_nothing_is_half_loaded(published, pg_copy, tiny_sample, tmp_path):
    url, _ = pg_copy
    data = tmp_path / "data"
    shutil.copytree(tiny_sample, data)
    folder = data / "KuaiRec 2.0" / "data"
    users = folder / USER_FEATURES  # a valid change, loaded before the bad file: a partial load would show it
    profiles = users.read_text()
    users.write_text(profiles.replace(",full_active,", ",high_active,", 1))
    assert users.read_text() != profiles
    big = folder / BIG_MATRIX
    lines = big.read_text().splitlines(keepends=True)
    bad = [",".join(line.split(",")[:-1]) + ",-1\n" for line in lines]  # watch_ratio < 0
    big.write_text("".join(lines[:1] + bad[1:200] + lines[200:]))
    tables = ("users", "train_interactions", "source_files", "rejected_rows")
    before = {t: pg_query(url, f"SELECT * FROM {t}") for t in tables}

    on_postgres = run_cli("ingest", "--data-dir", str(data), "--db", url)
    sqlite_db = isolated_copy(published[0], tmp_path / "sq")
    on_sqlite = run_cli("ingest", "--data-dir", str(data), "--db", str(sqlite_db))

    assert on_postgres.exit_code == on_sqlite.exit_code == 65
    errors = [[line for line in r.stderr.splitlines() if line.startswith("Error:")] for r in (on_postgres, on_sqlite)]
    assert errors[0] == errors[1] and len(errors[0]) == 1 and "big_matrix.csv" in errors[0][0]
    for table in tables:
        pd.testing.assert_frame_equal(pg_query(url, f"SELECT * FROM {table}"), before[table])

    big.write_text("".join(lines[:1] + bad[1:2] + lines[2:]))  # one bad row: set aside, the rest loaded
    for db in (url, str(sqlite_db)):
        loaded = run_cli("ingest", "--data-dir", str(data), "--db", db)
        assert loaded.exit_code == 0, loaded.output
    aside = 'SELECT file, line, "column", value, reason, file_sha256 FROM rejected_rows'
    pd.testing.assert_frame_equal(pg_query(url, aside), query(sqlite_db, aside))
    assert pg_query(url, aside)[["file", "line", "column"]].values.tolist() == [[BIG_MATRIX, 2, "watch_ratio"]]


def test_a_second_job_exits_75_and_the_server_going_away_fails_the_run_with_69(pg_copy, tiny_sample, tmp_path):
    url, artifacts = pg_copy
    args = ["run-batch", "--retrain", "always", "--data-dir", str(tiny_sample), "--db", url]
    first = recgen_process(*args, "--artifacts", str(artifacts), stderr=subprocess.PIPE, cwd=tmp_path)
    lines = []
    for line in first.stderr:
        lines.append(line)
        if "epoch 1" in line:
            break
    first.send_signal(signal.SIGSTOP)  # held mid-run (its lock too) for as long as the checks take
    try:
        second = run_cli(*args)
        assert second.exit_code == 75 and "another recgen job is running" in second.stderr
        assert run_cli("ingest", "--data-dir", str(tiny_sample), "--db", url).exit_code == 75

        # every session of the first job ends, as when the server restarts or the network drops
        pg_query(
            url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()",
        )
    finally:
        first.send_signal(signal.SIGCONT)
    lines.extend(first.stderr)
    stderr = "".join(lines)
    assert first.wait(timeout=300) == 69, excerpt(stderr)
    assert "Traceback" not in stderr
    # the first access after the server went away says so: a query, or the lock checked before publishing
    assert "the database server" in stderr.splitlines()[-1]
    failed = pg_query(url, "SELECT status, exit_code, error FROM runs ORDER BY id DESC LIMIT 1").iloc[0]
    assert failed["status"] == "failed" and failed["exit_code"] == 69  # the server was still there to say so

    again = run_cli(
        "run-batch", *args[3:], "--artifacts", str(artifacts)
    )  # the lock went with the session (models reloaded)
    assert again.exit_code == 0, again.output


def test_a_lock_is_per_database_and_released_when_its_holder_is_killed(fresh_db, maintenance, postgres_server):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from recgen.store.lock import job_lock\nwith job_lock({fresh_db!r}):\n"
            "    print('locked', flush=True)\n    import time; time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        other = create_database(maintenance, postgres_server)
        with job_lock(other):  # another database on the same server: its own lock
            pass
        drop_database(maintenance, other)
        assert run_cli("run-batch", "--db", fresh_db).exit_code == 75
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        deadline = time.monotonic() + 30
        while True:  # the server ends the killed session as soon as it sees the socket close
            try:
                with job_lock(fresh_db):
                    break
            except Exception:
                assert time.monotonic() < deadline, "the killed holder's lock was never released"
                time.sleep(0.2)
    finally:
        holder.kill()


def test_a_lock_whose_session_the_server_ended_is_reported_lost(fresh_db):
    with job_lock(fresh_db) as held:
        held.verify()  # held: nothing to say
        pg_query(
            fresh_db,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND datname = current_database()",
        )
        with pytest.raises(UnavailableError, match="the job lock was lost"):
            held.verify()


# ---------------------------------------------------------------- Datasette through a SQLite export


def test_export_sqlite_is_served_by_datasette_with_the_plugin(pg_published, tmp_path, monkeypatch):
    url, _, work = pg_published
    monkeypatch.chdir(work)  # where the job wrote its report
    out = tmp_path / "recs.db"
    result = run_cli("export-sqlite", "--db", url, str(out))
    assert result.exit_code == 0, result.output
    assert f"datasette {out}" in result.output

    exported = query(out, "SELECT * FROM latest_recommendations ORDER BY user_id, rank")
    pd.testing.assert_frame_equal(exported, latest(url).astype(exported.dtypes.to_dict()))
    ds = Datasette([str(out)])
    tables = fetch_json(ds, "/-/metadata.json")["databases"]["recs"]["tables"]
    for name, columns in recgen_columns(out).items():
        if name != "alembic_version":
            assert tables[name]["description"] and all(tables[name]["columns"].get(c) for c in columns), name
    assert tables["videos"]["fts_table"] == "videos_fts"
    offered = {q["name"] for q in fetch_json(ds, "/recs.json")["queries"]}
    assert offered == set(CANNED_QUERIES)
    for name in sorted(offered - {"rejected_rows_by_reason"}):  # the tiny sample's files are clean
        assert query_rows(ds, name, **({"q": "cooking"} if name == "who_gets_videos_about" else {})), name
    user = int(exported["user_id"].iloc[0])
    dashboard, user_page, report = fetch(ds, "/-/recgen/dashboard", f"/-/recgen/user/{user}", "/-/recgen/report/")
    assert dashboard.status_code == 200 and "Model vs baselines" in dashboard.text
    assert user_page.status_code == 200 and "Current recommendations" in user_page.text
    assert report.status_code == 200 and "Watch-ratio distribution" in report.text
