import numpy as np
import pytest

from recgen.baselines import RandomScorer, VideoScorer, item_means
from recgen.features import Interactions, seen_matrix_indptr
from recgen.recommend import recommendation_frame, top_k


class ArrayScorer:
    """A fixed users x videos score matrix behind the Scorer protocol."""

    name = "array"
    predicts_watch_ratio = False

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float32)

    def score_pairs(self, users, videos):
        return self.scores[users, videos]

    def score_block(self, users):
        return self.scores[users]


def _seen(pairs, n_users):
    users, videos = (np.array(x, dtype=np.int32) for x in zip(*pairs, strict=True))
    return seen_matrix_indptr(Interactions(users, videos, np.ones(len(users), np.float32)), n_users)


def naive_top_k(scores, seen, k):
    """Reference: per user, a Python sort by (-score, video) over unseen videos."""
    out = []
    for u, row in enumerate(scores):
        candidates = sorted((-s, v) for v, s in enumerate(row) if (u, v) not in seen)
        out.extend((u, v, -s) for s, v in candidates[:k])
    return out


@pytest.mark.parametrize("block", [1, 3, 64])
def test_top_k_matches_a_naive_sort_with_ties_and_seen_videos(block):
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, size=(9, 30)).astype(np.float32)  # few distinct values: many ties
    seen = {(int(u), int(v)) for u, v in zip(rng.integers(0, 9, 80), rng.integers(0, 30, 80), strict=True)}
    users, videos, got_scores = top_k(ArrayScorer(scores), np.arange(9), *_seen(sorted(seen), 9), k=7, block=block)
    assert list(zip(users.tolist(), videos.tolist(), got_scores.tolist(), strict=True)) == naive_top_k(scores, seen, 7)


def test_top_k_returns_fewer_rows_when_a_user_has_seen_almost_everything():
    scores = np.arange(12, dtype=np.float32).reshape(2, 6)
    seen = [(0, v) for v in range(5)]
    users, videos, _ = top_k(ArrayScorer(scores), np.arange(2), *_seen(seen, 2), k=3)
    assert users.tolist() == [0, 1, 1, 1]
    assert videos.tolist() == [5, 5, 4, 3]


def test_recommendation_frame_ranks_restart_for_each_user():
    frame = recommendation_frame(
        7,
        np.array([0, 0, 2, 2, 2]),
        np.array([1, 0, 2, 1, 0]),
        np.array([0.9, 0.5, 0.8, 0.7, 0.1]),
        user_ids=np.array([10, 11, 12]),
        video_ids=np.array([100, 101, 102]),
        sources="model",
    )
    assert frame["rank"].tolist() == [1, 2, 1, 2, 3]
    assert frame["user_id"].tolist() == [10, 10, 12, 12, 12]
    assert frame["video_id"].tolist() == [101, 100, 102, 101, 100]
    assert set(frame["run_id"]) == {7}


def test_random_scorer_is_the_same_in_a_block_and_alone_and_differs_by_seed():
    scorer = RandomScorer(n_videos=50, seed=3)
    block = scorer.score_block(np.array([4, 9]))
    assert block.shape == (2, 50)
    assert np.array_equal(block[1], scorer.score_pairs(np.full(50, 9), np.arange(50)))
    assert 0.0 <= block.min() and block.max() < 1.0
    assert not np.array_equal(block, RandomScorer(n_videos=50, seed=4).score_block(np.array([4, 9])))


def test_item_means_are_shrunk_towards_the_global_mean():
    train = Interactions(
        users=np.zeros(4, np.int32), videos=np.array([0, 0, 0, 1], np.int32), watch_ratio=np.array([2, 2, 2, 0.0])
    )
    means = item_means(train, n_videos=3, shrinkage=2.0)
    global_mean = 1.5
    assert means[0] == pytest.approx((6 + 2 * global_mean) / 5)
    assert means[1] == pytest.approx((0 + 2 * global_mean) / 3)
    assert means[2] == pytest.approx(global_mean)  # no data: the prior alone
    scorer = VideoScorer("item_mean", means, predicts_watch_ratio=True)
    assert scorer.score_block(np.array([0, 1])).shape == (2, 3)
