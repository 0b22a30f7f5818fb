"""The default engine: every map in this process, one item after another, the model used as it is in memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from recgen.constants import ENGINE_LOCAL
from recgen.engines.base import ModelRef, Progress
from recgen.runtime import available_cores


class LocalExecutor:
    """Runs maps in this process (numpy and TensorFlow use its cores through their own thread pools)."""

    name = ENGINE_LOCAL
    workers = 1

    def __init__(self):
        self.threads = available_cores()

    def share(self, value: Any) -> Any:
        return value

    def map(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple],
        shared: tuple = (),
        model: ModelRef | None = None,
        progress: Progress | None = None,
    ) -> list[Any]:
        first = () if model is None else (model.get(),)
        results = []
        for done, item in enumerate(items, start=1):
            results.append(fn(*first, *item, *shared))
            if progress:
                progress(done)
        return results

    def close(self) -> None:
        pass
