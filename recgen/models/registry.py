"""Model families (`--model`): how each is built from the database, trained, and turned into a scorer.

- `hybrid` (the default): recgen's two-tower model over ids, content, user features and personal taste
  (recgen.hybrid); it scores users and videos without training rows from their features.
- `seed`: the seed notebook's network, kept as a reference and evaluated as a baseline (recgen.model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace

from sqlalchemy import Engine

from recgen.constants import MODEL_HYBRID, MODEL_SEED
from recgen.errors import ConfigError
from recgen.features import Catalog, Interactions, seed_video_features
from recgen.models import keras_base as model
from recgen.models.hybrid import network as hybrid
from recgen.progress import Reporter

Progress = Reporter | Callable[[str], None]  # a Reporter also draws bars over each epoch's batches


class SeedFamily:
    name = MODEL_SEED
    content_path = False  # its user embedding is all it knows of a user: cold users get popularity

    def __init__(self, seed: int):
        self.settings = model.SeedSettings(seed=seed)

    def key(self) -> str:
        return self.settings.key()

    def params(self) -> dict:
        return asdict(self.settings)

    def build(self, engine: Engine, catalog: Catalog, train: Interactions) -> model.keras.Model:
        video_features, _ = seed_video_features(engine, catalog)
        return model.build_seed_model(len(catalog.user_ids), video_features, self.settings)

    def train(self, keras_model, train: Interactions, progress: Progress) -> model.TrainReport:
        return model.train(keras_model, train, self.settings, progress=progress)

    def scorer(self, keras_model, catalog: Catalog, name: str = "model"):
        return model.KerasScorer(keras_model, len(catalog.video_ids), name=name)


class HybridFamily:
    name = MODEL_HYBRID
    content_path = True

    def __init__(self, seed: int, **overrides):
        self.settings = replace(hybrid.HybridSettings(seed=seed), **overrides)

    def key(self) -> str:
        return self.settings.key()

    def params(self) -> dict:
        return asdict(self.settings)

    def build(self, engine: Engine, catalog: Catalog, train: Interactions) -> model.keras.Model:
        users, videos = hybrid.side_tables(engine, catalog, train, self.settings)
        return hybrid.build_hybrid_model(users, videos, self.settings)

    def train(self, keras_model, train: Interactions, progress: Progress) -> model.TrainReport:
        return hybrid.train(keras_model, train, self.settings, progress=progress)

    def scorer(self, keras_model, catalog: Catalog, name: str = "model"):
        return hybrid.TowerScorer(keras_model, len(catalog.user_ids), len(catalog.video_ids), self.settings, name)


FAMILIES = {MODEL_HYBRID: HybridFamily, MODEL_SEED: SeedFamily}


def family(name: str, seed: int):
    """The family called `name`, with its default settings and this seed."""
    if name not in FAMILIES:
        raise ConfigError(f"--model must be one of {', '.join(FAMILIES)}, not {name!r}")
    return FAMILIES[name](seed)
