"""The default model's last training steps: each user's own parameters re-estimated by empirical Bayes
(`refit_users`), then factors of what is left unexplained (`fit_residual_factors`).

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

The result is stored in the model: a fixed per-user correction added to the user tower's output
(`REFIT_LAYER`; zeros while training and for users without rows), so a saved model scores with it; the
residual factors likewise, as fixed tables appended to both towers' vectors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np

from recgen.models.hybrid.factors import grouped
from recgen.models.keras_base import tower_outputs

REFIT_LAYER = "user_refit"
PRIOR_USERS = 0.4  # the share of known users, those with the most rows, whose deviations set the prior
STEPS = 2  # reweighted least-squares passes; the first weighs the rows by their error under the trained model
NOISE_ROWS = 200_000  # the rows' noise is measured on an even sample of about this many (bounded memory)


@dataclass(frozen=True)
class RefitReport:
    users: int  # users refitted (those with training rows)
    noise: float  # the rows' variance around the trained fit, errors capped at delta
    seconds: float


def refit_users(
    pair_model: keras.Model,
    users: np.ndarray,
    videos: np.ndarray,
    targets: np.ndarray,
    delta: float,
    expectile: float,
) -> RefitReport:
    """Set the user tower's correction so that each user with rows scores with the refitted parameters.

    `users`, `videos` are the training rows' indexes, `targets` their transformed watch ratios (the model's
    target); `delta` and `expectile` those of the training loss."""
    started = time.perf_counter()
    user_tower, video_tower = pair_model.get_layer("user_tower"), pair_model.get_layer("video_tower")
    correction = user_tower.get_layer(REFIT_LAYER)
    n_users = correction.n_rows
    correction.table.assign(np.zeros((n_users, correction.n_features), dtype=np.float32))
    width = correction.n_features - 1  # the vector's columns before the residual factors (zeros here)
    trained = _outputs(user_tower, n_users, width)
    known = user_tower.get_layer("user_known")
    flags = known.table.numpy()
    known.table.assign(np.zeros_like(flags))  # every user through the feature path alone
    try:
        prior_mean = _outputs(user_tower, n_users, width)
    finally:
        known.table.assign(flags)
    n_videos = video_tower.get_layer("video_known").n_rows
    video_vec, video_bias = tower_outputs(video_tower, n_videos)
    design = np.hstack([video_vec[:, :width], np.ones((n_videos, 1), dtype=np.float32)])  # the constant: the bias's
    # What the feature path leaves for each row's user to explain, and the deviation the fit gave the user.
    left = targets.astype(np.float32) - video_bias[videos, 0]
    deviation = trained - prior_mean
    counts = np.bincount(users, minlength=n_users)
    fitted = (counts > 0) & (flags[:, 0] > 0)  # users with rows and their own parameters
    if not fitted.any():
        return RefitReport(0, float("nan"), time.perf_counter() - started)
    heavy = fitted & (counts >= np.quantile(counts[fitted], 1 - PRIOR_USERS))
    # The rows' noise around the trained fit, errors capped at delta, on every k-th row (about NOISE_ROWS).
    every = slice(None, None, max(1, len(users) // NOISE_ROWS))
    fit = np.einsum("ij,ij->i", (prior_mean + deviation).astype(np.float32)[users[every]], design[videos[every]])
    noise = float(np.mean(np.minimum((left[every] - fit) ** 2, delta**2)))
    # The prior's weight per dimension: that noise over the spread of the heavy users' deviations.
    penalty = np.diag(noise / (deviation[heavy].var(axis=0) + 1e-8))
    order, bounds = grouped(users, n_users)
    sorted_videos, sorted_left = videos[order], left[order]
    for user in np.flatnonzero(fitted):
        # One small regression per user (~60 parameters over that user's rows): a loop over users, each
        # step vectorised over the user's rows, which are gathered once for all the passes.
        rows = slice(bounds[user], bounds[user + 1])
        x = design[sorted_videos[rows]]
        y = sorted_left[rows] - x @ prior_mean[user].astype(np.float32)
        for _ in range(STEPS):
            error = y - x @ deviation[user].astype(np.float32)
            weight = np.minimum(1.0, delta / np.maximum(np.abs(error), 1e-12))
            weight *= np.where(error > 0, 2 * expectile, 2 * (1 - expectile))
            xw = x * weight[:, None]
            gram = (xw.T @ x).astype(np.float64)  # float32 products, solved in float64
            deviation[user] = np.linalg.solve(gram + penalty, (xw.T @ y).astype(np.float64))
    refitted = np.where(fitted[:, None], prior_mean + deviation - trained, 0.0)
    correction.table.assign(refitted.astype(np.float32))
    return RefitReport(int(fitted.sum()), noise, time.perf_counter() - started)


def _outputs(user_tower: keras.Model, n_users: int, width: int) -> np.ndarray:
    """Every user's vector (its first `width` columns) and bias, one row each (the bias last), in inference
    mode."""
    vector, bias = tower_outputs(user_tower, n_users)
    return np.hstack([vector[:, :width], bias]).astype(np.float64)
