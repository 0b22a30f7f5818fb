"""The Ray engine (`--engine ray`, `pip install 'recgen[ray]'`): each map's items run as Ray tasks on a cluster.

- Work that needs no model runs as plain tasks, which never import Keras.
- Work that needs the Keras model runs on actors, one per worker: each loads the saved `.keras` file once,
  after checking its SHA-256, and serves many shards (of this map and of the next ones with the same model,
  until a map without it needs their CPUs).
- Shared tables are put in the object store once; the items of one map are handed out as workers free up,
  `workers` at a time, so a slow shard does not hold back the rest.
- A worker that dies (killed, out of memory, its node lost) is replaced by Ray and its shard run again, up
  to `retries` times (--ray-retries); the map's results are then the same. Past that, the map fails with the cluster's
  error (exit 69), and the run publishes nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from recgen.constants import ENGINE_RAY, RAY_EXTRA, RAY_RETRIES
from recgen.engines.base import ModelRef, Progress
from recgen.errors import ConfigError, RecgenError, UnavailableError, one_line
from recgen.runtime import THREAD_VARIABLES, available_cores

# One CPU per task or actor, so its thread pools get one thread: more would fight over the cores Ray gave
# the other workers.
WORKER_ENV = dict.fromkeys(THREAD_VARIABLES, "1")


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--engine ray needs Ray, which is not installed: pip install '{RAY_EXTRA}'") from exc
    return ray


def _first_sentence(exc: Exception) -> str:
    """What a Ray error says, without the worker's log excerpt and traceback Ray appends."""
    text = one_line(exc)
    return f"{type(exc).__name__}: {text.split('. ')[0].rstrip('.')}"


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class _ModelWorker:
    """An actor holding the model: loaded on its first item, kept for the rest (and again after a restart)."""

    def __init__(self, model: ModelRef):
        self.model = model

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self.model.get(), *args)


class RayExecutor:
    """Maps on a Ray cluster: the one at `address`, or a new one on this machine with its usable cores."""

    name = ENGINE_RAY
    threads = 1  # a worker per CPU already

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        log: Callable[[str], None] | None = None,
        retries: int = RAY_RETRIES,
    ):
        ray = import_ray()
        self.ray = ray
        self._owns_connection = not ray.is_initialized()
        address = address or os.environ.get("RAY_ADDRESS") or None
        options = {"logging_level": logging.WARNING, "log_to_driver": False, "include_dashboard": False}
        if address is None:  # a new cluster on this machine (not one `ray start` left), with the usable cores
            # Ray starts its workers at niceness 15: beside another job they would get a sliver of the cores.
            options.update(address="local", num_cpus=available_cores(), _system_config={"worker_niceness": 0})
        else:
            options.update(address=address)
        try:
            ray.init(runtime_env={"env_vars": WORKER_ENV}, ignore_reinit_error=True, **options)
        except Exception as exc:  # refused, timed out, wrong address: Ray raises several kinds
            where = f"at {address}" if address else "on this machine"
            raise UnavailableError(f"the Ray cluster {where} is unavailable: {one_line(exc)}") from exc
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < 1:
            raise UnavailableError(f"the Ray cluster at {address or 'this machine'} has no CPU to run tasks on")
        self.workers = min(workers or cpus, cpus)
        self.retries = retries
        self._actors: list = []  # the model's actors, kept from one map to the next with the same model
        self._actors_model = None
        if log:
            where = address or "a new local cluster"
            log(f"Ray: {where}, {cpus} CPUs in {len(ray.nodes())} node(s), {self.workers} worker(s)")

    def share(self, value: Any) -> Any:
        return self.ray.put(value)

    def map(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple],
        shared: tuple = (),
        model: ModelRef | None = None,
        progress: Progress | None = None,
    ) -> list[Any]:
        ray = self.ray
        shared = tuple(value if isinstance(value, ray.ObjectRef) else ray.put(value) for value in shared)
        slots = min(self.workers, len(items))
        if model is None:
            self._release()  # the model's actors hold CPUs these tasks need
            task = ray.remote(_call).options(num_cpus=1, max_retries=self.retries)

            def submit(index: int, slot: int):
                return task.remote(fn, *items[index], *shared)
        else:
            actors = self._model_actors(model, slots)

            def submit(index: int, slot: int):
                return actors[slot].run.remote(fn, *items[index], *shared)

        try:
            return self._dispatch(len(items), slots, submit, progress)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, RecgenError):  # an expected failure inside a task keeps its meaning
                raise exc.cause from None
            raise  # a bug: its message holds the worker's traceback
        except ray.exceptions.RayError as exc:  # workers or nodes lost beyond Ray's retries
            raise UnavailableError(f"the Ray cluster could not finish the work: {_first_sentence(exc)}") from exc

    def _model_actors(self, model: ModelRef, n: int) -> list:
        """`n` actors holding `model`: those of the last map with the same model file, and more if needed."""
        if self._actors_model != model.file:
            self._release()
        actor = self.ray.remote(_ModelWorker).options(
            num_cpus=1, max_restarts=self.retries, max_task_retries=self.retries
        )
        while len(self._actors) < n:
            self._actors.append(actor.remote(model))
        self._actors_model = model.file
        return self._actors[:n]

    def _release(self) -> None:
        for handle in self._actors:
            self.ray.kill(handle)
        self._actors, self._actors_model = [], None

    def _dispatch(self, n: int, slots: int, submit, progress: Progress | None) -> list[Any]:
        """Run items 0..n-1, at most `slots` at a time, each slot taking the next item when it frees up."""
        ray = self.ray
        results: list[Any] = [None] * n
        pending = {}
        free = list(range(slots))
        submitted = done = 0
        while done < n:
            while free and submitted < n:
                slot = free.pop()
                pending[submit(submitted, slot)] = (submitted, slot)
                submitted += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index, slot = pending.pop(ref)
                results[index] = ray.get(ref)
                free.append(slot)
                done += 1
                if progress:
                    progress(done)
        return results

    def close(self) -> None:
        if self.ray.is_initialized():
            self._release()
            if self._owns_connection:
                self.ray.shutdown()
