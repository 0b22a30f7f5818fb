"""The default model's closed-form steps after training, one shard of users (or videos) at a time.

Each function takes one shard's training rows (`ShardRows`) and the read-only tables every shard shares, and
returns that shard's part of the result: the engines (recgen.engines) map them over the shards, in this
process or on a cluster. numpy only, so the workers that run them never import Keras. `refit` and
`factors` hold the reasoning; this module holds the arithmetic, one small regression per user or video,
each vectorised over that user's or video's rows.

BLAS runs single-threaded in them: on products this small, more threads only wait for each other (and for
any other job on the machine), and one thread gives the same floats on every engine and machine size. The
ids of a shard are solved by `threads` Python threads instead (numpy releases the GIL in its loops): each
id's regression reads only its own rows, so the floats are the same whatever the count.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

SOLVE_THREADS = {"limits": 1, "user_api": "blas"}
ROW_SLICE = 262_144  # rows per slice when scoring a shard's rows (never a rows x dim array of all of them)
CHUNKS_PER_THREAD = 4  # the ids' rows vary in number: smaller chunks keep the threads equally busy


@dataclass(frozen=True)
class ShardRows:
    """One shard's training rows grouped by its own ids: the rows of its j-th id (`first` + j) are
    `bounds[j]:bounds[j + 1]`, each with the other side's index and a value (a target, or a residual)."""

    first: int
    bounds: np.ndarray
    other: np.ndarray
    values: np.ndarray

    @property
    def n_ids(self) -> int:
        return len(self.bounds) - 1


def shard_rows(ids: np.ndarray, other: np.ndarray, values: np.ndarray, n: int, shards: list[tuple[int, int]]):
    """The rows grouped by `ids` (0..n-1, stable: each id's rows keep their order), cut into `shards`; and the
    grouping order, to put per-row results back in row order."""
    order = np.argsort(ids, kind="stable")
    bounds = np.searchsorted(ids[order], np.arange(n + 1))
    other, values = other[order], values[order]
    parts = [
        ShardRows(start, bounds[start : stop + 1] - bounds[start], other[rows], values[rows])
        for start, stop in shards
        for rows in [slice(bounds[start], bounds[stop])]
    ]
    return parts, order


def refit_shard(
    rows: ShardRows,
    trained: np.ndarray,
    prior: np.ndarray,
    fitted: np.ndarray,
    design: np.ndarray,
    video_bias: np.ndarray,
    penalty: np.ndarray,
    delta: float,
    expectile: float,
    steps: int,
    threads: int = 1,
) -> np.ndarray:
    """The refit's correction for the shard's users: for each `fitted` user, the deviation from `prior` (what
    their features predict, [vector, bias]) that a ridge regression of their rows' targets on the video
    `design` gives, by `steps` reweighted least-squares passes weighing rows as the Huber and expectile
    loss does; minus what training gave them (`trained`). Zeros for the others."""
    prior = prior.astype(np.float64)
    deviation = trained.astype(np.float64) - prior
    left = rows.values - video_bias[rows.other]  # what the feature path leaves for the user to explain
    with threadpool_limits(**SOLVE_THREADS):
        _each_id(
            np.flatnonzero(fitted),
            lambda users: _refit(rows, left, prior, deviation, users, design, penalty, delta, expectile, steps),
            threads,
        )
    return np.where(fitted[:, None], prior + deviation - trained, 0.0).astype(np.float32)


def _each_id(ids: np.ndarray, solve: Callable[[np.ndarray], None], threads: int) -> None:
    """`solve(chunk)` over `ids` cut into chunks, on `threads` threads (one: in this thread, in one call)."""
    if threads <= 1 or len(ids) < 2:
        solve(ids)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="recgen-solve") as pool:
        # Each chunk writes its own rows of the result; list() waits for all and raises a chunk's error.
        list(pool.map(solve, np.array_split(ids, threads * CHUNKS_PER_THREAD)))


def _refit(rows, left, prior, deviation, users, design, penalty, delta, expectile, steps) -> None:
    """Each of `users`' deviation, solved in place."""
    for user in users:
        span = slice(rows.bounds[user], rows.bounds[user + 1])
        x = design[rows.other[span]]
        y = left[span] - x @ prior[user].astype(np.float32)
        for _ in range(steps):
            error = y - x @ deviation[user].astype(np.float32)
            weight = np.minimum(1.0, delta / np.maximum(np.abs(error), 1e-12))
            weight *= np.where(error > 0, 2 * expectile, 2 * (1 - expectile))
            xw = x * weight[:, None]
            gram = (xw.T @ x).astype(np.float64)  # float32 products, solved in float64
            deviation[user] = np.linalg.solve(gram + penalty, (xw.T @ y).astype(np.float64))


def residual_shard(
    rows: ShardRows,
    vectors: np.ndarray,
    bias: np.ndarray,
    video_vectors: np.ndarray,
    video_bias: np.ndarray,
    delta: float,
) -> np.ndarray:
    """What the model leaves unexplained of each of the shard's rows: its target minus the score of the
    user's `vectors`/`bias` against the video's, capped at +-delta like the loss."""
    owner = np.repeat(np.arange(rows.n_ids), np.diff(rows.bounds))
    fit = np.empty(len(owner), dtype=np.float32)
    for start in range(0, len(owner), ROW_SLICE):
        part = slice(start, start + ROW_SLICE)
        fit[part] = np.einsum("ij,ij->i", vectors[owner[part]], video_vectors[rows.other[part]])
    fit = fit + bias[owner] + video_bias[rows.other]
    return np.clip(rows.values - fit, -delta, delta).astype(np.float32)


def factors_shard(
    rows: ShardRows, owned: np.ndarray, other_factors: np.ndarray, ridge: float, threads: int = 1
) -> np.ndarray:
    """One alternating-least-squares step for the shard's ids: each `owned` id with rows gets the ridge
    regression (penalty `ridge`) of its rows' residuals on the other side's factors; the others zeros."""
    rank = other_factors.shape[1]
    solved = np.flatnonzero((np.diff(rows.bounds) > 0) & owned)
    gram = np.empty((len(solved), rank, rank))
    rhs = np.empty((len(solved), rank, 1))

    def products(chunk: np.ndarray) -> None:
        for slot in chunk:
            span = slice(rows.bounds[solved[slot]], rows.bounds[solved[slot] + 1])
            x = other_factors[rows.other[span]]
            gram[slot] = x.T @ x
            rhs[slot, :, 0] = x.T @ rows.values[span]

    own = np.zeros((rows.n_ids, rank), dtype=np.float32)
    with threadpool_limits(**SOLVE_THREADS):
        _each_id(np.arange(len(solved)), products, threads)
        gram += ridge * np.eye(rank)
        if len(solved):  # one stacked solve: LAPACK's, matrix by matrix, without a Python call per id
            own[solved] = np.linalg.solve(gram, rhs)[:, :, 0]
    return own
