import os
import signal

import numpy as np
import pytest

from recgen.features import Interactions
from recgen.models import load_model
from recgen.models.keras_base import epoch_batches, file_sha256, predict, save
from recgen.models.seed import KerasScorer, SeedSettings, build_seed_model, train_seed

N_USERS, N_VIDEOS = 60, 90


@pytest.fixture(scope="module")
def planted():
    """Watch ratio = a per-video effect carried by the first feature + a per-user bias + noise."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(N_VIDEOS, 15)).astype(np.float32)
    user_bias = rng.normal(0, 0.3, N_USERS)
    users = rng.integers(0, N_USERS, 40_000).astype(np.int32)
    videos = rng.integers(0, N_VIDEOS, 40_000).astype(np.int32)
    expected = 1.0 + 0.5 * features[videos, 0] + user_bias[users]
    ratio = (expected + rng.normal(0, 0.1, len(users))).astype(np.float32)
    return features, Interactions(users, videos, ratio), expected


@pytest.fixture(scope="module")
def trained(planted):
    features, rows, _ = planted
    settings = SeedSettings(epochs=8, batch_size=1024, patience=2)
    keras_model = build_seed_model(N_USERS, features, settings)
    report = train_seed(keras_model, rows, settings)
    return keras_model, report


def test_seed_model_has_the_seed_architecture(trained):
    keras_model, _ = trained
    kinds = [(layer.name, type(layer).__name__) for layer in keras_model.layers]
    assert ("user_embedding", "Embedding") in kinds and ("video_embedding", "Embedding") in kinds
    dense_units = [layer.units for layer in keras_model.layers if type(layer).__name__ == "Dense"]
    assert dense_units == [32, 32, 16, 1]
    assert keras_model.get_layer("dropout").rate == 0.2
    assert keras_model.get_layer("user_embedding").output_dim == 32
    assert keras_model.get_layer("video_features").table.shape == (N_VIDEOS, 15)


def test_training_recovers_the_planted_effects(planted, trained):
    _, rows, expected = planted
    keras_model, report = trained
    predictions = predict(keras_model, rows.users, rows.videos)
    baseline = np.mean((expected - rows.watch_ratio.mean()) ** 2)
    assert np.mean((predictions - expected) ** 2) < 0.2 * baseline
    assert np.corrcoef(predictions, expected)[0, 1] > 0.9
    assert 1 <= report.epochs_trained <= 8 and report.val_loss < baseline


def test_scoring_a_pair_alone_equals_scoring_it_in_a_batch(planted, trained):
    _, rows, _ = planted
    keras_model, _ = trained
    batch = predict(keras_model, rows.users[:500], rows.videos[:500])
    alone = np.array([predict(keras_model, rows.users[i : i + 1], rows.videos[i : i + 1])[0] for i in range(20)])
    np.testing.assert_allclose(alone, batch[:20], rtol=1e-5, atol=1e-6)
    scorer = KerasScorer(keras_model, N_VIDEOS)
    block = scorer.score_block(np.array([3, 7]))
    np.testing.assert_allclose(block[1, :40], scorer.score_pairs(np.full(40, 7), np.arange(40)), rtol=1e-5, atol=1e-6)


def test_save_then_load_gives_identical_predictions(tmp_path, planted, trained):
    _, rows, _ = planted
    keras_model, _ = trained
    path, digest = save(keras_model, tmp_path)
    assert path.suffix == ".keras" and file_sha256(path) == digest
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    reloaded = load_model(path)
    np.testing.assert_array_equal(
        predict(reloaded, rows.users[:2000], rows.videos[:2000]),
        predict(keras_model, rows.users[:2000], rows.videos[:2000]),
    )


def test_training_is_reproducible_with_the_same_seed(planted):
    features, rows, _ = planted
    settings = SeedSettings(epochs=1, batch_size=4096)
    first = build_seed_model(N_USERS, features, settings)
    train_seed(first, rows, settings)
    second = build_seed_model(N_USERS, features, settings)
    train_seed(second, rows, settings)
    np.testing.assert_allclose(
        predict(first, rows.users[:100], rows.videos[:100]),
        predict(second, rows.users[:100], rows.videos[:100]),
        rtol=1e-4,
        atol=1e-5,
    )


def _epochs(dataset, n_epochs: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each epoch's rows, as (ids, targets) in the order the batches gave them."""
    epochs = []
    for _ in range(n_epochs):
        batches = list(dataset.as_numpy_iterator())
        epochs.append(tuple(np.concatenate(part) for part in zip(*((x["id"], y) for x, y in batches), strict=True)))
    return epochs


def test_epoch_batches_validate_on_the_tail_and_draw_every_other_row_once_in_a_new_order_each_epoch():
    ids = np.arange(1_003, dtype=np.int32)
    targets = ids.astype(np.float32) / 10
    train, valid = epoch_batches({"id": ids}, targets, batch_size=100, validation_share=0.1, seed=7)
    # As fit's validation_split: the rows from floor(90%) on validate, in order. Each side's last batch is short.
    assert train.cardinality() == 10 and valid.cardinality() == 2
    ((valid_ids, valid_targets),) = _epochs(valid, 1)
    np.testing.assert_array_equal(valid_ids, ids[902:])
    np.testing.assert_array_equal(valid_targets, targets[902:])
    epochs = _epochs(train, 3)
    for epoch_ids, epoch_targets in epochs:
        np.testing.assert_array_equal(np.sort(epoch_ids), ids[:902])
        np.testing.assert_array_equal(epoch_targets, targets[epoch_ids])  # rows stay whole
    orders = [tuple(epoch_ids) for epoch_ids, _ in epochs]
    assert len(set(orders)) == 3 and orders[0] != tuple(ids[:902])
    # The same seed draws the same orders.
    again, _ = epoch_batches({"id": ids}, targets, batch_size=100, validation_share=0.1, seed=7)
    assert [tuple(epoch_ids) for epoch_ids, _ in _epochs(again, 3)] == orders


def test_epoch_batches_refuse_rows_too_few_to_split():
    with pytest.raises(ValueError, match="1 rows cannot be split"):
        epoch_batches({"id": np.arange(1)}, np.zeros(1, np.float32), batch_size=2, validation_share=0.1, seed=7)


def _exit_143(signum, frame):
    raise SystemExit(128 + signum)


@pytest.mark.parametrize(
    "signum, handler, raised",
    [(signal.SIGINT, signal.default_int_handler, KeyboardInterrupt), (signal.SIGTERM, _exit_143, SystemExit)],
)
def test_a_signal_during_training_stops_it_at_the_next_batch_with_the_handler_in_place(
    planted, signum, handler, raised
):
    features, rows, _ = planted
    settings = SeedSettings(epochs=6, batch_size=1024, patience=6)
    keras_model = build_seed_model(N_USERS, features, settings)
    lines = []

    def progress(line):
        lines.append(line)
        if line.startswith("epoch 1:"):  # the first epoch's end: the next batch ends in the second one
            os.kill(os.getpid(), signum)

    before = signal.signal(signum, handler)
    try:
        with pytest.raises(raised):
            train_seed(keras_model, rows, settings, progress=progress)
        assert signal.getsignal(signum) is handler  # restored
    finally:
        signal.signal(signum, before)
    assert [line.split(":")[0] for line in lines] == ["epoch 1"]
