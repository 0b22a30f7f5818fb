"""recgen's default model: a hybrid two-tower network over ids, content and user features.

    score(u, v) = <user_tower(u), video_tower(v)> + video_bias(v) + user_bias(u)

Each tower concatenates an id embedding with embeddings of the categorical features and the numeric
features of its side, then a dense layer. The video's vector ends with fixed content descriptors (duration,
tags, top-level category) and the user's with their personal weights over them, so the dot product holds
both the latent match and each user's own duration sensitivity and taste; scoring all users x all videos
is one matrix product.

The target is log(watch ratio + 0.05) (ratio capped at 50) under a Huber loss with a small delta (0.5): on
the log scale a user's level, duration sensitivity and tastes add up (they multiply the ratio), and the
robust loss keeps skips, zero plays and loops from pulling the estimate, so a user's few rows estimate their
personal weights efficiently; every training row weighs the same (`row_weighted`). The score is
exp(prediction) - 0.05, a typical (median-like) ratio: rankings follow it and it errs less in absolute
terms than the mean. The raw ratio under a Huber loss (the previous target) ranks worse:
`benchmarks/quality.py --ablations`.

After `model.fit`, each user's own parameters (their vector and bias beyond what their features predict) are
estimated again in closed form by empirical Bayes, with the videos' outputs fixed (recgen.refit): a user with
few rows stays near what their features predict, one with many follows their rows. Then what the model
still leaves unexplained is factorised (alternating least squares, `residual_rank` factors a side), and the
factors are appended to both towers' vectors: a taste no feature carries, which the towers learn little of
before early stopping.

Cold start: id embeddings are dropped for a share of the training lists (`id_dropout`), so the towers also
learn to score from features alone; users and videos without training rows get no id embedding at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from recgen.constants import SCORE_BLOCK_USERS, SEED
from recgen.features import Catalog, Interactions, seed_video_features
from recgen.models.hybrid.refit import FACTORS_LAYER, REFIT_LAYER, fit_residual_factors, refit_users
from recgen.models.keras_base import (
    FeatureLookup,
    TrainReport,
    epoch_logger,
    keras,
    layers,
    ops,
    settings_key,
    signals_between_batches,
    tower_outputs,
)
from recgen.progress import Reporter, as_reporter

USER_CATEGORICAL = (
    "user_active_degree",
    "is_lowactive_period",
    "is_live_streamer",
    "is_video_author",
    "follow_user_num_range",
    "fans_user_num_range",
    "friend_user_num_range",
    "register_days_range",
    *(f"onehot_feat{i}" for i in range(18)),
)
USER_COUNTS = ("follow_user_num", "fans_user_num", "friend_user_num", "register_days")
CATEGORY_COLUMNS = ("first_level_category_id", "second_level_category_id", "third_level_category_id")
VIDEO_CATEGORICAL = (
    *CATEGORY_COLUMNS,
    "author_id",
    "upload_type",
    "video_tag_id",
)
MIN_CATEGORY_COUNT = 2  # rarer values share the "unknown" index 0: one example cannot train an embedding
DURATION_CENTRES = np.log(np.array([2, 4, 6, 8, 10, 13, 17, 25, 40, 70, 150.0]) * 1000)  # ms, RBF centres
DURATION_WIDTH = 0.35  # RBF width in log-ms: neighbouring bumps overlap


@dataclass(frozen=True)
class HybridSettings:
    dim: int = 16  # latent id factors: fewer per-user parameters ranked better than 32 (light users)
    hidden: int = 128
    category_dim: int = 8
    id_dropout: float = 0.1
    dropout: float = 0.1
    l2: float = 1e-6
    taste_l2: float = 1e-5  # shrinks each user's own taste towards what their features predict
    learning_rate: float = 2e-3
    epochs: int = 12
    list_size: int = 32  # training rows per list (one user each)
    batch_lists: int = 512  # lists per batch: 16,384 rows (full scale: 8,192 stopped 2 epochs sooner, ranked worse)
    user_id_scale: float = 4.0  # per-user parameters move this much faster (see _tower); 8 overfits sooner
    ranking_weight: float = 0.0  # weight of a within-list ListNet loss next to the pointwise Huber loss
    temperature: float = 0.25  # of the target distribution softmax(target / temperature)
    validation_share: float = 0.02  # every held-out row is one the model does not learn from: 0.1 ranked worse
    patience: int = 2
    min_improvement: float = 0.001  # relative: a smaller fall of the validation loss counts as none
    ratio_cap: float = 50.0  # targets are transform(min(watch_ratio, cap)); the Huber loss bounds the rest
    transform: str = "log"  # log(ratio + log_offset); "identity" (the raw ratio) and "log1p" rank worse
    log_offset: float = 0.05  # keeps zero plays finite: log(0.05) = -3
    huber_delta: float = 0.5  # errors beyond this (in target units) count linearly
    expectile: float = 0.7  # weight of under-predicted rows (1 - it: over-predicted); 0.5 symmetric, 0.8 worse
    taste_bumps: bool = False  # personal weights over the duration bumps too, not only the slope (worse)
    history: bool = False  # the user's history features (worse: see user_tables)
    row_weighted: bool = True  # a list's loss is its rows' sum / list_size: each row counts the same (see ListLoss)
    refit: bool = True  # after fit, each user's own parameters estimated again by empirical Bayes (recgen.refit)
    residual_rank: int = 16  # then factors of what is left unexplained (recgen.refit.fit_residual_factors); 0: none
    residual_ridge: float = 5.0  # their ridge penalty: 3 overfits light users, 10 misses latent tastes (README)
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


@dataclass(frozen=True)
class SideTables:
    """Per-row (user or video) feature tables in catalogue order, fed to the model as fixed lookups."""

    categorical: np.ndarray  # (n, n_cat) int32 vocabulary indexes, 0 = unknown/rare
    vocab_sizes: tuple[int, ...]
    numeric: np.ndarray  # (n, n_num) float32, standardised
    known: np.ndarray  # (n,) bool: has training rows (so an id embedding exists)
    content: np.ndarray | None = None  # videos only: (n, n_content) fixed descriptors users weigh personally


def _encode_categories(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Each column's values to 1..n by frequency (0 for missing and values seen fewer than MIN times)."""
    out = np.zeros((len(frame), len(columns)), dtype=np.int32)
    sizes = []
    for j, column in enumerate(columns):
        counts = frame[column].value_counts(dropna=True)
        keep = counts[counts >= MIN_CATEGORY_COUNT].index
        mapping = pd.Series(np.arange(1, len(keep) + 1), index=keep)
        out[:, j] = frame[column].map(mapping).fillna(0).to_numpy(np.int32)
        sizes.append(len(keep) + 1)
    return out, tuple(sizes)


def _standardise(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(values.astype(np.float64))
    std = values.std(axis=0)
    return ((values - values.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def side_tables(
    engine: Engine, catalog: Catalog, train: Interactions, settings: HybridSettings | None = None
) -> tuple[SideTables, SideTables]:
    """The user and the video feature tables of a hybrid model, leaving out the groups in `settings.without`."""
    settings = settings or HybridSettings()
    without = settings.without
    unknown = set(without) - set(ABLATION_GROUPS)
    if unknown:
        raise ValueError(f"unknown feature groups {sorted(unknown)}; known: {sorted(ABLATION_GROUPS)}")
    videos, duration_ms = video_tables(engine, catalog, train, without, settings.taste_bumps)
    return user_tables(engine, catalog, train, duration_ms, without, settings.history), videos


def user_tables(
    engine: Engine,
    catalog: Catalog,
    train: Interactions,
    duration_ms: np.ndarray,
    without: tuple[str, ...] = (),
    history: bool = False,
) -> SideTables:
    """Profile features from `users`, and with `history` features from the training log (rows, the mean log
    play time and the mean log1p watch ratio).

    History is off by default: the evaluated users' training rows all lie outside the evaluated videos (no
    big_matrix row is on a small_matrix pair), so their history describes other videos than the training
    users' does, and the model ranked better without it (benchmarks/quality.py --ablations)."""
    with engine.connect() as conn:
        profiles = pd.read_sql_query(text("SELECT * FROM users"), conn)
    frame = pd.DataFrame({"user_id": catalog.user_ids}).merge(profiles, on="user_id", how="left")
    categorical, sizes = _encode_categories(frame, () if "user_profile" in without else USER_CATEGORICAL)
    n_users = len(catalog.user_ids)
    rows = np.bincount(train.users, minlength=n_users)
    log_play = np.log1p(train.watch_ratio.astype(np.float64) * duration_ms[train.videos] / 1000.0)
    mean_log_play = np.bincount(train.users, weights=log_play, minlength=n_users) / np.maximum(rows, 1)
    log_ratio = np.log1p(train.watch_ratio.astype(np.float64))
    mean_log_ratio = np.bincount(train.users, weights=log_ratio, minlength=n_users) / np.maximum(rows, 1)
    blocks = {
        "user_profile": [
            np.log1p(frame[list(USER_COUNTS)].to_numpy(np.float64)),
            frame[list(USER_COUNTS)].isna().to_numpy(np.float64),
        ],
        "history": [
            np.log1p(rows)[:, None],
            np.where(rows > 0, mean_log_play, np.nan)[:, None],
            np.where(rows > 0, mean_log_ratio, np.nan)[:, None],
        ],
    }
    numeric = _numeric(blocks, (*without, *(() if history else ("history",))), n_users)
    known = rows > 0 if "ids" not in without else np.zeros(n_users, dtype=bool)
    return SideTables(categorical, sizes, numeric, known)


def _numeric(blocks: dict[str, list[np.ndarray]], without: tuple[str, ...], n: int) -> np.ndarray:
    """The kept blocks side by side, missing values at the column mean, standardised."""
    kept = [part for name, parts in blocks.items() if name not in without for part in parts]
    if not kept:
        return np.zeros((n, 0), dtype=np.float32)
    numeric = np.column_stack(kept).astype(np.float64)
    with np.errstate(invalid="ignore"):
        means = np.nanmean(numeric, axis=0)
    numeric = np.where(np.isnan(numeric), np.nan_to_num(means)[None, :], numeric)
    return _standardise(numeric)


def video_tables(
    engine: Engine, catalog: Catalog, train: Interactions, without: tuple[str, ...] = (), taste_bumps: bool = False
) -> tuple[SideTables, np.ndarray]:
    """Content features (categories, author, tags, duration as log and RBF bumps, daily statistics,
    exposure) and each video's duration in ms.

    Users get personal weights over the duration's slope (and with `taste_bumps` over its bumps too: eleven
    more parameters per user, which ranked worse), the tags and the top-level category."""
    with engine.connect() as conn:
        frame = pd.read_sql_query(text("SELECT * FROM videos"), conn)
        tags = pd.read_sql_query(text("SELECT video_id, tag_id FROM video_tags"), conn)
    frame = pd.DataFrame({"video_id": catalog.video_ids}).merge(frame, on="video_id", how="left")
    left_out = {"categories": CATEGORY_COLUMNS, "author": ("author_id",)}
    dropped = {column for group in without for column in left_out.get(group, ())}
    categorical, sizes = _encode_categories(frame, tuple(c for c in VIDEO_CATEGORICAL if c not in dropped))
    tag_ids = np.sort(tags["tag_id"].unique())
    multi_hot = np.zeros((len(frame), len(tag_ids)), dtype=np.float64)
    multi_hot[catalog.video_index(tags["video_id"].to_numpy()), np.searchsorted(tag_ids, tags["tag_id"])] = 1.0
    duration = frame["video_duration"].to_numpy(np.float64)
    log_duration = np.log(np.where(np.isnan(duration), np.nanmedian(duration), np.maximum(duration, 100.0)))
    bumps = np.exp(-(((log_duration[:, None] - DURATION_CENTRES[None, :]) / DURATION_WIDTH) ** 2))
    daily, _ = seed_video_features(engine, catalog)
    exposure = np.bincount(train.videos, minlength=len(frame))
    numeric = _numeric(
        {
            "tags": [multi_hot],
            "duration": [log_duration[:, None], bumps],
            "daily": [daily, np.log1p(exposure)[:, None]],
        },
        without,
        len(frame),
    )
    # What each user gets a personal weight for: duration (a slope), feature tags (shared by a video's tags)
    # and the top-level category.
    centred = (log_duration - log_duration.mean()) / max(log_duration.std(), 1e-6)
    taste_blocks = {
        "duration": [centred[:, None], bumps] if taste_bumps else [centred[:, None]],
        "tags": [multi_hot / np.maximum(multi_hot.sum(axis=1, keepdims=True), 1)],
        "categories": [pd.get_dummies(frame["first_level_category_id"]).to_numpy(np.float64)],
    }
    kept = [part for name, parts in taste_blocks.items() if name not in without for part in parts]
    content = np.column_stack(kept) if kept and "taste" not in without else np.zeros((len(frame), 0))
    known = exposure > 0 if "ids" not in without else np.zeros(len(frame), dtype=bool)
    tables = SideTables(categorical, sizes, numeric, known, content.astype(np.float32))
    return tables, np.exp(log_duration)


@keras.saving.register_keras_serializable(package="recgen")
class IdDropout(layers.Layer):
    """Zeroes a row's id embedding for unknown ids always, and for a random `rate` of rows in training."""

    def __init__(self, rate: float, seed: int = SEED, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, embedding, known, training=None):
        keep = known
        if training and self.rate > 0:
            draw = keras.random.uniform(ops.shape(known), seed=self.generator)
            keep = keep * ops.cast(draw >= self.rate, keep.dtype)
        return embedding * ops.expand_dims(keep, -1)

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def _tower(name: str, tables: SideTables, settings: HybridSettings, n_taste: int = 0) -> keras.Model:
    """ids -> (vector of `dim`, scalar bias[, taste of n_taste]) from the id embedding and feature lookups.

    For videos, the fixed content descriptors are appended to the vector (and the user's taste weights to
    the user's), so one dot product scores both the latent match and the personal content preferences."""
    ids = keras.Input(shape=(), dtype="int32", name=f"{name}_id")
    n = len(tables.known)
    regular = keras.regularizers.l2(settings.l2)
    known_lookup = FeatureLookup(n, 1, name=f"{name}_known")
    known = ops.squeeze(known_lookup(ids), -1)
    # The id's own parameters: the latent embedding and, on the user side, the taste deviation. Dropped
    # together, so a row sometimes trains the feature-only path a cold user or video gets.
    scale = settings.user_id_scale if n_taste else 1.0
    id_vec = layers.Embedding(
        n,
        settings.dim,
        embeddings_initializer=keras.initializers.RandomUniform(-0.05 / scale, 0.05 / scale),
        embeddings_regularizer=regular,
        name=f"{name}_id_embedding",
    )(ids)
    if n_taste:
        taste_id = layers.Embedding(
            n,
            n_taste,
            embeddings_initializer="zeros",
            embeddings_regularizer=keras.regularizers.l2(settings.taste_l2),
            name=f"{name}_taste_embedding",
        )(ids)
        id_vec = layers.Concatenate(name=f"{name}_id_parts")([id_vec, taste_id])
    id_vec = IdDropout(settings.id_dropout, settings.seed, name=f"{name}_id_dropout")(id_vec, known)
    if n_taste:
        # A user's own parameters get one update per list, far fewer than a video's; scaling them up (Adam's
        # steps have a fixed size per parameter) lets them move as far in the same number of epochs.
        id_vec = layers.Rescaling(scale, name=f"{name}_id_scale")(id_vec)
        id_vec, taste_id = id_vec[:, : settings.dim], id_vec[:, settings.dim :]
    parts = [id_vec]
    n_cat = tables.categorical.shape[1]
    if n_cat:
        # All categorical columns share one embedding table (column j's values offset past columns < j):
        # one lookup per batch instead of one per column.
        offsets = np.concatenate(([0], np.cumsum(tables.vocab_sizes)[:-1]))
        cat_lookup = FeatureLookup(n, n_cat, name=f"{name}_categorical")
        cats = ops.cast(cat_lookup(ids), "int32")
        cat_emb = layers.Embedding(int(sum(tables.vocab_sizes)), settings.category_dim, name=f"{name}_categories")
        parts.append(layers.Reshape((n_cat * settings.category_dim,), name=f"{name}_categories_flat")(cat_emb(cats)))
    if tables.numeric.shape[1]:
        num_lookup = FeatureLookup(n, tables.numeric.shape[1], name=f"{name}_numeric")
        parts.append(num_lookup(ids))
    x = layers.Concatenate(name=f"{name}_concat")(parts)
    x = layers.Dense(settings.hidden, activation="relu", kernel_regularizer=regular, name=f"{name}_hidden")(x)
    x = layers.Dropout(settings.dropout, name=f"{name}_dropout")(x)
    vector = layers.Dense(settings.dim, name=f"{name}_vector")(x)
    bias = layers.Dense(1, name=f"{name}_bias")(x)
    if n_taste:  # user side: taste = predicted from features + the user's own deviation (none when cold)
        taste = layers.Add(name=f"{name}_taste")([layers.Dense(n_taste, name=f"{name}_taste_dense")(x), taste_id])
        vector = layers.Concatenate(name=f"{name}_full_vector")([vector, taste])
    if name == "user":  # the correction `refit_users` sets after training (zeros until then and without rows)
        correction = FeatureLookup(n, settings.dim + n_taste + 1, name=REFIT_LAYER)(ids)
        vector = layers.Add(name=f"{name}_refit_vector")([vector, correction[:, :-1]])
        bias = layers.Add(name=f"{name}_refit_bias")([bias, correction[:, -1:]])
    has_content = tables.content is not None and tables.content.shape[1] > 0
    if has_content:
        content_lookup = FeatureLookup(n, tables.content.shape[1], name=f"{name}_content")
        vector = layers.Concatenate(name=f"{name}_full_vector")([vector, content_lookup(ids)])
    if settings.residual_rank:  # set by `fit_residual_factors` after training (zeros until then)
        factors = FeatureLookup(n, settings.residual_rank, name=f"{name}_{FACTORS_LAYER}")(ids)
        vector = layers.Concatenate(name=f"{name}_factored_vector")([vector, factors])
    tower = keras.Model(ids, [vector, bias], name=f"{name}_tower")
    if has_content:
        content_lookup.table.assign(tables.content)
    known_lookup.table.assign(tables.known.astype(np.float32)[:, None])
    if n_cat:
        cat_lookup.table.assign((tables.categorical + offsets[None, :]).astype(np.float32))
    if tables.numeric.shape[1]:
        num_lookup.table.assign(tables.numeric)
    return tower


def build_hybrid_model(users: SideTables, videos: SideTables, settings: HybridSettings) -> keras.Model:
    keras.utils.set_random_seed(settings.seed)
    user = keras.Input(shape=(), dtype="int32", name="user")
    video = keras.Input(shape=(), dtype="int32", name="video")
    n_taste = 0 if videos.content is None else videos.content.shape[1]
    user_vec, user_bias = _tower("user", users, settings, n_taste=n_taste)(user)
    video_vec, video_bias = _tower("video", videos, settings)(video)
    score = ops.sum(user_vec * video_vec, axis=-1) + ops.squeeze(user_bias + video_bias, -1)
    return keras.Model({"user": user, "video": video}, score, name="hybrid")


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


@keras.saving.register_keras_serializable(package="recgen")
class ListLoss(keras.losses.Loss):
    """Huber on the (transformed) watch ratio per row, plus `ranking_weight` x ListNet cross-entropy within each list
    (the distribution softmax(target / temperature) against softmax(score)). NaN targets are padding.

    The Huber loss is asymmetric: a row the model under-predicts weighs `expectile`, one it over-predicts
    1 - `expectile` (both x 2, so 0.5 is the plain Huber loss). Above 0.5 each score moves towards the upper
    part of its ratios' spread: on the log scale the mean ratio lies above the middle of the spread by more
    where the upper tail is heavier (loops), and skips and zero plays pull less.

    The Huber part is each list's mean over its rows, or with `row_weighted` its sum over the list's full
    size: then every row weighs the same, and a user's short last list (all of a light user's rows) no
    longer counts as much as a full one (ranked slightly better on every seed: benchmarks/quality.py)."""

    def __init__(
        self,
        ranking_weight: float = 1.0,
        temperature: float = 0.25,
        delta: float = 1.0,
        row_weighted: bool = False,
        expectile: float = 0.5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 < expectile < 1.0:
            raise ValueError(f"expectile must be between 0 and 1 (0.5: the plain Huber loss), not {expectile}")
        self.ranking_weight, self.temperature, self.delta = ranking_weight, temperature, delta
        self.row_weighted, self.expectile = row_weighted, expectile

    def call(self, y_true, y_pred):
        mask = ops.logical_not(ops.isnan(y_true))
        weight = ops.cast(mask, y_pred.dtype)
        truth = ops.where(mask, y_true, 0.0)
        error = ops.abs(truth - y_pred)
        huber = ops.where(error <= self.delta, 0.5 * error**2, self.delta * (error - 0.5 * self.delta))
        huber = huber * ops.where(truth > y_pred, 2 * self.expectile, 2 * (1 - self.expectile))
        rows = ops.cast(ops.shape(weight)[-1], weight.dtype) if self.row_weighted else ops.sum(weight, axis=-1)
        pointwise = ops.sum(huber * weight, axis=-1) / ops.maximum(rows, 1.0)
        if not self.ranking_weight:
            return pointwise
        very_negative = -1e9
        target_dist = ops.softmax(ops.where(mask, truth / self.temperature, very_negative), axis=-1)
        log_pred = ops.log_softmax(ops.where(mask, y_pred, very_negative), axis=-1)
        listnet = -ops.sum(target_dist * log_pred * weight, axis=-1)
        return pointwise + self.ranking_weight * listnet

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "ranking_weight": self.ranking_weight,
            "temperature": self.temperature,
            "delta": self.delta,
            "row_weighted": self.row_weighted,
            "expectile": self.expectile,
        }


class ListTrainer(keras.Model):
    """The training view of a hybrid model: (user, `size` videos) -> `size` scores, through its towers.

    The video tower runs once per distinct video of a batch and its outputs are gathered back to the rows:
    at full scale a batch of 8,192 rows holds about 3,600 distinct videos and one of 16,384 about 4,900, and
    the tower's dense layers are most of a step's work. Dropout in the video tower is then drawn per video
    and batch instead of per row."""

    def __init__(self, pair_model: keras.Model, size: int, **kwargs):
        super().__init__(**kwargs)
        self.user_tower = pair_model.get_layer("user_tower")
        self.video_tower = pair_model.get_layer("video_tower")
        self.size = size

    def call(self, inputs, training=None):
        user_vec, user_bias = self.user_tower(inputs["user"], training=training)
        distinct, row_of = ops.unique(ops.reshape(inputs["videos"], (-1,)), sorted=False, return_inverse=True)
        video_vec, video_bias = self.video_tower(distinct, training=training)
        video_vec = ops.reshape(ops.take(video_vec, row_of, axis=0), (-1, self.size, video_vec.shape[-1]))
        video_bias = ops.reshape(ops.take(video_bias[:, 0], row_of, axis=0), (-1, self.size))
        return ops.einsum("bd,bld->bl", user_vec, video_vec) + user_bias + video_bias


class TowerScorer:
    """Scores with the towers computed once per user and per video: all pairs are one matrix product."""

    predicts_watch_ratio = True

    def __init__(self, model: keras.Model, n_users: int, n_videos: int, settings: HybridSettings, name: str = "model"):
        self.name = name
        self.settings = settings
        user_vec, user_bias = tower_outputs(model.get_layer("user_tower"), n_users)
        video_vec, video_bias = tower_outputs(model.get_layer("video_tower"), n_videos)
        self.user_vec, self.user_bias = user_vec.astype(np.float32), user_bias[:, 0].astype(np.float32)
        self.video_vec, self.video_bias = video_vec.astype(np.float32), video_bias[:, 0].astype(np.float32)

    def score_pairs(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        """Each distinct user's scores for every video (`score_block`), then the pairs picked from them: on
        an evaluation matrix (1,411 users x 3,327 videos) ~30x faster than gathering two vectors per pair."""
        distinct, row = np.unique(users, return_inverse=True)
        order = np.argsort(row, kind="stable")
        starts = np.arange(0, len(distinct), SCORE_BLOCK_USERS)
        bounds = np.searchsorted(row[order], np.append(starts, len(distinct)))
        scores = np.empty(len(users), dtype=np.float32)
        for i, start in enumerate(starts):
            pick = order[bounds[i] : bounds[i + 1]]
            block = self.score_block(distinct[start : start + SCORE_BLOCK_USERS])
            scores[pick] = block[row[pick] - start, videos[pick]]
        return scores

    def score_block(self, users: np.ndarray) -> np.ndarray:
        log_scores = self.user_vec[users] @ self.video_vec.T + self.user_bias[users, None] + self.video_bias[None, :]
        return inverse_target(log_scores, self.settings)


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


def train(
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
