"""The seed notebook's model, kept as the reference every run is compared with (`--model seed`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import keras
import numpy as np
from keras import layers, ops
from sqlalchemy import Engine

from recgen.constants import MODEL_SEED, RUN_MODEL, SEED
from recgen.features import Catalog, Interactions, seed_video_features
from recgen.models.keras_base import (
    FeatureLookup,
    TrainReport,
    epoch_batches,
    epoch_logger,
    predict,
    settings_key,
    signals_between_batches,
)
from recgen.progress import Reporter


@dataclass(frozen=True)
class SeedSettings:
    """The seed notebook's model and training settings, kept as they were."""

    user_dim: int = 32
    video_dim: int = 32
    feature_units: int = 32
    hidden_units: int = 32
    dropout: float = 0.2
    second_units: int = 16
    learning_rate: float = 1e-3
    epochs: int = 5
    batch_size: int = 8192
    validation_share: float = 0.1
    patience: int = 1
    seed: int = SEED

    def key(self) -> str:
        return settings_key("seed", self)


def build_seed_model(n_users: int, video_features: np.ndarray, settings: SeedSettings) -> keras.Model:
    """User embedding 32 + video embedding 32 + (15 features -> Dense 32 relu), concatenated, then
    Dense 32 relu, Dropout 0.2, Dense 16 relu, Dense 1 linear: the seed's network, predicting watch_ratio."""
    keras.utils.set_random_seed(settings.seed)
    n_videos, n_features = video_features.shape
    user = keras.Input(shape=(), dtype="int32", name="user")
    video = keras.Input(shape=(), dtype="int32", name="video")
    user_vec = layers.Embedding(n_users, settings.user_dim, name="user_embedding")(user)
    video_vec = layers.Embedding(n_videos, settings.video_dim, name="video_embedding")(video)
    lookup = FeatureLookup(n_videos, n_features, name="video_features")
    feats = layers.Dense(settings.feature_units, activation="relu", name="feature_dense")(lookup(video))
    x = layers.Concatenate(name="concat")([user_vec, video_vec, feats])
    x = layers.Dense(settings.hidden_units, activation="relu", name="hidden")(x)
    x = layers.Dropout(settings.dropout, name="dropout")(x)
    x = layers.Dense(settings.second_units, activation="relu", name="hidden_2")(x)
    out = layers.Dense(1, name="watch_ratio")(x)
    model = keras.Model({"user": user, "video": video}, ops.squeeze(out, axis=-1), name="seed")
    lookup.table.assign(video_features)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss="mse")
    return model


def train_seed(
    model: keras.Model,
    interactions: Interactions,
    settings: SeedSettings,
    progress: Reporter | Callable[[str], None] | None = None,
) -> TrainReport:
    """Fit on shuffled rows (the table is ordered by user, so a tail split would hold out whole users),
    keep 10% for validation, stop early and restore the best weights."""
    started = time.perf_counter()
    order = np.random.default_rng(settings.seed).permutation(len(interactions))
    inputs = {"user": interactions.users[order], "video": interactions.videos[order]}
    target = interactions.watch_ratio[order]
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=settings.patience, restore_best_weights=True, verbose=0
    )
    train, valid = epoch_batches(inputs, target, settings.batch_size, settings.validation_share, settings.seed)
    with signals_between_batches() as held:
        history = model.fit(
            train,
            validation_data=valid,
            shuffle=False,  # the batches come shuffled
            epochs=settings.epochs,
            callbacks=[stop, *held, *epoch_logger(progress)],
            verbose=0,
        )
    val_losses = history.history["val_loss"]
    return TrainReport(
        val_loss=float(np.min(val_losses)),
        epochs_trained=len(val_losses),
        seconds=time.perf_counter() - started,
        rows=len(interactions),
    )


class KerasScorer:
    """Scores (user, video) index pairs with a Keras model (the `Scorer` protocol of recgen.recommend).

    For the seed architecture, the first hidden layer is linear in the concatenation [user embedding, video
    embedding, video feature layer] before its ReLU, so it splits into a user half U (n_users x 32) and a
    video half V (n_videos x 32, bias included) computed once; a pair's score is then
    Dense1(relu(Dense16(relu(U[u] + V[v])))) (dropout is inactive at inference). That is the model's own
    function, summed in a different order (equal to float32 rounding, tested), and runs as one TensorFlow
    graph over large blocks instead of 2.7M-row concatenations through Keras. Other models go through Keras.
    """

    predicts_watch_ratio = True

    def __init__(self, model: keras.Model, n_videos: int, name: str = RUN_MODEL):
        self.model = model
        self.n_videos = n_videos
        self.name = name
        self._halves = _SeedHalves.of(model)

    def score_pairs(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        if self._halves is None:
            return predict(self.model, users, videos)
        return self._halves.score_pairs(users, videos)

    def score_block(self, users: np.ndarray) -> np.ndarray:
        if self._halves is not None:
            return self._halves.score_block(users)
        videos = np.tile(np.arange(self.n_videos, dtype=np.int32), len(users))
        return self.score_pairs(np.repeat(users, self.n_videos), videos).reshape(len(users), self.n_videos)


_SEED_LAYERS = ("user_embedding", "video_embedding", "video_features", "feature_dense", "hidden", "hidden_2")


# Pairs per graph call: activations of (64k x 32) float32 (8 MB) stay in cache.
PAIR_CHUNK = 1 << 16


class _SeedHalves:
    """The seed network with its first hidden layer split into user and video halves (see KerasScorer)."""

    def __init__(self, model: keras.Model):
        import tensorflow as tf  # the backend Keras runs on here; imported late like every TF-only path

        def weights(name: str) -> list[np.ndarray]:
            return [np.asarray(w, dtype=np.float32) for w in model.get_layer(name).get_weights()]

        (user_table,) = weights("user_embedding")
        (video_table,) = weights("video_embedding")
        (feature_table,) = weights("video_features")
        feature_kernel, feature_bias = weights("feature_dense")
        kernel, bias = weights("hidden")
        kernel_2, bias_2 = weights("hidden_2")
        out_kernel, out_bias = weights("watch_ratio")
        n_user = user_table.shape[1]
        video_side = np.concatenate([video_table, np.maximum(feature_table @ feature_kernel + feature_bias, 0)], 1)
        self.user_half = tf.constant(user_table @ kernel[:n_user])
        self.video_half = tf.constant(video_side @ kernel[n_user:] + bias)
        self.n_videos = video_table.shape[0]
        head = [tf.constant(w) for w in (kernel_2, bias_2, out_kernel[:, 0], out_bias[0])]

        def mlp(hidden):  # relu(first layer) -> Dense16 relu -> Dense1, over the last axis
            second = tf.nn.relu(tf.tensordot(tf.nn.relu(hidden), head[0], 1) + head[1])
            return tf.tensordot(second, head[2], 1) + head[3]

        ids = tf.TensorSpec([None], tf.int32)
        self._block = tf.function(
            lambda users: mlp(tf.gather(self.user_half, users)[:, None, :] + self.video_half[None]),
            input_signature=[ids],
        )
        self._pairs = tf.function(
            lambda users, videos: mlp(tf.gather(self.user_half, users) + tf.gather(self.video_half, videos)),
            input_signature=[ids, ids],
        )

    @classmethod
    def of(cls, model: keras.Model) -> _SeedHalves | None:
        """The split network if `model` is the seed architecture (by its layer names), else None."""
        names = {layer.name for layer in model.layers}
        if model.name != "seed" or not {*_SEED_LAYERS, "watch_ratio"} <= names:
            return None
        return cls(model)

    def score_block(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int32)
        step = max(1, PAIR_CHUNK // self.n_videos)  # about PAIR_CHUNK pairs per graph call here too
        out = np.empty((len(users), self.n_videos), dtype=np.float32)
        for start in range(0, len(users), step):
            out[start : start + step] = self._block(users[start : start + step]).numpy()
        return out

    def score_pairs(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        out = np.empty(len(users), dtype=np.float32)
        for start in range(0, len(users), PAIR_CHUNK):
            stop = start + PAIR_CHUNK
            out[start:stop] = self._pairs(
                np.asarray(users[start:stop], dtype=np.int32), np.asarray(videos[start:stop], dtype=np.int32)
            ).numpy()
        return out


class SeedFamily:
    """The `seed` family (recgen.models.registry.Family)."""

    name = MODEL_SEED
    content_path = False  # its user embedding is all it knows of a user: cold users get popularity

    def __init__(self, seed: int):
        self.settings = SeedSettings(seed=seed)

    def key(self) -> str:
        return self.settings.key()

    def params(self) -> dict:
        return asdict(self.settings)

    def build(self, engine: Engine, catalog: Catalog, train: Interactions, placement=None) -> keras.Model:
        video_features, _ = seed_video_features(engine, catalog)
        return build_seed_model(len(catalog.user_ids), video_features, self.settings)

    def train(self, keras_model: keras.Model, train: Interactions, progress, placement=None) -> TrainReport:
        return train_seed(keras_model, train, self.settings, progress=progress)  # no per-user step to place

    def scorer(
        self, keras_model: keras.Model, catalog: Catalog, name: str = RUN_MODEL, placement=None, model_file=None,
        user_tables=None,
    ) -> KerasScorer:  # fmt: skip
        """Scores in this process: its network is not a product of towers that shards of users could share."""
        return KerasScorer(keras_model, len(catalog.video_ids), name=name)
