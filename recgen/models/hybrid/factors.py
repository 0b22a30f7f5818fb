"""Residual factors: a matrix factorisation of what the trained hybrid model leaves unexplained."""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np

from recgen.models.keras_base import tower_outputs

FACTORS_LAYER = "residual_factors"  # "user_residual_factors" and "video_residual_factors"


ROW_SLICE = 262_144  # rows per slice when scoring every training row


@dataclass(frozen=True)
class FactorsReport:
    rank: int
    rmse_before: float  # of the rows' residuals, capped at delta, before and after the factors
    rmse_after: float
    seconds: float


def fit_residual_factors(
    pair_model: keras.Model,
    users: np.ndarray,
    videos: np.ndarray,
    targets: np.ndarray,
    delta: float,
    ridge: float,
    steps: int,
    seed: int,
) -> FactorsReport:
    """Set the towers' residual factors: a matrix factorisation of what the trained model leaves unexplained.

    The towers reach a user x video match through the video's id embedding and a deep tower, and training
    stops (on the validation loss) before much of a purely collaborative taste is learned; the users' and
    videos' residuals (targets minus the model's fit, capped at +-`delta` like the loss) are factorised by
    alternating least squares, `steps` sweeps, each user's and video's `rank` factors a ridge regression
    (penalty `ridge`) on the other side's. Both tables start small and random; users and videos without
    rows keep zeros. Each side's table is appended to its tower's vector, so the dot product adds them."""
    started = time.perf_counter()
    user_table = pair_model.get_layer("user_tower").get_layer(f"user_{FACTORS_LAYER}")
    video_table = pair_model.get_layer("video_tower").get_layer(f"video_{FACTORS_LAYER}")
    rank = user_table.n_features
    for table in (user_table, video_table):
        table.table.assign(np.zeros((table.n_rows, rank), dtype=np.float32))
    user_vec, user_bias = tower_outputs(pair_model.get_layer("user_tower"), user_table.n_rows)
    video_vec, video_bias = tower_outputs(pair_model.get_layer("video_tower"), video_table.n_rows)
    fit = _row_scores(user_vec, video_vec, users, videos) + user_bias[users, 0] + video_bias[videos, 0]
    residual = np.clip(targets - fit, -delta, delta).astype(np.float32)
    rng = np.random.default_rng(seed)
    factors = [rng.normal(0, 0.01, (table.n_rows, rank)).astype(np.float32) for table in (user_table, video_table)]
    # Only users and videos with their own parameters (rows, and an id) get factors.
    owned = [
        pair_model.get_layer(f"{side}_tower").get_layer(f"{side}_known").table.numpy()[:, 0] > 0
        for side in ("user", "video")
    ]
    # Per side: the rows grouped by its ids, each row's other-side id and residual in that order.
    sides = []
    for own_ids, other_ids, n in ((users, videos, user_table.n_rows), (videos, users, video_table.n_rows)):
        order, bounds = grouped(own_ids, n)
        sides.append((bounds, other_ids[order], residual[order]))
    penalty = ridge * np.eye(rank)
    for _ in range(steps):
        for side, (bounds, other_ids, ordered) in enumerate(sides):
            other, own = factors[1 - side], np.zeros_like(factors[side])
            for entity in np.flatnonzero((np.diff(bounds) > 0) & owned[side]):  # each solve vectorised
                rows = slice(bounds[entity], bounds[entity + 1])
                x = other[other_ids[rows]]
                own[entity] = np.linalg.solve((x.T @ x).astype(np.float64) + penalty, x.T @ ordered[rows])
            factors[side] = own
    after = residual - _row_scores(factors[0], factors[1], users, videos)
    user_table.table.assign(factors[0])
    video_table.table.assign(factors[1])
    return FactorsReport(
        rank,
        float(np.sqrt(np.mean(residual**2))),
        float(np.sqrt(np.mean(after**2))),
        time.perf_counter() - started,
    )


def grouped(ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows' order grouped by id (stable), and where each id 0..n-1's rows start and end in it."""
    order = np.argsort(ids, kind="stable")
    return order, np.searchsorted(ids[order], np.arange(n + 1))


def _row_scores(left: np.ndarray, right: np.ndarray, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """<left[user], right[video]> for every row, in slices (never a rows x dim array of the whole log)."""
    out = np.empty(len(users), dtype=np.float32)
    for start in range(0, len(users), ROW_SLICE):
        part = slice(start, start + ROW_SLICE)
        out[part] = np.einsum("ij,ij->i", left[users[part]], right[videos[part]])
    return out
