"""What every Keras model family shares: fixed lookup tables, training callbacks, tower outputs, atomic save.

The families (recgen.models.seed, recgen.models.hybrid) build on these; loading a saved model of any family
is `recgen.models.load_model`, which knows every family's custom layers.
"""

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
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from recgen.artifacts import file_sha256
from recgen.progress import Reporter, as_reporter

PREDICT_BATCH = 65_536


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


@dataclass(frozen=True)
class TrainReport:
    val_loss: float
    epochs_trained: int
    seconds: float
    rows: int
    user_tables: Any = None  # per-user tables written beside the model file, if the family keeps any there


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


def epoch_batches(
    inputs: dict[str, np.ndarray], targets: np.ndarray, batch_size: int, validation_share: float, seed: int
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """The training and validation batches that `fit(inputs, targets, validation_split=share)` would draw, as
    datasets: the last `validation_share` of the rows validate, in order; the others come in a new order
    each epoch, drawn from `seed`.

    Built here rather than by `fit` for two reasons. `fit` builds each epoch's iterator on a pipeline that
    tf.data tunes, and an ending iterator waits for the tuning thread's next wake-up, up to a minute later,
    with every core idle (docs/benchmarks.md). And under a fixed seed `fit` shuffles arrays into the same
    order every epoch.
    """
    n = len(targets)
    split = int(n * (1.0 - validation_share))
    if split in (0, n):
        raise ValueError(f"{n} rows cannot be split into training and validation at a share of {validation_share}")
    data = (inputs, targets)
    train = tf.nest.map_structure(lambda array: array[:split], data)
    valid = tf.nest.map_structure(lambda array: array[split:], data)

    def shuffled(epoch_seed: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(tf.range(split, dtype=tf.int64), tf.stack([epoch_seed, 0]))
        return _index_batches(order, batch_size)

    epoch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    in_order = _index_batches(tf.range(n - split, dtype=tf.int64), batch_size)
    return _gathered(train, epoch_seeds.flat_map(shuffled), batch_size), _gathered(valid, in_order, batch_size)


def _index_batches(order: tf.Tensor, batch_size: int) -> tf.data.Dataset:
    """`order` cut into batches of `batch_size` (the last one shorter) by a reshape, not row by row."""
    full = tf.shape(order, out_type=tf.int64)[0] // batch_size * batch_size
    batches = tf.data.Dataset.from_tensor_slices(tf.reshape(order[:full], (-1, batch_size)))
    return batches.concatenate(tf.data.Dataset.from_tensors(order[full:]).filter(lambda rest: tf.size(rest) > 0))


def _gathered(arrays, index_batches: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """The rows of `arrays` (a structure of equally long arrays) that each batch of indices names."""
    n_batches = -(-len(tf.nest.flatten(arrays)[0]) // batch_size)
    whole = tf.data.Dataset.from_tensors(arrays).repeat()  # one copy, not a constant in every batch's graph
    batches = tf.data.Dataset.zip(index_batches, whole).map(
        lambda rows, data: tf.nest.map_structure(lambda column: tf.gather(column, rows), data)
    )
    options = tf.data.Options()
    options.autotune.enabled = False  # see epoch_batches
    options.experimental_optimization.apply_default_optimizations = False
    return batches.prefetch(1).apply(tf.data.experimental.assert_cardinality(n_batches)).with_options(options)


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


def architecture(model: keras.Model) -> str:
    """A compact JSON summary of the layers, for the `models` table."""
    return json.dumps(
        [
            {"name": layer.name, "class": type(layer).__name__, "params": int(layer.count_params())}
            for layer in model.layers
        ]
    )
