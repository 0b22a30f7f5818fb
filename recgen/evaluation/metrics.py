"""Evaluation metrics: small pure numpy functions over flat (user, item) cells.

Evaluation data is one entry per (user, item) cell, in any order:

- ``users``: dense user codes ``0..n_users-1`` (int),
- ``items``: item ids (int; used only to break ties, lower id first),
- ``scores``: model scores (float; higher is better),
- ``truth``: observed watch_ratio (float, >= 0).

Each (user, item) pair appears at most once. Per-user metrics return a float array of length ``n_users``
(``users.max() + 1`` unless ``n_users`` is given), NaN where the metric is undefined for a user, including
codes with no cells. Everything is vectorised (sorts, ``np.bincount`` group sums): memory is linear in the
number of cells and there is no Python loop over users or cells.

Rank positions are 0-based positions in a user's list ordered by value descending, ties broken by item id
ascending, for the predicted order (by score) and the actual order (by watch_ratio) alike. Positions, counts
and the ranking metrics are therefore deterministic and exactly independent of the order of the input rows
(DCG terms are summed in list order); only the sums over all of a user's cells (mae, rmse, spearman) may
differ in the last bit when the rows are permuted. Compute positions once with `rank_positions` and pass
them to the ranking metrics, or call `user_metrics`, which ranks each order once for all of them.

Modelled on recommenders' ``python_evaluation.py``: one function per metric, definition and range in the
docstring.
"""

from dataclasses import dataclass

import numpy as np

from recgen.constants import NDCG_GAIN_CAP, RELEVANT_WATCH_RATIO, TOP_K

__all__ = [
    "rank_positions",
    "hit_ratio_at_k",
    "ndcg_at_k",
    "seed_ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "mae",
    "rmse",
    "spearman",
    "catalog_coverage",
    "popularity_percentile",
    "gini",
    "ActualOrder",
    "actual_order",
    "user_metrics_for",
    "user_metrics",
]

# ---------------------------------------------------------------- input checks and shared machinery


def _as_users(users, n_users: int | None) -> tuple[np.ndarray, int]:
    users = np.asarray(users)
    if users.ndim != 1:
        raise ValueError("users must be a 1-d array")
    if users.size and not np.issubdtype(users.dtype, np.integer):
        raise ValueError(f"users must hold integer codes, got dtype {users.dtype}")
    users = users.astype(np.intp, copy=False)
    if users.size and users.min() < 0:
        raise ValueError("user codes must be >= 0")
    needed = int(users.max()) + 1 if users.size else 0
    if n_users is None:
        n_users = needed
    elif n_users < needed:
        raise ValueError(f"n_users={n_users} but the largest user code is {needed - 1}")
    return users, int(n_users)


def _as_cells(name: str, values, size: int, *, dtype=np.float64) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (size,):
        raise ValueError(f"{name} must be a 1-d array of the same length as users ({size}), got {values.shape}")
    if dtype is np.float64:
        values = values.astype(np.float64, copy=False)
        if np.isnan(values).any():
            raise ValueError(f"{name} contains NaN")
    else:
        if values.size and not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{name} must be integer, got dtype {values.dtype}")
        values = values.astype(np.int64, copy=False)
    return values


def _check_k(k: int) -> int:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    return int(k)


def _as_truth(truth, size: int) -> np.ndarray:
    truth = _as_cells("truth", truth, size)
    if truth.size and truth.min() < 0:
        raise ValueError("truth (watch_ratio) must be >= 0")
    return truth


def _undefined_where_empty(values: np.ndarray, n_items: np.ndarray) -> np.ndarray:
    values[n_items == 0] = np.nan
    return values


def _rank(users: np.ndarray, values: np.ndarray, items: np.ndarray | None, n_users: int, *, average: bool = False):
    """Rank cells within users by value descending, ties by item ascending (``items=None``: no tie-break).

    Returns ``(positions, centred_ranks)``: the 0-based position of every cell in its user's list, and, when
    ``average`` is set, its average rank (tied values of one user share the mean of their positions) minus
    the user's mean rank ``(n_u - 1) / 2``, ready for a correlation.

    Rather than one np.lexsort on (items, -values, users), slow on millions of cells: one argsort of the
    values, reversed, then a stable sort by user (a radix sort when user codes fit in 16 bits) gives every
    user's cells by value descending; only the cells in runs of tied values are then re-sorted by (run, item), with
    the keys packed into one int64 so that np.sort (SIMD) does it.
    """
    size = users.size
    if size == 0:
        return np.zeros(0, dtype=np.int64), (np.zeros(0) if average else None)
    by_value = np.argsort(values)[::-1]
    user_of = users[by_value]
    if n_users <= 1 << 16:
        user_of = user_of.astype(np.uint16)
    order = by_value[np.argsort(user_of, kind="stable")]
    del by_value, user_of
    n_items = np.bincount(users, minlength=n_users)
    starts = np.repeat(np.cumsum(n_items) - n_items, n_items)  # first slot of each sorted cell's user
    sorted_values = values[order]
    # new_run[i]: slot i starts a run of equal values within one user.
    new_run = np.empty(size, dtype=bool)
    new_run[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=new_run[1:])
    del sorted_values
    new_run[(np.cumsum(n_items) - n_items)[n_items > 0]] = True  # each user's first slot
    if items is not None:
        _break_ties_by_item(order, items, new_run)
    run_first = np.flatnonzero(new_run)
    run_length = np.diff(run_first, append=size)
    sorted_positions = np.arange(size, dtype=np.int64)
    sorted_positions -= starts
    positions = np.empty(size, dtype=np.int64)
    positions[order] = sorted_positions
    if not average:
        return positions, None
    # A run's mean slot, minus the user's first slot and the mean position (n_u - 1) / 2.
    centred = np.repeat(run_first + (run_length - 1) / 2.0, run_length)
    centred -= starts
    centred -= np.repeat((n_items - 1) / 2.0, n_items)
    average_ranks = np.empty(size)
    average_ranks[order] = centred
    return positions, average_ranks


def _break_ties_by_item(order: np.ndarray, items: np.ndarray, new_run: np.ndarray) -> None:
    """Re-order, in place, the cells of ``order`` inside each run of tied values by item id ascending."""
    # A slot is tied unless it starts a run and the next slot starts another one.
    tied_slots = np.flatnonzero(~(new_run & np.append(new_run[1:], True)))
    if tied_slots.size == 0:
        return
    cells = order[tied_slots]
    run_of = np.cumsum(new_run[tied_slots]) - 1  # runs numbered 0, 1, ... in slot order
    item_of = items[cells] - items.min()
    index_bits = (tied_slots.size - 1).bit_length() or 1
    item_bits = int(item_of.max()).bit_length()
    if int(run_of[-1]).bit_length() + item_bits + index_bits <= 63:
        packed = run_of << (item_bits + index_bits)
        packed |= item_of << index_bits
        packed |= np.arange(tied_slots.size, dtype=np.int64)
        packed.sort()
        within = packed & ((1 << index_bits) - 1)
    else:  # item ids spread over a huge range: the general but slower path.
        within = np.lexsort((item_of, run_of))
    # Sorting by run first keeps every run inside its own slots; within a run, items ascend.
    order[tied_slots] = cells[within]


def _pearson_of_ranks(users, x_centred, y_centred, n_users: int) -> np.ndarray:
    """Per-user Pearson correlation of average ranks already centred on the user's mean rank."""
    # Average ranks 0..n-1 always sum to n(n-1)/2, so the mean is known exactly and a constant side centres
    # to exactly 0 rather than to rounding noise.
    n_items = np.bincount(users, minlength=n_users)
    sxy = np.bincount(users, weights=x_centred * y_centred, minlength=n_users)
    sxx = np.bincount(users, weights=np.square(x_centred), minlength=n_users)
    syy = np.bincount(users, weights=np.square(y_centred), minlength=n_users)
    denominator = np.sqrt(sxx * syy)
    rho = np.divide(sxy, denominator, out=np.zeros(n_users), where=denominator > 0)
    rho[n_items < 2] = np.nan
    return rho


def _dcg(users, positions, gains, k: int, n_users: int) -> np.ndarray:
    """Per-user Σ gain / log2(pos + 2) over the cells with ``pos < k``."""
    top = np.flatnonzero(positions < k)
    # Sum each user's terms in list order (np.bincount adds in array order): the result is then exactly the
    # same whatever the order of the input rows, and a perfect ranking's DCG equals its IDCG to the bit.
    top = top[np.lexsort((positions[top], users[top]))]
    discounted = gains[top] / np.log2(positions[top] + 2.0)
    return np.bincount(users[top], weights=discounted, minlength=n_users)


def _ratio(numerator: np.ndarray, denominator: np.ndarray, *, when_zero: float = 0.0) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.full(numerator.size, when_zero), where=denominator > 0)


def _list_length(n_items: np.ndarray, k: int) -> np.ndarray:
    """min(k, n_u): how many items a user's top-k can hold."""
    return np.minimum(k, n_items)


# Kernels: no validation; ``n_items`` is the per-user cell count. The public functions validate and call them.


def _hit_ratio(users, pred_pos, true_pos, k, n_items):
    hits = np.bincount(users[(pred_pos < k) & (true_pos < k)], minlength=n_items.size)
    return _undefined_where_empty(_ratio(hits, _list_length(n_items, k)), n_items)


def _ndcg(users, pred_pos, true_pos, truth, k, gain_cap, n_items):
    gains = np.minimum(truth, gain_cap)
    dcg = _dcg(users, pred_pos, gains, k, n_items.size)
    idcg = _dcg(users, true_pos, gains, k, n_items.size)
    return _undefined_where_empty(_ratio(dcg, idcg), n_items)


def _seed_ndcg(users, pred_pos, truth, k, n_items):
    n_users = n_items.size
    top = pred_pos < k
    top_users, top_positions, top_truth = users[top], pred_pos[top], truth[top]
    dcg = _dcg(top_users, top_positions, top_truth, k, n_users)
    # Only the <= k cells per user of the predicted list are re-sorted, so np.lexsort is cheap here; equal
    # gains contribute the same whichever comes first, so no tie-break is needed.
    order = np.lexsort((-top_truth, top_users))
    n_top = np.bincount(top_users, minlength=n_users)
    self_positions = np.arange(order.size) - np.repeat(np.cumsum(n_top) - n_top, n_top)
    self_idcg = _dcg(top_users[order], self_positions, top_truth[order], k, n_users)
    return _undefined_where_empty(_ratio(dcg, self_idcg), n_items)


def _precision(users, pred_pos, relevant, k, n_items):
    hits = np.bincount(users[relevant & (pred_pos < k)], minlength=n_items.size)
    return _undefined_where_empty(_ratio(hits, _list_length(n_items, k)), n_items)


def _recall(users, pred_pos, relevant, k, n_items):
    n_relevant = np.bincount(users[relevant], minlength=n_items.size)
    hits = np.bincount(users[relevant & (pred_pos < k)], minlength=n_items.size)
    return _ratio(hits, n_relevant, when_zero=np.nan)


def _mean_error(users, errors, n_items):
    total = np.bincount(users, weights=errors, minlength=n_items.size)
    return _ratio(total, n_items, when_zero=np.nan)


# ---------------------------------------------------------------- ranks


def rank_positions(users, items, values, *, n_users: int | None = None) -> np.ndarray:
    """0-based position of each cell in its user's list ordered by value descending.

    Ties (equal values within a user) are broken by item id ascending, so the result depends only on the
    cells, not on their order in the input. Use ``values=scores`` for the predicted order and
    ``values=truth`` for the actual (ideal) order.

    Args:
        users (np.ndarray): dense user code of each cell.
        items (np.ndarray): item id of each cell (the tie-breaker).
        values (np.ndarray): value to rank by, higher first; NaN is rejected (ValueError).
        n_users (int): number of users; default ``users.max() + 1``.

    Returns:
        np.ndarray: int64 position per cell (min=0, max=n_u-1 for a user with n_u cells).
    """
    users, n_users = _as_users(users, n_users)
    items = _as_cells("items", items, users.size, dtype=np.int64)
    values = _as_cells("values", values, users.size)
    return _rank(users, values, items, n_users)[0]


# ---------------------------------------------------------------- ranking accuracy (per user)


def hit_ratio_at_k(users, pred_pos, true_pos, k: int = TOP_K, *, n_users: int | None = None) -> np.ndarray:
    """Hit ratio at k (the seed's metric): overlap of the predicted and the actual top-k.

    ``|predicted top-k ∩ actual top-k| / min(k, n_u)``: ``pred_pos < k`` against ``true_pos < k``, the
    actual top-k being by watch_ratio (ties by item id). Dividing by ``min(k, n_u)`` rather than by k keeps a
    user with fewer than k items on the same scale: both lists then hold all their items and the ratio is 1.

    Returns:
        np.ndarray: per user (min=0, max=1); NaN for a user with no cells.
    """
    users, n_users = _as_users(users, n_users)
    pred_pos = _as_cells("pred_pos", pred_pos, users.size, dtype=np.int64)
    true_pos = _as_cells("true_pos", true_pos, users.size, dtype=np.int64)
    return _hit_ratio(users, pred_pos, true_pos, _check_k(k), np.bincount(users, minlength=n_users))


def ndcg_at_k(
    users, pred_pos, true_pos, truth, k: int = TOP_K, gain_cap: float = NDCG_GAIN_CAP, *, n_users: int | None = None
) -> np.ndarray:
    """Normalised discounted cumulative gain at k, with graded gain ``min(watch_ratio, gain_cap)``.

    ``DCG = Σ gain / log2(pos + 2)`` over the predicted top-k (0-based ``pred_pos < k``); ``IDCG`` is the
    same sum over the ideal top-k, the user's k best items out of all their items (``true_pos < k``);
    ``NDCG = DCG / IDCG``. The cap keeps a few looped videos (watch_ratio up to ~500) from dominating; since
    the gain is non-decreasing in watch_ratio, the order by watch_ratio is an ideal order for it.

    Returns:
        np.ndarray: per user (min=0, max=1); 0 when IDCG is 0 (no item with positive gain); NaN for a user
        with no cells. Negative truth raises ValueError.
    """
    users, n_users = _as_users(users, n_users)
    pred_pos = _as_cells("pred_pos", pred_pos, users.size, dtype=np.int64)
    true_pos = _as_cells("true_pos", true_pos, users.size, dtype=np.int64)
    truth = _as_truth(truth, users.size)
    n_items = np.bincount(users, minlength=n_users)
    return _ndcg(users, pred_pos, true_pos, truth, _check_k(k), gain_cap, n_items)


def seed_ndcg_at_k(users, pred_pos, truth, k: int = TOP_K, *, n_users: int | None = None) -> np.ndarray:
    """The seed notebook's "NDCG@k", kept for continuity only: it is NOT a proper NDCG.

    Gain is the raw watch_ratio; ``DCG = Σ watch_ratio / log2(pos + 2)`` over the predicted top-k, and its
    "IDCG" is the DCG of those same k items re-sorted by watch_ratio. Normalised by the predicted list
    itself, it only measures how well the chosen items are ordered among themselves, never whether they are
    the right ones: a constant predictor (all scores equal, so the list is the k lowest item ids) scores
    high on it while its `ndcg_at_k` is low. Report it next to `ndcg_at_k`, never instead of it.

    Returns:
        np.ndarray: per user (min=0, max=1, inflated); 0 when the "IDCG" is 0 (every chosen item has
        watch_ratio 0); NaN for a user with no cells. Negative truth raises ValueError.
    """
    users, n_users = _as_users(users, n_users)
    pred_pos = _as_cells("pred_pos", pred_pos, users.size, dtype=np.int64)
    truth = _as_truth(truth, users.size)
    return _seed_ndcg(users, pred_pos, truth, _check_k(k), np.bincount(users, minlength=n_users))


def precision_at_k(
    users, pred_pos, truth, k: int = TOP_K, threshold: float = RELEVANT_WATCH_RATIO, *, n_users: int | None = None
) -> np.ndarray:
    """Precision at k: share of the predicted top-k that is relevant (``watch_ratio > threshold``).

    ``hits / min(k, n_u)``: a user with fewer than k items is judged on the items that exist.

    Returns:
        np.ndarray: per user (min=0, max=1); 0 when no relevant item is in the top-k; NaN for a user with no
        cells.
    """
    users, n_users = _as_users(users, n_users)
    pred_pos = _as_cells("pred_pos", pred_pos, users.size, dtype=np.int64)
    truth = _as_truth(truth, users.size)
    n_items = np.bincount(users, minlength=n_users)
    return _precision(users, pred_pos, truth > threshold, _check_k(k), n_items)


def recall_at_k(
    users, pred_pos, truth, k: int = TOP_K, threshold: float = RELEVANT_WATCH_RATIO, *, n_users: int | None = None
) -> np.ndarray:
    """Recall at k: share of the user's relevant items (``watch_ratio > threshold``) found in the top-k.

    ``hits / n_relevant_u``. A user with more than k relevant items cannot reach 1.

    Returns:
        np.ndarray: per user (min=0, max=1); NaN when the user has no relevant item (or no cells).
    """
    users, n_users = _as_users(users, n_users)
    pred_pos = _as_cells("pred_pos", pred_pos, users.size, dtype=np.int64)
    truth = _as_truth(truth, users.size)
    n_items = np.bincount(users, minlength=n_users)
    return _recall(users, pred_pos, truth > threshold, _check_k(k), n_items)


# ---------------------------------------------------------------- rating accuracy and correlation (per user)


def mae(users, predictions, truth, *, n_users: int | None = None) -> np.ndarray:
    """Mean absolute error of predicted vs actual watch_ratio over each user's cells.

    Returns:
        np.ndarray: per user, in watch_ratio units (min=0, unbounded); NaN for a user with no cells.
    """
    users, n_users = _as_users(users, n_users)
    predictions = _as_cells("predictions", predictions, users.size)
    truth = _as_cells("truth", truth, users.size)
    return _mean_error(users, np.abs(predictions - truth), np.bincount(users, minlength=n_users))


def rmse(users, predictions, truth, *, n_users: int | None = None) -> np.ndarray:
    """Root mean squared error of predicted vs actual watch_ratio over each user's cells.

    Returns:
        np.ndarray: per user, in watch_ratio units (min=0, unbounded); NaN for a user with no cells.
    """
    users, n_users = _as_users(users, n_users)
    predictions = _as_cells("predictions", predictions, users.size)
    truth = _as_cells("truth", truth, users.size)
    return np.sqrt(_mean_error(users, np.square(predictions - truth), np.bincount(users, minlength=n_users)))


def spearman(users, scores, truth, *, n_users: int | None = None) -> np.ndarray:
    """Spearman rank correlation of score and watch_ratio within each user.

    The Pearson correlation of the two average-rank vectors, tied values sharing the mean of the positions
    they span (as ``scipy.stats.spearmanr`` does).

    Returns:
        np.ndarray: per user (min=-1, max=1); 1 when the scores order the items exactly as watch_ratio does,
        -1 when exactly reversed; 0.0 when either side is constant for the user (no order to correlate);
        NaN for a user with fewer than 2 cells.
    """
    users, n_users = _as_users(users, n_users)
    scores = _as_cells("scores", scores, users.size)
    truth = _as_cells("truth", truth, users.size)
    score_ranks = _rank(users, scores, None, n_users, average=True)[1]
    truth_ranks = _rank(users, truth, None, n_users, average=True)[1]
    return _pearson_of_ranks(users, score_ranks, truth_ranks, n_users)


# ---------------------------------------------------------------- beyond accuracy (catalogue level)


def _as_item_ids(rec_items, n_catalog: int) -> np.ndarray:
    rec_items = np.asarray(rec_items)
    if rec_items.ndim != 1:
        raise ValueError("rec_items must be a 1-d array")
    if rec_items.size and not np.issubdtype(rec_items.dtype, np.integer):
        raise ValueError(f"rec_items must hold integer item ids, got dtype {rec_items.dtype}")
    if n_catalog < 1:
        raise ValueError(f"the catalogue must hold at least one item, got {n_catalog}")
    if rec_items.size and (rec_items.min() < 0 or rec_items.max() >= n_catalog):
        raise ValueError(f"rec_items must be item ids in 0..{n_catalog - 1}")
    return rec_items.astype(np.intp, copy=False)


def catalog_coverage(rec_items, n_catalog: int) -> float:
    """Catalogue coverage: distinct recommended items / catalogue size.

    Args:
        rec_items (np.ndarray): item id of every recommendation row (all users' top-k lists, concatenated).
        n_catalog (int): catalogue size; item ids are ``0..n_catalog-1`` (others raise ValueError).

    Returns:
        float: (min=0 with no recommendations, max=1 when every item is recommended to someone).
    """
    rec_items = _as_item_ids(rec_items, n_catalog)
    return float(np.count_nonzero(np.bincount(rec_items, minlength=n_catalog)) / n_catalog)


def popularity_percentile(rec_items, popularity) -> float:
    """Mean popularity percentile of the recommended items.

    Each catalogue item's percentile is its ascending average rank among all ``N = len(popularity)`` items
    scaled to 0..1, ``rank / (N - 1)``: 0 = least popular, 1 = most popular, tied items share the mean
    percentile (so an all-tied catalogue, and a one-item one, sit at 0.5). The result is the mean over the
    recommendation rows, so an item recommended to many users weighs accordingly.

    Args:
        rec_items (np.ndarray): item id of every recommendation row, in ``0..N-1``.
        popularity (np.ndarray): popularity indexed by item id (e.g. exposure counts).

    Returns:
        float: (min=0, max=1; about 0.5 for popularity-blind recommendations); NaN with no recommendations.
    """
    popularity = np.asarray(popularity, dtype=np.float64)
    if popularity.ndim != 1 or np.isnan(popularity).any():
        raise ValueError("popularity must be a 1-d array without NaN")
    rec_items = _as_item_ids(rec_items, popularity.size)
    if rec_items.size == 0:
        return float("nan")
    _, inverse, counts = np.unique(popularity, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - counts + (counts - 1) / 2.0
    percentile = mean_rank / (popularity.size - 1) if popularity.size > 1 else np.full(1, 0.5)
    return float(percentile[inverse][rec_items].mean())


def gini(rec_items, n_catalog: int) -> float:
    """Gini coefficient of how often each catalogue item is recommended.

    Over the recommendation counts ``x_1 <= ... <= x_n`` of all ``n = n_catalog`` items, never-recommended
    ones counting as 0: ``G = Σ_i (2i - n - 1) x_i / (n Σ_i x_i)``.

    Returns:
        float: 0 when every item is recommended equally often; (n-1)/n (→ 1) when all recommendations go to
        one item; NaN with no recommendations.
    """
    rec_items = _as_item_ids(rec_items, n_catalog)
    if rec_items.size == 0:
        return float("nan")
    counts = np.sort(np.bincount(rec_items, minlength=n_catalog)).astype(np.float64)
    weights = 2.0 * np.arange(1, n_catalog + 1) - n_catalog - 1
    return float(weights @ counts / (n_catalog * counts.sum()))


# ---------------------------------------------------------------- every per-user metric at once


@dataclass(frozen=True)
class ActualOrder:
    """Evaluation cells with their actual order by watch_ratio (ties by item id) ranked once: every scorer
    evaluated on the same cells shares it (`user_metrics_for`)."""

    users: np.ndarray  # dense user code of each cell
    items: np.ndarray  # item id of each cell
    truth: np.ndarray  # observed watch_ratio
    n_users: int
    n_items: np.ndarray  # cells per user
    relevant: np.ndarray  # truth > RELEVANT_WATCH_RATIO, per cell
    true_pos: np.ndarray  # position in the user's list by watch_ratio
    truth_ranks: np.ndarray  # average ranks of watch_ratio, centred per user (for spearman)


def actual_order(users, items, truth, *, n_users: int | None = None) -> ActualOrder:
    """Validate the cells and rank them by watch_ratio (see `ActualOrder`)."""
    users, n_users = _as_users(users, n_users)
    items = _as_cells("items", items, users.size, dtype=np.int64)
    truth = _as_truth(truth, users.size)
    true_pos, truth_ranks = _rank(users, truth, items, n_users, average=True)
    n_items = np.bincount(users, minlength=n_users)
    return ActualOrder(users, items, truth, n_users, n_items, truth > RELEVANT_WATCH_RATIO, true_pos, truth_ranks)


def user_metrics_for(actual: ActualOrder, scores, k: int = TOP_K, *, predictions=None) -> dict[str, np.ndarray]:
    """Every per-user metric at k of `scores` over the cells of `actual` (see `user_metrics`)."""
    users, n_users, n_items, truth, relevant = (
        actual.users,
        actual.n_users,
        actual.n_items,
        actual.truth,
        actual.relevant,
    )
    scores = _as_cells("scores", scores, users.size)
    k = _check_k(k)
    pred_pos, score_ranks = _rank(users, scores, actual.items, n_users, average=True)
    true_pos = actual.true_pos
    result = {
        "hit_ratio": _hit_ratio(users, pred_pos, true_pos, k, n_items),
        "ndcg": _ndcg(users, pred_pos, true_pos, truth, k, NDCG_GAIN_CAP, n_items),
        "seed_ndcg": _seed_ndcg(users, pred_pos, truth, k, n_items),
        "precision": _precision(users, pred_pos, relevant, k, n_items),
        "recall": _recall(users, pred_pos, relevant, k, n_items),
        "spearman": _pearson_of_ranks(users, score_ranks, actual.truth_ranks, n_users),
    }
    if predictions is None:
        result["mae"] = np.full(n_users, np.nan)
        result["rmse"] = np.full(n_users, np.nan)
    else:
        errors = _as_cells("predictions", predictions, users.size) - truth
        result["mae"] = _mean_error(users, np.abs(errors), n_items)
        result["rmse"] = np.sqrt(_mean_error(users, np.square(errors), n_items))
    result["n_items"] = n_items
    result["n_relevant"] = np.bincount(users[relevant], minlength=n_users)
    return result


def user_metrics(
    users,
    items,
    scores,
    truth,
    k: int = TOP_K,
    *,
    predictions=None,
    n_users: int | None = None,
) -> dict[str, np.ndarray]:
    """Every per-user metric at k, ranking the cells once per order (by score, by watch_ratio).

    Args:
        users, items, scores, truth (np.ndarray): the evaluation cells (see the module docstring).
        k (int): list length.
        predictions (np.ndarray): predicted watch_ratio per cell, for models that predict it; without it
            ``mae`` and ``rmse`` are all NaN.
        n_users (int): number of users; default ``users.max() + 1``.

    Returns:
        dict[str, np.ndarray]: ``hit_ratio``, ``ndcg``, ``seed_ndcg``, ``precision``, ``recall``,
        ``spearman``, ``mae``, ``rmse`` (float per user, equal to the functions of the same name with the
        default gain cap and relevance threshold), ``n_items`` and ``n_relevant`` (int64 counts per user).
    """
    actual = actual_order(users, items, truth, n_users=n_users)
    return user_metrics_for(actual, scores, k, predictions=predictions)
