"""The hybrid model's settings, the feature groups an ablation can leave out, and its training target."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recgen.constants import SEED
from recgen.models.keras_base import settings_key


@dataclass(frozen=True)
class HybridSettings:
    """The default model's settings; each was chosen on the tuning seeds of benchmarks/quality.py, and its
    alternatives' results are in docs/benchmarks.md (Quality, ablations)."""

    dim: int = 16  # latent id factors: most evaluated users are light, so few parameters per user
    hidden: int = 128
    category_dim: int = 8
    id_dropout: float = 0.1
    dropout: float = 0.1
    l2: float = 1e-6
    taste_l2: float = 1e-5  # shrinks each user's own taste towards what their features predict
    learning_rate: float = 2e-3
    epochs: int = 12
    list_size: int = 32  # training rows per list (one user each)
    batch_lists: int = 1024  # lists per batch: 32,768 rows
    user_id_scale: float = 4.0  # per-user parameters move this much faster (see network._tower)
    ranking_weight: float = 0.0  # weight of a within-list ListNet loss next to the pointwise Huber loss
    temperature: float = 0.25  # of the target distribution softmax(target / temperature)
    validation_share: float = 0.02  # small: every held-out row is one the towers do not learn from
    patience: int = 2
    min_improvement: float = 0.001  # relative: a smaller fall of the validation loss counts as none
    ratio_cap: float = 50.0  # targets are transform(min(watch_ratio, cap)); the Huber loss bounds the rest
    transform: str = "log"  # log(ratio + log_offset); or "log1p", or "identity" (the raw ratio)
    log_offset: float = 0.05  # keeps zero plays finite: log(0.05) = -3
    huber_delta: float = 0.5  # errors beyond this (in target units) count linearly
    expectile: float = 0.7  # weight of under-predicted rows (1 - it: over-predicted); 0.5 is symmetric
    taste_bumps: bool = False  # personal weights over the duration bumps too, not only the slope
    history: bool = False  # the user's history features (see tables.user_tables for why they are off)
    row_weighted: bool = True  # a list's loss is its rows' sum / list_size: each row counts the same (see ListLoss)
    refit: bool = True  # after fit, each user's own parameters estimated again by empirical Bayes (refit.py)
    residual_rank: int = 16  # then factors of what is left unexplained (factors.py); 0: none
    residual_ridge: float = 5.0  # their ridge penalty: lower overfits light users, higher misses latent tastes
    residual_steps: int = 8  # alternating least-squares sweeps
    without: tuple[str, ...] = ()  # feature groups left out, for ablations (see ABLATION_GROUPS)
    seed: int = SEED

    def key(self) -> str:
        return settings_key("hybrid", self)


ABLATION_GROUPS = {
    "ids": "user and video id embeddings (and each user's own taste deviation)",
    "taste": "personal weights over duration, tags and categories",
    "user_profile": "the user_features.csv profile",
    "duration": "video duration (log and RBF bumps) in the tower and the taste",
    "tags": "feature tags in the tower and the taste",
    "categories": "caption categories (three levels) in the tower and the taste",
    "author": "the author id",
    "daily": "the seed's 15 daily statistics and the exposure count",
}


TRANSFORMS = ("log", "log1p", "identity")


def target(watch_ratio: np.ndarray, settings: HybridSettings) -> np.ndarray:
    capped = np.minimum(watch_ratio, settings.ratio_cap)
    if settings.transform == "log":
        return np.log(capped + settings.log_offset).astype(np.float32)
    if settings.transform == "log1p":
        return np.log1p(capped).astype(np.float32)
    if settings.transform == "identity":
        return capped.astype(np.float32)
    raise ValueError(f"transform must be one of {TRANSFORMS}, not {settings.transform!r}")


def inverse_target(values: np.ndarray, settings: HybridSettings) -> np.ndarray:
    """The watch ratio a model output stands for (the inverse of `target` below the cap)."""
    if settings.transform == "log":
        return np.exp(values) - settings.log_offset
    return np.expm1(values) if settings.transform == "log1p" else values
