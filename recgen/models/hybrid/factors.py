"""The default model's last training step, part two: residual factors, a matrix factorisation of what the
trained model still leaves unexplained.

The towers reach a user x video match through the video's id embedding and a deep tower, and training stops
(on the validation loss) before much of a purely collaborative taste is learned. The rows' residuals
(targets minus the refitted model's fit, capped at +-delta like the loss) are factorised by alternating least
squares: each sweep solves every user's `rank` factors as a ridge regression on the videos' (a map over user
shards on the engine, `solves.factors_shard`), then every video's on the users' (a map over video shards).
Both tables start small and random; users and videos without rows, or without an id of their own, keep
zeros. Each side's table is appended to its tower's vector, so the dot product adds them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from recgen.engines import Executor
from recgen.models.hybrid.solves import ROW_SLICE, ShardRows, factors_shard, residual_shard, shard_rows

FACTORS_LAYER = "residual_factors"  # "user_residual_factors" and "video_residual_factors"


@dataclass(frozen=True)
class FactorsReport:
    rank: int
    rmse_before: float  # of the rows' residuals, capped at delta, before and after the factors
    rmse_after: float
    seconds: float


def fit_residual_factors(
    executor: Executor,
    user_rows: list[ShardRows],
    user_order: np.ndarray,
    user_vectors: np.ndarray,
    user_bias: np.ndarray,
    video_vectors: np.ndarray,
    video_bias: np.ndarray,
    row_users: np.ndarray,
    row_videos: np.ndarray,
    owned: tuple[np.ndarray, np.ndarray],
    video_shards: list[tuple[int, int]],
    rank: int,
    delta: float,
    ridge: float,
    steps: int,
    seed: int,
    progress=None,
) -> tuple[np.ndarray, np.ndarray, FactorsReport]:
    """(user factors, video factors, report) of the residuals of the model whose towers give `user_vectors`,
    `user_bias`, `video_vectors`, `video_bias` (the refit included, factor columns zero).

    `user_rows` are the training rows by user shard (targets as values) and `user_order` the grouping order
    (`solves.shard_rows`); `row_users`, `row_videos` the rows in log order; `owned` the (user, video) ids with
    parameters of their own."""
    started = time.perf_counter()
    n_users, n_videos = len(user_bias), len(video_bias)
    tables = (executor.share(video_vectors), executor.share(video_bias))
    items = [(part, user_vectors[_span(part)], user_bias[_span(part)]) for part in user_rows]
    residual = np.empty(len(row_users), dtype=np.float32)
    residual[user_order] = np.concatenate(executor.map(residual_shard, items, shared=(*tables, delta)))
    rng = np.random.default_rng(seed)
    factors = [rng.normal(0, 0.01, (n, rank)).astype(np.float32) for n in (n_users, n_videos)]
    # Per side: its shards' rows (the other side's ids, the residuals), sent to the workers once for all sweeps.
    user_shards = [(part.first, part.first + part.n_ids) for part in user_rows]
    sides = []
    for own_ids, other_ids, n, shards in (
        (row_users, row_videos, n_users, user_shards),
        (row_videos, row_users, n_videos, video_shards),
    ):
        parts, _ = shard_rows(own_ids, other_ids, residual, n, shards)
        sides.append([(executor.share(part), owned[len(sides)][_span(part)]) for part in parts])
    for sweep in range(steps):
        for side, side_items in enumerate(sides):
            other = executor.share(factors[1 - side])
            shared = (other, ridge, executor.threads)
            factors[side] = np.concatenate(executor.map(factors_shard, side_items, shared=shared))
        if progress:
            progress(sweep + 1)
    fitted = _row_products(factors[0], factors[1], row_users, row_videos)
    return (
        factors[0],
        factors[1],
        FactorsReport(
            rank,
            float(np.sqrt(np.mean(residual**2))),
            float(np.sqrt(np.mean((residual - fitted) ** 2))),
            time.perf_counter() - started,
        ),
    )


def _span(part: ShardRows) -> slice:
    return slice(part.first, part.first + part.n_ids)


def _row_products(left: np.ndarray, right: np.ndarray, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """<left[user], right[video]> for every row, in slices (never a rows x dim array of the whole log)."""
    out = np.empty(len(users), dtype=np.float32)
    for start in range(0, len(users), ROW_SLICE):
        part = slice(start, start + ROW_SLICE)
        out[part] = np.einsum("ij,ij->i", left[users[part]], right[videos[part]])
    return out
