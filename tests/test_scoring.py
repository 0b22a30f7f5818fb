"""Scoring every video for every user from tower vectors: numpy and FAISS's flat index exact, its inverted file
approximate; seen videos never recommended, ties broken by the lower video index."""

import numpy as np
import pytest

from recgen.constants import SCORER_FLAT, SCORER_IVF, SCORER_NUMPY
from recgen.errors import ConfigError
from recgen.features import Interactions, seen_matrix_indptr
from recgen.scoring import top_k_vectors, video_table

pytest.importorskip("faiss", reason="FAISS is not installed: pip install -e '.[faiss]'")


def identity(values):
    return values


def seen_csr(rng, n_users, n_videos, most):
    """Each user has seen 0..most random videos; user 0 has seen all but 3."""
    users, videos = [], []
    for user in range(n_users):
        count = n_videos - 3 if user == 0 else int(rng.integers(0, most + 1))
        users += [user] * count
        videos += rng.choice(n_videos, count, replace=False).tolist()
    rows = Interactions(np.array(users, np.int32), np.array(videos, np.int32), np.ones(len(users), np.float32))
    return seen_matrix_indptr(rows, n_users)


def naive(user_vec, user_bias, video_vec, video_bias, indptr, seen, k):
    """Reference: per user, a Python sort by (-score, video) over the unseen videos."""
    out = []
    for user in range(len(user_vec)):
        watched = set(seen[indptr[user] : indptr[user + 1]].tolist())
        scores = user_vec[user] @ video_vec.T + user_bias[user] + video_bias
        ranked = sorted((-float(s), v) for v, s in enumerate(scores) if v not in watched)
        out += [(user, v, -s) for s, v in ranked[:k]]
    return out


@pytest.mark.parametrize("method", [SCORER_NUMPY, SCORER_FLAT])
def test_exact_scorers_match_a_naive_sort_with_many_ties(method):
    rng = np.random.default_rng(3)
    n_users, n_videos, k = 40, 300, 20
    # small integers: every product is exact in float32 whatever the kernel, and many scores tie
    user_vec = rng.integers(-2, 3, (n_users, 4)).astype(np.float32)
    video_vec = rng.integers(-2, 3, (n_videos, 4)).astype(np.float32)
    user_bias = rng.integers(-1, 2, n_users).astype(np.float32)
    video_bias = rng.integers(-1, 2, n_videos).astype(np.float32)
    indptr, seen = seen_csr(rng, n_users, n_videos, 120)
    table = video_table(video_vec, video_bias, method)

    users, videos, scores = top_k_vectors(user_vec, user_bias, np.arange(n_users), indptr, seen, table, k, identity)

    got = list(zip(users.tolist(), videos.tolist(), scores.tolist(), strict=True))
    assert got == naive(user_vec, user_bias, video_vec, video_bias, indptr, seen, k)
    assert (users == 0).sum() == 3  # user 0 has three unseen videos left


def test_flat_gives_the_numpy_lists_on_real_valued_vectors():
    rng = np.random.default_rng(4)
    n_users, n_videos, k = 500, 4000, 50
    user_vec, video_vec = rng.normal(size=(n_users, 24)), rng.normal(size=(n_videos, 24)) * 0.3
    user_bias, video_bias = rng.normal(size=n_users), rng.normal(size=n_videos)
    indptr, seen = seen_csr(rng, n_users, n_videos, 600)
    users = np.sort(rng.choice(n_users, 300, replace=False))  # a subset, as a shard's users

    def ranked(method):
        table = video_table(video_vec, video_bias, method)
        return top_k_vectors(
            user_vec.astype(np.float32), user_bias.astype(np.float32), users, indptr, seen, table, k, np.exp
        )

    exact, flat = ranked(SCORER_NUMPY), ranked(SCORER_FLAT)
    np.testing.assert_array_equal(flat[0], exact[0])
    # Both exact up to float32 rounding: FAISS's products are summed by other kernels, so two videos whose
    # scores differ by a rounding error may swap. Equal lists everywhere else, equal scores to rounding.
    assert (flat[1] == exact[1]).mean() > 0.999
    np.testing.assert_allclose(np.sort(flat[2]), np.sort(exact[2]), rtol=1e-5)
    seen_pairs = set(zip(np.repeat(np.arange(n_users), np.diff(indptr)).tolist(), seen.tolist(), strict=True))
    assert not seen_pairs & set(zip(flat[0].tolist(), flat[1].tolist(), strict=True))


def test_ivf_returns_full_lists_of_unseen_videos_and_most_of_the_exact_ones():
    rng = np.random.default_rng(5)
    n_users, n_videos, k = 400, 6000, 50
    centres = rng.normal(size=(30, 16))  # tower vectors cluster (by category, author, ...): what IVF relies on
    video_vec = (centres[rng.integers(0, 30, n_videos)] + 0.3 * rng.normal(size=(n_videos, 16))).astype(np.float32)
    user_vec = (centres[rng.integers(0, 30, n_users)] + 0.3 * rng.normal(size=(n_users, 16))).astype(np.float32)
    user_bias, video_bias = np.zeros(n_users, np.float32), (0.1 * rng.normal(size=n_videos)).astype(np.float32)
    indptr, seen = seen_csr(rng, n_users, n_videos, 300)
    users = np.arange(n_users)

    exact = top_k_vectors(user_vec, user_bias, users, indptr, seen, video_table(video_vec, video_bias), k, identity)
    wanted = set(zip(exact[0].tolist(), exact[1].tolist(), strict=True))

    def recall(nprobe):
        table = video_table(video_vec, video_bias, SCORER_IVF, nprobe=nprobe)
        found = top_k_vectors(user_vec, user_bias, users, indptr, seen, table, k, identity)
        # a full list for every user, even where the probed clusters held too few unseen videos
        assert np.bincount(found[0], minlength=n_users).tolist() == np.bincount(exact[0], minlength=n_users).tolist()
        return found, len(wanted & set(zip(found[0].tolist(), found[1].tolist(), strict=True))) / len(wanted)

    assert 0.3 < recall(2)[1] < 0.95  # two clusters of ~150 searched: approximate
    approx, high = recall(32)
    assert high > 0.95  # the default on clustered vectors
    found = set(zip(approx[0].tolist(), approx[1].tolist(), strict=True))
    seen_pairs = set(zip(np.repeat(users, np.diff(indptr)).tolist(), seen.tolist(), strict=True))
    assert not seen_pairs & found
    per_user = np.split(approx[2], np.flatnonzero(np.diff(approx[0])) + 1)
    assert all((np.diff(scores) <= 0).all() for scores in per_user)  # each list in rank order


def test_an_unknown_scorer_is_one_clear_error():
    with pytest.raises(ConfigError, match="--scorer must be one of numpy, flat, ivf"):
        video_table(np.zeros((3, 2), np.float32), np.zeros(3, np.float32), "hnsw")
