"""Evaluation shares the actual order between scorers: it must equal metrics.user_metrics exactly."""

import numpy as np
import pytest

from recgen.evaluation import metrics
from recgen.evaluation.evaluator import EvalData, evaluate_all, evaluate_scorer
from recgen.models.baselines import RandomScorer, VideoScorer


class ArrayScorer:
    name = "array"
    predicts_watch_ratio = True

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float32)

    def score_pairs(self, users, videos):
        return self.scores[users, videos]


@pytest.fixture(scope="module")
def cells():
    """40 users x up to 60 videos, shuffled rows, coarse watch ratios (ties in the actual order too)."""
    rng = np.random.default_rng(21)
    users, videos = np.divmod(rng.permutation(40 * 60)[:2000], 60)
    truth = rng.choice([0.0, 0.5, 1.0, 2.5, 7.0], size=len(users))
    codes, uniques = np.unique(users, return_inverse=True)
    return EvalData(
        user_codes=uniques.astype(np.int64),
        user_ids=codes * 10,
        user_index=codes.astype(np.int32),
        videos=videos.astype(np.int32),
        truth=truth,
    )


@pytest.mark.parametrize(
    "scorer",
    [
        ArrayScorer(np.random.default_rng(1).normal(size=(40, 60))),
        ArrayScorer(np.random.default_rng(2).integers(0, 3, size=(40, 60))),  # many tied scores
        VideoScorer("popularity", np.arange(60) % 7, predicts_watch_ratio=False),
        RandomScorer(60, seed=5),
    ],
)
def test_evaluate_scorer_equals_user_metrics(cells, scorer):
    got = evaluate_scorer(cells, scorer, k=10)
    scores = scorer.score_pairs(cells.user_index[cells.user_codes], cells.videos).astype(np.float64)
    expected = metrics.user_metrics(
        cells.user_codes,
        cells.videos,
        scores,
        cells.truth,
        10,
        predictions=scores if scorer.predicts_watch_ratio else None,
        n_users=cells.n_users,
    )
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_every_scorer_sees_the_same_actual_order(cells):
    first = evaluate_all(cells, [RandomScorer(60, seed=1)], k=5)["random"]
    again = evaluate_all(cells, [VideoScorer("x", np.zeros(60), False), RandomScorer(60, seed=1)], k=5)["random"]
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
