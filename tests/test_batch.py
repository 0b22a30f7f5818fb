"""The nightly job end to end, through the real CLI, on a tiny generated sample and real SQLite files."""

import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from conftest import backup_copy, query, run_cli

from recgen.constants import BIG_MATRIX, SMALL_MATRIX, SOCIAL_NETWORK, TOP_K
from recgen.store.lock import job_lock


def test_every_user_gets_k_distinct_unseen_videos_in_rank_order(published):
    db, _ = published
    recs = query(db, "SELECT user_id, rank, video_id, score, source FROM latest_recommendations")
    train_users = query(db, "SELECT DISTINCT user_id FROM train_interactions")["user_id"]
    assert set(recs["user_id"]) == set(train_users)
    per_user = recs.groupby("user_id")
    assert (per_user.size() == TOP_K).all()
    assert (per_user["video_id"].nunique() == TOP_K).all()
    assert (per_user["rank"].apply(lambda r: sorted(r) == list(range(1, TOP_K + 1)))).all()
    ordered = recs.sort_values(["user_id", "rank"])
    assert (ordered.groupby("user_id")["score"].diff().dropna() <= 0).all()
    seen = query(
        db,
        "SELECT count(*) AS n FROM latest_recommendations r "
        "JOIN train_interactions t ON t.user_id = r.user_id AND t.video_id = r.video_id",
    )
    assert seen["n"][0] == 0
    assert set(recs["source"]) == {"model"}


def test_every_eval_user_has_metrics_in_their_ranges(published):
    db, _ = published
    metrics = query(db, "SELECT * FROM latest_user_metrics")
    eval_users = query(db, "SELECT DISTINCT user_id FROM eval_interactions")["user_id"]
    assert sorted(metrics["user_id"]) == sorted(eval_users)
    for name in ("hit_ratio", "ndcg", "seed_ndcg", "precision"):
        assert metrics[name].between(0, 1).all(), name
    assert metrics["recall"].dropna().between(0, 1).all()
    assert metrics["spearman"].between(-1, 1).all()
    assert (metrics["mae"] >= 0).all() and (metrics["rmse"] >= metrics["mae"] - 1e-9).all()
    run_level = query(db, "SELECT model_name, metric, value FROM latest_run_metrics")
    assert set(run_level["model_name"]) == {"model", "random", "popularity", "item_mean", "seed"}
    for model_name in ("model", "random", "popularity", "item_mean", "seed"):
        names = set(run_level.loc[run_level["model_name"] == model_name, "metric"])
        assert {f"ndcg@{TOP_K}", f"hit_ratio@{TOP_K}", "spearman"} <= names
        if model_name != "seed":  # the seed reference is judged on accuracy only (its lists are not built)
            assert f"coverage@{TOP_K}" in names
        if model_name in ("model", "item_mean", "seed"):  # they predict watch_ratio itself
            assert "mae" in names
    model_ndcg = run_level.query("model_name == 'model' and metric == 'ndcg@50'")["value"].item()
    assert model_ndcg == pytest.approx(metrics["ndcg"].mean())


def test_the_run_record_has_status_counts_and_timings(published):
    db, result = published
    run = query(db, "SELECT * FROM runs").iloc[-1]
    assert run["status"] == "published" and run["exit_code"] == 0 and run["trained"] == 1
    assert run["synthetic"] == 1  # a generated sample passed by path is still labelled synthetic
    assert run["n_recommendations"] == TOP_K * run["n_users"]
    for stage in ("ingest", "features", "train", "recommend", "evaluate"):
        assert run[f"{stage}_seconds"] >= 0
    model_row = query(db, "SELECT * FROM models WHERE id = ?", int(run["model_id"])).iloc[0]
    assert model_row["path"].endswith(".keras") and len(model_row["sha256"]) == 64
    assert f"run {run['id']} published" in result.stdout


def test_a_second_run_on_unchanged_data_reloads_the_model(published, tiny_sample, tmp_path):
    db, _ = published
    copy = backup_copy(db, tmp_path / "recs.db")
    files_before = query(copy, "SELECT * FROM source_files")
    result = run_cli("run-batch", "--data-dir", str(tiny_sample), "--db", str(copy))
    assert result.exit_code == 0, result.output
    assert "reloaded hybrid model" in result.stderr and "reloaded seed model" in result.stderr
    assert "training the" not in result.stderr
    runs = query(copy, "SELECT id, status, trained, model_id FROM runs ORDER BY id")
    assert runs["status"].tolist() == ["published", "published"]
    assert runs["trained"].tolist() == [1, 0]
    assert runs["model_id"].nunique() == 1
    pd.testing.assert_frame_equal(query(copy, "SELECT * FROM source_files"), files_before)  # nothing reloaded
    # the same models on the same data: the metrics are copied, not computed again
    assert "metrics copied from run 1" in result.stderr and "evaluating" not in result.stderr
    for table, key in (("user_metrics", ["user_id"]), ("run_metrics", ["model_name", "metric"])):
        first, second = (
            query(copy, f"SELECT * FROM {table} WHERE run_id = ?", run_id).drop(columns="run_id").sort_values(key)
            for run_id in (1, 2)
        )
        assert len(first) > 0
        pd.testing.assert_frame_equal(second.reset_index(drop=True), first.reset_index(drop=True))
    # another list length is another evaluation: computed, at that k
    result = run_cli("run-batch", "--data-dir", str(tiny_sample), "--db", str(copy), "--k", "10")
    assert result.exit_code == 0, result.output
    assert "metrics copied" not in result.stderr and "model: ndcg@10" in result.stderr
    assert set(query(copy, "SELECT metric FROM run_metrics WHERE run_id = 3")["metric"]) >= {"ndcg@10"}


def drop_last_line(path: Path) -> None:
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))


def test_models_retrain_only_when_the_files_they_are_built_from_change(published, tiny_sample, tmp_path):
    db, _ = published
    copy = backup_copy(db, tmp_path / "recs.db")
    changed = tmp_path / "changed"
    shutil.copytree(tiny_sample, changed)
    data = changed / "KuaiRec 2.0" / "data"
    drop_last_line(data / SMALL_MATRIX)  # the evaluation matrix: the models stay, the metrics are new
    drop_last_line(data / SOCIAL_NETWORK)
    result = run_cli("run-batch", "--data-dir", str(changed), "--db", str(copy))
    assert result.exit_code == 0, result.output
    assert "reloaded hybrid model" in result.stderr and "reloaded seed model" in result.stderr
    assert f"{SMALL_MATRIX}: unchanged" not in result.stderr  # it was reloaded
    assert "metrics copied" not in result.stderr  # the evaluation matrix changed: new metrics
    drop_last_line(data / BIG_MATRIX)  # the training log: both models retrain
    result = run_cli("run-batch", "--data-dir", str(changed), "--db", str(copy))
    assert result.exit_code == 0, result.output
    assert "training the hybrid model" in result.stderr and "training the seed model" in result.stderr
    assert query(copy, "SELECT trained FROM runs ORDER BY id")["trained"].tolist() == [1, 0, 1]
    assert query(copy, "SELECT count(DISTINCT data_fingerprint) AS n FROM models")["n"].item() == 2


def test_a_failed_run_leaves_the_previous_results_published(published, tiny_sample, tmp_path):
    db, _ = published
    copy = backup_copy(db, tmp_path / "recs.db")
    before = query(copy, "SELECT * FROM latest_recommendations")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sample, broken)
    small = broken / "KuaiRec 2.0" / "data" / SMALL_MATRIX
    lines = small.read_text().splitlines(keepends=True)
    lines[5] = ",".join(lines[5].split(",")[:-1] + ["not-a-number\n"])
    small.write_text("".join(lines))

    result = run_cli("run-batch", "--data-dir", str(broken), "--db", str(copy), "--max-rejected", "0")

    assert result.exit_code == 65
    assert SMALL_MATRIX in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: run 2 failed after ")  # the run's one-line summary
    runs = query(copy, "SELECT status, error, exit_code FROM runs ORDER BY id")
    assert runs["status"].tolist() == ["published", "failed"]
    assert SMALL_MATRIX in runs["error"].iloc[-1] and runs["exit_code"].iloc[-1] == 65
    pd.testing.assert_frame_equal(query(copy, "SELECT * FROM latest_recommendations"), before)
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # Under the default threshold (1% of the file) the bad row is set aside and the night goes on.
    result = run_cli("run-batch", "--data-dir", str(broken), "--db", str(copy))

    assert result.exit_code == 0, result.output
    assert "1 rows (0.0" in result.stderr and "set aside in rejected_rows" in result.stderr
    run = query(copy, "SELECT status, n_rejected_rows FROM runs ORDER BY id DESC LIMIT 1").iloc[0]
    assert run["status"] == "published" and run["n_rejected_rows"] == 1
    rejected = query(copy, 'SELECT file, line, "column", value FROM rejected_rows')
    assert rejected.values.tolist() == [[SMALL_MATRIX, 6, "watch_ratio", "not-a-number"]]


def test_evaluate_prints_the_model_next_to_the_baselines(published):
    db, _ = published
    result = run_cli("evaluate", "--db", str(db))
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[1]
    assert header.split() == ["model_name", "model", "seed", "item_mean", "popularity", "random"]
    assert "ndcg@50" in result.stdout and "seed_ndcg@50" in result.stdout
    missing = run_cli("evaluate", "--db", str(db), "--run", "999")
    assert missing.exit_code == 66 and "run 999" in missing.stderr


def test_the_embedded_default_generates_a_synthetic_sample_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("run-batch", "--sample-scale", "tiny")
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.stderr and "synthetic data" in result.stdout
    assert (tmp_path / "output" / "sample" / "KuaiRec 2.0" / "data" / SMALL_MATRIX).is_file()
    assert (tmp_path / "output" / "recs.db").is_file() and list((tmp_path / "output" / "models").glob("*.keras"))
    assert query(tmp_path / "output" / "recs.db", "SELECT synthetic FROM runs")["synthetic"].tolist() == [1]


def test_a_second_job_exits_75_while_the_lock_is_held(tmp_path, tiny_sample):
    db = tmp_path / "recs.db"
    with job_lock(str(db)):
        result = run_cli("run-batch", "--data-dir", str(tiny_sample), "--db", str(db))
    assert result.exit_code == 75
    assert "another recgen job is running" in result.stderr


def test_bad_invocations_exit_with_documented_codes(tmp_path):
    db = str(tmp_path / "recs.db")
    missing = run_cli("run-batch", "--data-dir", str(tmp_path / "nowhere"), "--db", db)
    assert missing.exit_code == 66 and "nowhere" in missing.stderr
    usage = run_cli("run-batch", "--retrain", "sometimes")
    assert usage.exit_code == 64


def test_users_and_videos_without_history_are_recommended_from_content(published, tiny_sample, tmp_path):
    db, _ = published
    # The video in most lists of the published run is attractive by content too, so it should still be
    # recommended once its history is gone; the cold user is the one with the fewest training rows.
    cold_video = str(
        query(db, "SELECT video_id FROM latest_recommendations GROUP BY 1 ORDER BY count(*) DESC")["video_id"][0]
    )
    cold_user = str(query(db, "SELECT user_id FROM train_interactions GROUP BY 1 ORDER BY count(*)")["user_id"][0])
    data = tmp_path / "cold"
    shutil.copytree(tiny_sample, data)
    big = data / "KuaiRec 2.0" / "data" / "big_matrix.csv"
    header, *rows = big.read_text().splitlines(keepends=True)
    ids = [row.split(",", 2)[:2] for row in rows]
    kept = [row for row, (u, v) in zip(rows, ids, strict=True) if u != cold_user and v != cold_video]
    big.write_text(header + "".join(kept))
    cold_db = tmp_path / "recs.db"

    result = run_cli("run-batch", "--data-dir", str(data), "--db", str(cold_db))

    assert result.exit_code == 0, result.output
    recs = query(cold_db, "SELECT user_id, video_id, source FROM latest_recommendations")
    mine = recs[recs["user_id"] == int(cold_user)]
    assert len(mine) == TOP_K and set(mine["source"]) == {"content"}
    assert set(recs.loc[recs["video_id"] == int(cold_video), "source"]) == {"content"}  # it is recommended
    warm = recs[(recs["user_id"] != int(cold_user)) & (recs["video_id"] != int(cold_video))]
    assert set(warm["source"]) == {"model"}
