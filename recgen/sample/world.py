"""The latent world: videos and users with their planted parameters, and the random draws they are made of."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from recgen.sample import vocabulary as txt
from recgen.sample.params import (
    AUTHOR_SD,
    AUTHORS_PER_VIDEO,
    CATEGORY_MATCH_BOOST,
    CATEGORY_TASTE_SD,
    D_REF_MS,
    DURATION_LONG,
    DURATION_LONG_SHARE,
    DURATION_MAIN,
    DURATION_MAX_MS,
    DURATION_MIN_MS,
    DURATION_TEMPLATE_SHARE,
    DURATION_TEMPLATES_MS,
    DURATION_TINY_SHARE,
    FACTOR_SD,
    FANS_QUANTILES,
    FOLLOW_QUANTILES,
    FRIEND_QUANTILES,
    GAMMA_BY_FEAT6,
    GAMMA_MEAN,
    GAMMA_SD,
    LIFE_UPLOAD_POWER,
    N_DAYS,
    N_FACTORS,
    N_FEATURE_TAGS,
    PAIR_CAP,
    PAIRS_PER_TARGET_ROW,
    POPULARITY_QUALITY,
    POPULARITY_SD,
    QUALITY_SD,
    REAL_SMALL_VIDEOS,
    REAL_VIDEOS,
    REGISTER_QUANTILES,
    REWATCH_SD,
    SMALL_MIN_DURATION_MS,
    SMALL_UPLOAD_LAST,
    SMALL_USER_POWER,
    TAG_COUNTS,
    TAGS_PER_VIDEO_COUNTS,
    TASTE_PROTO_SHARE,
    TASTE_SD,
    USER_BIAS_ACTIVITY,
    USER_BIAS_BY_FEAT1,
    USER_BIAS_SD,
    USER_ROWS_QUANTILES,
    Scale,
    big_totals,
)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def categorical(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    cdf = np.cumsum(weights, dtype=float)
    return np.searchsorted(cdf / cdf[-1], rng.random(size), side="right").clip(0, len(weights) - 1)


def _quantile_sample(rng: np.random.Generator, knots: tuple[tuple[float, float], ...], size: int) -> np.ndarray:
    q, v = zip(*knots, strict=True)
    return np.interp(rng.random(size), q, v)


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    return 1.0 / np.arange(1, n + 1) ** exponent


def exact_counts(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts proportional to weights summing exactly to total (largest remainder)."""
    raw = weights / weights.sum() * total
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(-(raw - counts), kind="stable")[: total - counts.sum()]] += 1
    return counts


@dataclass
class Videos:
    dur_ms: np.ndarray
    log_dur: np.ndarray  # log(duration / D_REF_MS)
    static: np.ndarray  # quality + author effect: the part of log watch ratio shared by all users
    quality: np.ndarray
    author: np.ndarray  # author id
    log_pop: np.ndarray
    rewatch: np.ndarray
    factors: np.ndarray  # (n, N_FACTORS)
    tag_lists: list[list[int]]
    tag_matrix: np.ndarray  # (n, 31), rows sum to 1
    cat1_idx: np.ndarray  # index into the first-level category list
    start_day: np.ndarray  # first day with platform activity (upload day, or 0 for older videos)
    end_day: np.ndarray  # last day with platform activity (inclusive)
    small: np.ndarray  # indices of the small-block videos, ascending


@dataclass
class Users:
    bias: np.ndarray
    gamma: np.ndarray
    taste: np.ndarray  # (n, 31)
    cat_taste: np.ndarray  # (n, n_first_level)
    factors: np.ndarray
    rows_target: np.ndarray
    small: np.ndarray  # indices of the small-block users, ascending
    features: pd.DataFrame


def _assign_tags(rng: np.random.Generator, n: int) -> list[list[int]]:
    """Tag lists with exact per-tag and per-length counts (scaled), no repeated tag inside a list."""
    per_len = exact_counts(TAGS_PER_VIDEO_COUNTS.astype(float), n)
    lengths = rng.permutation(np.repeat(np.arange(1, 5), per_len))
    slots = rng.permutation(np.repeat(np.arange(N_FEATURE_TAGS), exact_counts(TAG_COUNTS.astype(float), lengths.sum())))
    owner = np.repeat(np.arange(n), lengths)
    for _ in range(200):  # swap rounds: a handful of conflicts, each round vectorised
        order = np.lexsort((slots, owner))
        dup = np.zeros(len(slots), bool)
        dup[order[1:]] = (owner[order[1:]] == owner[order[:-1]]) & (slots[order[1:]] == slots[order[:-1]])
        bad = np.flatnonzero(dup)
        if len(bad) == 0:
            break
        partners = rng.integers(0, len(slots), len(bad))
        slots[bad], slots[partners] = slots[partners], slots[bad].copy()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return [slots[s : s + k].tolist() for s, k in zip(starts, lengths, strict=True)]


def _make_videos(rng: np.random.Generator, sc: Scale, first_ids: np.ndarray) -> Videos:
    n = sc.n_videos
    long = rng.random(n) < DURATION_LONG_SHARE
    mu = np.where(long, DURATION_LONG[0], DURATION_MAIN[0])
    sd = np.where(long, DURATION_LONG[1], DURATION_MAIN[1])
    dur = np.exp(rng.normal(mu, sd)) * 1000.0
    templated = rng.random(n) < DURATION_TEMPLATE_SHARE
    dur[templated] = rng.choice(DURATION_TEMPLATES_MS, templated.sum())
    tiny = rng.random(n) < DURATION_TINY_SHARE
    dur[tiny] = rng.uniform(DURATION_MIN_MS, 3_000, tiny.sum())
    dur = np.rint(dur).clip(DURATION_MIN_MS, DURATION_MAX_MS).astype(np.int64)

    quality = rng.normal(0.0, QUALITY_SD, n)
    n_authors = max(round(n * AUTHORS_PER_VIDEO), 2)
    author_rank = categorical(rng, zipf_weights(n_authors, 0.8), n)
    author_ids = np.sort(rng.choice(4 * n_authors + 10, n_authors, replace=False))
    author_effect = rng.normal(0.0, AUTHOR_SD, n_authors)
    z = rng.normal(size=n)
    log_pop = POPULARITY_SD * (POPULARITY_QUALITY * quality / QUALITY_SD + np.sqrt(1 - POPULARITY_QUALITY**2) * z)
    rewatch = np.exp(rng.normal(0.0, REWATCH_SD, n))
    factors = rng.normal(0.0, 1.0, (n, N_FACTORS)) / np.sqrt(N_FACTORS)

    tag_lists = _assign_tags(rng, n)
    tag_matrix = np.zeros((n, N_FEATURE_TAGS))
    for_rows = np.repeat(np.arange(n), [len(t) for t in tag_lists])
    tag_matrix[for_rows, np.concatenate(tag_lists)] = 1.0
    tag_matrix /= tag_matrix.sum(axis=1, keepdims=True)
    # Category given the first listed tag, from a tag x category table fitted (IPF) to both real marginals.
    cat_counts = np.array([txt.FIRST_LEVEL[c][1] for c in first_ids], float)
    joint = 1.0 + CATEGORY_MATCH_BOOST * (
        np.array([txt.MODAL_TAG[c] for c in first_ids])[None, :] == np.arange(31)[:, None]
    )
    for _ in range(50):
        joint *= (TAG_COUNTS / joint.sum(axis=1))[:, None]
        joint *= (cat_counts / joint.sum(axis=0))[None, :]
    first_tag = np.array([t[0] for t in tag_lists])
    cdf = np.cumsum(joint, axis=1)
    cdf /= cdf[:, -1:]
    cat1_idx = (rng.random(n)[:, None] > cdf[first_tag]).sum(axis=1).clip(0, len(first_ids) - 1)

    # The small block is the most-shown videos; none of them shorter than the real small minimum.
    by_pop = np.argsort(-log_pop, kind="stable")
    small = np.sort(by_pop[: sc.n_small_videos])
    short = small[dur[small] < SMALL_MIN_DURATION_MS]
    dur[short] = SMALL_MIN_DURATION_MS + rng.integers(0, 4_000, len(short))

    hits = small
    if sc.per_user_rows:  # the real share of hits, whatever the small block's size: the daily rows must fit
        hits = np.sort(by_pop[: max(sc.n_small_videos, round(n * REAL_SMALL_VIDEOS / REAL_VIDEOS))])
    start, end = _life_windows(rng, sc, hits)
    return Videos(
        dur_ms=dur,
        log_dur=np.log(dur / D_REF_MS),
        static=quality + author_effect[author_rank],
        quality=quality,
        author=author_ids[author_rank],
        log_pop=log_pop,
        rewatch=rewatch,
        factors=factors,
        tag_lists=tag_lists,
        tag_matrix=tag_matrix,
        cat1_idx=cat1_idx,
        start_day=start,
        end_day=end,
        small=small,
    )


def _life_windows(rng: np.random.Generator, sc: Scale, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Days each video is live (its item_daily_features rows), summing exactly to the scale's daily rows.

    Video ids follow upload order (video 0 is old, the last ones are uploaded on the last day); the others
    are live for an exponential lifetime. The hits (`small`: the small block's videos, or for custom sizes the
    real share of the most popular videos, the block's included) are uploaded by day SMALL_UPLOAD_LAST (their
    id's upload day scaled into 0..SMALL_UPLOAD_LAST) and live to the end, so about 20% of the rows fall
    before 2020-07-28, when collect_* logging starts.
    """
    n = sc.n_videos
    pos = np.arange(n) / max(n - 1, 1)
    start = np.rint(62 * pos**LIFE_UPLOAD_POWER + rng.normal(0, 2.0, n)).clip(0, N_DAYS - 1).astype(np.int64)
    start[: max(n // 100, 1)] = 0
    start[-max(n // 2000, 1) :] = N_DAYS - 1
    start[small] = np.rint(start[small] * SMALL_UPLOAD_LAST / (N_DAYS - 1)).astype(np.int64)
    room = N_DAYS - start
    others = np.ones(n, bool)
    others[small] = False
    target = sc.daily_rows - room[small].sum()  # small-block videos stay live to the end
    draw = rng.exponential(1.0, n)
    lo, hi = 0.0, 200.0
    for _ in range(40):  # bisection on the mean lifetime
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.minimum(np.ceil(draw * mid), room)[others].sum() < target else (lo, mid)
    rows = np.where(others, np.minimum(np.ceil(draw * hi), room), room).astype(np.int64)
    excess = int(rows.sum() - sc.daily_rows)
    movable = np.flatnonzero(others & (rows > 1) if excess > 0 else others & (rows < room))
    rows[rng.choice(movable, abs(excess), replace=False)] -= np.sign(excess)
    return start, start + rows - 1


def _bucket(values: np.ndarray, ranges: tuple[tuple[int, str], ...], rng: np.random.Generator, stale: float) -> list:
    """Range label of each value; a `stale` share gets a neighbouring label (the real columns disagree too)."""
    bounds = np.array([b for b, _ in ranges])
    idx = np.searchsorted(bounds, values, side="left").clip(0, len(ranges) - 1)
    moved = rng.random(len(values)) < stale
    idx = np.where(moved, (idx + rng.choice([-1, 1], len(values))).clip(0, len(ranges) - 1), idx)
    labels = np.array([label for _, label in ranges], dtype=object)
    return labels[idx].tolist()


def _make_users(rng: np.random.Generator, sc: Scale, n_cat1: int) -> Users:
    n = sc.n_users
    rows = _quantile_sample(rng, USER_ROWS_QUANTILES, n)
    if not sc.per_user_rows:  # the named scales keep the real density: fewer rows per user in a smaller catalogue
        rows = rows * sc.n_videos / REAL_VIDEOS
    activity = (np.log(rows) - np.log(rows).mean()) / np.log(rows).std()

    def cat(counts: list[int]) -> np.ndarray:
        return categorical(rng, np.array(counts, float), n)

    f = pd.DataFrame({"user_id": np.arange(n)})
    rank = np.argsort(np.argsort(-(activity + rng.normal(0, 0.8, n)))) / n  # active users are "full_active"
    degree = np.where(rank < 0.849, 0, np.where(rank < 0.98, 1, np.where(rng.random(n) < 0.8, 2, 3)))
    f["user_active_degree"] = np.array(txt.ACTIVE_DEGREES)[degree]
    f["is_lowactive_period"] = (rng.random(n) < 4e-4).astype(int)
    f["is_live_streamer"] = (rng.random(n) < 0.0068).astype(int)
    f["is_video_author"] = (rng.random(n) < 0.17).astype(int)
    follow = np.rint(_quantile_sample(rng, FOLLOW_QUANTILES, n))
    fans = np.rint(_quantile_sample(rng, FANS_QUANTILES, n))
    friend = np.rint(_quantile_sample(rng, FRIEND_QUANTILES, n))
    register = np.rint(_quantile_sample(rng, REGISTER_QUANTILES, n))
    for name, values, ranges, stale in (
        ("follow_user_num", follow, txt.FOLLOW_RANGES, 0.07),
        ("fans_user_num", fans, txt.FANS_RANGES, 0.007),
        ("friend_user_num", friend, txt.FRIEND_RANGES, 0.005),
        ("register_days", register, txt.REGISTER_RANGES, 0.157),
    ):
        f[name] = values.astype(np.int64)
        f[name.replace("_num", "_num_range").replace("register_days", "register_days_range")] = _bucket(
            values, ranges, rng, stale
        )
    f["onehot_feat0"] = (rng.random(n) < 0.392).astype(int)
    f["onehot_feat1"] = cat([3, 3082, 736, 949, 1096, 483, 825, 2])
    f["onehot_feat2"] = rng.permutation(30)[categorical(rng, zipf_weights(30, 0.9), n)]
    f["onehot_feat3"] = rng.permutation(1076)[categorical(rng, zipf_weights(1076, 0.75), n)]
    f["onehot_feat4"] = pd.array(cat([2055, 3257, 1195, 314, 78, 44, 20, 8, 1, 1, 1, 1]), dtype="Int64")
    f.loc[rng.random(n) < 0.028, "onehot_feat4"] = pd.NA
    f["onehot_feat5"] = np.where(rng.random(n) < 0.9978, 0, rng.integers(1, 10, n))
    f["onehot_feat6"] = cat([3120, 4040, 16])
    f["onehot_feat7"] = rng.permutation(47)[categorical(rng, zipf_weights(47, 0.7), n)]
    f["onehot_feat8"] = rng.permutation(340)[categorical(rng, zipf_weights(340, 0.6), n)]
    f["onehot_feat9"] = cat([18, 1108, 582, 1352, 1138, 1250, 1728])
    f["onehot_feat10"] = cat([812, 1, 3761, 1682, 920])
    f["onehot_feat11"] = cat([6665, 38, 473])
    unlogged = rng.random(n) < 0.0103  # the same users miss all of onehot_feat12..17
    for k, p in zip(range(12, 18), (0.299, 0.105, 0.095, 0.0186, 0.0179, 0.0145), strict=True):
        f[f"onehot_feat{k}"] = pd.array((rng.random(n) < p).astype(int), dtype="Int64")
        f.loc[unlogged, f"onehot_feat{k}"] = pd.NA

    # Planted user parameters, partly predictable from the features above (realistic, not a leak).
    feat1, feat2, feat6 = (f[c].to_numpy() for c in ("onehot_feat1", "onehot_feat2", "onehot_feat6"))
    bias = USER_BIAS_BY_FEAT1[feat1] + USER_BIAS_ACTIVITY * activity + rng.normal(0, USER_BIAS_SD, n)
    gamma = (GAMMA_MEAN + GAMMA_BY_FEAT6[feat6] + rng.normal(0, GAMMA_SD, n)).clip(0.2, 1.8)
    prototypes = rng.normal(0, TASTE_SD, (30, N_FEATURE_TAGS))
    share = TASTE_PROTO_SHARE
    taste = share * prototypes[feat2] + np.sqrt(1 - share**2) * rng.normal(0, TASTE_SD, (n, N_FEATURE_TAGS))
    cat_taste = rng.normal(0, CATEGORY_TASTE_SD, (n, n_cat1))
    factors = rng.normal(0, FACTOR_SD, (n, N_FACTORS))
    # Light users: their big rows all fall outside the block's videos, so they decide the long tail's counts.
    pick = rows**SMALL_USER_POWER
    small = np.sort(rng.choice(n, sc.n_small_users, replace=False, p=pick / pick.sum()))
    return Users(bias, gamma, taste, cat_taste, factors, rows, small, f)


def pair_caps(sc: Scale, small_users: np.ndarray) -> np.ndarray:
    """Most distinct pairs each user may have: PAIR_CAP of the videos they may see (at least one)."""
    avail = np.full(sc.n_users, sc.n_videos)
    avail[small_users] -= sc.n_small_videos
    return np.maximum(np.floor(PAIR_CAP * avail), 1)


def own_pairs(sc: Scale, users: Users) -> np.ndarray:
    """Custom sizes: each user's distinct pairs from their own row target, as in KuaiRec, capped."""
    return np.minimum(np.rint(users.rows_target * PAIRS_PER_TARGET_ROW), pair_caps(sc, users.small)).astype(np.int64)


@dataclass
class World:
    scale: Scale
    videos: Videos
    users: Users
    first_ids: np.ndarray
    designated: np.ndarray  # one user per video who is certainly shown it (no video without a big row)


def make_world(rng: np.random.Generator, sc: Scale) -> World:
    first_ids = np.array(list(txt.FIRST_LEVEL))
    videos = _make_videos(rng, sc, first_ids)
    users = _make_users(rng, sc, len(first_ids))
    if sc.per_user_rows:
        sc = replace(sc, **big_totals(int(own_pairs(sc, users).sum())))
    weight = users.rows_target.copy()
    designated = categorical(rng, weight, sc.n_videos)
    weight[users.small] = 0.0  # small-block videos go to a user outside the block
    designated[videos.small] = categorical(rng, weight, len(videos.small))
    return World(sc, videos, users, first_ids, designated)
