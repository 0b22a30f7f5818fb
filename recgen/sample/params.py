"""The synthetic sample's parameters: real KuaiRec sizes, the calendar, the planted model's knobs, the scales.

Every number the generator draws with is a named constant here (docs/synthetic.md explains each one), so the
model can be read and tuned in one place; the vocabularies are in `recgen.sample_text`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from recgen.errors import ConfigError

# --- Real KuaiRec 2.0 sizes; scale "full" reproduces them exactly. ------------------------------------------
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
# Videos per feature tag and videos with 1..4 tags: reproduced exactly at full scale.
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
# Local hour-of-day profile: broad, peaking 9-11h and in the evening.
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
SECOND_KNOWN, THIRD_KNOWN = 0.666, 0.60  # P(2nd level known), P(3rd known | 2nd known)
COVER_KNOWN = 0.376  # manual cover text present (else the literal UNKNOWN)
CAPTION_EMPTY = 0.126
CAPTION_HASHTAG = 0.65  # share of non-empty captions with #hashtags (= non-empty topic_tag)
N_CR_CAPTIONS = 4  # captions with a bare \r inside (the real file's parsing trap)

# --- Users. -------------------------------------------------------------------------------------------------
# Quantile function of big-matrix rows per user at full scale: scaled by n_videos for the named scales, as is
# for custom sizes.
USER_ROWS_QUANTILES = ((0.0, 100), (0.1, 330), (0.25, 883), (0.5, 1846), (0.75, 2461),
                       (0.9, 2900), (0.99, 4000), (1.0, 16_015))  # fmt: skip
# Quantile functions of the user_features counters.
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
    # False (named scales): big-matrix totals fixed by the real density, rows per user scaled by n_videos.
    # True (custom sizes): each user's rows follow the real per-user distribution whatever the catalogue, so
    # the big totals are the sum of the drawn users' targets (0 here until `make_world` draws them).
    per_user_rows: bool = False

    @property
    def big_rows(self) -> int:
        return self.big_pairs + self.big_rewatches + self.big_duplicates

    @property
    def small_rows(self) -> int:
        return self.n_small_users * self.n_small_videos - self.small_missing


def big_totals(pairs: int) -> dict[str, int]:
    """The big matrix's distinct pairs, re-watches and duplicates: the last two in the real proportions."""
    rewatches = round(pairs * REAL_BIG_REWATCHES / REAL_BIG_PAIRS)
    duplicates = round((pairs + rewatches) * REAL_BIG_DUPLICATES / (REAL_BIG_PAIRS + REAL_BIG_REWATCHES))
    return {"big_pairs": pairs, "big_rewatches": rewatches, "big_duplicates": duplicates}


def _derive_scale(n_users: int, n_videos: int, n_small_users: int, n_small_videos: int) -> Scale:
    """Scale every count by the real density of the cell it lives in (exact at the real sizes)."""
    open_cells = n_users * n_videos - n_small_users * n_small_videos
    real_open = REAL_USERS * REAL_VIDEOS - REAL_SMALL_USERS * REAL_SMALL_VIDEOS
    pairs = round(REAL_BIG_PAIRS * open_cells / real_open)
    cells, real_cells = n_small_users * n_small_videos, REAL_SMALL_USERS * REAL_SMALL_VIDEOS
    missing = round(cells * REAL_SMALL_MISSING / real_cells)
    untimed = round((cells - missing) * REAL_SMALL_UNTIMED / (real_cells - REAL_SMALL_MISSING))
    social_users = max(round(n_users * REAL_SOCIAL_USERS / REAL_USERS), 5)
    return Scale(
        n_users=n_users,
        n_videos=n_videos,
        n_small_users=n_small_users,
        n_small_videos=n_small_videos,
        **big_totals(pairs),
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


def _quantile_mean(knots: tuple[tuple[float, float], ...]) -> float:
    """Mean of a piecewise-linear quantile function."""
    q, v = np.array(knots, float).T
    return float(np.sum(np.diff(q) * (v[1:] + v[:-1]) / 2))


# Distinct pairs per unit of a user's row target: what full scale's rescaling to the real totals gives on average.
PAIRS_PER_TARGET_ROW = REAL_BIG_PAIRS / (REAL_USERS * _quantile_mean(USER_ROWS_QUANTILES))
MIN_CUSTOM_USERS, MIN_CUSTOM_VIDEOS = 10, 100  # fewer: the social network or the daily rows may not fit


def custom_scale(
    n_users: int, n_videos: int, n_small_users: int | None = None, n_small_videos: int | None = None
) -> Scale:
    """A sample of any size: the real densities, except rows per user, which follow the real per-user
    distribution whatever the catalogue (capped at PAIR_CAP of the videos a user may see).

    The small block defaults to the real one (1,411 x 3,327), at most the real share of the users and videos.
    It must leave users outside it (its videos are shown in big_matrix only to the others) and hold at most half
    of the videos (they are live from July to the end, so their item_daily_features rows must fit the total).

    Example:
        >>> custom_scale(600, 500).n_small_users, custom_scale(100_000, 100_000).n_small_videos
        (118, 3327)
    """
    if n_users < MIN_CUSTOM_USERS or n_videos < MIN_CUSTOM_VIDEOS:
        raise ConfigError(
            f"a sample needs at least {MIN_CUSTOM_USERS} users and {MIN_CUSTOM_VIDEOS} videos, "
            f"not {n_users:,} x {n_videos:,}"
        )
    if n_small_users is None:
        n_small_users = max(min(REAL_SMALL_USERS, round(n_users * REAL_SMALL_USERS / REAL_USERS)), 1)
    if n_small_videos is None:
        n_small_videos = max(min(REAL_SMALL_VIDEOS, round(n_videos * REAL_SMALL_VIDEOS / REAL_VIDEOS)), 1)
    if not 1 <= n_small_users < n_users:
        raise ConfigError(f"the small matrix needs 1 to {n_users - 1:,} users (fewer than all), not {n_small_users:,}")
    if not 1 <= n_small_videos <= n_videos // 2:  # its videos live longer than most: their daily rows must fit
        raise ConfigError(
            f"the small matrix needs 1 to {n_videos // 2:,} videos (at most half of them), not {n_small_videos:,}"
        )
    sized = _derive_scale(n_users, n_videos, n_small_users, n_small_videos)
    return replace(sized, per_user_rows=True, big_pairs=0, big_rewatches=0, big_duplicates=0)
