"""Crash safety: a run killed (SIGKILL) inside any stage, or stopped by SIGTERM / Ctrl-C, never shows half a
run, never damages the database, and the next run succeeds. Real subprocesses, real signals."""

import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import isolated_copy, query, run_cli
from kill_at import POINTS

from recgen.constants import STAGE_SUFFIX
from recgen.models.keras_base import file_sha256

KILL_AT = Path(__file__).with_name("kill_at.py")


def integrity(db) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def excerpt(stderr: str) -> str:
    """What to show of a child's stderr: the stacks of a fatal error (without its list of loaded extension
    modules, which would fill the message), else the end."""
    fatal = stderr.find("Fatal Python error")
    if fatal < 0:
        return stderr[-2000:]
    return stderr[fatal:].split("Extension modules:")[0][:6000]


def changed_copy(tiny_sample, target):
    """The sample with a few training rows fewer: new data, so every stage has work to do."""
    shutil.copytree(tiny_sample, target)
    big = target / "KuaiRec 2.0" / "data" / "big_matrix.csv"
    big.write_text("".join(big.read_text().splitlines(keepends=True)[:-25]))
    return target


def _interruptible() -> None:
    """In the child: SIGINT as on a terminal, even when the test runs where it is ignored (a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def recgen_process(*args, **popen):
    """`python -m recgen ARGS`; a fatal signal inside the child prints every thread's stack (faulthandler)."""
    command = [sys.executable, "-X", "faulthandler", "-m", "recgen", *args]
    return subprocess.Popen(command, text=True, preexec_fn=_interruptible, **popen)


@pytest.mark.slow
def test_a_run_killed_inside_any_stage_leaves_the_last_publication_and_the_next_run_succeeds(
    published, tiny_sample, tmp_path
):
    db = isolated_copy(published[0], tmp_path / "out")
    data = changed_copy(tiny_sample, tmp_path / "data")
    shown = query(db, "SELECT * FROM latest_recommendations ORDER BY user_id, rank")
    shown_metrics = query(db, "SELECT * FROM latest_run_metrics ORDER BY model_name, metric")

    models_dir = db.parent / "models"
    for killed, point in enumerate(POINTS, start=1):
        args = [sys.executable, str(KILL_AT), point, "run-batch", "--data-dir", str(data), "--db", str(db)]
        child = subprocess.run(args, capture_output=True, text=True, timeout=600)

        assert child.returncode == -signal.SIGKILL, f"{point}: {excerpt(child.stderr)}"
        assert f"{'publishing run' if point == 'publish' else point + '...'}" in child.stderr, point  # died there
        pd.testing.assert_frame_equal(query(db, "SELECT * FROM latest_recommendations ORDER BY user_id, rank"), shown)
        pd.testing.assert_frame_equal(
            query(db, "SELECT * FROM latest_run_metrics ORDER BY model_name, metric"), shown_metrics
        )
        assert integrity(db) == "ok", point
        statuses = query(db, "SELECT status FROM runs ORDER BY id")["status"].tolist()
        assert statuses == ["published"] + ["failed"] * (killed - 1) + ["running"], point
        if point == "train":  # the kill while saving left a partial file (no models row names it)
            assert list(models_dir.glob(".tmp-*"))

    result = run_cli("run-batch", "--data-dir", str(data), "--db", str(db))

    assert result.exit_code == 0, result.output
    runs = query(db, "SELECT id, status, error FROM runs ORDER BY id")
    assert runs["status"].tolist() == ["published"] + ["failed"] * len(POINTS) + ["published"]
    assert runs["error"].iloc[1:-1].str.startswith("abandoned").all()
    assert query(db, "SELECT DISTINCT run_id FROM latest_recommendations")["run_id"].tolist() == [runs["id"].iloc[-1]]
    # the killed runs' committed rows are gone, and no partial model file is left or recorded
    published_ids = set(runs.loc[runs["status"] == "published", "id"])
    for table in ("recommendations", "user_metrics", "run_metrics"):
        assert set(query(db, f"SELECT DISTINCT run_id FROM {table}")["run_id"]) <= published_ids, table
    assert not list(models_dir.glob(".tmp-*"))
    assert not list(db.parent.glob(f"{db.name}{STAGE_SUFFIX}*"))  # the killed ingest's staging file too
    for _, row in query(db, "SELECT path, sha256 FROM models").iterrows():
        assert not Path(row["path"]).exists() or file_sha256(Path(row["path"])) == row["sha256"]
    assert integrity(db) == "ok"


def stop_during_training(db, data, signum):
    """Start a real run that must train, send `signum` once its first epoch is under way."""
    child = recgen_process(
        "run-batch", "--retrain", "always", "--data-dir", str(data), "--db", str(db), stderr=subprocess.PIPE
    )
    lines = []
    for line in child.stderr:
        lines.append(line)
        if "epoch 1" in line:
            child.send_signal(signum)
            break
    lines.extend(child.stderr)
    return child.wait(timeout=300), "".join(lines)


def test_sigterm_and_ctrl_c_stop_the_run_cleanly_with_their_exit_codes(published, tiny_sample, tmp_path):
    db = isolated_copy(published[0], tmp_path / "out")
    shown = query(db, "SELECT * FROM latest_recommendations ORDER BY user_id, rank")

    for signum, code, why in ((signal.SIGTERM, 143, "interrupted (exit 143)"), (signal.SIGINT, 130, "Ctrl-C")):
        returncode, stderr = stop_during_training(db, tiny_sample, signum)

        assert returncode == code, excerpt(stderr)
        assert "Traceback" not in stderr
        assert "recommend..." not in stderr  # stopped in training, at once
        last = query(db, "SELECT status, exit_code, error FROM runs ORDER BY id DESC LIMIT 1").iloc[0]
        assert last["status"] == "failed" and last["exit_code"] == code and why in last["error"]
        pd.testing.assert_frame_equal(query(db, "SELECT * FROM latest_recommendations ORDER BY user_id, rank"), shown)
        assert integrity(db) == "ok"
