"""The per-user stages on a real Ray cluster (two nodes on this machine) give what the local engine gives, from
the same shards: the fitted tables to the bit, the same lists (scores within 1e-6, relative) and metrics;
a worker killed mid-scoring is run again by Ray and the run is published once; a run that cannot finish
publishes nothing. Real processes, the real CLI, no mocks."""

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
from recgen.engines import LocalExecutor, ModelRef, Placement, open_executor, shard_bounds
from recgen.errors import DataError
from recgen.features import load_inputs
from recgen.models import load_model
from recgen.models.hybrid.family import HybridFamily
from recgen.models.hybrid.network import ExternalTable
from recgen.models.hybrid.training import fit_user_parameters
from recgen.models.hybrid.user_tables import UserTablePart, UserTables
from recgen.progress import Reporter
from recgen.store.engine import get_engine

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
def on_ray(tmp_path_factory, tiny_sample, ray_cluster):
    """A database after a run that trained and scored on the Ray cluster, in four shards of users."""
    db = tmp_path_factory.mktemp("engines") / "ray" / "recs.db"
    result = recgen(*run_args(db, tiny_sample, "ray", ray_cluster))
    assert result.returncode == 0, excerpt(result.stderr)
    assert "Ray: " in result.stderr and "2 CPUs in 2 node(s), 2 worker(s)" in result.stderr
    return db


def ray_model(db):
    return query(db, "SELECT id, path, sha256 FROM models WHERE name = 'hybrid'").iloc[0]


def test_the_tables_fitted_on_ray_are_those_the_local_engine_fits_to_the_bit(on_ray, tmp_path):
    """The refit's and the factors' solves on the cluster's workers, against the same from the same towers
    in this process: every float equal."""
    model = ray_model(on_ray)
    keras_model = load_model(Path(model["path"]))
    video_factors = keras_model.get_layer("video_tower").get_layer("video_residual_factors")
    fitted_on_ray = video_factors.table.numpy()
    video_factors.table.assign(np.zeros_like(fitted_on_ray))  # as the towers were before the factors
    parts = query(on_ray, "SELECT * FROM model_user_tables ORDER BY first_user")
    on_cluster = UserTables.of([UserTablePart(*row) for row in parts.drop(columns="model_id").itertuples(False)])
    placement = Placement(LocalExecutor(), int(SHARD_USERS), artifacts=tmp_path, tables_outside=True)

    here = fit_user_parameters(
        keras_model, load_inputs(get_engine(on_ray)).train, HybridFamily(42).settings, placement, Reporter()
    )

    np.testing.assert_array_equal(here.read(0, 180), on_cluster.read(0, 180))
    np.testing.assert_array_equal(video_factors.table.numpy(), fitted_on_ray)
    assert np.abs(here.read(0, 180)).sum(axis=1).min() > 0  # every user of the tiny sample has tables


def test_on_ray_the_per_user_tables_live_beside_the_model_with_their_hashes(on_ray, published):
    model = ray_model(on_ray)
    parts = query(on_ray, "SELECT * FROM model_user_tables ORDER BY first_user")
    assert parts[["first_user", "stop_user"]].values.tolist() == [list(s) for s in shard_bounds(180, 48)]
    assert (parts["model_id"] == model["id"]).all()
    for _, part in parts.iterrows():
        assert Path(part["path"]).parent == Path(model["path"]).with_suffix(".users")
        assert file_sha256(Path(part["path"])) == part["sha256"]
    tower = ModelFile(model["path"], model["sha256"], load_model).load().get_layer("user_tower")
    assert isinstance(tower.get_layer("user_refit"), ExternalTable)  # nothing per user in the .keras file
    assert isinstance(tower.get_layer("user_residual_factors"), ExternalTable)
    assert query(published[0], "SELECT count(*) AS n FROM model_user_tables")["n"][0] == 0  # local: inside


def test_the_same_model_gives_the_same_lists_and_metrics_on_both_engines(on_ray, tiny_sample, tmp_path):
    db = isolated_copy(on_ray, tmp_path / "out")
    result = recgen(*run_args(db, tiny_sample, "local", "unused", "--retrain", "never"))
    assert result.returncode == 0, excerpt(result.stderr)
    assert "reloaded hybrid model" in result.stderr
    assert_same_outputs(outputs(db), outputs(on_ray))
    assert len(outputs(db)["lists"]) == 180 * 50


@pytest.mark.slow
def test_a_worker_killed_mid_scoring_is_rerun_by_ray_and_the_run_published_once(
    on_ray, tiny_sample, ray_cluster, tmp_path
):
    db = isolated_copy(on_ray, tmp_path / "out")
    marker = tmp_path / "killed"
    args = run_args(db, tiny_sample, "ray", ray_cluster)
    result = recgen("scoring-worker-once", *args, script=[str(KILL_AT)], env={"KILL_AT_MARKER": str(marker)})

    assert result.returncode == 0, excerpt(result.stderr)
    assert marker.exists()  # a worker did die inside a shard's scoring
    assert_same_outputs(outputs(db), outputs(on_ray))
    runs = query(db, "SELECT id, status FROM runs ORDER BY id")
    assert runs["status"].tolist() == ["published", "published"]
    assert query(db, f"SELECT count(*) AS n FROM recommendations WHERE run_id = {last_run(db)}")["n"][0] == 180 * 50


@pytest.mark.slow
def test_a_run_whose_workers_keep_dying_fails_and_publishes_nothing(on_ray, tiny_sample, ray_cluster, tmp_path):
    db = isolated_copy(on_ray, tmp_path / "out")
    shown = query(db, "SELECT * FROM latest_recommendations ORDER BY user_id, rank")
    args = run_args(db, tiny_sample, "ray", ray_cluster, "--ray-retries", "1")
    result = recgen("scoring-worker-always", *args, script=[str(KILL_AT)])

    assert result.returncode == 69, excerpt(result.stderr)
    assert "Traceback" not in result.stderr
    assert "the Ray cluster could not finish the work" in result.stderr.splitlines()[-1]
    failed = query(db, "SELECT status, exit_code FROM runs ORDER BY id DESC LIMIT 1").iloc[0]
    assert failed["status"] == "failed" and failed["exit_code"] == 69
    pd.testing.assert_frame_equal(query(db, "SELECT * FROM latest_recommendations ORDER BY user_id, rank"), shown)


def test_only_the_workers_that_score_with_the_model_load_keras_and_they_check_its_hash(on_ray, ray_cluster):
    model = ray_model(on_ray)
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


def test_a_cluster_recgen_starts_runs_its_workers_at_the_job_s_priority():
    """Ray's default worker niceness (15) would leave the workers a sliver of the cores beside another job."""
    pytest.importorskip("ray")
    script = "import os\nfrom recgen.engines.ray import RayExecutor\nex = RayExecutor(workers=1)\n"
    script += "print(ex.map(lambda: os.nice(0), [()]))\nex.close()\n"
    env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, excerpt(result.stderr)
    assert result.stdout.strip().splitlines()[-1] == "[0]"
