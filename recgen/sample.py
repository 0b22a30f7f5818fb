"""Synthetic KuaiRec 2.0: the seven CSVs in the exact real format, drawn from a model with a planted truth.

`generate_sample(out_dir, scale)` writes `out_dir/KuaiRec 2.0/data/*.csv` (the layout of the real zip) and
`out_dir/ground_truth.csv`, the noise-free expected watch ratio of every small-matrix cell, so that an
oracle ranking is known and a model's quality can be read as a share of the best achievable. The model and
its parameters are documented in docs/synthetic.md; the statistics it reproduces are those of SPEC.md §11
(benchmarks/sample_stats.py prints them next to the targets).

Everything is drawn from one `numpy.random.Generator(seed)` in a fixed order, so a seed gives
byte-identical files. The big matrix is generated and written in user chunks to bound memory at full scale.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recgen import sample_text as txt
from recgen.constants import (
    BIG_MATRIX,
    CAPTION_CATEGORY,
    GROUND_TRUTH,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    SMALL_MATRIX,
    SOCIAL_NETWORK,
    USER_FEATURES,
)
from recgen.errors import ConfigError

DATA_SUBDIR = Path("KuaiRec 2.0") / "data"

# --- Real KuaiRec 2.0 sizes (SPEC.md §1-§8); scale "full" reproduces them exactly. ---------------------------
REAL_USERS, REAL_VIDEOS = 7_176, 10_728
REAL_SMALL_USERS, REAL_SMALL_VIDEOS = 1_411, 3_327
REAL_BIG_PAIRS = 10_300_969  # distinct (user, video) pairs in big_matrix
REAL_BIG_REWATCHES = 1_264_018  # de-duplicated rows that repeat a pair: 11,564,987 - 10,300,969
REAL_BIG_DUPLICATES = 965_819  # exact duplicate rows
REAL_SMALL_MISSING = 17_827  # small-matrix cells absent (users blocked authors)
REAL_SMALL_UNTIMED = 181_992  # small-matrix rows with empty time/date/timestamp
REAL_RELABEL_SHARE = 2_185 / REAL_BIG_REWATCHES  # re-watch rows that are one event filed under two dates
REAL_DAILY_ROWS = 343_341
REAL_SOCIAL_USERS, REAL_SOCIAL_ENTRIES = 472, 670
N_FEATURE_TAGS = 31  # item_categories.csv tag ids 0..30
# Videos per feature tag (SPEC.md §5.3) and videos with 1..4 tags: reproduced exactly at full scale.
TAG_COUNTS = np.array([24, 463, 216, 104, 164, 964, 912, 503, 1112, 696, 170, 2027, 534, 245, 63, 374, 214,
                       350, 131, 686, 265, 29, 20, 39, 12, 468, 490, 31, 1360, 5, 22])  # fmt: skip
TAGS_PER_VIDEO_COUNTS = np.array([8_970, 1_562, 185, 11])

# --- Calendar. Day 0 is 2020-07-05 (Asia/Shanghai); the log runs to day 62 (2020-09-05). -------------------
DAY0_LOCAL_EPOCH_MS = 1_593_878_400_000  # 2020-07-05 00:00:00 +08:00
LOCAL_OFFSET_MS = 8 * 3_600_000  # timestamps are UTC, `time` and `date` are local (UTC+8)
DAY_MS = 86_400_000
N_DAYS = 63
BIG_BURSTS = ((0, 7), (27, 36), (53, 62))  # inclusive day ranges: Jul 5-12, Aug 1-10, Aug 27-Sep 5
BIG_BURST_WEIGHTS = (1.0, 1.6, 0.35)  # per-day weight of each burst (late uploads, the block's too, push rows later)
STRAY_DAYS = (-12, 67)  # stray big rows fall anywhere in Jun 23 .. Sep 10
STRAY_SHARE = 5e-4  # share of big rows outside the bursts ("a few thousand")
DATE_MISMATCH_SHARE = 1e-3  # rows whose `date` partition is the day after the local date of `timestamp`
USER_DAY_SHAPE = 2.0  # gamma shape of a user's per-day activity: small = bursty user-days
USER_DAY_OFF = 0.15  # chance a user skips a burst day entirely (~26 of 28 days active)
# Local hour-of-day profile: broad, peaking 9-11h and in the evening (SPEC.md §1.4).
HOUR_WEIGHTS = np.array([3.0, 2.0, 1.2, 0.8, 0.6, 0.8, 1.5, 3.0, 4.5, 5.5, 5.6, 5.3,
                         5.0, 4.8, 4.5, 4.5, 4.5, 4.5, 4.6, 4.8, 5.0, 5.2, 5.0, 4.0])  # fmt: skip

# --- Videos. ------------------------------------------------------------------------------------------------
D_REF_MS = 9_600.0  # reference duration (median) for log-duration effects
DURATION_MAIN = (np.log(9.0), 0.30)  # log-seconds normal of typical short videos
DURATION_LONG = (np.log(16.0), 0.85)  # the long tail (to 315 s)
DURATION_LONG_SHARE = 0.22
DURATION_TEMPLATES_MS = np.array([11_533, 6_000, 6_066, 6_100, 6_033])  # platform templates: spikes
DURATION_TEMPLATE_SHARE = 0.05
DURATION_TINY_SHARE = 0.004  # clips shorter than 3 s (the real minimum is 140 ms)
DURATION_MIN_MS, DURATION_MAX_MS = 140, 315_072
SMALL_MIN_DURATION_MS = 3_067  # the small block has no video shorter than this
QUALITY_SD = 0.25  # item quality: the part of log watch ratio every user shares
AUTHOR_SD = 0.15  # author effect, shared by an author's videos
AUTHORS_PER_VIDEO = 0.6  # n_authors / n_videos; authors are Zipf-sized
POPULARITY_SD = 5.5  # log exposure weight of a video (extremely skewed per-video rows)
POPULARITY_QUALITY = 0.5  # better videos are shown more (correlation of log popularity and quality)
REWATCH_SD = 1.25  # log propensity of a video to be re-watched (loops, hits): per-video max ~24k rows
N_FACTORS = 8  # latent user x video factors
SMALL_UPLOAD_LAST = 21  # small-block videos (hits) are uploaded by Jul 26: id order mapped onto days 0..21
LIFE_UPLOAD_POWER = 1.0  # start day ~ 62 x (video_id / n)^power: ids follow upload order
CATEGORY_MATCH_BOOST = 40.0  # seed of the tag x category table: a category's modal tag is far more likely
SECOND_KNOWN, THIRD_KNOWN = 0.666, 0.60  # P(2nd level known), P(3rd known | 2nd known) (SPEC.md §8.1)
COVER_KNOWN = 0.376  # manual cover text present (else the literal UNKNOWN)
CAPTION_EMPTY = 0.126
CAPTION_HASHTAG = 0.65  # share of non-empty captions with #hashtags (= non-empty topic_tag)
N_CR_CAPTIONS = 4  # captions with a bare \r inside (the real file's parsing trap)

# --- Users. -------------------------------------------------------------------------------------------------
# Quantile function of big-matrix rows per user at full scale (SPEC.md §1.5), scaled by n_videos.
USER_ROWS_QUANTILES = ((0.0, 100), (0.1, 330), (0.25, 883), (0.5, 1846), (0.75, 2461),
                       (0.9, 2900), (0.99, 4000), (1.0, 16_015))  # fmt: skip
# Quantile functions of the user_features counters (SPEC.md §6.1).
FOLLOW_QUANTILES = ((0, 0), (0.1, 3), (0.25, 9), (0.5, 33), (0.75, 130), (0.9, 569), (0.99, 1999), (1, 2100))
FANS_QUANTILES = ((0, 0), (0.3, 0), (0.5, 2), (0.75, 6), (0.9, 14), (0.99, 107), (0.999, 1500), (1, 11401))
FRIEND_QUANTILES = ((0, 0), (0.607, 0), (0.75, 1), (0.9, 5), (0.99, 49), (1, 1425))
REGISTER_QUANTILES = ((0, 0), (0.1, 70), (0.25, 132), (0.5, 225), (0.75, 324), (0.9, 597), (0.99, 1494), (1, 2245))
PAIR_CAP = 0.85  # at most this share of the available videos become distinct pairs for one user
USER_BIAS_SD = 0.18  # user bias (log scale), unexplained part
USER_BIAS_BY_FEAT1 = np.array([0.0, 0.08, -0.1, 0.0, 0.05, -0.12, 0.1, 0.0])  # onehot_feat1 carries bias
USER_BIAS_ACTIVITY = 0.06  # heavier users watch a bit longer
GAMMA_MEAN, GAMMA_SD = 0.95, 0.24  # duration sensitivity: watch ratio ~ duration^-gamma
GAMMA_BY_FEAT6 = np.array([0.08, -0.06, 0.0])
TASTE_SD = 0.30  # user taste over the 31 feature tags
TASTE_PROTO_SHARE = 0.55  # part of the taste shared by the user's onehot_feat2 segment
CATEGORY_TASTE_SD = 0.22  # user taste over first-level caption categories
FACTOR_SD = 0.18  # sd of the latent dot product x_u . y_v
SMALL_USER_POWER = -1.5  # small-block users drawn with weights rows_target^power: light users (median per video)
EXPOSE_AFFINITY = 0.5  # missing-not-at-random: log exposure weight += this x the user's personal affinity

# --- Watch-ratio observation model (docs/synthetic.md §2). --------------------------------------------------
BASE_LOG_RATIO = np.log(0.61)  # log watch ratio of an average user on an average video of D_REF_MS
WATCH_SD = 0.30  # log-normal noise of a normal view (mean-one)
P_ZERO = 0.019  # play_duration 0 (opened, nothing played)
SKIP_INTERCEPT, SKIP_APPEAL = -1.75, 1.6  # P(skip) = sigmoid(a - b x appeal)
SMALL_SKIP_SHIFT = -3.0  # small-block protocol (videos inserted in the feed for days): fewer skips
SMALL_LOG_SHIFT = 0.165  # small-block views run longer (log scale; constant: rankings unchanged); offsets the
# lighter small users' lower bias (USER_BIAS_ACTIVITY x their mean activity -1.2)
SKIP_SECONDS, SKIP_MAX_RATIO, SKIP_SD = 1.6, 0.5, 0.6  # a skip plays ~1.6 s, at most half the video
LOOP_INTERCEPT, LOOP_DURATION, LOOP_APPEAL = -5.4, 1.3, 1.0  # P(loop): short and appealing videos loop
LOOP_XM, LOOP_ALPHA, LOOP_MAX = 1.6, 1.3, 150.0  # loop multiplier: Pareto(xm, alpha) truncated at max
RATIO_CAP = 575.0  # longest real loop (573x); the expectation ignores this cap (far below 1e-6 of its mass)
SMALL_FORCED_SHARE = 0.02  # small-matrix views force-inserted in the feed: mostly skipped (spike ~0.1)

BIG_CHUNK_USERS = 384  # users generated and written per chunk (~700k rows at full scale)
BIG_HEADER = ["user_id", "video_id", "play_duration", "video_duration", "time", "date", "timestamp", "watch_ratio"]


@dataclass(frozen=True)
class Scale:
    """Sizes of one sample; everything else (densities, shapes) follows the real data."""

    n_users: int
    n_videos: int
    n_small_users: int
    n_small_videos: int
    big_pairs: int
    big_rewatches: int
    big_duplicates: int
    small_missing: int
    small_untimed: int
    daily_rows: int
    social_users: int
    social_entries: int

    @property
    def big_rows(self) -> int:
        return self.big_pairs + self.big_rewatches + self.big_duplicates

    @property
    def small_rows(self) -> int:
        return self.n_small_users * self.n_small_videos - self.small_missing


def _derive_scale(n_users: int, n_videos: int, n_small_users: int, n_small_videos: int) -> Scale:
    """Scale every count by the real density of the cell it lives in (exact at the real sizes)."""
    open_cells = n_users * n_videos - n_small_users * n_small_videos
    real_open = REAL_USERS * REAL_VIDEOS - REAL_SMALL_USERS * REAL_SMALL_VIDEOS
    pairs = round(REAL_BIG_PAIRS * open_cells / real_open)
    rewatches = round(pairs * REAL_BIG_REWATCHES / REAL_BIG_PAIRS)
    duplicates = round((pairs + rewatches) * REAL_BIG_DUPLICATES / (REAL_BIG_PAIRS + REAL_BIG_REWATCHES))
    cells, real_cells = n_small_users * n_small_videos, REAL_SMALL_USERS * REAL_SMALL_VIDEOS
    missing = round(cells * REAL_SMALL_MISSING / real_cells)
    untimed = round((cells - missing) * REAL_SMALL_UNTIMED / (real_cells - REAL_SMALL_MISSING))
    social_users = max(round(n_users * REAL_SOCIAL_USERS / REAL_USERS), 5)
    return Scale(
        n_users=n_users,
        n_videos=n_videos,
        n_small_users=n_small_users,
        n_small_videos=n_small_videos,
        big_pairs=pairs,
        big_rewatches=rewatches,
        big_duplicates=duplicates,
        small_missing=missing,
        small_untimed=untimed,
        daily_rows=round(n_videos * REAL_DAILY_ROWS / REAL_VIDEOS),
        social_users=social_users,
        social_entries=round(social_users * REAL_SOCIAL_ENTRIES / REAL_SOCIAL_USERS),
    )


SCALES: dict[str, Scale] = {
    "tiny": _derive_scale(180, 280, 40, 80),
    "small": _derive_scale(1_800, 2_700, 354, 837),
    "full": _derive_scale(REAL_USERS, REAL_VIDEOS, REAL_SMALL_USERS, REAL_SMALL_VIDEOS),
}


# ============================================================================================================
# Text helpers: pandas-identical number and time text, built with Arrow kernels (12.5 M rows in seconds).
# ============================================================================================================


@functools.cache
def _clock_tables() -> tuple[pa.Array, pa.Array]:
    """`HH:MM:SS` for every second of a day, and the trimmed millisecond fraction (`.438`, `.5`, ``)."""
    sec = np.arange(86_400)
    hms = [f"{h:02d}:{m:02d}:{s:02d}" for h, m, s in zip(sec // 3600, sec // 60 % 60, sec % 60, strict=True)]
    frac = [("." + f"{ms:03d}".rstrip("0")) if ms else "" for ms in range(1000)]
    return pa.array(hms), pa.array(frac)


def _time_text(ts_ms: np.ndarray) -> pa.Array:
    """Local (UTC+8) `YYYY-MM-DD HH:MM:SS.fff` with trailing zeros of the fraction trimmed (SPEC.md §1.2)."""
    local = ts_ms + LOCAL_OFFSET_MS
    day, sod = np.divmod(local, DAY_MS)
    first = int(day.min())
    names = np.datetime_as_string(np.arange(first, int(day.max()) + 1).astype("datetime64[D]"))
    hms, frac = _clock_tables()
    return pc.binary_join_element_wise(
        pa.array(np.char.add(names, " ")).take(pa.array(day - first)),
        hms.take(pa.array(sod // 1000)),
        frac.take(pa.array(sod % 1000)),
        "",
    )


def _float_text(x: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Shortest round-trip text of float64 values, exactly as Python's repr (and pandas' to_csv) writes them."""
    s = pc.cast(pa.array(x, mask=null), pa.string())
    finite = np.isfinite(x)
    integral = finite & (x == np.trunc(x)) & (np.abs(x) < 1e16)  # Arrow writes 2.0 as "2"
    s = pc.if_else(pa.array(integral), pc.binary_join_element_wise(s, ".0", ""), s)
    tiny = finite & (x != 0) & (np.abs(x) < 1e-4)  # Arrow writes 3e-06 as "0.000003"
    if null is not None:
        tiny &= ~null
    if tiny.any():
        s = pc.replace_with_mask(s, pa.array(tiny), pa.array([repr(float(v)) for v in x[tiny]]))
    return s


def _date_int(day: np.ndarray) -> np.ndarray:
    """YYYYMMDD integers of day numbers relative to day 0."""
    d = (np.datetime64("2020-07-05") + day.astype("timedelta64[D]")).astype("datetime64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    return y * 10_000 + m * 100 + dd


def _write_arrow_csv(path: Path, header: list[str], tables: Iterator[pa.Table]) -> None:
    """Unquoted CSV (no field here can hold a comma), header written by hand: Arrow would quote it."""
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as out:
        out.write((",".join(header) + "\n").encode())
        for table in tables:
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, options)
            out.write(sink.getvalue().to_pybytes())


def _write_pandas_csv(path: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")


def _list_text(lists: list[list[int]]) -> list[str]:
    return ["[" + ", ".join(map(str, items)) + "]" for items in lists]


# ============================================================================================================
# The latent world: videos and users with their planted parameters.
# ============================================================================================================


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _categorical(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    cdf = np.cumsum(weights, dtype=float)
    return np.searchsorted(cdf / cdf[-1], rng.random(size), side="right").clip(0, len(weights) - 1)


def _quantile_sample(rng: np.random.Generator, knots: tuple[tuple[float, float], ...], size: int) -> np.ndarray:
    q, v = zip(*knots, strict=True)
    return np.interp(rng.random(size), q, v)


def _zipf_weights(n: int, exponent: float) -> np.ndarray:
    return 1.0 / np.arange(1, n + 1) ** exponent


def _exact_counts(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts proportional to weights summing exactly to total (largest remainder)."""
    raw = weights / weights.sum() * total
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(-(raw - counts), kind="stable")[: total - counts.sum()]] += 1
    return counts


@dataclass
class _Videos:
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
class _Users:
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
    per_len = _exact_counts(TAGS_PER_VIDEO_COUNTS.astype(float), n)
    lengths = rng.permutation(np.repeat(np.arange(1, 5), per_len))
    slots = rng.permutation(
        np.repeat(np.arange(N_FEATURE_TAGS), _exact_counts(TAG_COUNTS.astype(float), lengths.sum()))
    )
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


def _make_videos(rng: np.random.Generator, sc: Scale, first_ids: np.ndarray) -> _Videos:
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
    author_rank = _categorical(rng, _zipf_weights(n_authors, 0.8), n)
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
    small = np.sort(np.argsort(-log_pop, kind="stable")[: sc.n_small_videos])
    short = small[dur[small] < SMALL_MIN_DURATION_MS]
    dur[short] = SMALL_MIN_DURATION_MS + rng.integers(0, 4_000, len(short))

    start, end = _life_windows(rng, sc, small)
    return _Videos(
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
    are live for an exponential lifetime. The small block's videos are hits, uploaded by day
    SMALL_UPLOAD_LAST (their id's upload day scaled into 0..SMALL_UPLOAD_LAST) and live to the end, so
    about 20% of the rows fall before 2020-07-28, when collect_* logging starts (SPEC.md §7.3, §11).
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


def _make_users(rng: np.random.Generator, sc: Scale, n_cat1: int) -> _Users:
    n = sc.n_users
    rows = _quantile_sample(rng, USER_ROWS_QUANTILES, n) * sc.n_videos / REAL_VIDEOS
    activity = (np.log(rows) - np.log(rows).mean()) / np.log(rows).std()

    def cat(counts: list[int]) -> np.ndarray:
        return _categorical(rng, np.array(counts, float), n)

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
    f["onehot_feat2"] = rng.permutation(30)[_categorical(rng, _zipf_weights(30, 0.9), n)]
    f["onehot_feat3"] = rng.permutation(1076)[_categorical(rng, _zipf_weights(1076, 0.75), n)]
    f["onehot_feat4"] = pd.array(cat([2055, 3257, 1195, 314, 78, 44, 20, 8, 1, 1, 1, 1]), dtype="Int64")
    f.loc[rng.random(n) < 0.028, "onehot_feat4"] = pd.NA
    f["onehot_feat5"] = np.where(rng.random(n) < 0.9978, 0, rng.integers(1, 10, n))
    f["onehot_feat6"] = cat([3120, 4040, 16])
    f["onehot_feat7"] = rng.permutation(47)[_categorical(rng, _zipf_weights(47, 0.7), n)]
    f["onehot_feat8"] = rng.permutation(340)[_categorical(rng, _zipf_weights(340, 0.6), n)]
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
    return _Users(bias, gamma, taste, cat_taste, factors, rows, small, f)


@dataclass
class _World:
    scale: Scale
    videos: _Videos
    users: _Users
    first_ids: np.ndarray
    designated: np.ndarray  # one user per video who is certainly shown it (no video without a big row)


def _make_world(rng: np.random.Generator, sc: Scale) -> _World:
    first_ids = np.array(list(txt.FIRST_LEVEL))
    videos = _make_videos(rng, sc, first_ids)
    users = _make_users(rng, sc, len(first_ids))
    weight = users.rows_target.copy()
    designated = _categorical(rng, weight, sc.n_videos)
    weight[users.small] = 0.0  # small-block videos go to a user outside the block
    designated[videos.small] = _categorical(rng, weight, len(videos.small))
    return _World(sc, videos, users, first_ids, designated)


# ============================================================================================================
# The watch-ratio model.
# ============================================================================================================


def _affinity(w: _World, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """Personal part of the log watch ratio, (len(users), len(videos)): taste, categories, latent factors."""
    u, v = w.users, w.videos
    return (
        u.taste[users] @ v.tag_matrix[videos].T
        + u.cat_taste[users][:, v.cat1_idx[videos]]
        + u.factors[users] @ v.factors[videos].T
    )


def _log_mean(w: _World, users: np.ndarray, videos: np.ndarray, affinity: np.ndarray) -> np.ndarray:
    """eta: log of the watch ratio of a normal (not skipped, not looped) view, before noise."""
    u, v = w.users, w.videos
    return (
        BASE_LOG_RATIO
        + u.bias[users][:, None]
        - u.gamma[users][:, None] * v.log_dur[videos][None, :]
        + v.static[videos][None, :]
        + affinity
    )


def _loop_mean() -> float:
    """Mean of the truncated Pareto loop multiplier."""
    a, xm, top = LOOP_ALPHA, LOOP_XM, LOOP_MAX
    return a * xm**a / (a - 1) * (xm ** (1 - a) - top ** (1 - a)) / (1 - (xm / top) ** a)


def _parts(eta: np.ndarray, log_dur: np.ndarray, dur_ms: np.ndarray, skip_shift: float) -> tuple[np.ndarray, ...]:
    """Normal-view mean, skip probability, skip ratio and loop probability of each view."""
    appeal = eta - BASE_LOG_RATIO
    skip = _sigmoid(SKIP_INTERCEPT + skip_shift - SKIP_APPEAL * appeal)
    skip_ratio = np.minimum(SKIP_SECONDS * 1000.0 / dur_ms, SKIP_MAX_RATIO)
    loop = _sigmoid(LOOP_INTERCEPT - LOOP_DURATION * log_dur + LOOP_APPEAL * appeal)
    return np.exp(eta), skip, skip_ratio, loop


def _expected(eta: np.ndarray, log_dur: np.ndarray, dur_ms: np.ndarray, skip_shift: float = 0.0) -> np.ndarray:
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
    hour = _categorical(rng, HOUR_WEIGHTS, len(day))
    ms_in_day = hour * 3_600_000 + rng.integers(0, 3_600_000, len(day))
    return DAY0_LOCAL_EPOCH_MS + day * DAY_MS + ms_in_day


def _dates(rng: np.random.Generator, ts_ms: np.ndarray) -> np.ndarray:
    """Partition day (index): the local day clamped to the log window, filed a day late for a small share."""
    day = (ts_ms - DAY0_LOCAL_EPOCH_MS) // DAY_MS
    late = rng.random(len(day)) < DATE_MISMATCH_SHARE
    day = np.where(late, np.where(day >= N_DAYS - 1, day - 1, day + 1), day)
    return day.clip(0, N_DAYS - 1)


def _interaction_table(user, video, play, dur, ts_ms, date, null=None) -> pa.Table:
    """The 8 interaction columns as Arrow arrays; `null` marks rows without time, date and timestamp."""
    time_text = _time_text(ts_ms)
    if null is not None:
        time_text = pc.if_else(pa.array(null), pa.scalar(None, pa.string()), time_text)
    return pa.table(
        {
            "user_id": user,
            "video_id": video,
            "play_duration": play,
            "video_duration": dur,
            "time": time_text,
            "date": pa.array(_date_int(date), mask=null),
            "timestamp": _float_text(ts_ms / 1000.0, null),
            "watch_ratio": _float_text(play / dur),
        }
    )


# ============================================================================================================
# big_matrix: missing-not-at-random exposure, re-watches, duplicates; generated per user chunk.
# ============================================================================================================


def _allocate_big(rng: np.random.Generator, w: _World) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct pairs, re-watch rows and duplicate rows per user, summing exactly to the scale's totals."""
    sc, rows = w.scale, w.users.rows_target
    avail = np.full(sc.n_users, sc.n_videos)
    avail[w.users.small] -= sc.n_small_videos
    cap = np.maximum(np.floor(PAIR_CAP * avail), 1)
    want = rows.copy()
    for _ in range(20):  # rescale, clip at the cap, repeat: converges in a few rounds
        want = np.minimum(want * sc.big_pairs / want.sum(), cap)
    pairs = _exact_counts(want, sc.big_pairs)
    over = pairs - cap.astype(np.int64)
    while over.max() > 0:  # rounding may push a capped user one over: hand the excess to free users
        extra = int(over.clip(0).sum())
        pairs = np.minimum(pairs, cap.astype(np.int64))
        free = np.flatnonzero(pairs < cap)
        pairs[rng.choice(free, extra, replace=True)] += 1
        over = pairs - cap.astype(np.int64)
    pairs = np.maximum(pairs, 1)
    rest = np.maximum(rows * sc.big_pairs / rows.sum() * (sc.big_rows / sc.big_pairs) - pairs, 0.05 * pairs)
    rewatch = rng.multinomial(sc.big_rewatches, rest / rest.sum())
    dups = rng.multinomial(sc.big_duplicates, (pairs + rewatch) / (pairs + rewatch).sum())
    return pairs, rewatch, dups


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


def _big_chunk(rng: np.random.Generator, w: _World, users: np.ndarray, pairs: np.ndarray, rewatch: np.ndarray,
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
    order = np.argsort(-logits, axis=1, kind="stable")
    keep = np.arange(sc.n_videos)[None, :] < pairs[:, None]
    owner, _ = np.nonzero(keep)
    vid = order[keep]
    eta = _log_mean(w, users, all_videos, aff)[owner, vid]

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
    # A few re-watch rows are the same event filed under a second partition date (SPEC.md §1.3).
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
    return _interaction_table(users[owner[rows]], vid[rows], play[rows], dur[rows], ts[rows], date[rows])


def _big_tables(rng: np.random.Generator, w: _World, progress: Callable[[str], None] | None) -> Iterator[pa.Table]:
    pairs, rewatch, dups = _allocate_big(rng, w)
    for start in range(0, w.scale.n_users, BIG_CHUNK_USERS):
        users = np.arange(start, min(start + BIG_CHUNK_USERS, w.scale.n_users))
        yield _big_chunk(rng, w, users, pairs[users], rewatch[users], dups[users])


# ============================================================================================================
# small_matrix and the ground truth.
# ============================================================================================================


def _small_cells(rng: np.random.Generator, w: _World) -> tuple[np.ndarray, np.ndarray]:
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


def _small_and_truth(rng: np.random.Generator, w: _World) -> tuple[pa.Table, pa.Table]:
    v = w.videos
    uu, vv = _small_cells(rng, w)
    u_index = np.searchsorted(w.users.small, uu)
    v_index = np.searchsorted(v.small, vv)
    aff = _affinity(w, w.users.small, v.small)
    eta = _log_mean(w, w.users.small, v.small, aff)[u_index, v_index] + SMALL_LOG_SHIFT
    dur = v.dur_ms[vv]
    truth = (1 - SMALL_FORCED_SHARE) * _expected(eta, v.log_dur[vv], dur, SMALL_SKIP_SHIFT) + SMALL_FORCED_SHARE * 0.1
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
    small = _interaction_table(uu[order], vv[order], play[order], dur[order], ts[order], date[order], untimed[order])
    key = np.lexsort((vv, uu))
    gt = pa.table({"user_id": uu[key], "video_id": vv[key], "expected_watch_ratio": _float_text(truth[key])})
    return small, gt


# ============================================================================================================
# Side tables: item categories, captions, daily features, users, social network.
# ============================================================================================================


def _category_tree(rng: np.random.Generator, first_ids: np.ndarray) -> tuple[dict, dict]:
    """Second- and third-level nodes: id -> (parent id, name), a strict tree with unique names and ids."""
    known = [c for c in first_ids if c != txt.UNKNOWN_ID]
    n2, n3 = sum(txt.N_SECOND[c] for c in known), sum(txt.N_THIRD[c] for c in known)
    ids2 = np.sort(rng.choice(np.arange(110, 750), n2, replace=False))
    ids3 = np.sort(rng.choice(np.arange(1051, 2677), n3, replace=False))
    second, third, i2, i3 = {}, {}, 0, 0
    for c in known:
        name1 = txt.FIRST_LEVEL[c][0]
        children = []
        for k in range(txt.N_SECOND[c]):
            suffix = txt.SECOND_SUFFIXES[k % len(txt.SECOND_SUFFIXES)] + ("" if k < 10 else str(k))
            second[int(ids2[i2])] = (c, name1 + suffix)
            children.append(int(ids2[i2]))
            i2 += 1
        for k in range(txt.N_THIRD[c]):
            parent = children[k % len(children)]
            word = txt.CATEGORY_WORDS[c][k % len(txt.CATEGORY_WORDS[c])]
            third[int(ids3[i3])] = (parent, word + txt.THIRD_SUFFIXES[k % len(txt.THIRD_SUFFIXES)])
            i3 += 1
    return second, third


def _captions(rng: np.random.Generator, w: _World) -> str:
    """kuairec_caption_category.csv as text: QUOTE_MINIMAL by hand, so the bare \\r stay unquoted."""
    n, first_ids = w.scale.n_videos, w.first_ids
    cat1 = first_ids[w.videos.cat1_idx]
    second, third = _category_tree(rng, first_ids)
    by_parent2: dict[int, list[int]] = {}
    for k, (p, _) in second.items():
        by_parent2.setdefault(p, []).append(k)
    by_parent3: dict[int, list[int]] = {}
    for k, (p, _) in third.items():
        by_parent3.setdefault(p, []).append(k)
    u2, u3, pick = rng.random(n), rng.random(n), rng.random((n, 2))
    rows = []
    n_words = rng.integers(2, 9, n)
    n_tags = np.minimum(rng.geometric(0.45, n), 9)
    has_tags = rng.random(n) < CAPTION_HASHTAG
    empty = rng.random(n) < CAPTION_EMPTY
    cover = rng.random(n) < COVER_KNOWN
    cr = set(rng.choice(np.flatnonzero(~empty), min(N_CR_CAPTIONS, int((~empty).sum())), replace=False).tolist())
    word_draws = rng.random((n, 12))
    for i in range(n):  # one caption per video (thousands of rows, not interactions)
        c = int(cat1[i])
        words = txt.CATEGORY_WORDS[c] + txt.COMMON_WORDS
        c2 = c3 = txt.UNKNOWN_ID
        if c != txt.UNKNOWN_ID and u2[i] < SECOND_KNOWN:
            kids = by_parent2[c]
            c2 = kids[int(pick[i, 0] ** 1.5 * len(kids))]
            if u3[i] < THIRD_KNOWN and c2 in by_parent3:
                kids3 = by_parent3[c2]
                c3 = kids3[int(pick[i, 1] ** 1.5 * len(kids3))]
        picks = (word_draws[i] * len(words)).astype(int)
        body = "".join(words[j] + txt.PUNCTUATION[j % len(txt.PUNCTUATION)] for j in picks[: n_words[i]])
        tags: list[str] = []
        if has_tags[i]:
            pool = txt.CATEGORY_WORDS[c] + txt.COMMON_HASHTAGS
            tags = sorted({pool[j % len(pool)] for j in picks[::-1][: n_tags[i]]})
            body = " ".join("#" + t for t in tags) + " " + body
        if i in cr:
            body = body[: len(body) // 2] + "\r" + body[len(body) // 2 :]
        caption = "" if empty[i] else body
        if empty[i]:
            tags = []
        cover_text = txt.COVER_PHRASES[picks[0] % len(txt.COVER_PHRASES)] if cover[i] else txt.UNKNOWN
        fields = [
            str(i), cover_text, caption, "[" + ",".join(tags) + "]",
            str(c), txt.FIRST_LEVEL[c][0],
            str(c2), second[c2][1] if c2 in second else txt.UNKNOWN,
            str(c3), third[c3][1] if c3 in third else txt.UNKNOWN,
        ]  # fmt: skip
        rows.append(",".join(_quote(f) for f in fields))
    header = "video_id,manual_cover_text,caption,topic_tag,first_level_category_id,first_level_category_name,"
    header += "second_level_category_id,second_level_category_name,third_level_category_id,third_level_category_name"
    return header + "\n" + "\n".join(rows) + "\n"


def _quote(field: str) -> str:
    if "," in field or '"' in field or "\n" in field:
        return '"' + field.replace('"', '""') + '"'
    return field


def _daily(rng: np.random.Generator, w: _World) -> pd.DataFrame:
    """item_daily_features: platform-wide daily counters driven by popularity (shows) and quality (rates)."""
    v, n = w.videos, w.scale.n_videos
    live = v.end_day - v.start_day + 1
    vid = np.repeat(np.arange(n), live)
    day = np.arange(len(vid)) - np.repeat(np.cumsum(live) - live - v.start_day, live)
    m = len(vid)
    # Video-level average behaviour of the whole platform: the model's expectation for an average user.
    eta0 = BASE_LOG_RATIO - GAMMA_MEAN * v.log_dur + v.static
    mean_ratio = _expected(eta0, v.log_dur, v.dur_ms)
    zq = v.quality / QUALITY_SD
    old = rng.integers(1, 200, n)
    upload_day = np.where(v.start_day > 0, v.start_day, -old)
    age = day - upload_day[vid]
    show = np.rint(3_000 * np.exp(0.3 * v.log_pop[vid]) * (0.35 + 0.65 * np.exp(-age / 12)) * rng.lognormal(0, 0.3, m))
    show = show.astype(np.int64) + 1

    def share(count: np.ndarray, p: np.ndarray) -> np.ndarray:
        return rng.binomial(count, np.clip(p, 0, 1))

    play_p = _sigmoid(0.6 + 0.5 * zq)[vid]
    play = share(show, play_p)
    ratio_v = mean_ratio[vid] * rng.lognormal(0, 0.05, m)
    complete_p = _sigmoid(2.2 * np.log(ratio_v) + 0.4)
    long_video = v.dur_ms[vid] > 7_000
    f = pd.DataFrame({"video_id": vid, "date": _date_int(day)})
    authors = v.author
    f["author_id"] = authors[vid]
    ad = rng.random(n) < 0.0034
    f["video_type"] = np.where(ad[vid], "AD", "NORMAL")
    f["upload_dt"] = np.datetime_as_string(np.datetime64("2020-07-05") + upload_day.astype("timedelta64[D]"))[vid]
    types = list(txt.UPLOAD_TYPES)
    f["upload_type"] = np.array(types)[_categorical(rng, np.array(list(txt.UPLOAD_TYPES.values()), float), n)][vid]
    status = np.where(rng.random(n) < 0.994, 0, rng.integers(1, len(txt.VISIBLE_STATUS), n))
    f["visible_status"] = np.array(txt.VISIBLE_STATUS)[status][vid]
    daily_dur = (v.dur_ms + rng.choice([-1, 0, 0, 0, 1], n)).astype(float)
    daily_dur[rng.random(n) < 0.031] = np.nan
    f["video_duration"] = daily_dur[vid]
    res = np.array(txt.RESOLUTIONS)[_categorical(rng, np.array([8, 2, 2, 1, 1, 1.0]), n)]
    f["video_width"], f["video_height"] = res[vid, 0], res[vid, 1]
    f["music_id"] = rng.integers(10**8, 4 * 10**9, n)[vid]
    tag_ids = np.array([0, *txt.VISUAL_TAGS])
    tag_w = np.concatenate(
        [[0.0945], 0.9055 * _zipf_weights(len(txt.VISUAL_TAGS), 1.0) / _zipf_weights(len(txt.VISUAL_TAGS), 1.0).sum()]
    )
    tag = tag_ids[_categorical(rng, tag_w, n)]
    f["video_tag_id"] = tag[vid]
    f["video_tag_name"] = pd.Series([txt.VISUAL_TAGS.get(int(t)) for t in tag], dtype=object).to_numpy()[vid]
    f["show_cnt"] = show
    f["show_user_num"] = share(show, rng.uniform(0.7, 0.85, m))
    f["play_cnt"] = play
    f["play_user_num"] = share(play, rng.uniform(0.65, 0.8, m))
    f["play_duration"] = np.rint(play * v.dur_ms[vid] * ratio_v).astype(np.int64)
    complete = share(play, complete_p)
    f["complete_play_cnt"], f["complete_play_user_num"] = complete, share(complete, 0.85)
    valid = np.where(long_video, share(play, _sigmoid(1.5 * np.log(ratio_v) + 0.9)), complete)
    f["valid_play_cnt"], f["valid_play_user_num"] = valid, share(valid, 0.87)
    long_p = np.where(v.dur_ms[vid] > 18_000, _sigmoid(1.5 * np.log(ratio_v) - 0.2), complete_p)
    long_play = np.where(v.dur_ms[vid] > 7_000, share(play, long_p), valid)
    f["long_time_play_cnt"], f["long_time_play_user_num"] = long_play, share(long_play, 0.87)
    short = share(play, _sigmoid(-1.6 - 1.5 * np.log(ratio_v)))
    f["short_time_play_cnt"], f["short_time_play_user_num"] = short, share(short, 0.77)
    f["play_progress"] = np.round(1 - np.exp(-1.1 * ratio_v), 6)
    like = share(play, 0.02 * np.exp(0.6 * zq[vid] + rng.normal(0, 0.3, m)))
    comment = share(play, 0.0015 * np.exp(0.4 * zq[vid]))
    counters = {
        "comment_stay_duration": np.rint(play * rng.lognormal(6.3, 0.4, m)).astype(np.int64),
        "like_cnt": like, "like_user_num": share(like, 0.99),
        "click_like_cnt": share(like, 0.55), "double_click_cnt": None,
        "cancel_like_cnt": share(like, 0.15),
    }  # fmt: skip
    counters["double_click_cnt"] = like - counters["click_like_cnt"]
    counters["cancel_like_user_num"] = share(counters["cancel_like_cnt"], 0.97)
    direct = share(comment, 0.7)
    counters |= {
        "comment_cnt": comment, "comment_user_num": share(comment, 0.95),
        "direct_comment_cnt": direct, "reply_comment_cnt": comment - direct,
        "delete_comment_cnt": share(comment, 0.02), "delete_comment_user_num": None,
        "comment_like_cnt": share(play, 0.01), "comment_like_user_num": None,
        "follow_cnt": share(play, 0.02 * np.exp(0.5 * zq[vid])), "follow_user_num": None,
        "cancel_follow_cnt": share(play, 0.0002), "cancel_follow_user_num": None,
        "share_cnt": share(play, 0.0008 * np.exp(0.7 * zq[vid])), "share_user_num": None,
        "download_cnt": share(play, 0.0009), "download_user_num": None,
        "report_cnt": share(play, 0.00005), "report_user_num": None,
        "reduce_similar_cnt": share(play, 0.0004 * np.exp(-0.5 * zq[vid])), "reduce_similar_user_num": None,
    }  # fmt: skip
    for name in list(counters):
        if counters[name] is None:
            counters[name] = share(counters[name.replace("_user_num", "_cnt")], 0.9)
    for name, values in counters.items():
        f[name] = values
    logged = (day >= 23).astype(float)  # collect_* were not logged before 2020-07-28
    collect = share(play, 0.001 * np.exp(0.5 * zq[vid]))
    cancel = share(collect, 0.05)
    f["collect_cnt"] = np.where(logged > 0, collect, np.nan)
    f["collect_user_num"] = np.where(logged > 0, share(collect, 0.97), np.nan)
    f["cancel_collect_cnt"] = np.where(logged > 0, cancel, np.nan)
    f["cancel_collect_user_num"] = np.where(logged > 0, share(cancel, 0.97), np.nan)
    return f


def _social(rng: np.random.Generator, w: _World) -> pd.DataFrame:
    """social_network.csv: a few hundred users with 1-5 friends each, unsorted; small users over-represented."""
    sc = w.scale
    weight = np.ones(sc.n_users)
    weight[w.users.small] = 1.8
    users = rng.choice(sc.n_users, sc.social_users, replace=False, p=weight / weight.sum())
    lengths = 1 + _categorical(rng, np.array([353, 67, 33, 11, 8.0]), sc.social_users)
    while lengths.sum() != sc.social_entries:  # nudge lengths (within 1..5) to the exact total
        step = np.sign(sc.social_entries - lengths.sum())
        ok = np.flatnonzero((lengths + step >= 1) & (lengths + step <= 5))
        lengths[rng.choice(ok)] += step
    friends = rng.integers(0, sc.n_users, (sc.social_users, 5))
    for _ in range(100):  # redraw self-friendships and repeats, vectorised per round
        bad = friends == users[:, None]
        srt = np.sort(friends, axis=1)
        bad |= (np.diff(srt, axis=1) == 0).any(axis=1)[:, None] & (np.arange(5) > 0)
        if not bad.any():
            break
        friends[bad] = rng.integers(0, sc.n_users, bad.sum())
    lists = [friends[i, : lengths[i]].tolist() for i in range(sc.social_users)]
    return pd.DataFrame({"user_id": users, "friend_list": _list_text(lists)})


# ============================================================================================================
# Orchestration.
# ============================================================================================================


def generate_sample(
    out_dir: Path | str,
    scale: str = "tiny",
    seed: int = 42,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the 7 CSVs to out_dir/"KuaiRec 2.0"/"data"/ and out_dir/"ground_truth.csv"; return the data folder.

    Example:
        >>> data = generate_sample("output/sample", scale="tiny", seed=42)  # doctest: +SKIP
    """
    if scale not in SCALES:
        raise ConfigError(f"unknown sample scale {scale!r}; choose one of {', '.join(SCALES)}")
    out = Path(out_dir)
    data = out / DATA_SUBDIR
    data.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _msg: None)
    rng = np.random.default_rng(seed)
    w = _make_world(rng, SCALES[scale])

    _write_pandas_csv(data / USER_FEATURES, w.users.features)
    say(f"wrote {USER_FEATURES} ({w.scale.n_users:,} rows)")
    feats = pd.DataFrame({"video_id": np.arange(w.scale.n_videos), "feat": _list_text(w.videos.tag_lists)})
    _write_pandas_csv(data / ITEM_CATEGORIES, feats)
    say(f"wrote {ITEM_CATEGORIES} ({w.scale.n_videos:,} rows)")
    (data / CAPTION_CATEGORY).write_bytes(_captions(rng, w).encode("utf-8"))
    say(f"wrote {CAPTION_CATEGORY} ({w.scale.n_videos:,} rows)")
    daily = _daily(rng, w)
    _write_pandas_csv(data / ITEM_DAILY_FEATURES, daily)
    say(f"wrote {ITEM_DAILY_FEATURES} ({len(daily):,} rows)")
    del daily
    _write_pandas_csv(data / SOCIAL_NETWORK, _social(rng, w))
    say(f"wrote {SOCIAL_NETWORK} ({w.scale.social_users:,} rows)")
    _write_arrow_csv(data / BIG_MATRIX, BIG_HEADER, _big_tables(rng, w, progress))
    say(f"wrote {BIG_MATRIX} ({w.scale.big_rows:,} rows)")
    small, truth = _small_and_truth(rng, w)
    _write_arrow_csv(data / SMALL_MATRIX, BIG_HEADER, iter([small]))
    say(f"wrote {SMALL_MATRIX} ({small.num_rows:,} rows)")
    _write_arrow_csv(out / GROUND_TRUTH, ["user_id", "video_id", "expected_watch_ratio"], iter([truth]))
    say(f"wrote {GROUND_TRUTH} ({truth.num_rows:,} rows)")
    return data
