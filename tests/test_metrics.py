"""Tests for recgen.metrics: hand-computed cases, a naive per-user reference, limits, ties and properties."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from recgen.evaluation import metrics
from recgen.evaluation.metrics import (
    catalog_coverage,
    gini,
    hit_ratio_at_k,
    mae,
    ndcg_at_k,
    popularity_percentile,
    precision_at_k,
    rank_positions,
    recall_at_k,
    rmse,
    seed_ndcg_at_k,
    spearman,
    user_metrics,
)

PER_USER = ("hit_ratio", "ndcg", "seed_ndcg", "precision", "recall", "spearman", "mae", "rmse")
UNIT_RANGE = ("hit_ratio", "ndcg", "seed_ndcg", "precision", "recall")
TOL = 1e-12  # Float sums may differ from the reference in the last bits, never more.


# ---------------------------------------------------------------- naive reference (plain Python, per user)


def _naive_average_ranks(values: list[float]) -> list[float]:
    """0-based positions in descending order, tied values sharing their mean position."""
    ordered = sorted(values, reverse=True)
    ranks = []
    for value in values:
        spots = [j for j, other in enumerate(ordered) if other == value]
        ranks.append(sum(spots) / len(spots))
    return ranks


def naive_user_metrics(users, items, scores, truth, k, predictions=None, n_users=None, cap=5.0, threshold=2.0):
    users, items, scores, truth = (list(np.asarray(a).tolist()) for a in (users, items, scores, truth))
    n_users = max(users) + 1 if n_users is None else n_users
    out = {name: [math.nan] * n_users for name in PER_USER}
    out["n_items"] = [0] * n_users
    out["n_relevant"] = [0] * n_users
    out["pred_pos"] = [None] * len(users)
    out["true_pos"] = [None] * len(users)
    for u in range(n_users):
        cells = [i for i in range(len(users)) if users[i] == u]
        relevant = [i for i in cells if truth[i] > threshold]
        out["n_items"][u] = len(cells)
        out["n_relevant"][u] = len(relevant)
        if not cells:
            continue
        predicted = sorted(cells, key=lambda i: (-scores[i], items[i]))
        ideal = sorted(cells, key=lambda i: (-truth[i], items[i]))
        for position, i in enumerate(predicted):
            out["pred_pos"][i] = position
        for position, i in enumerate(ideal):
            out["true_pos"][i] = position
        top, best = predicted[:k], ideal[:k]
        length = min(k, len(cells))
        out["hit_ratio"][u] = len(set(top) & set(best)) / length
        dcg = sum(min(truth[i], cap) / math.log2(r + 2) for r, i in enumerate(top))
        idcg = sum(min(truth[i], cap) / math.log2(r + 2) for r, i in enumerate(best))
        out["ndcg"][u] = dcg / idcg if idcg > 0 else 0.0
        raw = [truth[i] for i in top]
        seed_dcg = sum(g / math.log2(r + 2) for r, g in enumerate(raw))
        seed_idcg = sum(g / math.log2(r + 2) for r, g in enumerate(sorted(raw, reverse=True)))
        out["seed_ndcg"][u] = seed_dcg / seed_idcg if seed_idcg > 0 else 0.0
        hits = sum(1 for i in top if truth[i] > threshold)
        out["precision"][u] = hits / length
        out["recall"][u] = hits / len(relevant) if relevant else math.nan
        if len(cells) >= 2:
            x = _naive_average_ranks([scores[i] for i in cells])
            y = _naive_average_ranks([truth[i] for i in cells])
            mx, my = sum(x) / len(x), sum(y) / len(y)
            sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
            sxx = sum((a - mx) ** 2 for a in x)
            syy = sum((b - my) ** 2 for b in y)
            out["spearman"][u] = sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0
        if predictions is not None:
            errors = [predictions[i] - truth[i] for i in cells]
            out["mae"][u] = sum(abs(e) for e in errors) / len(errors)
            out["rmse"][u] = math.sqrt(sum(e * e for e in errors) / len(errors))
    return {name: np.array(values) for name, values in out.items()}


def random_cells(rng, n_users=40, max_items=30, n_catalog=60, tie_levels=5):
    """Random evaluation cells with many ties in both scores and truth, and some tiny or empty users."""
    users, items = [], []
    for u in range(n_users):
        n = int(rng.choice([0, 1, 2, 3, rng.integers(4, max_items + 1)]))
        users += [u] * n
        items += rng.choice(n_catalog, size=n, replace=False).tolist()
    size = len(users)
    scores = rng.integers(0, tie_levels, size).astype(float)
    continuous = rng.random(size) < 0.3
    scores[continuous] = rng.normal(size=int(continuous.sum()))
    truth = np.round(rng.exponential(1.5, size), 1)
    truth[rng.random(size) < 0.2] = 0.0
    perm = rng.permutation(size)
    return (np.array(users)[perm], np.array(items)[perm], scores[perm], truth[perm])


def assert_close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=TOL, atol=TOL, equal_nan=True)


def metrics_from_functions(users, items, scores, truth, k, predictions=None, n_users=None):
    """Every per-user metric through the individual public functions (not user_metrics)."""
    pred_pos = rank_positions(users, items, scores, n_users=n_users)
    true_pos = rank_positions(users, items, truth, n_users=n_users)
    result = {
        "hit_ratio": hit_ratio_at_k(users, pred_pos, true_pos, k, n_users=n_users),
        "ndcg": ndcg_at_k(users, pred_pos, true_pos, truth, k, n_users=n_users),
        "seed_ndcg": seed_ndcg_at_k(users, pred_pos, truth, k, n_users=n_users),
        "precision": precision_at_k(users, pred_pos, truth, k, n_users=n_users),
        "recall": recall_at_k(users, pred_pos, truth, k, n_users=n_users),
        "spearman": spearman(users, scores, truth, n_users=n_users),
        "pred_pos": pred_pos,
        "true_pos": true_pos,
    }
    if predictions is not None:
        result["mae"] = mae(users, predictions, truth, n_users=n_users)
        result["rmse"] = rmse(users, predictions, truth, n_users=n_users)
    return result


# ---------------------------------------------------------------- hand-computed cases

# User 0: items 10..13. Predicted order by score: 10 (0.9), 11 (0.8), 13 (0.5), 12 (0.1).
#                       Actual order by truth:    13 (6.0), 11 (3.0), 10 (1.0), 12 (0.0).
# User 1: a single item (fewer than k). User 2: no cells at all (n_users=3).
HAND_USERS = np.array([0, 0, 0, 0, 1])
HAND_ITEMS = np.array([10, 11, 12, 13, 5])
HAND_SCORES = np.array([0.9, 0.8, 0.1, 0.5, 0.3])
HAND_TRUTH = np.array([1.0, 3.0, 0.0, 6.0, 0.5])
HAND_PREDICTIONS = np.array([1.5, 2.0, 0.0, 4.0, 0.5])
L3 = math.log2(3)


def hand_positions():
    pred = rank_positions(HAND_USERS, HAND_ITEMS, HAND_SCORES, n_users=3)
    true = rank_positions(HAND_USERS, HAND_ITEMS, HAND_TRUTH, n_users=3)
    return pred, true


def test_rank_positions_hand():
    pred, true = hand_positions()
    # Items 10, 11, 12, 13 sit at predicted positions 0, 1, 3, 2 and at actual positions 2, 1, 3, 0.
    assert pred.tolist() == [0, 1, 3, 2, 0]
    assert true.tolist() == [2, 1, 3, 0, 0]


def test_hit_ratio_hand():
    pred, true = hand_positions()
    # User 0, k=2: predicted {10, 11} ∩ actual {13, 11} = {11} -> 1/2. User 1: 1 item, min(2, 1) = 1 -> 1/1.
    assert_close(hit_ratio_at_k(HAND_USERS, pred, true, 2, n_users=3), [0.5, 1.0, np.nan])
    # k=3: predicted {10, 11, 13} ∩ actual {13, 11, 10} -> 3/3.
    assert_close(hit_ratio_at_k(HAND_USERS, pred, true, 3, n_users=3), [1.0, 1.0, np.nan])


def test_ndcg_hand():
    pred, true = hand_positions()
    # Gains min(truth, 5): 10 -> 1, 11 -> 3, 12 -> 0, 13 -> 5 (6 capped).
    # DCG@2 = 1/log2(2) + 3/log2(3) = 2.8928; IDCG@2 = 5/log2(2) + 3/log2(3) = 6.8928.
    expected_0 = (1 + 3 / L3) / (5 + 3 / L3)
    # User 1: the one item is both lists: 0.5 / 0.5 = 1.
    assert_close(ndcg_at_k(HAND_USERS, pred, true, HAND_TRUTH, 2, n_users=3), [expected_0, 1.0, np.nan])
    assert expected_0 == pytest.approx(0.419683, abs=1e-6)
    # Without the cap (cap 10), IDCG@2 = 6 + 3/log2(3).
    uncapped = ndcg_at_k(HAND_USERS, pred, true, HAND_TRUTH, 2, gain_cap=10.0, n_users=3)
    assert uncapped[0] == pytest.approx((1 + 3 / L3) / (6 + 3 / L3), rel=1e-12)


def test_seed_ndcg_hand():
    pred, _ = hand_positions()
    # Predicted top-2 gains (raw): [1, 3]. DCG = 1 + 3/log2(3) = 2.8928.
    # "IDCG" = the same two re-sorted: [3, 1] -> 3 + 1/log2(3) = 3.6309. Ratio 0.7967.
    expected_0 = (1 + 3 / L3) / (3 + 1 / L3)
    assert_close(seed_ndcg_at_k(HAND_USERS, pred, HAND_TRUTH, 2, n_users=3), [expected_0, 1.0, np.nan])
    assert expected_0 == pytest.approx(0.796708, abs=1e-6)


def test_seed_ndcg_uses_raw_gain():
    # Top-2 truths [6, 20] re-sorted [20, 6]: (6 + 20/log2 3) / (20 + 6/log2 3); a cap at 5 would give 1.0.
    users, pos, truth = np.array([0, 0]), np.array([0, 1]), np.array([6.0, 20.0])
    assert seed_ndcg_at_k(users, pos, truth, 2)[0] == pytest.approx((6 + 20 / L3) / (20 + 6 / L3), rel=1e-12)


def test_precision_recall_hand():
    pred, _ = hand_positions()
    # Relevant (> 2): items 11 (3.0) and 13 (6.0). Top-2 {10, 11} holds one: precision 1/2, recall 1/2.
    # User 1: truth 0.5, nothing relevant: precision 0/1, recall undefined.
    assert_close(precision_at_k(HAND_USERS, pred, HAND_TRUTH, 2, n_users=3), [0.5, 0.0, np.nan])
    assert_close(recall_at_k(HAND_USERS, pred, HAND_TRUTH, 2, n_users=3), [0.5, np.nan, np.nan])
    # k=3 adds item 13: precision 2/3, recall 2/2. Threshold 5: only item 13 is relevant.
    assert_close(precision_at_k(HAND_USERS, pred, HAND_TRUTH, 3, n_users=3), [2 / 3, 0.0, np.nan])
    assert_close(recall_at_k(HAND_USERS, pred, HAND_TRUTH, 3, n_users=3), [1.0, np.nan, np.nan])
    assert_close(recall_at_k(HAND_USERS, pred, HAND_TRUTH, 2, threshold=5.0, n_users=3), [0.0, np.nan, np.nan])


def test_mae_rmse_hand():
    # User 0 errors: |1.5-1| = 0.5, |2-3| = 1, 0, |4-6| = 2 -> MAE 3.5/4 = 0.875,
    # RMSE sqrt((0.25 + 1 + 0 + 4)/4) = sqrt(1.3125). User 1: exact prediction -> 0.
    assert_close(mae(HAND_USERS, HAND_PREDICTIONS, HAND_TRUTH, n_users=3), [0.875, 0.0, np.nan])
    assert_close(rmse(HAND_USERS, HAND_PREDICTIONS, HAND_TRUTH, n_users=3), [math.sqrt(1.3125), 0.0, np.nan])


def test_spearman_hand():
    # User 0 ranks over items 10..13: by score [0, 1, 3, 2], by truth [2, 1, 3, 0].
    # d = [-2, 0, 0, 2], Σd² = 8 -> 1 - 6·8 / (4·15) = 0.2. User 1 has one item: undefined.
    assert_close(spearman(HAND_USERS, HAND_SCORES, HAND_TRUTH, n_users=3), [0.2, np.nan, np.nan])


def test_spearman_ties_share_average_rank():
    # Scores [3, 1, 1, 0] -> average ranks [0, 1.5, 1.5, 3]; truth [4, 3, 2, 1] -> [0, 1, 2, 3].
    # Centred: x = [-1.5, 0, 0, 1.5], y = [-1.5, -0.5, 0.5, 1.5]: Σxy = 4.5, Σx² = 4.5, Σy² = 5 -> 4.5/√22.5.
    users = np.zeros(4, dtype=int)
    rho = spearman(users, np.array([3.0, 1.0, 1.0, 0.0]), np.array([4.0, 3.0, 2.0, 1.0]))
    assert rho[0] == pytest.approx(4.5 / math.sqrt(22.5), rel=1e-12)
    assert rho[0] == pytest.approx(stats.spearmanr([3, 1, 1, 0], [4, 3, 2, 1]).statistic, rel=1e-12)


def test_spearman_constant_side_is_zero():
    users = np.zeros(3, dtype=int)
    assert spearman(users, np.array([1.0, 1.0, 1.0]), np.array([0.0, 2.0, 1.0]))[0] == 0.0
    assert spearman(users, np.array([3.0, 2.0, 1.0]), np.array([0.5, 0.5, 0.5]))[0] == 0.0


def test_user_metrics_hand():
    got = user_metrics(HAND_USERS, HAND_ITEMS, HAND_SCORES, HAND_TRUTH, 2, predictions=HAND_PREDICTIONS, n_users=3)
    assert_close(got["hit_ratio"], [0.5, 1.0, np.nan])
    assert_close(got["ndcg"], [(1 + 3 / L3) / (5 + 3 / L3), 1.0, np.nan])
    assert_close(got["seed_ndcg"], [(1 + 3 / L3) / (3 + 1 / L3), 1.0, np.nan])
    assert_close(got["precision"], [0.5, 0.0, np.nan])
    assert_close(got["recall"], [0.5, np.nan, np.nan])
    assert_close(got["spearman"], [0.2, np.nan, np.nan])
    assert_close(got["mae"], [0.875, 0.0, np.nan])
    assert_close(got["rmse"], [math.sqrt(1.3125), 0.0, np.nan])
    assert got["n_items"].tolist() == [4, 1, 0]
    assert got["n_relevant"].tolist() == [2, 0, 0]
    without = user_metrics(HAND_USERS, HAND_ITEMS, HAND_SCORES, HAND_TRUTH, 2, n_users=3)
    assert np.isnan(without["mae"]).all() and np.isnan(without["rmse"]).all()
    assert set(got) == set(PER_USER) | {"n_items", "n_relevant"}


def test_user_metrics_defaults_come_from_constants():
    assert metrics.user_metrics.__defaults__ == (metrics.TOP_K,)
    assert metrics.TOP_K == 50 and metrics.NDCG_GAIN_CAP == 5.0 and metrics.RELEVANT_WATCH_RATIO == 2.0
    # 60 items, truth = item id: with the default k = 50, a perfect ranking recalls 50 of the 57 items > 2.
    users, items = np.zeros(60, dtype=int), np.arange(60)
    got = user_metrics(users, items, items.astype(float), items.astype(float))
    assert got["recall"][0] == pytest.approx(50 / 57)


# ---------------------------------------------------------------- the seed's inflation


def test_constant_predictor_inflates_seed_ndcg_worked_example():
    # Six items, truth [0.5, 0.2, 0.1, 4.0, 3.0, 2.5]; constant scores, so the list is items 0, 1 (by id).
    # seed: DCG = 0.5 + 0.2/log2(3); its "IDCG" re-sorts [0.5, 0.2], already sorted -> exactly 1.0.
    # proper: IDCG = 4 + 3/log2(3) = 5.8928, so NDCG = (0.5 + 0.2/log2 3) / (4 + 3/log2 3) = 0.1063.
    users, items = np.zeros(6, dtype=int), np.arange(6)
    truth = np.array([0.5, 0.2, 0.1, 4.0, 3.0, 2.5])
    got = user_metrics(users, items, np.zeros(6), truth, 2)
    assert got["seed_ndcg"][0] == 1.0
    assert got["ndcg"][0] == pytest.approx((0.5 + 0.2 / L3) / (4 + 3 / L3), rel=1e-12)
    assert got["ndcg"][0] < 0.11


def test_constant_predictor_inflates_seed_ndcg_on_random_data():
    rng = np.random.default_rng(7)
    n_users, n_items = 200, 300
    users = np.repeat(np.arange(n_users), n_items)
    items = np.tile(np.arange(n_items), n_users)
    truth = rng.lognormal(-0.3, 0.8, users.size)
    constant = user_metrics(users, items, np.ones(users.size), truth, 50)
    oracle = user_metrics(users, items, truth, truth, 50)
    # Normalised by its own arbitrary list, the constant predictor looks good; proper NDCG says it is not.
    assert constant["seed_ndcg"].mean() > 0.6
    assert constant["ndcg"].mean() < 0.45
    assert constant["seed_ndcg"].mean() > constant["ndcg"].mean() + 0.25
    assert np.all(oracle["ndcg"] == 1.0) and np.all(oracle["seed_ndcg"] == 1.0)


# ---------------------------------------------------------------- limits


def test_perfect_ranking_scores_one():
    rng = np.random.default_rng(1)
    users, items, _, truth = random_cells(rng)
    got = user_metrics(users, items, truth.copy(), truth, 5)
    present = got["n_items"] > 0
    assert np.all(got["hit_ratio"][present] == 1.0)
    has_gain = np.bincount(users, weights=truth, minlength=present.size) > 0
    assert np.all(got["ndcg"][has_gain] == 1.0)
    assert np.all(got["ndcg"][present & ~has_gain] == 0.0)
    assert np.all(got["seed_ndcg"][has_gain] == 1.0)
    varied = (got["n_items"] >= 2) & (np.nan_to_num(got["spearman"], nan=-9) != 0.0)
    assert varied.sum() > 10
    assert np.all(got["spearman"][varied] == pytest.approx(1.0, abs=TOL))


def test_reversed_ranking_spearman_minus_one():
    users = np.repeat(np.arange(3), 7)
    items = np.tile(np.arange(7), 3)
    truth = np.random.default_rng(2).permutation(21).astype(float)  # distinct values
    assert np.allclose(spearman(users, -truth, truth), -1.0, atol=TOL)
    assert np.allclose(spearman(users, truth, truth), 1.0, atol=TOL)
    # Reversed, the top-3 of 7 misses the actual top-3 entirely.
    got = user_metrics(users, items, -truth, truth, 3)
    assert np.all(got["hit_ratio"] == 0.0)


def test_no_relevant_hits_precision_zero():
    # Items 0-2 relevant (truth 3) but ranked last; items 3-9 irrelevant ranked first. k=5.
    users, items = np.zeros(10, dtype=int), np.arange(10)
    truth = np.array([3.0, 3.0, 3.0] + [1.0] * 7)
    scores = -truth
    got = user_metrics(users, items, scores, truth, 5)
    assert got["precision"][0] == 0.0 and got["recall"][0] == 0.0
    # No relevant item at all: precision 0, recall undefined.
    none_relevant = user_metrics(users, items, scores, np.ones(10), 5)
    assert none_relevant["precision"][0] == 0.0 and np.isnan(none_relevant["recall"][0])


def test_zero_gain_user_ndcg_zero():
    users, items, zeros = np.zeros(4, dtype=int), np.arange(4), np.zeros(4)
    got = user_metrics(users, items, np.arange(4.0), zeros, 2)
    assert got["ndcg"][0] == 0.0 and got["seed_ndcg"][0] == 0.0


def test_users_with_fewer_than_k_items():
    # User 0: 3 items, k = 50: every list holds all three, so hit ratio is 1 whatever the scores,
    # precision is relevant/3 and recall is 1.
    users, items = np.zeros(3, dtype=int), np.array([4, 9, 2])
    truth, scores = np.array([2.5, 0.1, 7.0]), np.array([0.0, 1.0, 0.5])
    got = user_metrics(users, items, scores, truth, 50)
    assert got["hit_ratio"][0] == 1.0
    assert got["precision"][0] == pytest.approx(2 / 3)
    assert got["recall"][0] == 1.0
    # NDCG still rewards the order: predicted 9 (0.1), 2 (5 capped), 4 (2.5) vs ideal 2, 4, 9.
    dcg = 0.1 + 5 / L3 + 2.5 / 2
    idcg = 5 + 2.5 / L3 + 0.1 / 2
    assert got["ndcg"][0] == pytest.approx(dcg / idcg, rel=1e-12)


# ---------------------------------------------------------------- ties and input order


def test_ties_broken_by_item_id():
    # All scores equal: the list is by item id ascending whatever the row order.
    users, items = np.zeros(4, dtype=int), np.array([30, 7, 12, 2])
    assert rank_positions(users, items, np.ones(4)).tolist() == [3, 1, 2, 0]
    # Partial ties: scores [1, 2, 2, 1] -> 7 and 12 first (by id), then 2 before 30.
    assert rank_positions(users, items, np.array([1.0, 2.0, 2.0, 1.0])).tolist() == [3, 0, 1, 2]
    # -0.0 and 0.0 are the same value: tie broken by item id.
    assert rank_positions(users[:2], items[:2], np.array([-0.0, 0.0])).tolist() == [1, 0]


def test_tie_break_decides_hit_ratio():
    # Truth ties between items 1 and 3 (both 2.0): the actual top-2 is {0, 1} by the item-id rule,
    # so a prediction of {0, 3} gets 1/2 and one of {0, 1} gets 2/2.
    users, items = np.zeros(4, dtype=int), np.arange(4)
    truth = np.array([5.0, 2.0, 0.0, 2.0])
    assert user_metrics(users, items, np.array([9.0, 1.0, 0.0, 8.0]), truth, 2)["hit_ratio"][0] == 0.5
    assert user_metrics(users, items, np.array([9.0, 8.0, 0.0, 1.0]), truth, 2)["hit_ratio"][0] == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_permuting_rows_never_changes_results(seed):
    rng = np.random.default_rng(seed)
    users, items, scores, truth = random_cells(rng)
    predictions = rng.random(users.size)
    base = user_metrics(users, items, scores, truth, 4, predictions=predictions)
    base_pos = rank_positions(users, items, scores)
    perm = rng.permutation(users.size)
    shuffled = user_metrics(users[perm], items[perm], scores[perm], truth[perm], 4, predictions=predictions[perm])
    assert np.array_equal(rank_positions(users[perm], items[perm], scores[perm]), base_pos[perm])
    for name in UNIT_RANGE:  # ranking metrics: bit-for-bit
        np.testing.assert_array_equal(shuffled[name], base[name])
    for name in ("spearman", "mae", "rmse"):  # sums over all cells, in row order: to the last bits
        assert_close(shuffled[name], base[name])
    assert np.array_equal(shuffled["n_items"], base["n_items"])


# ---------------------------------------------------------------- against the naive reference


@pytest.mark.parametrize("seed,k", [(0, 1), (1, 3), (2, 10), (3, 50)])
def test_matches_naive_reference(seed, k):
    rng = np.random.default_rng(seed)
    users, items, scores, truth = random_cells(rng)
    predictions = rng.normal(1.0, 1.0, users.size)
    n_users = int(users.max()) + 3  # two trailing users without cells
    expected = naive_user_metrics(users, items, scores, truth, k, predictions=predictions, n_users=n_users)
    got = user_metrics(users, items, scores, truth, k, predictions=predictions, n_users=n_users)
    separate = metrics_from_functions(users, items, scores, truth, k, predictions=predictions, n_users=n_users)
    assert np.array_equal(separate["pred_pos"], expected["pred_pos"].astype(int))
    assert np.array_equal(separate["true_pos"], expected["true_pos"].astype(int))
    for name in PER_USER:
        assert_close(got[name], expected[name])
        assert_close(separate[name], expected[name])
    assert np.array_equal(got["n_items"], expected["n_items"])
    assert np.array_equal(got["n_relevant"], expected["n_relevant"])


def test_spearman_matches_scipy():
    rng = np.random.default_rng(11)
    users, _, scores, truth = random_cells(rng, n_users=30, max_items=40)
    got = spearman(users, scores, truth)
    checked = 0
    for u in range(got.size):
        x, y = scores[users == u], truth[users == u]
        if x.size >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0:
            assert got[u] == pytest.approx(stats.spearmanr(x, y).statistic, abs=TOL)
            checked += 1
    assert checked > 10


def test_huge_item_ids_and_many_users_take_the_general_paths():
    # Item ids near 2**60 overflow the packed sort key (lexsort fallback); user codes above 2**16 skip the
    # 16-bit radix sort. Results must not change.
    rng = np.random.default_rng(5)
    users, items, scores, truth = random_cells(rng, n_users=15)
    big_items = items.astype(np.int64) * (2**54) + 7
    expected = rank_positions(users, items, scores)
    assert np.array_equal(rank_positions(users, big_items, scores), expected)
    spread_users = users * 7000  # codes up to ~98,000
    spread = rank_positions(spread_users, items, scores)
    assert np.array_equal(spread, expected)
    assert_close(spearman(spread_users, scores, truth)[users * 7000], spearman(users, scores, truth)[users])


# ---------------------------------------------------------------- catalogue-level metrics


def test_catalog_coverage():
    # Items {0, 1, 3} of 5 recommended -> 3/5.
    assert catalog_coverage(np.array([0, 1, 1, 3]), 5) == 0.6
    assert catalog_coverage(np.arange(5), 5) == 1.0
    assert catalog_coverage(np.array([], dtype=int), 5) == 0.0
    with pytest.raises(ValueError):
        catalog_coverage(np.array([5]), 5)


def test_gini():
    # Uniform: every item twice -> 0.
    assert gini(np.repeat(np.arange(4), 2), 4) == 0.0
    # All on one item of 4 -> (n-1)/n = 0.75; of 1000 -> 0.999.
    assert gini(np.zeros(10, dtype=int), 4) == pytest.approx(0.75)
    assert gini(np.zeros(10, dtype=int), 1000) == pytest.approx(0.999)
    # Counts [0, 0, 1, 3] (items 2 and 3 of 4): Σ(2i-n-1)x = (-3)(0) + (-1)(0) + (1)(1) + (3)(3) = 10,
    # n Σx = 4·4 = 16 -> 0.625 (= Σ|xi-xj| / (2 n² μ) = 20 / 32).
    assert gini(np.array([3, 2, 3, 3]), 4) == pytest.approx(0.625)
    # Never-recommended items count: the same rows over a larger catalogue are more concentrated.
    assert gini(np.array([0, 1]), 2) == 0.0
    assert gini(np.array([0, 1]), 4) == pytest.approx(0.5)
    assert math.isnan(gini(np.array([], dtype=int), 4))


def test_popularity_percentile():
    # Popularity [10, 0, 5, 5, 20]: ascending ranks item1 0, items 2 & 3 share (1+2)/2 = 1.5, item0 3, item4 4.
    # Percentiles (/4): item0 .75, item1 0, item2 .375, item3 .375, item4 1.
    popularity = np.array([10, 0, 5, 5, 20])
    assert popularity_percentile(np.array([4]), popularity) == 1.0
    assert popularity_percentile(np.array([1]), popularity) == 0.0
    assert popularity_percentile(np.array([2]), popularity) == 0.375
    # Rows [4, 4, 1, 2] -> (1 + 1 + 0 + .375) / 4 = 0.59375: repeated rows weigh.
    assert popularity_percentile(np.array([4, 4, 1, 2]), popularity) == pytest.approx(0.59375)
    assert popularity_percentile(np.array([0, 1]), np.full(2, 3.0)) == 0.5  # all tied
    assert math.isnan(popularity_percentile(np.array([], dtype=int), popularity))
    with pytest.raises(ValueError):
        popularity_percentile(np.array([5]), popularity)


# ---------------------------------------------------------------- validation


def test_rejects_bad_input():
    users, items = np.array([0, 0]), np.array([1, 2])
    with pytest.raises(ValueError, match="NaN"):
        rank_positions(users, items, np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=">= 0"):
        ndcg_at_k(users, np.array([0, 1]), np.array([0, 1]), np.array([1.0, -1.0]), 2)
    with pytest.raises(ValueError, match="same length"):
        rank_positions(users, items, np.array([1.0]))
    with pytest.raises(ValueError, match="n_users"):
        rank_positions(np.array([0, 3]), items, np.ones(2), n_users=2)
    with pytest.raises(ValueError, match="k must"):
        hit_ratio_at_k(users, np.array([0, 1]), np.array([0, 1]), 0)
    with pytest.raises(ValueError, match="integer"):
        rank_positions(np.array([0.0, 1.0]), items, np.ones(2))


def test_empty_input():
    empty_int, empty_float = np.array([], dtype=int), np.array([])
    assert rank_positions(empty_int, empty_int, empty_float).size == 0
    got = user_metrics(empty_int, empty_int, empty_float, empty_float, 5, n_users=2)
    assert all(np.isnan(got[name]).all() and got[name].size == 2 for name in PER_USER)


# ---------------------------------------------------------------- properties


@st.composite
def evaluation_cells(draw):
    n_users = draw(st.integers(1, 5))
    tie_prone = st.sampled_from([0.0, -0.0, 1.0, 2.0, 2.5, 7.0])
    users, items, scores, truth = [], [], [], []
    for u in range(n_users):
        user_items = draw(st.lists(st.integers(0, 40), max_size=9, unique=True))
        users += [u] * len(user_items)
        items += user_items
        scores += draw(
            st.lists(
                st.one_of(tie_prone, st.floats(-1e6, 1e6, allow_nan=False)),
                min_size=len(user_items),
                max_size=len(user_items),
            )
        )
        truth += draw(
            st.lists(
                st.one_of(tie_prone, st.floats(0, 600, allow_nan=False)),
                min_size=len(user_items),
                max_size=len(user_items),
            )
        )
    k = draw(st.integers(1, 10))
    seed = draw(st.integers(0, 2**32 - 1))
    as_array = np.array
    return as_array(users, dtype=int), as_array(items, dtype=int), as_array(scores), as_array(truth), k, n_users, seed


@settings(max_examples=150, deadline=None)
@given(evaluation_cells())
def test_property_matches_naive_and_stays_in_range(cells):
    users, items, scores, truth, k, n_users, _ = cells
    got = user_metrics(users, items, scores, truth, k, n_users=n_users)
    expected = naive_user_metrics(users, items, scores, truth, k, n_users=n_users)
    for name in PER_USER:
        assert_close(got[name], expected[name])
    for name in UNIT_RANGE:
        values = got[name][~np.isnan(got[name])]
        assert np.all((values >= 0.0) & (values <= 1.0 + TOL)), name
    rho = got["spearman"][~np.isnan(got["spearman"])]
    assert np.all((rho >= -1.0 - TOL) & (rho <= 1.0 + TOL))
    # NaN exactly where undefined.
    assert np.array_equal(np.isnan(got["hit_ratio"]), got["n_items"] == 0)
    assert np.array_equal(np.isnan(got["recall"]), got["n_relevant"] == 0)
    assert np.array_equal(np.isnan(got["spearman"]), got["n_items"] < 2)


@settings(max_examples=100, deadline=None)
@given(evaluation_cells())
def test_property_permutation_invariance(cells):
    users, items, scores, truth, k, n_users, seed = cells
    perm = np.random.default_rng(seed).permutation(users.size)
    base = user_metrics(users, items, scores, truth, k, n_users=n_users)
    shuffled = user_metrics(users[perm], items[perm], scores[perm], truth[perm], k, n_users=n_users)
    for name in UNIT_RANGE:
        np.testing.assert_array_equal(shuffled[name], base[name])
    assert_close(shuffled["spearman"], base["spearman"])
    positions = rank_positions(users, items, scores, n_users=n_users)
    assert np.array_equal(rank_positions(users[perm], items[perm], scores[perm], n_users=n_users), positions[perm])


@settings(max_examples=100, deadline=None)
@given(evaluation_cells())
def test_property_perfect_ranking_scores_one(cells):
    users, items, _, truth, k, n_users, _ = cells
    got = user_metrics(users, items, truth, truth, k, n_users=n_users)
    present = got["n_items"] > 0
    has_gain = np.bincount(users, weights=truth, minlength=n_users) > 0
    assert np.all(got["hit_ratio"][present] == 1.0)
    assert np.all(got["ndcg"][has_gain] == 1.0)
    assert np.all(got["seed_ndcg"][has_gain] == 1.0)
    varies = np.array([np.ptp(truth[users == u]) > 0 if (users == u).sum() >= 2 else False for u in range(n_users)])
    assert np.allclose(got["spearman"][varies], 1.0, atol=TOL)
    # The best achievable precision: every relevant item that fits in the list is in it.
    length = np.minimum(k, got["n_items"][present])
    assert_close(got["precision"][present], np.minimum(got["n_relevant"][present], length) / length)
