"""Progress and log output: text or JSON lines, live bars on a terminal, silence with --quiet."""

import io
import json

from conftest import backup_copy, run_cli

from recgen.models.seed import SeedSettings, build_seed_model, train_seed
from recgen.progress import Reporter


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_json_lines_parse_and_text_lines_are_timestamped():
    stream = io.StringIO()
    Reporter("json", stream=stream).log("ingest done", seconds=1.5)
    record = json.loads(stream.getvalue())
    assert record["message"] == "ingest done" and record["seconds"] == 1.5 and record["time"].endswith("+00:00")
    stream = io.StringIO()
    Reporter("text", stream=stream).log("ingest done")
    clock, message = stream.getvalue().rstrip("\n").split(" ", 1)
    assert message == "ingest done" and len(clock.split(":")) == 3


def test_quiet_says_nothing():
    stream = io.StringIO()
    reporter = Reporter(quiet=True, stream=stream)
    reporter.log("hello")
    reporter.progress("scoring", 10, "users")(10)
    assert stream.getvalue() == ""


def test_off_a_terminal_a_loop_logs_counts_and_rate_not_every_tick():
    stream = io.StringIO()
    tick = Reporter(stream=stream).progress("scoring", 1000, "users")
    for done in range(100, 1001, 100):
        tick(done)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1  # ten ticks within ten seconds: only the last one is logged
    assert "scoring: 1,000/1,000 users (" in lines[0] and lines[0].endswith("users/s)")


def test_on_a_terminal_a_loop_redraws_one_bar():
    stream = Terminal()
    reporter = Reporter(stream=stream)
    tick = reporter.progress("scoring", 4, "users")
    tick(2)
    assert stream.getvalue().startswith("\rscoring [" + "#" * 15 + "-" * 15 + "] 2/4 users")
    tick(4)
    assert stream.getvalue().endswith("\n") and "4/4 users" in stream.getvalue()


def test_ingest_reports_the_files_it_loads(tiny_sample, tmp_path):
    from recgen.ingest.load import ingest
    from recgen.store.engine import get_engine

    stream = io.StringIO()
    ingest(get_engine(tmp_path / "recs.db"), tiny_sample, progress=Reporter(stream=stream))
    assert "loading: 7/7 files (" in stream.getvalue()


def test_run_batch_json_lines_and_quiet(published, tiny_sample, tmp_path):
    db, _ = published
    copy = backup_copy(db, tmp_path / "recs.db")
    # --k 20: another evaluation than the published run's (the same one would be copied, not computed)
    args = ["run-batch", "--data-dir", str(tiny_sample), "--db", str(copy), "--k", "20"]
    result = run_cli("--log-format", "json", *args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert any(r["message"].startswith("scoring: ") for r in records)
    assert any(r["message"].startswith("evaluating: 5/5 models") for r in records)
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["status"] == "published" and summary["trained"] is False and 0 <= summary["ndcg@20"] <= 1

    quiet = run_cli("--quiet", "run-batch", "--data-dir", str(tiny_sample), "--db", str(copy))
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == ""
    assert len(quiet.stdout.splitlines()) == 1 and quiet.stdout.startswith(f"run {summary['run_id'] + 1} published")


def test_training_reports_each_epochs_batches(tmp_path):
    import numpy as np

    from recgen.features import Interactions

    rng = np.random.default_rng(0)
    rows = Interactions(
        rng.integers(0, 20, 3000).astype(np.int32), rng.integers(0, 30, 3000).astype(np.int32), rng.random(3000)
    )
    settings = SeedSettings(epochs=2, batch_size=500, patience=5)
    stream = io.StringIO()
    keras_model = build_seed_model(20, rng.normal(size=(30, 15)).astype(np.float32), settings)
    train_seed(keras_model, rows, settings, progress=Reporter(stream=stream))
    lines = stream.getvalue().splitlines()
    assert sum(": 6/6 batches (" in line for line in lines) == 2  # 2,700 training rows in batches of 500
    assert sum("val_loss" in line for line in lines) == 2
