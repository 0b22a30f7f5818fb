"""The `hybrid` family (recgen.models.registry.Family): recgen's default model."""

from __future__ import annotations

from dataclasses import asdict, replace

import keras
from sqlalchemy import Engine

from recgen.artifacts import ModelFile
from recgen.constants import MODEL_HYBRID, RUN_MODEL
from recgen.engines import ModelRef, Placement, local_placement
from recgen.features import Catalog, Interactions
from recgen.models.hybrid.network import build_hybrid_model
from recgen.models.hybrid.scorer import Scoring, TowerScorer
from recgen.models.hybrid.settings import HybridSettings
from recgen.models.hybrid.tables import side_tables
from recgen.models.hybrid.training import train_hybrid
from recgen.models.hybrid.user_tables import UserTables
from recgen.models.keras_base import TrainReport


class HybridFamily:
    """Two towers over ids, content and user features; see recgen.models.hybrid."""

    name = MODEL_HYBRID
    content_path = True

    def __init__(self, seed: int, **overrides):
        self.settings = replace(HybridSettings(seed=seed), **overrides)

    def key(self) -> str:
        return self.settings.key()

    def params(self) -> dict:
        return asdict(self.settings)

    def build(
        self, engine: Engine, catalog: Catalog, train: Interactions, placement: Placement | None = None
    ) -> keras.Model:
        users, videos = side_tables(engine, catalog, train, self.settings)
        outside = placement is not None and placement.tables_outside
        return build_hybrid_model(users, videos, self.settings, user_tables_outside=outside)

    def train(
        self, keras_model: keras.Model, train: Interactions, progress, placement: Placement | None = None
    ) -> TrainReport:
        return train_hybrid(keras_model, train, self.settings, progress=progress, placement=placement)

    def scorer(
        self,
        keras_model: keras.Model,
        catalog: Catalog,
        name: str = RUN_MODEL,
        placement: Placement | None = None,
        model_file: ModelFile | None = None,
        user_tables: UserTables | None = None,
    ) -> TowerScorer:
        placement = placement or local_placement()
        scoring = Scoring(
            placement.executor, ModelRef(model_file, keras_model), placement.shard_users, placement.scorer
        )
        return TowerScorer(
            keras_model, len(catalog.user_ids), len(catalog.video_ids), self.settings, name, user_tables, scoring
        )
