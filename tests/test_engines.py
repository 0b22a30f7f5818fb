"""The per-user stages on a real Ray cluster (two nodes on this machine) give what the local engine gives, from
the same shards; a worker killed mid-scoring is run again by Ray and the run is published once; a run that
cannot finish publishes nothing. Real processes, the real CLI, no mocks."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import isolated_copy, query
from test_crash import KILL_AT, excerpt

from recgen.artifacts import ModelFile, file_sha256
from recgen.engines import LocalExecutor, ModelRef, open_executor, shard_bounds
from recgen.errors import DataError
from recgen.models import load_model
from recgen.models.hybrid.network import ExternalTable

SHARD_USERS = "48"  # the tiny sample's 180 users in four shards (48, 48, 48, 36) for two workers
LISTS = "SELECT user_id, rank, video_id, score, source FROM recommendations WHERE run_id = {run} ORDER BY user_id, rank"
METRICS = "SELECT * FROM user_metrics WHERE run_id = {run} ORDER BY user_id"
RUN_METRICS = "SELECT model_name, metric, value FROM run_metrics WHERE run_id = {run} ORDER BY model_name, metric"


def recgen(*args, env=None, script=None) -> subprocess.CompletedProcess:
    """`recgen ARGS` in a child process (or `python SCRIPT ARGS`, e.g. tests/kill_at.py POINT)."""
    command = [sys.executable, *(script or ["-m", "recgen"]), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def run_args(db, sample, engine, address, *more):
    return ["run-batch", "--data-dir", str(sample), "--db", str(db), "--engine", engine, "--ray-address", address,
            "--shard-users", SHARD_USERS, *more]  # fmt: skip


def last_run(db) -> int:
    return int(query(db, "SELECT max(id) AS id FROM runs")["id"].iloc[0])


def outputs(db, run=None) -> dict[str, pd.DataFrame]:
    run = run or last_run(db)
    return {name: query(db, sql.format(run=run)).drop(columns="run_id", errors="ignore") for name, sql in
            (("lists", LISTS), ("metrics", METRICS), ("run_metrics", RUN_METRICS))}  # fmt: skip


def assert_same_outputs(got: dict, want: dict) -> None:
    """Identical lists (users, ranks, videos, sources), scores and metrics within 1e-6."""
    exact = ["user_id", "rank", "video_id", "source"]
    pd.testing.assert_frame_equal(got["lists"][exact], want["lists"][exact])
    np.testing.assert_allclose(got["lists"]["score"], want["lists"]["score"], rtol=1e-6, atol=1e-6)
    for name in ("metrics", "run_metrics"):
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=False, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def on_both(tmp_path_factory, tiny_sample, ray_cluster):
    """Databases after a run that trained and scored on each engine, from the same shards."""
    work = tmp_path_factory.mktemp("engines")
    dbs = {}
    for engine in ("local", "ray"):
        dbs[engine] = work / engine / "recs.db"
        result = recgen(*run_args(dbs[engine], tiny_sample, engine, ray_cluster))
        assert result.returncode == 0, excerpt(result.stderr)
    return dbs


def test_ray_trains_and_scores_what_the_local_engine_does(on_both, ray_cluster):
    assert_same_outputs(outputs(on_both["ray"]), outputs(on_both["local"]))
    assert len(outputs(on_both["ray"])["lists"]) == 180 * 50


def test_on_ray_the_per_user_tables_live_beside_the_model_with_their_hashes(on_both):
    db = on_both["ray"]
    model = query(db, "SELECT id, path, sha256 FROM models WHERE name = 'hybrid'").iloc[0]
    parts = query(db, "SELECT * FROM model_user_tables ORDER BY first_user")
    assert parts[["first_user", "stop_user"]].values.tolist() == [list(s) for s in shard_bounds(180, 48)]
    assert (parts["model_id"] == model["id"]).all()
    for _, part in parts.iterrows():
        assert Path(part["path"]).parent == Path(model["path"]).with_suffix(".users")
        assert file_sha256(Path(part["path"])) == part["sha256"]
    keras_model = ModelFile(model["path"], model["sha256"], load_model).load()
    tower = keras_model.get_layer("user_tower")
    assert isinstance(tower.get_layer("user_refit"), ExternalTable)  # nothing per user in the .keras file
    assert isinstance(tower.get_layer("user_residual_factors"), ExternalTable)
    assert not query(on_both["local"], "SELECT * FROM model_user_tables").shape[0]  # local: inside the model


def test_a_model_trained_on_ray_is_reloaded_and_scored_the_same_by_the_local_engine(on_both, tiny_sample, tmp_path):
    db = isolated_copy(on_both["ray"], tmp_path / "out")
    result = recgen(*run_args(db, tiny_sample, "local", "unused", "--retrain", "never"))
    assert result.returncode == 0, excerpt(result.stderr)
    assert "reloaded hybrid model" in result.stderr
    assert_same_outputs(outputs(db), outputs(on_both["ray"]))


def test_a_worker_killed_mid_scoring_is_rerun_by_ray_and_the_run_published_once(
    on_both, tiny_sample, ray_cluster, tmp_path
):
    db = isolated_copy(on_both["ray"], tmp_path / "out")
    marker = tmp_path / "killed"
    args = run_args(db, tiny_sample, "ray", ray_cluster)
    result = recgen("scoring-worker-once", *args, script=[str(KILL_AT)], env={"KILL_AT_MARKER": str(marker)})

    assert result.returncode == 0, excerpt(result.stderr)
    assert marker.exists()  # a worker did die inside a shard's scoring
    assert_same_outputs(outputs(db), outputs(on_both["ray"]))
    runs = query(db, "SELECT id, status FROM runs ORDER BY id")
    assert runs["status"].tolist() == ["published", "published"]
    assert query(db, f"SELECT count(*) AS n FROM recommendations WHERE run_id = {last_run(db)}")["n"][0] == 180 * 50


def test_a_run_whose_workers_keep_dying_fails_and_publishes_nothing(on_both, tiny_sample, ray_cluster, tmp_path):
    db = isolated_copy(on_both["ray"], tmp_path / "out")
    shown = query(db, "SELECT * FROM latest_recommendations ORDER BY user_id, rank")
    result = recgen("scoring-worker-always", *run_args(db, tiny_sample, "ray", ray_cluster), script=[str(KILL_AT)])

    assert result.returncode == 69, excerpt(result.stderr)
    assert "Traceback" not in result.stderr
    assert "the Ray cluster could not finish the work" in result.stderr.splitlines()[-1]
    failed = query(db, "SELECT status, exit_code FROM runs ORDER BY id DESC LIMIT 1").iloc[0]
    assert failed["status"] == "failed" and failed["exit_code"] == 69
    pd.testing.assert_frame_equal(query(db, "SELECT * FROM latest_recommendations ORDER BY user_id, rank"), shown)


def test_only_the_workers_that_score_with_the_model_load_keras_and_they_check_its_hash(on_both, ray_cluster):
    model = query(on_both["ray"], "SELECT path, sha256 FROM models WHERE name = 'hybrid'").iloc[0]
    executor = open_executor("ray", ray_cluster)
    try:
        assert executor.workers == 2
        plain = executor.map(lambda i: (i, "keras" in sys.modules), [(i,) for i in range(5)])
        assert plain == [(i, False) for i in range(5)]  # in order, and no Keras where no model is needed
        intact = ModelRef(ModelFile(model["path"], model["sha256"], load_model))
        loaded = executor.map(lambda keras_model, i: (i, keras_model.name), [(i,) for i in range(3)], model=intact)
        assert loaded == [(i, "hybrid") for i in range(3)]
        other = ModelRef(ModelFile(model["path"], "0" * 64, load_model))
        with pytest.raises(DataError, match="sha256 mismatch"):
            executor.map(lambda keras_model, i: i, [(0,)], model=other)
    finally:
        executor.close()


def test_the_local_executor_runs_items_in_order_with_the_model_in_memory():
    done = []
    results = LocalExecutor().map(
        lambda model, i, shared: (model, i + shared), [(1,), (2,)], shared=(10,), model=ModelRef(None, "m"),
        progress=done.append,
    )  # fmt: skip
    assert results == [("m", 11), ("m", 12)] and done == [1, 2]
    assert shard_bounds(5, 2) == [(0, 2), (2, 4), (4, 5)]


def test_a_missing_extra_is_one_clear_error_naming_it(tmp_path, tiny_sample):
    absent = tmp_path / "absent"
    absent.mkdir()
    for name in ("ray", "faiss"):  # as if not installed: importing them fails
        (absent / f"{name}.py").write_text(f"raise ImportError({f'No module named {name!r}'!r})\n")
    env = {"PYTHONPATH": f"{absent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    db = tmp_path / "out" / "recs.db"
    for option, extra in ((["--engine", "ray"], "recgen[ray]"), (["--scorer", "flat"], "recgen[faiss]")):
        result = recgen("run-batch", "--data-dir", str(tiny_sample), "--db", str(db), *option, env=env)
        assert result.returncode == 78, result.stderr
        assert (
            result.stderr.strip().splitlines() == [f"Error: {result.stderr.split('Error: ')[1].strip()}"]
            and f"pip install '{extra}'" in result.stderr
        )
    assert not db.exists()  # refused before anything was written
