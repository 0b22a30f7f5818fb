"""Training the hybrid model: per-user lists, `model.fit` with early stopping, then the refit and the factors."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from recgen.engines import LocalExecutor, ModelRef, Placement, local_placement, shard_bounds
from recgen.features import Interactions
from recgen.models.hybrid.factors import FACTORS_LAYER, fit_residual_factors
from recgen.models.hybrid.network import ListLoss, ListTrainer
from recgen.models.hybrid.refit import REFIT_LAYER, TowerOutputs, refit_users, user_outputs
from recgen.models.hybrid.settings import HybridSettings, target
from recgen.models.hybrid.solves import shard_rows
from recgen.models.hybrid.user_tables import UserTables, write_user_tables
from recgen.models.keras_base import (
    TrainReport,
    epoch_batches,
    epoch_logger,
    signals_between_batches,
    tower_outputs,
)
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
    placement: Placement | None = None,
) -> TrainReport:
    """Fit the towers (`fit_towers`); then, with `settings.refit`, the users' own parameters are refitted
    (`refit_users`), and with `settings.residual_rank`, what is left is factorised (`fit_residual_factors`),
    both on the placement's engine (`fit_user_parameters`)."""
    started = time.perf_counter()
    val_losses = fit_towers(pair_model, rows, settings, progress)
    tables = None
    if settings.refit or settings.residual_rank:
        tables = fit_user_parameters(pair_model, rows, settings, placement or local_placement(), as_reporter(progress))
    return TrainReport(float(np.min(val_losses)), len(val_losses), time.perf_counter() - started, len(rows), tables)


def list_trainer(pair_model: keras.Model, settings: HybridSettings) -> ListTrainer:
    """The training view of `pair_model`, compiled with the settings' optimiser and list loss."""
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
    return trainer


def fit_towers(
    pair_model: keras.Model,
    rows: Interactions,
    settings: HybridSettings,
    progress: Reporter | Callable[[str], None] | None = None,
) -> list[float]:
    """`model.fit` on per-user lists: `validation_share` of the lists validate, early stopping keeps the best
    epoch's weights. Returns each epoch's validation loss."""
    lists = make_lists(rows, settings.list_size, settings)
    trainer = list_trainer(pair_model, settings)
    stop = RelativeEarlyStopping(settings.min_improvement, patience=settings.patience, restore_best_weights=True)
    x = {"user": lists.users, "videos": lists.videos}
    train, valid = epoch_batches(x, lists.targets, settings.batch_lists, settings.validation_share, settings.seed)
    with signals_between_batches() as held:
        history = trainer.fit(
            train,
            validation_data=valid,
            shuffle=False,  # the batches come shuffled
            epochs=settings.epochs,
            callbacks=[stop, *held, *epoch_logger(progress)],
            verbose=0,
        )
    return history.history["val_loss"]


def fit_user_parameters(
    pair_model: keras.Model, rows: Interactions, settings: HybridSettings, placement: Placement, reporter: Reporter
) -> UserTables | None:
    """After `model.fit`: the refit and the residual factors, maps over shards of users (and videos) on the
    placement's engine. Their tables go into the model, or beside it (returned) with `tables_outside`."""
    executor = placement.executor
    user_tower, video_tower = pair_model.get_layer("user_tower"), pair_model.get_layer("video_tower")
    n_users, n_videos = user_tower.get_layer("user_known").n_rows, video_tower.get_layer("video_known").n_rows
    width = user_tower.get_layer(REFIT_LAYER).n_features - 1  # the vector's columns before the residual factors
    user_shards = shard_bounds(n_users, placement.shard_users)
    # In this process on every engine: a batch's floats depend on the threads that computed it, and the
    # alternating least squares would amplify a rounding difference into the engines' results.
    users = user_outputs(LocalExecutor(), ModelRef(None, pair_model), user_shards)
    video_vectors, video_bias = tower_outputs(video_tower, n_videos)
    videos = TowerOutputs(video_vectors.astype(np.float32), video_bias[:, 0].astype(np.float32))
    targets = target(rows.watch_ratio, settings)
    by_user, user_order = shard_rows(rows.users, rows.videos, targets, n_users, user_shards)
    owned = [tower.get_layer(f"{side}_known").table.numpy()[:, 0] > 0 for side, tower in
             (("user", user_tower), ("video", video_tower))]  # fmt: skip
    correction = np.zeros((n_users, width + 1), dtype=np.float32)
    if settings.refit:
        fitted = (np.bincount(rows.users, minlength=n_users) > 0) & owned[0]
        correction, refit = refit_users(
            executor, users, videos, by_user, rows.users, rows.videos, targets, fitted, width,
            settings.huber_delta, settings.expectile,
        )  # fmt: skip
        reporter.log(f"refitted {refit.users:,} users' own parameters in {refit.seconds:.1f} s")
    factors = [np.zeros((n, settings.residual_rank), dtype=np.float32) for n in (n_users, n_videos)]
    if settings.residual_rank:
        vectors = users.vectors.copy()
        vectors[:, :width] += correction[:, :width]  # the refitted users, as the tower gives them with it
        user_factors, video_factors, report = fit_residual_factors(
            executor, by_user, user_order, vectors, users.bias + correction[:, width], videos.vectors,
            videos.bias, rows.users, rows.videos, owned, shard_bounds(n_videos, placement.shard_users),
            settings.residual_rank, settings.huber_delta, settings.residual_ridge, settings.residual_steps,
            settings.seed,
        )  # fmt: skip
        factors = [user_factors, video_factors]
        reporter.log(
            f"residual factors (rank {report.rank}): rmse {report.rmse_before:.4f} -> {report.rmse_after:.4f} "
            f"in {report.seconds:.1f} s"
        )
        video_tower.get_layer(f"video_{FACTORS_LAYER}").table.assign(video_factors)
    if placement.tables_outside:
        return write_user_tables(placement.artifacts, correction, factors[0], user_shards)
    if settings.refit:
        user_tower.get_layer(REFIT_LAYER).table.assign(correction)
    if settings.residual_rank:
        user_tower.get_layer(f"user_{FACTORS_LAYER}").table.assign(factors[0])
    return None
