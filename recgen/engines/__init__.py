"""Where the per-user stages run: maps over shards of users (or videos) with read-only tables shared by all.

After the towers are trained on one node, the expensive work is a map over users with the video table
shared: tower inference, the refit's and the residual factors' small solves, and scoring. An `Executor`
runs such a map:

- `local` (the default, `LocalExecutor`): in this process, one shard after another;
- `ray` (`RayExecutor`, `pip install 'recgen[ray]'`): Ray tasks on a cluster, and for the work that needs
  the Keras model, Ray actors that load the saved `.keras` file once each, after checking its SHA-256.

Both run the same functions on the same shards, so they give the same results. Ray is imported only when
asked for. Importing this package loads neither Ray nor TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable

from recgen.artifacts import ModelFile
from recgen.constants import ENGINE_CHOICES, ENGINE_LOCAL, ENGINE_RAY, RAY_RETRIES
from recgen.engines.base import Executor, ModelRef, Placement, shard_bounds
from recgen.engines.local import LocalExecutor
from recgen.errors import ConfigError

__all__ = [
    "Executor",
    "LocalExecutor",
    "ModelFile",
    "ModelRef",
    "Placement",
    "local_placement",
    "open_executor",
    "shard_bounds",
]


def open_executor(
    name: str = ENGINE_LOCAL,
    address: str | None = None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
    retries: int = RAY_RETRIES,
) -> Executor:
    """The executor called `name`; for Ray, connected to the cluster at `address` (a new local one if None,
    unless RAY_ADDRESS says where), with `workers` tasks at a time (default: the cluster's CPUs), a dead
    worker's shard run again up to `retries` times."""
    if name == ENGINE_LOCAL:
        return LocalExecutor()
    if name == ENGINE_RAY:
        from recgen.engines.ray import RayExecutor

        return RayExecutor(address=address, workers=workers, log=log, retries=retries)
    raise ConfigError(f"--engine must be one of {', '.join(ENGINE_CHOICES)}, not {name!r}")


def local_placement() -> Placement:
    """Everything in this process, the per-user tables inside the model: the default."""
    return Placement(LocalExecutor())
