"""Model families (`--model`): the one interface every family implements, and the registry of them.

- `hybrid` (the default): recgen's two-tower model over ids, content, user features and personal taste
  (recgen.models.hybrid); it scores users and videos without training rows from their features.
- `seed`: the seed notebook's network, kept as the reference and evaluated as a baseline every run
  (recgen.models.seed).

The registry knows the families; the families never import it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import keras
from sqlalchemy import Engine

from recgen.artifacts import ModelFile
from recgen.constants import MODEL_HYBRID, MODEL_SEED, RUN_MODEL
from recgen.engines import Placement
from recgen.errors import ConfigError
from recgen.features import Catalog, Interactions
from recgen.models.hybrid.family import HybridFamily
from recgen.models.keras_base import TrainReport
from recgen.models.scorer import Scorer
from recgen.models.seed import SeedFamily
from recgen.progress import Reporter

Progress = Reporter | Callable[[str], None]  # a Reporter also draws bars over each epoch's batches


class Family(Protocol):
    """How a model family is built from the database, trained, keyed for reuse, and scored with."""

    name: str
    content_path: bool  # True if it scores users and videos without training rows from their features

    def key(self) -> str:
        """A hash of the family and every setting: a saved model is reused only under the same key."""

    def params(self) -> dict:
        """The settings, as recorded in `models.params`."""

    def build(
        self, engine: Engine, catalog: Catalog, train: Interactions, placement: Placement | None = None
    ) -> keras.Model: ...

    def train(
        self, keras_model: keras.Model, train: Interactions, progress: Progress, placement: Placement | None = None
    ) -> TrainReport:
        """Fit the model; per-user work after training runs on `placement`'s engine (families that have any)."""

    def scorer(
        self,
        keras_model: keras.Model,
        catalog: Catalog,
        name: str = RUN_MODEL,
        placement: Placement | None = None,
        model_file: ModelFile | None = None,
        user_tables: Any = None,
    ) -> Scorer:
        """What ranks with the model; with `placement`, scoring every user runs on its engine (families
        whose scores are tower products), its workers loading `model_file`."""


FAMILIES: dict[str, type[Family]] = {MODEL_HYBRID: HybridFamily, MODEL_SEED: SeedFamily}


def family(name: str, seed: int) -> Family:
    """The family called `name`, with its default settings and this seed."""
    if name not in FAMILIES:
        raise ConfigError(f"--model must be one of {', '.join(FAMILIES)}, not {name!r}")
    return FAMILIES[name](seed)


def load_model(path: Path) -> keras.Model:
    """A saved model of any family (their custom layers are registered when their modules are imported)."""
    return keras.saving.load_model(path, compile=False)
