"""The synthetic KuaiRec generator: real layout and quirks, determinism, and a planted truth with headroom."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from handwritten import (
    CAPTION_HEADER,
    DAILY_HEADER,
    INTERACTION_HEADER,
    ITEM_CATEGORIES_HEADER,
    SOCIAL_HEADER,
    USER_FEATURES_HEADER,
)

from recgen.constants import (
    BIG_MATRIX,
    CAPTION_CATEGORY,
    GROUND_TRUTH,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    KUAIREC_FILES,
    SEED,
    SMALL_MATRIX,
    SOCIAL_NETWORK,
    USER_FEATURES,
)
from recgen.errors import ConfigError
from recgen.sample import custom_scale
from recgen.sample.csv_format import float_text
from recgen.sample.generate import generate_sample
from recgen.sample.interactions import BIG_CHUNK_CELLS, BIG_CHUNK_USERS, _top_pairs, big_chunk_users
from recgen.sample.params import PAIR_CAP, PAIRS_PER_TARGET_ROW, REAL_BIG_PAIRS, REAL_USERS, REAL_VIDEOS, SCALES
from recgen.sample.world import make_world, own_pairs

# The four values of user_active_degree in the real file (compared with the real file in test_real_kuairec.py).
ACTIVE_DEGREES = {"full_active", "high_active", "middle_active", "UNKNOWN"}
# Item-mean ranking reaches this share of the oracle's hit_ratio@50 at "small" scale (docs/synthetic.md §5):
# real personal signal is left for a model to learn, and the item signal is real too.
ITEM_MEAN_SHARE_BAND = (0.45, 0.70)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    messages: list[str] = []
    data = generate_sample(tmp_path_factory.mktemp("tiny"), "tiny", seed=42, progress=messages.append)
    assert len(messages) == len(KUAIREC_FILES) + 1  # one progress line per file written
    return data


@pytest.fixture(scope="session")
def big(tiny: Path) -> pd.DataFrame:
    return pd.read_csv(tiny / BIG_MATRIX)


@pytest.fixture(scope="session")
def small(tiny: Path) -> pd.DataFrame:
    return pd.read_csv(tiny / SMALL_MATRIX)


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.readline()


def test_layout_and_headers_are_the_real_ones(tiny: Path) -> None:
    """Headers as tests/handwritten.py states them; test_real_kuairec.py checks them on the real files."""
    assert tiny.parts[-2:] == ("KuaiRec 2.0", "data")
    assert sorted(p.name for p in tiny.iterdir()) == sorted(KUAIREC_FILES)
    assert (tiny.parents[1] / GROUND_TRUTH).exists() and not (tiny / GROUND_TRUTH).exists()
    headers = {
        BIG_MATRIX: INTERACTION_HEADER,
        SMALL_MATRIX: INTERACTION_HEADER,
        ITEM_CATEGORIES: ITEM_CATEGORIES_HEADER,
        USER_FEATURES: USER_FEATURES_HEADER,
        CAPTION_CATEGORY: CAPTION_HEADER,
        ITEM_DAILY_FEATURES: DAILY_HEADER,
        SOCIAL_NETWORK: SOCIAL_HEADER,
    }
    assert set(headers) == set(KUAIREC_FILES)
    for name, header in headers.items():
        assert _first_line(tiny / name) == header + "\n", name
    assert DAILY_HEADER.count(",") == 57 and USER_FEATURES_HEADER.count(",") == 30  # 58 and 31 columns
    for path in tiny.iterdir():
        raw = path.read_bytes()
        assert raw.endswith(b"\n") and b"\r\n" not in raw and not raw.startswith(b"\xef\xbb\xbf")


def test_same_seed_same_bytes_other_seed_other_bytes(tiny: Path, tmp_path: Path) -> None:
    again = generate_sample(tmp_path / "again", "tiny", seed=42)
    other = generate_sample(tmp_path / "other", "tiny", seed=7)
    for name in KUAIREC_FILES:
        assert (again / name).read_bytes() == (tiny / name).read_bytes(), name
    assert (again.parents[1] / GROUND_TRUTH).read_bytes() == (tiny.parents[1] / GROUND_TRUTH).read_bytes()
    assert (other / BIG_MATRIX).read_bytes() != (tiny / BIG_MATRIX).read_bytes()
    assert (other / CAPTION_CATEGORY).read_bytes() != (tiny / CAPTION_CATEGORY).read_bytes()


def test_unknown_scale_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="huge"):
        generate_sample(tmp_path, "huge")


def test_sizes_follow_the_scale(tiny: Path, big: pd.DataFrame, small: pd.DataFrame) -> None:
    sc = SCALES["tiny"]
    assert 150 <= sc.n_users <= 200 and 250 <= sc.n_videos <= 300
    assert len(big) == sc.big_rows
    assert big.duplicated().sum() == sc.big_duplicates > 0
    assert len(big[["user_id", "video_id"]].drop_duplicates()) == sc.big_pairs
    assert set(big.user_id) == set(range(sc.n_users)) and set(big.video_id) == set(range(sc.n_videos))
    assert len(small) == sc.small_rows
    assert small.user_id.nunique() == sc.n_small_users and small.video_id.nunique() == sc.n_small_videos
    full = SCALES["full"]
    assert (full.n_users, full.n_videos, full.big_rows, full.big_duplicates, full.big_pairs) == (
        7_176,
        10_728,
        12_530_806,
        965_819,
        10_300_969,
    )
    assert (full.small_rows, full.small_untimed, full.daily_rows) == (4_676_570, 181_992, 343_341)


def test_rewatches_repeat_pairs_at_other_times(big: pd.DataFrame) -> None:
    events = big.drop_duplicates()
    repeated = events.duplicated(["user_id", "video_id"], keep=False)
    assert repeated.any()
    assert events[repeated].duplicated(["user_id", "video_id", "timestamp"]).sum() < repeated.sum() / 2


def test_small_and_big_pairs_are_disjoint_and_ids_nested(big: pd.DataFrame, small: pd.DataFrame) -> None:
    both = big.merge(small, on=["user_id", "video_id"])
    assert len(both) == 0
    assert set(small.user_id) <= set(big.user_id) and set(small.video_id) <= set(big.video_id)
    assert not small.duplicated(["user_id", "video_id"]).any()


def test_watch_ratio_is_exactly_play_over_duration(tiny: Path, big: pd.DataFrame) -> None:
    assert (big.watch_ratio == big.play_duration / big.video_duration).all()
    text = pd.read_csv(tiny / BIG_MATRIX, dtype=str)
    expected = [repr(p / d) for p, d in zip(big.play_duration, big.video_duration, strict=True)]
    assert text.watch_ratio.tolist() == expected
    assert (big.watch_ratio == 0).any() and big.watch_ratio.max() > 5


def test_float_text_is_python_repr() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [rng.random(500) * 10.0 ** rng.integers(-8, 6, 500), [0.0, 1.0, 2.0, 0.078, 1e-4, 9.99e-5, 1593878903.0]]
    )
    assert float_text(values).to_pylist() == [repr(float(v)) for v in values]


def test_time_text_and_timestamp_agree(big: pd.DataFrame, small: pd.DataFrame) -> None:
    timed = pd.concat([big, small.dropna(subset=["time"])])
    pattern = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{0,2}[1-9])?$")
    assert timed.time.map(lambda t: bool(pattern.match(t))).all()
    local = pd.to_datetime(timed.time, format="ISO8601")
    from_ts = pd.to_datetime(np.rint(timed.timestamp * 1000).astype("int64"), unit="ms") + pd.Timedelta(hours=8)
    assert (local.to_numpy() == from_ts.to_numpy()).all()
    mismatch = local.dt.strftime("%Y%m%d").astype(int) != timed.date
    assert mismatch.mean() < 0.02


def test_small_rows_without_time_come_last_per_user(tiny: Path, small: pd.DataFrame) -> None:
    untimed = small.time.isna()
    assert untimed.sum() == SCALES["tiny"].small_untimed > 0
    assert (untimed == small.date.isna()).all() and (untimed == small.timestamp.isna()).all()
    assert small.user_id.is_monotonic_increasing
    last_timed = small[~untimed].groupby("user_id").apply(lambda g: g.index.max(), include_groups=False)
    first_untimed = small[untimed].groupby("user_id").apply(lambda g: g.index.min(), include_groups=False)
    assert (last_timed.reindex(first_untimed.index) < first_untimed).all()
    lines = (tiny / SMALL_MATRIX).read_text().splitlines()
    assert any(line.endswith(",,,," + line.rsplit(",", 1)[1]) for line in lines[1:])


def test_ground_truth_covers_exactly_the_small_cells(tiny: Path, small: pd.DataFrame) -> None:
    truth = pd.read_csv(tiny.parents[1] / GROUND_TRUTH)
    assert list(truth.columns) == ["user_id", "video_id", "expected_watch_ratio"]
    cells = set(zip(small.user_id, small.video_id, strict=True))
    assert set(zip(truth.user_id, truth.video_id, strict=True)) == cells and len(truth) == len(cells)
    assert (truth.expected_watch_ratio > 0).all()


def test_caption_file_reproduces_the_bare_carriage_return_trap(tiny: Path) -> None:
    n = SCALES["tiny"].n_videos
    assert len(pd.read_csv(tiny / CAPTION_CATEGORY)) > n
    cap = pd.read_csv(tiny / CAPTION_CATEGORY, lineterminator="\n")
    assert len(cap) == n and cap.video_id.tolist() == list(range(n))
    assert cap.caption.str.contains("\r", regex=False).sum() == 4
    assert (cap.topic_tag == "[]").any() and (cap.manual_cover_text == "UNKNOWN").any() and cap.caption.isna().any()
    tags = cap.topic_tag[cap.topic_tag != "[]"]
    assert tags.str.match(r"^\[[^\s\"',\[\]]+(,[^\s\"',\[\]]+)*\]$").all()
    for level in ("second", "third"):  # a strict tree: one parent per node, names 1:1 with ids
        known = cap[cap[f"{level}_level_category_id"] != -124]
        parent = "first" if level == "second" else "second"
        assert known.groupby(f"{level}_level_category_id")[f"{parent}_level_category_id"].nunique().max() == 1
        assert known.groupby(f"{level}_level_category_id")[f"{level}_level_category_name"].nunique().max() == 1
    assert (cap[cap.third_level_category_id != -124].second_level_category_id != -124).all()


def test_item_categories_format(tiny: Path) -> None:
    lines = (tiny / ITEM_CATEGORIES).read_text().splitlines()[1:]
    assert all(re.fullmatch(r'\d+,(\[\d+\]|"\[\d+(, \d+)+\]")', line) for line in lines)
    feats = pd.read_csv(tiny / ITEM_CATEGORIES).feat.map(eval)
    assert all(len(set(f)) == len(f) and 1 <= len(f) <= 4 and all(0 <= t <= 30 for t in f) for f in feats)


def test_user_features_integers_without_decimal_point(tiny: Path) -> None:
    users = pd.read_csv(tiny / USER_FEATURES)
    assert list(users.columns) == USER_FEATURES_HEADER.split(",")
    assert users.isna().any(axis=1).any()
    assert ".0," not in (tiny / USER_FEATURES).read_text()
    assert set(users.user_active_degree) <= ACTIVE_DEGREES


def test_daily_features_nan_patterns(tiny: Path) -> None:
    daily = pd.read_csv(tiny / ITEM_DAILY_FEATURES)
    assert not daily.duplicated(["video_id", "date"]).any() and daily.video_id.is_monotonic_increasing
    assert ((daily.video_tag_id == 0) == daily.video_tag_name.isna()).all()
    assert (daily.collect_cnt.isna() == (daily.date < 20200728)).all()
    assert daily.video_duration.isna().any() and len(daily) == SCALES["tiny"].daily_rows
    assert (daily.play_cnt <= daily.show_cnt).all() and (daily.complete_play_cnt <= daily.play_cnt).all()


def test_social_network_lists(tiny: Path) -> None:
    social = pd.read_csv(tiny / SOCIAL_NETWORK)
    lists = social.friend_list.map(eval)
    assert lists.map(len).between(1, 5).all() and lists.map(len).sum() == SCALES["tiny"].social_entries
    assert not social.user_id.is_monotonic_increasing and social.user_id.is_unique
    assert all(u not in f and len(set(f)) == len(f) for u, f in zip(social.user_id, lists, strict=True))


def _hit_ratio(frame: pd.DataFrame, score: str, k: int = 50) -> float:
    """Mean over users of |top-k by score ∩ top-k by watch_ratio| / k, ties broken by video_id."""

    def top(col: str) -> pd.Series:
        ranked = frame.sort_values(["user_id", col, "video_id"], ascending=[True, False, True])
        return ranked.groupby("user_id").cumcount().lt(k).reindex(frame.index)

    hits = (top(score) & top("watch_ratio")).groupby(frame.user_id).sum()
    return float((hits / k).mean())


@pytest.fixture(scope="session")
def small_scale(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("small"), "small", seed=42)


def test_item_mean_leaves_personal_signal_to_learn(small_scale: Path) -> None:
    big = pd.read_csv(small_scale / BIG_MATRIX, usecols=["video_id", "watch_ratio"], engine="pyarrow")
    frame = pd.read_csv(small_scale / SMALL_MATRIX, usecols=["user_id", "video_id", "watch_ratio"], engine="pyarrow")
    truth = pd.read_csv(small_scale.parents[1] / GROUND_TRUTH, engine="pyarrow")
    frame = frame.merge(truth, on=["user_id", "video_id"])
    stats = big.groupby("video_id").watch_ratio.agg(["sum", "count"])
    prior = big.watch_ratio.mean()
    frame["item_mean"] = frame.video_id.map((stats["sum"] + 20 * prior) / (stats["count"] + 20))
    frame["random"] = np.random.default_rng(0).random(len(frame))
    oracle, item, rand = (_hit_ratio(frame, c) for c in ("expected_watch_ratio", "item_mean", "random"))
    assert oracle > item > rand
    low, high = ITEM_MEAN_SHARE_BAND
    assert low <= item / oracle <= high, (oracle, item)


# --- Custom sizes (`recgen sample --users N --videos M`). ---------------------------------------------------

CUSTOM_ARGS = ("--users", "600", "--videos", "500", "--small-users", "50", "--small-videos", "60")


@pytest.fixture(scope="session")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("custom")
    result = run_cli("sample", str(out), *CUSTOM_ARGS)
    assert result.exit_code == 0, result.output
    assert "wrote a 600 x 500 synthetic sample" in result.stdout
    return out / "KuaiRec 2.0" / "data"


def test_custom_size_through_the_cli(custom: Path) -> None:
    sc = custom_scale(600, 500, 50, 60)
    assert len(pd.read_csv(custom / USER_FEATURES)) == 600
    assert len(pd.read_csv(custom / ITEM_CATEGORIES)) == 500
    assert len(pd.read_csv(custom / CAPTION_CATEGORY, lineterminator="\n")) == 500
    assert len(pd.read_csv(custom / ITEM_DAILY_FEATURES)) == sc.daily_rows == custom_scale(6_000, 500).daily_rows
    assert len(pd.read_csv(custom / SOCIAL_NETWORK)) == sc.social_users
    big, small = pd.read_csv(custom / BIG_MATRIX), pd.read_csv(custom / SMALL_MATRIX)
    assert set(big.user_id) == set(range(600)) and set(big.video_id) == set(range(500))
    assert small.user_id.nunique() == 50 and small.video_id.nunique() == 60
    assert len(small) == 50 * 60 - sc.small_missing and 0 < sc.small_missing < 50
    assert len(pd.read_csv(custom.parents[1] / GROUND_TRUTH)) == len(small)
    assert len(big.merge(small, on=["user_id", "video_id"])) == 0


def test_custom_rows_per_user_are_kuairec_s_capped_by_the_catalogue(custom: Path) -> None:
    """At 500 videos the real median user (1,846 rows) cannot fit: most users are capped at 85% of the videos
    they may see, and the lightest keep the real minimum (100 rows); scaled by the catalogue, as the named
    scales are, they would have ~86 and ~5 rows."""
    big = pd.read_csv(custom / BIG_MATRIX)
    world = make_world(np.random.default_rng(SEED), custom_scale(600, 500, 50, 60))  # as the CLI drew it
    pairs = big.drop_duplicates(["user_id", "video_id"]).groupby("user_id").size().to_numpy()
    assert (pairs == own_pairs(world.scale, world.users)).all()
    assert len(big) == world.scale.big_rows and big.duplicated().sum() == world.scale.big_duplicates
    cap = np.floor(PAIR_CAP * np.where(np.isin(np.arange(600), world.users.small), 500 - 60, 500))
    assert (pairs <= cap).all() and (pairs == cap).mean() > 0.5
    assert pairs.min() >= round(100 * PAIRS_PER_TARGET_ROW)


def test_custom_rows_per_user_follow_kuairec_whatever_the_catalogue() -> None:
    """Rows per user where the cap does not bind: the real quantiles (the named scales would multiply them by
    20,000 / 10,728 videos), the real mean, and re-watches and duplicates in the real proportions."""
    world = make_world(np.random.default_rng(SEED), custom_scale(5_000, 20_000))
    sc, pairs, full = world.scale, own_pairs(world.scale, world.users), SCALES["full"]
    real_pairs_share = REAL_BIG_PAIRS / full.big_rows
    for p, real_rows in ((0.1, 330), (0.25, 883), (0.5, 1846), (0.75, 2461), (0.9, 2900)):
        assert 0.9 <= np.quantile(pairs, p) / (real_rows * real_pairs_share) <= 1.05, p
    assert sc.big_pairs == pairs.sum()
    assert sc.big_rows / sc.n_users == pytest.approx(full.big_rows / REAL_USERS, rel=0.03)
    assert sc.big_rewatches / sc.big_pairs == pytest.approx(full.big_rewatches / full.big_pairs, rel=1e-3)
    assert sc.big_duplicates / sc.big_rows == pytest.approx(full.big_duplicates / full.big_rows, rel=1e-3)


def test_big_matrix_chunks_stay_the_same_size_as_the_catalogue_grows() -> None:
    assert {big_chunk_users(sc.n_videos) for sc in SCALES.values()} == {BIG_CHUNK_USERS}  # named scales unchanged
    for n_videos in (100_000, 1_000_000):
        assert big_chunk_users(n_videos) * n_videos <= BIG_CHUNK_CELLS == BIG_CHUNK_USERS * REAL_VIDEOS
    assert big_chunk_users(10 * BIG_CHUNK_CELLS) == 1


def test_top_pairs_is_the_head_of_a_stable_argsort() -> None:
    """The partial sort picks exactly what a full stable sort would, ties (and +-inf) included."""
    rng = np.random.default_rng(0)
    for trial in range(200):
        rows, cols = rng.integers(1, 8), rng.integers(1, 60)
        logits = rng.integers(-3, 4, (rows, cols)).astype(float) if trial % 2 else rng.normal(size=(rows, cols))
        logits[rng.random((rows, cols)) < 0.1] = np.inf
        logits[rng.random((rows, cols)) < 0.1] = -np.inf
        pairs = rng.integers(1, cols + 1, rows)
        keep = np.arange(cols)[None, :] < pairs[:, None]
        owner, vid = _top_pairs(logits, pairs)
        assert (owner == np.nonzero(keep)[0]).all()
        assert (vid == np.argsort(-logits, axis=1, kind="stable")[keep]).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--users", "600"), "--users and --videos go together"),
        (("--scale", "tiny", "--users", "600", "--videos", "500"), "mutually exclusive"),
        (("--small-users", "50"), "need --users and --videos"),
        (("--users", "0", "--videos", "500"), "0 is not in the range x>=1"),
        (("--users", "5", "--videos", "500"), "at least 10 users and 100 videos"),
        (("--users", "600", "--videos", "500", "--small-users", "600"), "1 to 599 users"),
        (("--users", "600", "--videos", "500", "--small-videos", "251"), "1 to 250 videos"),
    ],
)
def test_custom_size_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run_cli("sample", str(tmp_path / "out"), *args)
    assert result.exit_code == 64, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not (tmp_path / "out").exists()
