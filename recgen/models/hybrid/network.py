"""The hybrid model's network: the two towers, the model that scores (user, video) pairs with them, the
asymmetric Huber loss over per-user lists, and the training view that runs the video tower once per distinct
video of a batch."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from recgen.constants import SEED
from recgen.models.hybrid.factors import FACTORS_LAYER
from recgen.models.hybrid.refit import REFIT_LAYER
from recgen.models.hybrid.settings import HybridSettings
from recgen.models.hybrid.tables import SideTables
from recgen.models.keras_base import FeatureLookup


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


@keras.saving.register_keras_serializable(package="recgen")
class ExternalTable(layers.Layer):
    """Stands for a per-user table kept outside the model file (`user_tables`): zeros here, the table's rows
    added to the tower's outputs by whoever scores with the model. A model of 10^8 users then does not make
    every worker that loads it load their tables too."""

    def __init__(self, n_features: int, **kwargs):
        super().__init__(**kwargs)
        self.n_features = n_features

    def call(self, ids):
        return ops.zeros((ops.shape(ids)[0], self.n_features), dtype=self.compute_dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_features": self.n_features}


def _per_user_table(n: int, n_features: int, name: str, outside: bool) -> layers.Layer:
    return ExternalTable(n_features, name=name) if outside else FeatureLookup(n, n_features, name=name)


def _tower(
    name: str, tables: SideTables, settings: HybridSettings, n_taste: int = 0, tables_outside: bool = False
) -> keras.Model:
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
        correction = _per_user_table(n, settings.dim + n_taste + 1, REFIT_LAYER, tables_outside)(ids)
        vector = layers.Add(name=f"{name}_refit_vector")([vector, correction[:, :-1]])
        bias = layers.Add(name=f"{name}_refit_bias")([bias, correction[:, -1:]])
    has_content = tables.content is not None and tables.content.shape[1] > 0
    if has_content:
        content_lookup = FeatureLookup(n, tables.content.shape[1], name=f"{name}_content")
        vector = layers.Concatenate(name=f"{name}_full_vector")([vector, content_lookup(ids)])
    if settings.residual_rank:  # set by `fit_residual_factors` after training (zeros until then)
        factor_table = f"{name}_{FACTORS_LAYER}"
        factors = _per_user_table(n, settings.residual_rank, factor_table, tables_outside and name == "user")(ids)
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


def build_hybrid_model(
    users: SideTables, videos: SideTables, settings: HybridSettings, user_tables_outside: bool = False
) -> keras.Model:
    """The pair model over both towers; with `user_tables_outside`, the per-user tables fitted after training
    (the refit's correction, the residual factors) are kept outside it (`ExternalTable`)."""
    keras.utils.set_random_seed(settings.seed)
    user = keras.Input(shape=(), dtype="int32", name="user")
    video = keras.Input(shape=(), dtype="int32", name="video")
    n_taste = 0 if videos.content is None else videos.content.shape[1]
    user_vec, user_bias = _tower("user", users, settings, n_taste=n_taste, tables_outside=user_tables_outside)(user)
    video_vec, video_bias = _tower("video", videos, settings)(video)
    score = ops.sum(user_vec * video_vec, axis=-1) + ops.squeeze(user_bias + video_bias, -1)
    return keras.Model({"user": user, "video": video}, score, name="hybrid")


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


def _training_view(tower: keras.Model) -> keras.Model:
    """`tower` up to the tables fitted after training (the users' refit correction, both sides' residual
    factors), which are zeros while the towers train: leaving them out changes no score, and each step carries
    fewer columns through the batch's rows and their gradients. Its outputs: [latent vector, bias], with the
    user's taste over the videos' content between them. The videos' content (fixed) is left out too."""
    vector, bias = tower.outputs
    names = {layer.name for layer in tower.layers}
    side = tower.name.removesuffix("_tower")
    if f"{side}_refit_vector" in names:  # the user side: the factors come after the refit
        vector = tower.get_layer(f"{side}_refit_vector").input[0]
        bias = tower.get_layer(f"{side}_refit_bias").input[0]
    elif f"{side}_factored_vector" in names:
        vector = tower.get_layer(f"{side}_factored_vector").input[0]
    outputs = [vector, bias]
    if f"{side}_full_vector" in names:  # [latent, taste] on the user side, [latent, content] on the video side
        latent, taste = tower.get_layer(f"{side}_full_vector").input
        outputs = [latent, taste, bias] if side == "user" else [latent, bias]
    return keras.Model(tower.input, outputs, name=f"{tower.name}_trained")


def _row_dots(rows, vectors):
    """(lists, size, d) x (lists, d) -> (lists, size): a batched matrix-vector product, whose gradient runs
    faster than the equal einsum's on CPU."""
    return ops.squeeze(ops.matmul(rows, ops.expand_dims(vectors, -1)), -1)


class ListTrainer(keras.Model):
    """The training view of a hybrid model: (user, `size` videos) -> `size` scores, through its towers (up to
    the tables fitted after training, which are zeros until then).

    The video tower runs once per distinct video of a batch and its outputs are gathered back to the rows: a
    batch holds far fewer distinct videos than rows, and the tower's dense layers are most of a step's work.
    Dropout in the video tower is then drawn per video and batch instead of per row. The videos' fixed
    content is looked up per row and meets the user's taste in a product of its own: it needs no gradient,
    and carried through the gather it made the gather's gradient 86 columns wide instead of 16."""

    def __init__(self, pair_model: keras.Model, size: int, **kwargs):
        super().__init__(**kwargs)
        self.user_tower = _training_view(pair_model.get_layer("user_tower"))
        self.video_tower = _training_view(pair_model.get_layer("video_tower"))
        content = [layer for layer in pair_model.get_layer("video_tower").layers if layer.name == "video_content"]
        self.content = content[0] if content else None
        self.size = size

    def call(self, inputs, training=None):
        user = self.user_tower(inputs["user"], training=training)  # [latent, (taste,) bias]
        distinct, row_of = ops.unique(ops.reshape(inputs["videos"], (-1,)), sorted=False, return_inverse=True)
        video_vec, video_bias = self.video_tower(distinct, training=training)
        video_vec = ops.reshape(ops.take(video_vec, row_of, axis=0), (-1, self.size, video_vec.shape[-1]))
        video_bias = ops.reshape(ops.take(video_bias[:, 0], row_of, axis=0), (-1, self.size))
        score = _row_dots(video_vec, user[0])
        if self.content is not None:
            score = score + _row_dots(self.content(inputs["videos"]), user[1])
        return score + user[-1] + video_bias
