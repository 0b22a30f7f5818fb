"""The nightly run at full scale, on a quiet machine and beside a competing job: cold, changed data and warm.

    python benchmarks/perf.py                                   # the full-scale sample of seed 42
    python benchmarks/perf.py --sample /tmp/full/s42 --repeats 3 --warm-runs 3
    python benchmarks/perf.py --env TF_NUM_INTRAOP_THREADS=1    # children run with these variables

Each `recgen run-batch` runs as a child process, so its wall time and peak RSS (`os.wait4`) are its own;
stage times come from the `runs` table, and "other" is the rest of the wall time (start-up, publishing,
retention, the data-analysis report and the final checkpoint). For each of `--repeats` rounds:

- cold: a new database, every file loaded, both models trained;
- changed data: the same database, with big_matrix.csv one percent shorter (a night's new interactions):
  that file is reloaded, and the models that read it retrain (the default model and the seed baseline);
- warm: `--warm-runs` more runs on unchanged data: nothing is loaded, both models are reloaded.

The rounds run first on a quiet machine, then with one competing CPU-bound process that the benchmark starts
and stops itself ("busy"); it prints the median of each figure, the busy/quiet ratio per run, the seed
baseline's own training time, and a profile of the slowest stage of a cold run (pyinstrument, a sampling
profiler, in `pip install -e '.[bench]'`: inside that stage only, in one more cold run). Targets: cold and
changed data at most 240 s, warm at most 20 s, peak RSS at most 4 GB, busy/quiet at most 2.2x.

Run by hand; not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

from common import STAGES, child, ensure_sample, last_run_trained, load_average, machine, stage_seconds

KINDS = ("cold", "changed", "warm")
TARGETS = {"cold": 240.0, "changed": 240.0, "warm": 20.0}
PEAK_GB = 4.0
BUSY_RATIO = 2.2
CHANGED_SHARE = 0.01  # of big_matrix's lines dropped from its end for the "changed data" runs
SEED_DOCUMENTED_ROWS_PER_S = 12_530_806 / (43 * 60)  # the seed notebook: 43 minutes per epoch of big_matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, help="a `recgen sample --scale full` folder [default: generated]")
    parser.add_argument("--out", type=Path, default=Path("/tmp/recgen-bench"), help="samples and databases")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of cold, changed and warm runs")
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--skip-busy", action="store_true", help="only the quiet rounds")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="for every child")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    args.out.mkdir(parents=True, exist_ok=True)
    print(machine(), flush=True)
    if env:
        print(f"children run with {env}")
    sample = args.sample or args.out / "full-s42"
    ensure_sample(sample, "full", 42)
    changed = changed_sample(sample, args.out / "full-s42-changed")
    results = {"quiet": rounds(args, sample, changed, env, "quiet")}
    if not args.skip_busy:
        competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            results["busy"] = rounds(args, sample, changed, env, "busy")
        finally:
            competitor.kill()
            competitor.wait()
    print(f"\nload average after: {load_average()}\n")
    print(report(results))
    if not args.skip_profile:
        profile_slowest_stage(results["quiet"], sample, args.out, env)


# ---------------------------------------------------------------- the runs


def changed_sample(sample: Path, target: Path) -> Path:
    """`sample` with big_matrix.csv shortened by CHANGED_SHARE of its lines; every other file hard-linked."""
    if (target / "KuaiRec 2.0" / "data" / "big_matrix.csv").is_file():
        return target
    shutil.rmtree(target, ignore_errors=True)
    for path in sample.rglob("*"):
        if path.is_file() and not path.name.startswith("recs.db"):
            copy = target / path.relative_to(sample)
            copy.parent.mkdir(parents=True, exist_ok=True)
            if path.name != "big_matrix.csv":
                os.link(path, copy)
    text = (sample / "KuaiRec 2.0" / "data" / "big_matrix.csv").read_bytes()
    lines = text.count(b"\n")
    end = len(text) - 1  # the newline ending the last line; walk back over the lines dropped
    for _ in range(int(lines * CHANGED_SHARE)):
        end = text.rindex(b"\n", 0, end)
    (target / "KuaiRec 2.0" / "data" / "big_matrix.csv").write_bytes(text[: end + 1])
    return target


def rounds(args, sample: Path, changed: Path, env: dict, condition: str) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for round_number in range(1, args.repeats + 1):
        work = args.out / f"{condition}-{round_number}"
        shutil.rmtree(work, ignore_errors=True)
        db = work / "recs.db"
        runs["cold"].append(run_batch(db, sample, env, f"{condition} {round_number}: cold"))
        runs["changed"].append(run_batch(db, changed, env, f"{condition} {round_number}: changed data"))
        for warm in range(1, args.warm_runs + 1):
            runs["warm"].append(run_batch(db, changed, env, f"{condition} {round_number}: warm {warm}"))
    return runs


def run_batch(db: Path, data: Path, env: dict, label: str) -> dict:
    seed_models = _seed_models(db)
    command = ["recgen", "run-batch", "--data-dir", str(data), "--db", str(db)]
    seconds, peak_gb, _ = child(command, env)
    stages = stage_seconds(db)
    trained_seed = [m for m in _seed_models(db) if m not in seed_models]
    result = {
        "seconds": seconds,
        "peak_gb": peak_gb,
        "stages": stages,
        "other": seconds - sum(stages.values()),
        "trained": last_run_trained(db),
        "seed_seconds": sum(s for _, s, _ in trained_seed),
        "train_rows_per_s": _training_throughput(db),
    }
    print(
        f"{label}: {seconds:.1f} s, peak {peak_gb:.2f} GB, "
        + ", ".join(f"{stage} {value:.1f}" for stage, value in stages.items())
        + f", other {result['other']:.1f} (load average {load_average()})",
        flush=True,
    )
    return result


def _seed_models(db: Path) -> list[tuple]:
    if not db.is_file():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, train_seconds, epochs_trained FROM models WHERE name = 'seed'").fetchall()


def _training_throughput(db: Path) -> float:
    """Rows x epochs / training seconds of the last default model trained into `db`."""
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT train_rows, epochs_trained, train_seconds FROM models WHERE name != 'seed' ORDER BY id DESC"
        ).fetchone()
    return row[0] * row[1] / row[2] if row else 0.0


# ---------------------------------------------------------------- reporting


def report(results: dict[str, dict[str, list[dict]]]) -> str:
    """Medians per run kind and condition, the busy/quiet ratios, and the targets."""
    quiet = results["quiet"]
    busy = results.get("busy")
    header = "| run | " + " | ".join(STAGES) + " | other | wall | peak RSS | seed baseline |"
    lines = [header, "|---|" + "---:|" * (len(STAGES) + 4)]
    for condition, runs in results.items():
        for kind in KINDS:
            m = _medians(runs[kind])
            cells = [f"{m['stages'][stage]:.1f}" for stage in STAGES]
            cells += [f"{m['other']:.1f}", f"**{m['seconds']:.1f} s**", f"{m['peak_gb']:.2f} GB"]
            cells.append(f"{m['seed_seconds']:.1f} s" if m["seed_seconds"] else "reloaded")
            lines.append(f"| {kind}, {condition} ({len(runs[kind])} runs) | " + " | ".join(cells) + " |")
    lines.append("")
    for kind in KINDS:
        q = _medians(quiet[kind])
        verdict = [
            f"{kind}: {q['seconds']:.1f} s quiet (target {TARGETS[kind]:.0f} s) {_mark(q['seconds'] <= TARGETS[kind])}"
        ]
        if busy:
            ratio = _medians(busy[kind])["seconds"] / q["seconds"]
            verdict.append(f"busy/quiet {ratio:.2f}x (target {BUSY_RATIO}x) {_mark(ratio <= BUSY_RATIO)}")
        lines.append("; ".join(verdict))
    peak = max(r["peak_gb"] for runs in results.values() for kind in KINDS for r in runs[kind])
    lines.append(f"peak RSS {peak:.2f} GB (target {PEAK_GB} GB) {_mark(peak <= PEAK_GB)}")
    throughput = statistics.median(r["train_rows_per_s"] for r in quiet["cold"])
    lines.append(
        f"default model training: {throughput:,.0f} rows/s = {throughput / SEED_DOCUMENTED_ROWS_PER_S:.0f}x the "
        "seed notebook's documented 43 minutes per epoch"
    )
    return "\n".join(lines)


def _medians(runs: list[dict]) -> dict:
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_gb": max(r["peak_gb"] for r in runs),
        "other": statistics.median(r["other"] for r in runs),
        "seed_seconds": statistics.median(r["seed_seconds"] for r in runs),
        "stages": {stage: statistics.median(r["stages"][stage] for r in runs) for stage in STAGES},
    }


def _mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


# ---------------------------------------------------------------- where the time goes


def profile_slowest_stage(quiet: dict[str, list[dict]], sample: Path, out: Path, env: dict) -> None:
    """One more cold run, sampled inside its slowest stage only; its call tree, the slow branches first."""
    cold = _medians(quiet["cold"])["stages"]
    stage = max(cold, key=cold.get)
    work = out / "profile"
    shutil.rmtree(work, ignore_errors=True)
    command = [sys.executable, __file__, "--profile-stage", stage, "--data-dir", str(sample)]
    command += ["--db", str(work / "recs.db")]
    _, _, output = child(command, env)
    print(f"\nwhere the time goes in the slowest stage of a cold run, {stage} ({cold[stage]:.1f} s median):\n")
    print(output[output.index(PROFILE_START) + len(PROFILE_START) :])


PROFILE_START = "--- profile ---\n"


def profiled_run(stage: str, run_batch_args: list[str]) -> None:
    """`recgen run-batch ARGS` in this process, sampled only inside the stage `stage`; prints the call tree."""
    from contextlib import contextmanager

    from pyinstrument import Profiler

    from recgen.cli import cli
    from recgen.store.runs import RunRecord

    plain = RunRecord.stage
    profiler = Profiler(interval=0.01)

    @contextmanager
    def stage_profiled(self, name):
        with plain(self, name):
            if name != stage:
                yield
                return
            profiler.start()
            try:
                yield
            finally:
                profiler.stop()

    RunRecord.stage = stage_profiled
    try:
        cli(["--quiet", "run-batch", *run_batch_args], standalone_mode=False)
    finally:
        print(PROFILE_START + profiler.output_text(unicode=True, show_all=False, time="seconds"), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--profile-stage":
        profiled_run(sys.argv[2], sys.argv[3:])
    else:
        main()
