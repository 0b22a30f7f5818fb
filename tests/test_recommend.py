import numpy as np
import pytest

from recgen.features import Interactions, seen_matrix_indptr
from recgen.models.baselines import RandomScorer, VideoScorer, item_means
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


def _straightforward_top_k(scores, seen_indptr, seen_videos, users, k):
    """Reference: per user, a stable argsort of the negated scores over the unseen videos."""
    out_users, out_videos, out_scores = [], [], []
    for u in users:
        row = np.array(scores[u], dtype=np.float32)
        row[seen_videos[seen_indptr[u] : seen_indptr[u + 1]]] = -np.inf
        order = np.argsort(-row, kind="stable")[:k]
        order = order[np.isfinite(row[order])]
        out_users += [u] * len(order)
        out_videos += order.tolist()
        out_scores += row[order].tolist()
    return out_users, out_videos, out_scores


@pytest.mark.parametrize("n_values", [3, 1000])
def test_shared_video_scores_take_the_global_order_path_and_match_the_straightforward_ranking(n_values):
    rng = np.random.default_rng(11)
    n_users, n_videos, k = 40, 120, 15
    video_scores = rng.integers(0, n_values, n_videos).astype(np.float32)  # n_values=3: ties everywhere
    pairs = {
        (int(u), int(v)) for u, v in zip(rng.integers(0, n_users, 2500), rng.integers(0, n_videos, 2500), strict=True)
    }
    pairs |= {(7, v) for v in range(n_videos - 4)}  # a user with only 4 unseen videos
    pairs |= {(9, v) for v in range(n_videos)}  # ... and one who has seen everything
    indptr, seen = _seen(sorted(pairs), n_users)
    users = np.array([0, 3, 7, 9, 12, 39])
    scorer = VideoScorer("shared", video_scores, predicts_watch_ratio=False)
    expected = _straightforward_top_k(np.tile(video_scores, (n_users, 1)), indptr, seen, users, k)
    got = top_k(scorer, users, indptr, seen, k=k)
    assert [x.tolist() for x in got] == [expected[0], expected[1], pytest.approx(expected[2])]
    blocked = top_k(ArrayScorer(np.tile(video_scores, (n_users, 1))), users, indptr, seen, k=k, block=4)
    assert all(np.array_equal(a, b) for a, b in zip(got, blocked, strict=True))


def test_block_top_k_with_ties_across_the_cut_matches_the_straightforward_ranking():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 2, size=(30, 500)).astype(np.float32)  # half the row ties with the k-th score
    scores[5] = 1.0  # a whole row tied
    pairs = {(int(u), int(v)) for u, v in zip(rng.integers(0, 30, 3000), rng.integers(0, 500, 3000), strict=True)}
    indptr, seen = _seen(sorted(pairs), 30)
    expected = _straightforward_top_k(scores, indptr, seen, np.arange(30), 50)
    got = top_k(ArrayScorer(scores), np.arange(30), indptr, seen, k=50, block=7)
    assert [x.tolist() for x in got] == list(expected)


def test_seen_csr_lists_each_users_distinct_videos_sorted():
    users = np.array([2, 0, 2, 2, 0, 3], np.int32)
    videos = np.array([9, 4, 1, 9, 4, 0], np.int32)
    indptr, seen = seen_matrix_indptr(Interactions(users, videos, np.ones(6, np.float32)), 5)
    assert indptr.tolist() == [0, 1, 1, 3, 4, 4]
    assert seen.tolist() == [4, 1, 9, 0]


def test_random_scorer_matches_its_definition():
    """splitmix64 of (user * n_videos + video) xor the salted seed, top 24 bits over 2**24."""
    scorer = RandomScorer(n_videos=7, seed=1)
    mask = (1 << 64) - 1

    def splitmix(z):
        z = (z + 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    salt = splitmix(1)
    expected = [[(splitmix((u * 7 + v) ^ salt) >> 40) / 2**24 for v in range(7)] for u in (0, 5)]
    np.testing.assert_array_equal(scorer.score_block(np.array([0, 5])), np.array(expected, dtype=np.float32))
