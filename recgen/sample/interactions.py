"""big_matrix, small_matrix and the ground truth: the watch-ratio model and the views drawn from it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from recgen.sample.csv_format import float_text, interaction_table
from recgen.sample.params import (
    BASE_LOG_RATIO,
    BIG_BURST_WEIGHTS,
    BIG_BURSTS,
    DATE_MISMATCH_SHARE,
    DAY0_LOCAL_EPOCH_MS,
    DAY_MS,
    EXPOSE_AFFINITY,
    HOUR_WEIGHTS,
    LOOP_ALPHA,
    LOOP_APPEAL,
    LOOP_DURATION,
    LOOP_INTERCEPT,
    LOOP_MAX,
    LOOP_XM,
    N_DAYS,
    P_ZERO,
    RATIO_CAP,
    REAL_RELABEL_SHARE,
    REAL_VIDEOS,
    SKIP_APPEAL,
    SKIP_INTERCEPT,
    SKIP_MAX_RATIO,
    SKIP_SD,
    SKIP_SECONDS,
    SMALL_FORCED_SHARE,
    SMALL_LOG_SHIFT,
    SMALL_SKIP_SHIFT,
    STRAY_DAYS,
    STRAY_SHARE,
    USER_DAY_OFF,
    USER_DAY_SHAPE,
    WATCH_SD,
)
from recgen.sample.world import World, categorical, exact_counts, own_pairs, pair_caps, sigmoid

BIG_CHUNK_USERS = 384  # users generated and written per chunk (~700k rows at full scale)
BIG_CHUNK_CELLS = BIG_CHUNK_USERS * REAL_VIDEOS  # a larger catalogue gets fewer users per chunk: bounded memory


# ============================================================================================================
# The watch-ratio model.
# ============================================================================================================


def _affinity(w: World, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """Personal part of the log watch ratio, (len(users), len(videos)): taste, categories, latent factors."""
    u, v = w.users, w.videos
    return (
        u.taste[users] @ v.tag_matrix[videos].T
        + u.cat_taste[users][:, v.cat1_idx[videos]]
        + u.factors[users] @ v.factors[videos].T
    )


def _log_mean(w: World, users: np.ndarray, videos: np.ndarray, affinity: np.ndarray) -> np.ndarray:
    """eta of each (users[i], videos[i]) pair: log of the watch ratio of a normal (not skipped, not looped)
    view, before noise."""
    u, v = w.users, w.videos
    return BASE_LOG_RATIO + u.bias[users] - u.gamma[users] * v.log_dur[videos] + v.static[videos] + affinity


def _loop_mean() -> float:
    """Mean of the truncated Pareto loop multiplier."""
    a, xm, top = LOOP_ALPHA, LOOP_XM, LOOP_MAX
    return a * xm**a / (a - 1) * (xm ** (1 - a) - top ** (1 - a)) / (1 - (xm / top) ** a)


def _parts(eta: np.ndarray, log_dur: np.ndarray, dur_ms: np.ndarray, skip_shift: float) -> tuple[np.ndarray, ...]:
    """Normal-view mean, skip probability, skip ratio and loop probability of each view."""
    appeal = eta - BASE_LOG_RATIO
    skip = sigmoid(SKIP_INTERCEPT + skip_shift - SKIP_APPEAL * appeal)
    skip_ratio = np.minimum(SKIP_SECONDS * 1000.0 / dur_ms, SKIP_MAX_RATIO)
    loop = sigmoid(LOOP_INTERCEPT - LOOP_DURATION * log_dur + LOOP_APPEAL * appeal)
    return np.exp(eta), skip, skip_ratio, loop


def expected(eta: np.ndarray, log_dur: np.ndarray, dur_ms: np.ndarray, skip_shift: float = 0.0) -> np.ndarray:
    """E[watch_ratio] under the observation model: the planted ground truth (loops included)."""
    mean, skip, skip_ratio, loop = _parts(eta, log_dur, dur_ms, skip_shift)
    return (1 - P_ZERO) * (skip * skip_ratio + (1 - skip) * mean * (1 + loop * (_loop_mean() - 1)))


def _observe(rng: np.random.Generator, eta: np.ndarray, log_dur: np.ndarray, dur_ms: np.ndarray,
             skip_shift: float = 0.0) -> np.ndarray:  # fmt: skip
    """Draw play_duration (ms) of one view per element."""
    n = len(eta)
    mean, skip, skip_ratio, loop = _parts(eta, log_dur, dur_ms, skip_shift)
    skipped = rng.random(n) < skip
    sd = np.where(skipped, SKIP_SD, WATCH_SD)
    ratio = np.where(skipped, skip_ratio, mean) * np.exp(sd * rng.standard_normal(n) - sd**2 / 2)
    looped = ~skipped & (rng.random(n) < loop)
    tail = 1 - rng.random(n) * (1 - (LOOP_XM / LOOP_MAX) ** LOOP_ALPHA)
    ratio = np.where(looped, ratio * LOOP_XM * tail ** (-1 / LOOP_ALPHA), ratio)
    ratio = np.minimum(ratio, RATIO_CAP)
    ratio[rng.random(n) < P_ZERO] = 0.0
    return np.rint(ratio * dur_ms).astype(np.int64)


def _view_times(rng: np.random.Generator, day: np.ndarray) -> np.ndarray:
    """Epoch milliseconds of views on the given local days, with the hour-of-day profile."""
    hour = categorical(rng, HOUR_WEIGHTS, len(day))
    ms_in_day = hour * 3_600_000 + rng.integers(0, 3_600_000, len(day))
    return DAY0_LOCAL_EPOCH_MS + day * DAY_MS + ms_in_day


def _dates(rng: np.random.Generator, ts_ms: np.ndarray) -> np.ndarray:
    """Partition day (index): the local day clamped to the log window, filed a day late for a small share."""
    day = (ts_ms - DAY0_LOCAL_EPOCH_MS) // DAY_MS
    late = rng.random(len(day)) < DATE_MISMATCH_SHARE
    day = np.where(late, np.where(day >= N_DAYS - 1, day - 1, day + 1), day)
    return day.clip(0, N_DAYS - 1)


# ============================================================================================================
# big_matrix: missing-not-at-random exposure, re-watches, duplicates; generated per user chunk.
# ============================================================================================================


def _allocate_big(rng: np.random.Generator, w: World) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct pairs, re-watch rows and duplicate rows per user, summing exactly to the scale's totals."""
    sc, rows = w.scale, w.users.rows_target
    if sc.per_user_rows:
        pairs = own_pairs(sc, w.users)  # the scale's totals were summed from these
    else:
        pairs = _fitted_pairs(rng, rows, pair_caps(sc, w.users.small), sc.big_pairs)
    rest = np.maximum(rows * sc.big_pairs / rows.sum() * (sc.big_rows / sc.big_pairs) - pairs, 0.05 * pairs)
    rewatch = rng.multinomial(sc.big_rewatches, rest / rest.sum())
    dups = rng.multinomial(sc.big_duplicates, (pairs + rewatch) / (pairs + rewatch).sum())
    return pairs, rewatch, dups


def _fitted_pairs(rng: np.random.Generator, rows: np.ndarray, cap: np.ndarray, total: int) -> np.ndarray:
    """Pairs per user proportional to the row targets, capped, summing exactly to the named scale's total."""
    want = rows.copy()
    for _ in range(20):  # rescale, clip at the cap, repeat: converges in a few rounds
        want = np.minimum(want * total / want.sum(), cap)
    pairs = exact_counts(want, total)
    over = pairs - cap.astype(np.int64)
    while over.max() > 0:  # rounding may push a capped user one over: hand the excess to free users
        extra = int(over.clip(0).sum())
        pairs = np.minimum(pairs, cap.astype(np.int64))
        free = np.flatnonzero(pairs < cap)
        pairs[rng.choice(free, extra, replace=True)] += 1
        over = pairs - cap.astype(np.int64)
    return np.maximum(pairs, 1)


def _segment_sample(rng: np.random.Generator, weights: np.ndarray, seg_start: np.ndarray, seg_len: np.ndarray,
                    draws: np.ndarray) -> np.ndarray:  # fmt: skip
    """For each segment i, draws[i] indices sampled with replacement within it, prop. to weights."""
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    seg = np.repeat(np.arange(len(seg_len)), draws)
    lo, hi = cum[seg_start[seg]], cum[seg_start[seg] + seg_len[seg]]
    idx = np.searchsorted(cum, lo + rng.random(len(seg)) * (hi - lo), side="right") - 1
    return idx.clip(seg_start[seg], seg_start[seg] + seg_len[seg] - 1)


def _big_days(rng: np.random.Generator, chunk_users: int, owner: np.ndarray, start_day: np.ndarray,
              end_day: np.ndarray) -> np.ndarray:  # fmt: skip
    """Day of each big row: the user's own bursty calendar over the three bursts, inside the video's life."""
    burst_days = np.concatenate([np.arange(a, b + 1) for a, b in BIG_BURSTS])
    base = np.concatenate([np.full(b - a + 1, wt) for (a, b), wt in zip(BIG_BURSTS, BIG_BURST_WEIGHTS, strict=True)])
    intensity = base * rng.gamma(USER_DAY_SHAPE, 1.0, (chunk_users, len(burst_days)))
    intensity *= rng.random(intensity.shape) >= USER_DAY_OFF
    intensity[:, -1] += 1e-9  # a user who skipped every day still has somewhere to be
    cum = np.cumsum(intensity, axis=1)
    flat = (np.arange(chunk_users)[:, None] + cum / cum[:, -1:]).ravel()
    pos = np.searchsorted(flat, owner + rng.random(len(owner)), side="right").clip(0, len(flat) - 1)
    day = burst_days[pos % len(burst_days)]
    dead = (day < start_day) | (day > end_day)  # video not live: a burst day of its life, else any day of it
    s, e, u = start_day[dead], end_day[dead], rng.random(dead.sum())
    lo, hi = np.searchsorted(burst_days, s, side="left"), np.searchsorted(burst_days, e, side="right")
    in_burst = burst_days[(lo + u * (hi - lo)).astype(np.int64).clip(0, len(burst_days) - 1)]
    day[dead] = np.where(hi > lo, in_burst, s + (u * (e - s + 1)).astype(np.int64))
    stray = rng.random(len(day)) < STRAY_SHARE
    day[stray] = rng.integers(STRAY_DAYS[0], STRAY_DAYS[1] + 1, stray.sum())
    return day


def _top_pairs(logits: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each row's pairs[i] largest logits, largest first, ties by column: the head of a stable
    argsort, found by a partial sort (a full one only when a tie straddles a row's k-th largest value)."""
    k = int(pairs.max())
    cand = np.argpartition(logits, logits.shape[1] - k, axis=1)[:, logits.shape[1] - k :]
    top = np.take_along_axis(logits, cand, axis=1)
    kth = top.min(axis=1, keepdims=True)
    if ((logits == kth).sum(axis=1) == (top == kth).sum(axis=1)).all():  # every entry >= the k-th is a candidate
        order = np.take_along_axis(cand, np.lexsort((cand, -top)), axis=1)
    else:  # which of the tied entries are kept is decided by column: only the full stable sort knows
        order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    keep = np.arange(k)[None, :] < pairs[:, None]
    return np.nonzero(keep)[0], order[keep]


def _big_chunk(rng: np.random.Generator, w: World, users: np.ndarray, pairs: np.ndarray, rewatch: np.ndarray,
               dups: np.ndarray) -> pa.Table:  # fmt: skip
    v, sc = w.videos, w.scale
    all_videos = np.arange(sc.n_videos)
    aff = _affinity(w, users, all_videos)
    # Exposure: Gumbel top-k over log popularity + affinity = sampling without replacement, MNAR.
    logits = v.log_pop[None, :] + EXPOSE_AFFINITY * aff - np.log(-np.log(rng.random(aff.shape)))
    is_small_user = np.isin(users, w.users.small)
    logits[np.ix_(is_small_user, v.small)] = -np.inf  # small-block pairs are held out of big_matrix
    mine = (w.designated >= users[0]) & (w.designated <= users[-1])
    logits[w.designated[mine] - users[0], np.flatnonzero(mine)] = np.inf  # every video is shown at least once
    owner, vid = _top_pairs(logits, pairs)
    eta = _log_mean(w, users[owner], vid, aff[owner, vid])

    # Re-watches: extra views of the user's own pairs, favouring videos people loop on.
    seg_start = np.concatenate([[0], np.cumsum(pairs)[:-1]])
    src = _segment_sample(rng, v.rewatch[vid], seg_start, pairs, rewatch)
    owner = np.concatenate([owner, owner[src]])
    vid = np.concatenate([vid, vid[src]])
    eta = np.concatenate([eta, eta[src]])
    dur = v.dur_ms[vid]
    play = _observe(rng, eta, v.log_dur[vid], dur)
    ts = _view_times(rng, _big_days(rng, len(users), owner, v.start_day[vid], v.end_day[vid]))
    date = _dates(rng, ts)
    # A few re-watch rows are the same event filed under a second partition date.
    n_pairs = len(owner) - len(src)
    relabel = np.flatnonzero(rng.random(len(src)) < REAL_RELABEL_SHARE)
    relabel = relabel[np.unique(src[relabel], return_index=True)[1]]  # one copy per event, or it is a duplicate
    play[n_pairs + relabel] = play[src[relabel]]
    ts[n_pairs + relabel] = ts[src[relabel]]
    first = date[src[relabel]]
    date[n_pairs + relabel] = np.where(first < N_DAYS - 1, first + 1, first - 1)  # never an exact duplicate
    # Exact duplicate rows, then each user's rows in chronological order.
    total = np.bincount(owner, minlength=len(users))
    dup = _segment_sample(rng, np.ones(len(owner)), np.concatenate([[0], np.cumsum(total)[:-1]]), total, dups)
    grouped = np.argsort(owner, kind="stable")
    rows = np.concatenate([grouped, grouped[dup]])
    rows = rows[np.lexsort((vid[rows], ts[rows], owner[rows]))]
    return interaction_table(users[owner[rows]], vid[rows], play[rows], dur[rows], ts[rows], date[rows])


def big_chunk_users(n_videos: int) -> int:
    """Users per big-matrix chunk: BIG_CHUNK_USERS (every named scale), fewer when the catalogue is larger."""
    return max(min(BIG_CHUNK_USERS, BIG_CHUNK_CELLS // n_videos), 1)


def big_tables(rng: np.random.Generator, w: World, tick: Callable[[int], None] | None = None) -> Iterator[pa.Table]:
    """big_matrix in user chunks of about BIG_CHUNK_CELLS (users x videos); tick(users done) after each."""
    pairs, rewatch, dups = _allocate_big(rng, w)
    step = big_chunk_users(w.scale.n_videos)
    for start in range(0, w.scale.n_users, step):
        users = np.arange(start, min(start + step, w.scale.n_users))
        yield _big_chunk(rng, w, users, pairs[users], rewatch[users], dups[users])
        if tick:
            tick(int(users[-1]) + 1)


# ============================================================================================================
# small_matrix and the ground truth.
# ============================================================================================================


def _small_cells(rng: np.random.Generator, w: World) -> tuple[np.ndarray, np.ndarray]:
    """All small-block cells except `small_missing`, removed mostly as whole (user, author) blocks."""
    sc, v = w.scale, w.videos
    uu, vv = np.meshgrid(w.users.small, v.small, indexing="ij")
    uu, vv = uu.ravel(), vv.ravel()
    key = uu * (int(v.author.max()) + 1) + v.author[vv]
    blocks, block_of, size = np.unique(key, return_inverse=True, return_counts=True)
    order = rng.permutation(len(blocks))
    small_blocks = order[size[order] <= 3]  # users block an author with a few videos in the block
    taken = small_blocks[np.cumsum(size[small_blocks]) <= sc.small_missing]
    drop = np.isin(block_of, taken)
    left = sc.small_missing - int(drop.sum())
    drop[rng.choice(np.flatnonzero(~drop), left, replace=False)] = True
    return uu[~drop], vv[~drop]


def small_and_truth(rng: np.random.Generator, w: World) -> tuple[pa.Table, pa.Table]:
    v = w.videos
    uu, vv = _small_cells(rng, w)
    u_index = np.searchsorted(w.users.small, uu)
    v_index = np.searchsorted(v.small, vv)
    aff = _affinity(w, w.users.small, v.small)
    eta = _log_mean(w, uu, vv, aff[u_index, v_index]) + SMALL_LOG_SHIFT
    dur = v.dur_ms[vv]
    truth = (1 - SMALL_FORCED_SHARE) * expected(eta, v.log_dur[vv], dur, SMALL_SKIP_SHIFT) + SMALL_FORCED_SHARE * 0.1
    play = _observe(rng, eta, v.log_dur[vv], dur, SMALL_SKIP_SHIFT)
    # Force-inserted views (the 15-day exposure phase) are mostly swiped away: the spike near 0.1.
    forced = rng.random(len(play)) < SMALL_FORCED_SHARE
    play[forced] = np.rint(dur[forced] * rng.uniform(0.05, 0.15, forced.sum())).astype(np.int64)
    start = v.start_day[vv]
    day = start + (rng.random(len(vv)) * (v.end_day[vv] - start + 1)).astype(np.int64)
    ts = _view_times(rng, day)
    date = _dates(rng, ts)
    untimed = np.zeros(len(vv), bool)
    untimed[rng.choice(len(vv), w.scale.small_untimed, replace=False)] = True
    order = np.lexsort((vv, np.where(untimed, np.iinfo(np.int64).max, ts), uu))  # untimed rows last per user
    small = interaction_table(uu[order], vv[order], play[order], dur[order], ts[order], date[order], untimed[order])
    key = np.lexsort((vv, uu))
    gt = pa.table({"user_id": uu[key], "video_id": vv[key], "expected_watch_ratio": float_text(truth[key])})
    return small, gt
