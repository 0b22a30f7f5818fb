"""How long one training step of the default model's towers takes, with this checkout and with another git
revision, side by side. Each round trains a new model for `--steps` batches of the interactions of a recgen
database, once with each version (in turn, each in a process of its own, the other version's `recgen`
package first on PYTHONPATH), and prints the median step time and the validation loss after those steps.
Equal losses say the two versions train the same function; the ratio of the medians is the speed-up.

    python benchmarks/train_steps.py --db /tmp/recgen-bench/quiet-1/recs.db --before HEAD~1 [--rounds 3]

Run by hand; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 5  # the first steps trace the step function and fill the caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="a recgen SQLite database with interactions")
    parser.add_argument("--before", help="the git revision to compare with (omit: this checkout alone)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_steps(args.db, args.steps)))
        return
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"this checkout": ROOT}
        if args.before:
            tree = Path(scratch) / "before"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.before], check=True)
            trees[f"before ({args.before})"] = tree
        try:
            compare(trees, args)
        finally:
            if args.before:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)


def compare(trees: dict[str, Path], args) -> None:
    medians: dict[str, list[float]] = {label: [] for label in trees}
    for round_ in range(1, args.rounds + 1):
        for label, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": str(tree)}
            command = [sys.executable, __file__, "--db", str(args.db), "--steps", str(args.steps), "--child"]
            done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            medians[label].append(result["median_ms"])
            print(
                f"round {round_}, {label}: median step {result['median_ms']:.1f} ms, "
                f"val_loss after {args.steps} steps {result['val_loss']:.6f}",
                flush=True,
            )
    overall = {label: statistics.median(values) for label, values in medians.items()}
    for label, value in overall.items():
        print(f"{label}: median of the rounds' medians {value:.1f} ms")
    if len(overall) == 2:
        now, before = overall.values()
        print(f"this checkout's step takes {now / before:.2f}x the time of the other's")


def time_steps(db: Path, steps: int) -> dict:
    """Train a new default model's towers for `steps` batches; their median wall time and the validation loss."""
    from recgen.runtime import size_thread_pools

    size_thread_pools()
    import keras
    from sqlalchemy import create_engine

    from recgen import features
    from recgen.models.hybrid.family import HybridFamily
    from recgen.models.hybrid.training import list_trainer, make_lists
    from recgen.models.keras_base import epoch_batches

    engine = create_engine(f"sqlite:///{db}")
    inputs = features.load_inputs(engine)
    family = HybridFamily(seed=42)
    settings = family.settings
    trainer = list_trainer(family.build(engine, inputs.catalog, inputs.train), settings)
    lists = make_lists(inputs.train, settings.list_size, settings)
    x = {"user": lists.users, "videos": lists.videos}
    train, valid = epoch_batches(x, lists.targets, settings.batch_lists, settings.validation_share, settings.seed)
    walls: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            walls.append(time.perf_counter() - self.started)

    trainer.fit(train.take(steps), epochs=1, shuffle=False, callbacks=[Timer()], verbose=0)
    val_loss = trainer.evaluate(valid, verbose=0)
    return {"median_ms": 1000 * statistics.median(walls[WARMUP:]), "val_loss": float(val_loss)}


if __name__ == "__main__":
    main()
