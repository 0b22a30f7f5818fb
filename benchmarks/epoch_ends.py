"""How long each epoch's start holds training up. The towers of the default model train for a few epochs on
the interactions of a recgen database, fed once by Keras' own pipeline over arrays (`fit(x, y,
validation_split=...)`) and once by `keras_base.epoch_batches`. For every epoch it prints how long the first
batch took, in wall and in CPU seconds.

    python benchmarks/epoch_ends.py --db /tmp/recgen-bench/quiet-1/recs.db [--epochs 8]

A first batch whose wall time has almost no CPU time behind it is waiting for the previous epoch's iterator
to end, which it does only after tf.data's tuning thread next wakes up. Run by hand; not part of the test
suite.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="a recgen SQLite database with interactions")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    print(machine(), flush=True)

    from recgen.runtime import size_thread_pools

    size_thread_pools()
    from sqlalchemy import create_engine

    from recgen import features

    engine = create_engine(f"sqlite:///{args.db}")
    inputs = features.load_inputs(engine)
    print(f"{len(inputs.train):,} training rows", flush=True)
    for feed in ("keras", "epoch_batches"):
        waits = first_batches(engine, inputs, feed, args.epochs)
        later = waits[1:]  # the first epoch's first batch also traces the step
        walls, cpus = [f"{w:.2f}" for w, _ in later], [f"{c:.2f}" for _, c in later]
        median, total = statistics.median(w for w, _ in later), sum(w for w, _ in later)
        print(
            f"{feed}: first batch of epochs 2-{args.epochs}, wall s: {' '.join(walls)}; cpu s: {' '.join(cpus)}; "
            f"median wall {median:.2f} s, total {total:.1f} s",
            flush=True,
        )


def first_batches(engine, inputs, feed: str, epochs: int) -> list[tuple[float, float]]:
    """Train a new model's towers for `epochs` epochs fed by `feed`; each epoch's first batch (wall s, CPU s)."""
    import keras

    from recgen.models.hybrid.family import HybridFamily
    from recgen.models.hybrid.training import list_trainer, make_lists
    from recgen.models.keras_base import epoch_batches

    family = HybridFamily(seed=42)
    settings = family.settings
    trainer = list_trainer(family.build(engine, inputs.catalog, inputs.train), settings)
    lists = make_lists(inputs.train, settings.list_size, settings)

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.first: list[tuple[float, float]] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.waiting = (time.perf_counter(), _cpu_seconds()), True

        def on_train_batch_end(self, batch, logs=None):
            if self.waiting:
                self.waiting = False
                self.first.append((time.perf_counter() - self.started[0], _cpu_seconds() - self.started[1]))

    timer = Timer()
    x = {"user": lists.users, "videos": lists.videos}
    if feed == "keras":
        trainer.fit(
            x,
            lists.targets,
            batch_size=settings.batch_lists,
            epochs=epochs,
            validation_split=settings.validation_share,
            callbacks=[timer],
            verbose=0,
        )
    else:
        train, valid = epoch_batches(x, lists.targets, settings.batch_lists, settings.validation_share, settings.seed)
        trainer.fit(train, validation_data=valid, shuffle=False, epochs=epochs, callbacks=[timer], verbose=0)
    return timer.first


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
