"""The one interface both engines implement, the model a map's workers score with, and how users are sharded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from recgen.artifacts import ModelFile
from recgen.constants import SCORER_NUMPY, SHARD_USERS

Progress = Callable[[int], None]  # called with the number of items done


class Executor(Protocol):
    """Runs `fn` over items: `fn(*item, *shared)`, or with `model`, `fn(keras_model, *item, *shared)`."""

    name: str
    workers: int  # maps run this many items at a time
    threads: int  # threads an item may use (the local engine's items run one at a time, on every core)

    def share(self, value: Any) -> Any:
        """A handle to `value` for items and `shared` arguments: sent to the workers once, read by all."""

    def map(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple],
        shared: tuple = (),
        model: ModelRef | None = None,
        progress: Progress | None = None,
    ) -> list[Any]:
        """`fn` over every item, results in item order. With `model`, each worker loads it once."""

    def close(self) -> None: ...


@dataclass
class ModelRef:
    """A Keras model for a map: the object itself in this process, its saved file in any other, loaded once
    per worker after its SHA-256 is checked. Sent to a worker, only the file goes."""

    file: ModelFile | None
    loaded: Any = field(default=None, compare=False)

    def get(self) -> Any:
        if self.loaded is None:
            if self.file is None:
                raise ValueError("a model with neither a loaded object nor a saved file")
            self.loaded = self.file.load()
        return self.loaded

    def __getstate__(self) -> dict:
        return {"file": self.file, "loaded": None}


def shard_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """Consecutive index ranges [start, stop) of `size` (the last one shorter) covering 0..n-1.

    Every engine cuts users (and videos) into the same shards: per-shard arithmetic (a batch through a tower,
    a block of scores) then gives the same floats wherever it runs."""
    if size < 1:
        raise ValueError(f"shard size must be at least 1, not {size}")
    return [(start, min(start + size, n)) for start in range(0, n, size)]


@dataclass(frozen=True)
class Placement:
    """Where a run's per-user work runs and what it keeps where: the engine, the users per shard, the scorer,
    and a folder every worker can read (for the model files they load and, with `tables_outside`, the
    per-user tables kept beside the model file instead of inside it)."""

    executor: Executor
    shard_users: int = SHARD_USERS
    scorer: str = SCORER_NUMPY
    artifacts: Path | None = None
    tables_outside: bool = False
