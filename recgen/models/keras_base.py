"""Keras models: the seed architecture, training with `model.fit`, atomic save, verified reload, scoring."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for cron logs.

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

from recgen.constants import SEED  # noqa: E402
from recgen.features import Interactions  # noqa: E402
from recgen.progress import Reporter, as_reporter  # noqa: E402

PREDICT_BATCH = 65_536


@dataclass(frozen=True)
class SeedSettings:
    """The seed notebook's model and training settings (DESIGN.md, "The seed system")."""

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


def settings_key(family: str, settings) -> str:
    """A hash of a family's name and every setting (a dataclass): a saved model is reused only if it matches."""
    return hashlib.sha256(json.dumps({"model": family, **asdict(settings)}, sort_keys=True).encode()).hexdigest()


@keras.saving.register_keras_serializable(package="recgen")
class FeatureLookup(layers.Layer):
    """A fixed (non-trainable) table of per-video features, looked up by video index.

    Keeping the table inside the model means a saved model scores from ids alone, and training never
    materialises an (interactions x features) array.
    """

    def __init__(self, n_rows: int, n_features: int, **kwargs):
        super().__init__(**kwargs)
        self.n_rows = n_rows
        self.n_features = n_features

    def build(self, input_shape):
        self.table = self.add_weight(
            shape=(self.n_rows, self.n_features), initializer="zeros", trainable=False, name="table"
        )

    def call(self, ids):
        return ops.take(self.table, ids, axis=0)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_rows": self.n_rows, "n_features": self.n_features}


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


@dataclass(frozen=True)
class TrainReport:
    val_loss: float
    epochs_trained: int
    seconds: float
    rows: int


class _EpochLog(keras.callbacks.Callback):
    """One line per epoch (losses, time); with a Reporter, also a bar (or timed lines) over its batches."""

    def __init__(self, progress: Reporter | Callable[[str], None]):
        super().__init__()
        self.reporter = as_reporter(progress)
        self.tick = None
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        if self.params.get("steps"):
            self.tick = self.reporter.progress(f"epoch {epoch + 1}", self.params["steps"], "batches")

    def on_train_batch_end(self, batch, logs=None):
        if self.tick:
            self.tick(batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.reporter.log(
            f"epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f}, "
            f"val_loss {logs.get('val_loss', float('nan')):.4f}, {time.perf_counter() - self.started:.1f} s"
        )


def epoch_logger(progress: Reporter | Callable[[str], None] | None) -> list[keras.callbacks.Callback]:
    """A callback logging each epoch's losses and time through `progress` (none without one)."""
    return [_EpochLog(progress)] if progress else []


class _HeldSignals(keras.callbacks.Callback):
    """Holds Ctrl-C and SIGTERM that arrive during `model.fit` until the current batch ends, then gives them
    to the handlers they would have met (KeyboardInterrupt, the CLI's exit 143, or the default)."""

    def __init__(self, signums: tuple[int, ...]):
        super().__init__()
        self.previous = {signum: signal.getsignal(signum) for signum in signums}
        self.pending: int | None = None

    def hold(self, signum, frame) -> None:
        self.pending = self.pending or signum

    def install(self) -> None:
        for signum in self.previous:
            signal.signal(signum, self.hold)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def deliver(self) -> None:
        if self.pending is not None:
            signum, self.pending = self.pending, None
            self.restore()
            signal.raise_signal(signum)  # its own handler runs here, in Python, between two batches

    def on_train_batch_end(self, batch, logs=None):
        self.deliver()

    def on_test_batch_end(self, batch, logs=None):
        self.deliver()

    def on_epoch_end(self, epoch, logs=None):
        self.deliver()


@contextmanager
def signals_between_batches() -> Iterator[list[keras.callbacks.Callback]]:
    """Callbacks for `model.fit` under which Ctrl-C and SIGTERM stop training at the end of a batch.

    Raised wherever the signal lands, the KeyboardInterrupt can land in Python code that TensorFlow's C++
    runtime calls back mid-step, which swallows it: training, and the run, went on to the end (seen in
    most stops of a tiny run), and once the process crashed (a segfault on Ctrl-C). Held until a callback
    runs, it unwinds `fit` like any exception. Signals that are ignored stay ignored; outside the main
    thread (where no handler can be set) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    signums = tuple(s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) not in (signal.SIG_IGN, None))
    held = _HeldSignals(signums)
    held.install()
    try:
        yield [held]
    finally:
        held.deliver()  # one that came after the last batch
        held.restore()


def train(
    model: keras.Model,
    interactions: Interactions,
    settings: SeedSettings,
    progress: Reporter | Callable[[str], None] | None = None,
) -> TrainReport:
    """Fit on shuffled rows (the table is ordered by user, so Keras' tail split would hold out whole users),
    keep 10% for validation, stop early and restore the best weights."""
    started = time.perf_counter()
    order = np.random.default_rng(settings.seed).permutation(len(interactions))
    inputs = {"user": interactions.users[order], "video": interactions.videos[order]}
    target = interactions.watch_ratio[order]
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=settings.patience, restore_best_weights=True, verbose=0
    )
    with signals_between_batches() as held:
        history = model.fit(
            inputs,
            target,
            batch_size=settings.batch_size,
            epochs=settings.epochs,
            validation_split=settings.validation_share,
            shuffle=True,
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


def tower_outputs(tower: keras.Model, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A tower's outputs (vector, bias) for every id 0..n-1, in inference mode, in batches of PREDICT_BATCH."""
    return tower.predict(np.arange(n, dtype=np.int32), verbose=0, batch_size=PREDICT_BATCH)


def predict(model: keras.Model, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """Scores for (user index, video index) pairs, float32, in input order, in batches of PREDICT_BATCH."""
    out = np.empty(len(users), dtype=np.float32)
    for start in range(0, len(users), PREDICT_BATCH):
        stop = start + PREDICT_BATCH
        batch = {
            "user": np.asarray(users[start:stop], dtype=np.int32),
            "video": np.asarray(videos[start:stop], dtype=np.int32),
        }
        out[start:stop] = ops.convert_to_numpy(model(batch, training=False))
    return out


def save(model: keras.Model, directory: Path) -> tuple[Path, str]:
    """Write `model` as a .keras file atomically (temp file + rename); return its path and sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".keras", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        model.save(tmp)
        digest = file_sha256(tmp)
        final = directory / f"{model.name}-{digest[:12]}.keras"
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final, digest


def load(path: Path) -> keras.Model:
    """A saved model of any recgen family (their custom layers are registered on import)."""
    from recgen.models.hybrid import network as hybrid  # noqa: F401

    return keras.saving.load_model(path, compile=False)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def architecture(model: keras.Model) -> str:
    """A compact JSON summary of the layers, for the `models` table."""
    return json.dumps(
        [
            {"name": layer.name, "class": type(layer).__name__, "params": int(layer.count_params())}
            for layer in model.layers
        ]
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

    def __init__(self, model: keras.Model, n_videos: int, name: str = "model"):
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
# Pairs per graph call: activations of (64k x 32) float32 (8 MB) stay in cache. Measured at full scale:
# 4.7M pairs in 0.37 s (1M-pair calls: 0.67 s); all 7,176 users in 4.9 s (256-user calls: 6.0 s).
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
        step = max(1, PAIR_CHUNK // self.n_videos)  # ~64k pairs per graph call here too (6 users of 10,728)
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
