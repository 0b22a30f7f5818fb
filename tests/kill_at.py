"""Run the real `recgen` CLI in this process and SIGKILL it at one point of a run-batch (crash tests).

    python tests/kill_at.py POINT recgen-arguments...

The process kills itself with SIGKILL, as the kernel's OOM killer or `kill -9` would: no Python cleanup, no
rollback, no `finally`, open transactions and files left as they are. Each point sits inside a stage, where
the most is half-done. The WORKER_POINTS kill an engine's worker process instead, inside a task (the patched
function travels to the workers by value, with this script): once (the first task to create the file
$KILL_AT_MARKER dies), or every time.
"""

import os
import signal
import sys

from recgen import features, recommend
from recgen.cli import cli
from recgen.evaluation import evaluator
from recgen.ingest import load
from recgen.models import keras_base
from recgen.models.hybrid import scorer as hybrid_scorer
from recgen.store.runs import RunRecord


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_after(module, name, when=lambda *args, **kwargs: True):
    """Let `module.name` run, then die (if `when` holds for its arguments)."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            die()
        return result

    setattr(module, name, wrapper)


def kill_before(module, name, when=lambda *args, **kwargs: True):
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        if when(*args, **kwargs):
            die()
        return original(*args, **kwargs)

    setattr(module, name, wrapper)


POINTS = {
    # the training log inserted inside the ingest transaction, not committed
    "ingest": lambda: kill_after(load, "replace_rows", lambda conn, table, frame: table.name == "train_interactions"),
    # the catalogue read, the interactions not yet
    "features": lambda: kill_before(features, "load_interactions"),
    # the trained model fully written under its temporary name, not yet renamed or recorded
    "train": lambda: kill_before(keras_base, "file_sha256", lambda path: path.name.startswith(".tmp-")),
    # every recommendation row inserted, the transaction not committed
    "recommend": lambda: kill_after(recommend, "insert_frame"),
    # per-user metrics inserted, run metrics not, nothing committed
    "evaluate": lambda: kill_after(evaluator, "insert_frame", lambda conn, table, frame: table.name == "user_metrics"),
    # every output committed, the run not yet marked published
    "publish": lambda: kill_before(RunRecord, "publish"),
}


def kill_in_a_worker(module, name, marker: str | None):
    """Let `module.name` run in this process; in any other (a worker), die first: once if `marker` is a file
    path (the call that creates it dies), else every time."""
    original = getattr(module, name)
    driver = os.getpid()

    def wrapper(*args, **kwargs):
        if os.getpid() != driver:
            if marker is None:
                die()
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                die()
            except FileExistsError:
                pass
        return original(*args, **kwargs)

    setattr(module, name, wrapper)


WORKER_POINTS = {
    # a worker scoring a shard of users dies in the middle of it
    "scoring-worker-once": lambda: kill_in_a_worker(hybrid_scorer, "score_shard", os.environ["KILL_AT_MARKER"]),
    "scoring-worker-always": lambda: kill_in_a_worker(hybrid_scorer, "score_shard", None),
}

if __name__ == "__main__":
    {**POINTS, **WORKER_POINTS}[sys.argv[1]]()
    cli(sys.argv[2:])
