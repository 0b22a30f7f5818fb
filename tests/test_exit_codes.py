"""The documented exit codes (README, recgen.errors), one real invocation each: cron wrappers branch on them.
130 and 143 (Ctrl-C, SIGTERM) are proven on real processes in test_crash.py."""

import shutil
import sqlite3

import pytest
from conftest import run_cli

import recgen.evaluation
from recgen.constants import SMALL_MATRIX
from recgen.store.lock import job_lock


def data_copy(tiny_sample, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(tiny_sample, target)
    return target, target / "KuaiRec 2.0" / "data"


def test_0_success(published):
    db, _ = published
    assert run_cli("--version").exit_code == 0
    assert run_cli("evaluate", "--db", str(db)).exit_code == 0


@pytest.mark.parametrize(
    "args", [["run-batch", "--k", "0"], ["run-batch", "--keep-runs", "0"], ["no-such-command"], ["ingest"]]
)
def test_64_usage(args):
    result = run_cli(*args)
    assert result.exit_code == 64, result.output
    assert "Traceback" not in result.output


def test_65_bad_data(tiny_sample, tmp_path):
    data, folder = data_copy(tiny_sample, tmp_path)
    (folder / SMALL_MATRIX).write_text("")
    result = run_cli("ingest", "--data-dir", str(data), "--db", str(tmp_path / "recs.db"))
    assert result.exit_code == 65 and f"{SMALL_MATRIX}: empty file" in result.stderr


def test_66_missing_input(tmp_path):
    db = str(tmp_path / "recs.db")
    missing = run_cli("ingest", "--data-dir", str(tmp_path / "nowhere"), "--db", db)
    assert missing.exit_code == 66 and "nowhere" in missing.stderr
    nothing = run_cli("evaluate", "--db", db)  # a recgen database, but no published run yet
    assert nothing.exit_code == 66 and "no metrics" in nothing.stderr
    for command in ("evaluate", "report"):
        absent = run_cli(command, "--db", str(tmp_path / "absent.db"))
        assert absent.exit_code == 66 and "no database at" in absent.stderr
        assert not (tmp_path / "absent.db").exists()  # reading never creates a database
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    foreign = run_cli("evaluate", "--db", str(other))
    assert foreign.exit_code == 66 and "not a recgen database" in foreign.stderr


def test_70_internal_error_says_it_is_a_bug(published, monkeypatch):
    db, _ = published

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(recgen.evaluation, "metrics_table", broken)  # the CLI imports it at call time
    result = run_cli("evaluate", "--db", str(db))
    assert result.exit_code == 70
    assert "ZeroDivisionError: a bug" in result.stderr and "a bug in recgen" in result.stderr


def test_73_cannot_write_or_use_the_database(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("run-batch", "--db", str(blocker / "recs.db"))
    assert result.exit_code == 73 and "cannot create the database folder" in result.stderr
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not SQLite" * 100)
    result = run_cli("evaluate", "--db", str(garbage))
    assert result.exit_code == 73 and "file is not a database" in result.stderr
    assert "Traceback" not in result.stderr


def test_75_locked(published, tiny_sample, tmp_path):
    db = tmp_path / "recs.db"
    with job_lock(str(db)):
        for args in (["run-batch", "--data-dir", str(tiny_sample)], ["ingest", "--data-dir", str(tiny_sample)]):
            result = run_cli(*args, "--db", str(db))
            assert result.exit_code == 75 and "another recgen job is running" in result.stderr
    with job_lock(str(published[0])):  # the report rewrites data_profile
        result = run_cli("report", "--db", str(published[0]), "--out", str(tmp_path / "report"))
        assert result.exit_code == 75 and "another recgen job is running" in result.stderr


def test_78_bad_configuration(tmp_path):
    result = run_cli("download", "--dest", str(tmp_path), "--md5", "not-an-md5")
    assert result.exit_code == 78 and "md5" in result.stderr.lower()
