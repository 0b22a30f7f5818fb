"""The default model's last training step, part one: each user's own parameters re-estimated by empirical Bayes.

After `model.fit`, the user tower gives a user a vector and a bias: what their features predict (the
feature path, all a user without training rows gets) plus their own deviation, learned by gradient steps
under one fixed L2 penalty, which shrinks a user with 40 rows and one with 4,000 alike. Here each known
user's deviation is estimated again in closed form, with the video tower's outputs fixed: a ridge regression
of the user's training targets on the video vectors (and a constant, for the bias), whose prior is fitted to
the users themselves: centred on the feature path, with one variance per dimension, the spread of the
trained deviations of the users with the most rows. Its weight against the rows is the rows' noise over that
variance, so a user with few rows stays near what their features predict and one with many follows their
rows. Rows weigh as under the training loss (Huber: 1 within `delta` of the fit, delta / |error| beyond;
asymmetric: 2 x expectile when under-predicted, 2 x (1 - expectile) over), by reweighted least squares.

The per-user regressions run on the engine, a shard of users at a time (`solves.refit_shard`); the prior and
the noise, which every user shares, are measured here first. The result is a fixed per-user correction added
to the user tower's output (`REFIT_LAYER`; zeros while training and for users without rows), stored in the
model or, on a cluster, beside it (`user_tables`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np

from recgen.engines import Executor, ModelRef
from recgen.models.hybrid.solves import ShardRows, refit_shard
from recgen.models.keras_base import PREDICT_BATCH

REFIT_LAYER = "user_refit"
PRIOR_USERS = 0.4  # the share of known users, those with the most rows, whose deviations set the prior
STEPS = 2  # reweighted least-squares passes; the first weighs the rows by their error under the trained model
NOISE_ROWS = 200_000  # the rows' noise is measured on an even sample of about this many (bounded memory)


@dataclass(frozen=True)
class RefitReport:
    users: int  # users refitted (those with training rows)
    noise: float  # the rows' variance around the trained fit, errors capped at delta
    seconds: float


@dataclass(frozen=True)
class TowerOutputs:
    """Each id's tower output in inference mode: the vector, the bias; for users also through the feature path
    alone (`prior_*`: as if the user had no parameters of their own)."""

    vectors: np.ndarray  # (n, dim) float32
    bias: np.ndarray  # (n,) float32
    prior_vectors: np.ndarray | None = None
    prior_bias: np.ndarray | None = None


def user_outputs_shard(pair_model: keras.Model, start: int, stop: int) -> TowerOutputs:
    """The user tower's outputs for users start..stop-1 (one batch: the same floats on every engine), with
    their own parameters and through the feature path alone."""
    tower = pair_model.get_layer("user_tower")
    ids = np.arange(start, stop, dtype=np.int32)
    vectors, bias = tower.predict(ids, verbose=0, batch_size=PREDICT_BATCH)
    known = tower.get_layer("user_known")
    flags = known.table.numpy()
    known.table.assign(np.zeros_like(flags))  # every user through the feature path alone
    try:
        prior_vectors, prior_bias = tower.predict(ids, verbose=0, batch_size=PREDICT_BATCH)
    finally:
        known.table.assign(flags)
    return TowerOutputs(vectors, bias[:, 0], prior_vectors, prior_bias[:, 0])


def user_outputs(executor: Executor, model: ModelRef, shards: list[tuple[int, int]], progress=None) -> TowerOutputs:
    """Every user's outputs (`user_outputs_shard`), a shard at a time on the engine's Keras workers."""
    parts = executor.map(user_outputs_shard, shards, model=model, progress=progress)
    return TowerOutputs(*(np.concatenate([getattr(p, name) for p in parts]) for name in TowerOutputs.__annotations__))


def refit_users(
    executor: Executor,
    users: TowerOutputs,
    videos: TowerOutputs,
    rows: list[ShardRows],
    row_users: np.ndarray,
    row_videos: np.ndarray,
    targets: np.ndarray,
    fitted: np.ndarray,
    width: int,
    delta: float,
    expectile: float,
    progress=None,
) -> tuple[np.ndarray, RefitReport]:
    """The correction (n_users x (width + 1): vector, then bias) that refits every `fitted` user.

    `rows` are the training rows by user shard (targets as values); `row_users`, `row_videos`, `targets` the
    same rows in log order, for the noise; `width` the vector's columns the refit changes (the latent and
    taste parts: not the residual factors, zeros here)."""
    started = time.perf_counter()
    n_users = len(users.bias)
    trained = np.hstack([users.vectors[:, :width], users.bias[:, None]]).astype(np.float64)
    prior_mean = np.hstack([users.prior_vectors[:, :width], users.prior_bias[:, None]]).astype(np.float64)
    design = np.hstack([videos.vectors[:, :width], np.ones((len(videos.bias), 1), dtype=np.float32)])
    deviation = trained - prior_mean
    if not fitted.any():
        return np.zeros((n_users, width + 1), dtype=np.float32), RefitReport(0, float("nan"), 0.0)
    counts = np.bincount(row_users, minlength=n_users)
    heavy = fitted & (counts >= np.quantile(counts[fitted], 1 - PRIOR_USERS))
    # The rows' noise around the trained fit, errors capped at delta, on every k-th row (about NOISE_ROWS).
    every = slice(None, None, max(1, len(row_users) // NOISE_ROWS))
    left = targets[every].astype(np.float32) - videos.bias[row_videos[every]]
    fit = np.einsum(
        "ij,ij->i", (prior_mean + deviation).astype(np.float32)[row_users[every]], design[row_videos[every]]
    )
    noise = float(np.mean(np.minimum((left - fit) ** 2, delta**2)))
    # The prior's weight per dimension: that noise over the spread of the heavy users' deviations.
    penalty = np.diag(noise / (deviation[heavy].var(axis=0) + 1e-8))
    items = [
        (part, trained[part.first : part.first + part.n_ids], prior_mean[part.first : part.first + part.n_ids],
         fitted[part.first : part.first + part.n_ids])
        for part in rows
    ]  # fmt: skip
    shared = (executor.share(design), executor.share(videos.bias), penalty, delta, expectile, STEPS, executor.threads)
    correction = np.concatenate(executor.map(refit_shard, items, shared=shared, progress=progress))
    return correction, RefitReport(int(fitted.sum()), noise, time.perf_counter() - started)
