"""Training the hybrid model: per-user lists, `model.fit` with early stopping, then the refit and the factors."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from recgen.features import Interactions
from recgen.models.hybrid.factors import fit_residual_factors
from recgen.models.hybrid.network import ListLoss, ListTrainer
from recgen.models.hybrid.refit import refit_users
from recgen.models.hybrid.settings import HybridSettings, target
from recgen.models.keras_base import TrainReport, epoch_logger, signals_between_batches
from recgen.progress import Reporter, as_reporter


@dataclass(frozen=True)
class Lists:
    """Training rows grouped into per-user lists: one user tower pass serves a whole list, and a list is
    what the ranking loss compares within."""

    users: np.ndarray  # (n_lists,) int32
    videos: np.ndarray  # (n_lists, size) int32, padding = 0
    targets: np.ndarray  # (n_lists, size) float32, padding = NaN


def make_lists(train: Interactions, size: int, settings: HybridSettings) -> Lists:
    """Each user's rows in random order, cut into lists of `size` (the last one padded), lists shuffled."""
    rng = np.random.default_rng(settings.seed)
    order = np.lexsort((rng.random(len(train)), train.users))
    users = train.users[order].astype(np.int64)
    counts = np.bincount(users)
    first_row = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.arange(len(users)) - first_row[users]
    per_user = -(-counts // size)  # ceil
    first_list = np.concatenate(([0], np.cumsum(per_user)[:-1]))
    list_index = first_list[users] + position // size
    slot = position % size
    n_lists = int(per_user.sum())
    videos = np.zeros((n_lists, size), dtype=np.int32)
    targets = np.full((n_lists, size), np.nan, dtype=np.float32)
    videos[list_index, slot] = train.videos[order]
    targets[list_index, slot] = target(train.watch_ratio[order], settings)
    shuffle = rng.permutation(n_lists)
    list_users = np.repeat(np.arange(len(counts), dtype=np.int32), per_user)
    return Lists(list_users[shuffle], videos[shuffle], targets[shuffle])


class RelativeEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping on `val_loss` where only a fall by more than `relative` x the best loss so far counts
    as an improvement: on large data the loss keeps creeping down by hundredths of a percent an epoch."""

    def __init__(self, relative: float, **kwargs):
        super().__init__(monitor="val_loss", mode="min", **kwargs)
        self.relative = relative

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None or not np.isfinite(reference_value):  # the first epoch
            return True
        return monitor_value < reference_value - self.relative * abs(reference_value)


def train_hybrid(
    pair_model: keras.Model,
    rows: Interactions,
    settings: HybridSettings,
    progress: Reporter | Callable[[str], None] | None = None,
) -> TrainReport:
    """Fit the towers on per-user lists with `model.fit`; `validation_share` of the lists validate, early
    stopping keeps the best epoch's weights; then, with `settings.refit`, the users' own parameters are
    refitted (`refit_users`), and with `settings.residual_rank`, what is left is factorised
    (`fit_residual_factors`)."""
    started = time.perf_counter()
    lists = make_lists(rows, settings.list_size, settings)
    trainer = ListTrainer(pair_model, settings.list_size)
    trainer.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate),
        loss=ListLoss(
            settings.ranking_weight,
            settings.temperature,
            settings.huber_delta,
            settings.row_weighted,
            settings.expectile,
        ),
    )
    stop = RelativeEarlyStopping(settings.min_improvement, patience=settings.patience, restore_best_weights=True)
    with signals_between_batches() as held:
        history = trainer.fit(
            {"user": lists.users, "videos": lists.videos},
            lists.targets,
            batch_size=settings.batch_lists,
            epochs=settings.epochs,
            validation_split=settings.validation_share,
            callbacks=[stop, *held, *epoch_logger(progress)],
            verbose=0,
        )
    val_losses = history.history["val_loss"]
    targets = target(rows.watch_ratio, settings)
    if settings.refit:
        refit = refit_users(pair_model, rows.users, rows.videos, targets, settings.huber_delta, settings.expectile)
        as_reporter(progress).log(f"refitted {refit.users:,} users' own parameters in {refit.seconds:.1f} s")
    if settings.residual_rank:
        factors = fit_residual_factors(
            pair_model,
            rows.users,
            rows.videos,
            targets,
            settings.huber_delta,
            settings.residual_ridge,
            settings.residual_steps,
            settings.seed,
        )
        as_reporter(progress).log(
            f"residual factors (rank {factors.rank}): rmse {factors.rmse_before:.4f} -> {factors.rmse_after:.4f} "
            f"in {factors.seconds:.1f} s"
        )
    return TrainReport(float(np.min(val_losses)), len(val_losses), time.perf_counter() - started, len(rows))
