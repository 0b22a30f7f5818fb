"""The seed model's split scorer (first layer as user and video halves) equals the Keras model itself."""

import numpy as np
import pytest

from recgen.models.keras_base import predict
from recgen.models.seed import KerasScorer, SeedSettings, build_seed_model
from recgen.recommend import top_k

N_USERS, N_VIDEOS = 37, 53


@pytest.fixture(scope="module")
def seed_model():
    """A seed network with every weight random (biases too, so each term of the split is exercised)."""
    rng = np.random.default_rng(8)
    features = rng.normal(size=(N_VIDEOS, 15)).astype(np.float32)
    keras_model = build_seed_model(N_USERS, features, SeedSettings(seed=3))
    for layer in keras_model.layers:
        weights = layer.get_weights()
        if weights and layer.name != "video_features":
            layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in weights])
    return keras_model


def test_split_scorer_equals_the_keras_model_on_pairs_and_blocks(seed_model):
    scorer = KerasScorer(seed_model, N_VIDEOS)
    assert scorer._halves is not None  # the seed architecture is recognised
    users = np.repeat(np.arange(N_USERS), N_VIDEOS)
    videos = np.tile(np.arange(N_VIDEOS), N_USERS)
    expected = predict(seed_model, users, videos)
    assert np.ptp(expected) > 1.0  # not a degenerate network
    np.testing.assert_allclose(scorer.score_pairs(users, videos), expected, rtol=1e-5, atol=1e-5)
    block = scorer.score_block(np.arange(N_USERS))
    np.testing.assert_allclose(block.ravel(), expected, rtol=1e-5, atol=1e-5)
    # a pair alone, a pair inside a block: the same arithmetic, through float32 kernels that TensorFlow picks by
    # the batch's shape, so equal to float32 rounding (not always to the bit)
    np.testing.assert_allclose(block[5, 7:9], scorer.score_pairs(np.array([5, 5]), np.array([7, 8])), rtol=2e-6)


def test_split_scorer_gives_the_keras_top_k(seed_model):
    fast = KerasScorer(seed_model, N_VIDEOS)
    slow = KerasScorer(seed_model, N_VIDEOS)
    slow._halves = None  # the plain Keras path
    empty = (np.zeros(N_USERS + 1, dtype=np.int64), np.zeros(0, dtype=np.int32))
    got = top_k(fast, np.arange(N_USERS), *empty, k=10)
    want = top_k(slow, np.arange(N_USERS), *empty, k=10)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    np.testing.assert_allclose(got[2], want[2], rtol=1e-5, atol=1e-5)


def test_models_that_are_not_the_seed_architecture_are_scored_through_keras():
    import keras

    user = keras.Input(shape=(), dtype="int32", name="user")
    video = keras.Input(shape=(), dtype="int32", name="video")
    out = keras.layers.Add()([keras.ops.cast(user, "float32"), keras.ops.cast(video, "float32")])
    other = keras.Model({"user": user, "video": video}, out, name="other")
    scorer = KerasScorer(other, 4)
    assert scorer._halves is None
    np.testing.assert_array_equal(scorer.score_block(np.array([1, 2])), [[1, 2, 3, 4], [2, 3, 4, 5]])
