"""recgen's default model: a hybrid two-tower network over ids, content and user features.

    score(u, v) = <user_tower(u), video_tower(v)> + video_bias(v) + user_bias(u)

Each tower concatenates an id embedding with embeddings of the categorical features and the numeric
features of its side, then a dense layer (`network`, over the feature tables of `tables`). The video's
vector ends with fixed content descriptors (duration, tags, top-level category) and the user's with their
personal weights over them, so the dot product holds both the latent match and each user's own duration
sensitivity and taste; scoring all users x all videos is one matrix product (`scorer`).

The target is log(watch ratio + 0.05) (ratio capped at 50) under an asymmetric Huber loss (`settings`,
`network.ListLoss`): on the log scale a user's level, duration sensitivity and tastes add up (they multiply
the ratio), and the robust loss keeps skips, zero plays and loops from pulling the estimate. The score is
exp(prediction) - 0.05.

After `model.fit` (`training`), each user's own parameters (their vector and bias beyond what their features
predict) are estimated again in closed form by empirical Bayes, with the videos' outputs fixed (`refit`): a
user with few rows stays near what their features predict, one with many follows their rows. Then what the
model still leaves unexplained is factorised (`factors`: alternating least squares, `residual_rank` factors
a side), and the factors are appended to both towers' vectors: a taste no feature carries. Both fit on every
training row, the rows of the lists that validated `model.fit` included.

Cold start: id embeddings are dropped for a share of the training lists (`id_dropout`), so the towers also
learn to score from features alone; users and videos without training rows get no id embedding at all.
"""

from __future__ import annotations

from dataclasses import asdict, replace

import keras
from sqlalchemy import Engine

from recgen.constants import MODEL_HYBRID, RUN_MODEL
from recgen.features import Catalog, Interactions
from recgen.models.hybrid.network import build_hybrid_model
from recgen.models.hybrid.scorer import TowerScorer
from recgen.models.hybrid.settings import ABLATION_GROUPS, HybridSettings
from recgen.models.hybrid.tables import side_tables
from recgen.models.hybrid.training import train_hybrid
from recgen.models.keras_base import TrainReport

__all__ = ["ABLATION_GROUPS", "HybridFamily", "HybridSettings", "TowerScorer", "build_hybrid_model", "side_tables"]


class HybridFamily:
    """The `hybrid` family (recgen.models.registry.Family)."""

    name = MODEL_HYBRID
    content_path = True

    def __init__(self, seed: int, **overrides):
        self.settings = replace(HybridSettings(seed=seed), **overrides)

    def key(self) -> str:
        return self.settings.key()

    def params(self) -> dict:
        return asdict(self.settings)

    def build(self, engine: Engine, catalog: Catalog, train: Interactions) -> keras.Model:
        users, videos = side_tables(engine, catalog, train, self.settings)
        return build_hybrid_model(users, videos, self.settings)

    def train(self, keras_model: keras.Model, train: Interactions, progress) -> TrainReport:
        return train_hybrid(keras_model, train, self.settings, progress=progress)

    def scorer(self, keras_model: keras.Model, catalog: Catalog, name: str = RUN_MODEL) -> TowerScorer:
        return TowerScorer(keras_model, len(catalog.user_ids), len(catalog.video_ids), self.settings, name)
