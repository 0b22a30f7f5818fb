"""Property tests (hypothesis): the CSV readers on generated KuaiRec bytes, and the metric functions.

Readers: every file shape of `recgen.ingest.readers.KINDS` is generated as real CSV bytes (QUOTE_MINIMAL, the
formats of the real KuaiRec files: integers written as `5` or `5.0` in nullable columns, empty fields for NULL,
list columns as `"[27, 9]"`, topic tags as `[a,b]`, bare `\\r` inside captions) and must come back exactly.
Structurally broken files (a renamed or missing column, a truncated last row, bytes that are not UTF-8)
raise `DataError` with one line naming the file, never another exception. A bad value (not a number, a
fraction or an infinity in an integer column, an integer too large to read exactly) refuses a catalogue
file with a DataError naming column and line; in an interaction file it sets that one row aside (the
ingest policy: `read_interactions` returns it in `rejected`, with its line and column), as does a
negative, NaN or infinite watch_ratio.

Metrics: ranges, invariance to the input order and to monotone transforms where a metric depends only on
order, the perfect and the constant predictor, on generated evaluation cells.
"""

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from recgen import constants
from recgen.constants import (
    BIG_MATRIX,
    CAPTION_CATEGORY,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    SMALL_MATRIX,
    SOCIAL_NETWORK,
    USER_FEATURES,
)
from recgen.errors import DataError
from recgen.evaluation.metrics import (
    catalog_coverage,
    gini,
    mae,
    popularity_percentile,
    rank_positions,
    rmse,
    spearman,
    user_metrics,
)
from recgen.ingest import dedup, readers
from recgen.ingest.readers import FLOAT, FLOAT_NULL, INT, INT_NULL, KINDS
from recgen.ingest.source import DataSource

_SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large]
READER_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=_SLOW_DATA)
BROKEN_FILE_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=_SLOW_DATA)  # all 7 files
METRIC_SETTINGS = settings(max_examples=60, deadline=None)
EXACT_INT = 2**53  # nullable integers are parsed through float64: exact up to here
UNKNOWN = constants.UNKNOWN
UNKNOWN_ID = constants.UNKNOWN_CATEGORY_ID
KEYS = {USER_FEATURES: ["user_id"], ITEM_DAILY_FEATURES: ["video_id", "date"]}  # checked unique by the readers

# ---------------------------------------------------------------- CSV bytes


def encode_field(text: str) -> str:
    """QUOTE_MINIMAL as pandas' to_csv writes it; a bare \\r stays unquoted, as in the real caption file."""
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_bytes(header: list[str], rows: list[list[str]], *, final_newline: bool = True) -> bytes:
    lines = [",".join(encode_field(c) for c in header)] + [",".join(row) for row in rows]
    return ("\n".join(lines) + ("\n" if final_newline else "")).encode("utf-8")


INTERACTIONS = (BIG_MATRIX, SMALL_MATRIX)


def read(name: str, data: bytes):
    """Write `data` as the file `name` in a fresh folder and read it with recgen's reader for that file
    (for an interaction file: the frame and the rows set aside)."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / name).write_bytes(data)
        source = DataSource(Path(folder))
        if name in INTERACTIONS:
            return readers.read_interactions(source, name)
        return {
            USER_FEATURES: readers.read_users,
            ITEM_CATEGORIES: readers.read_item_categories,
            SOCIAL_NETWORK: readers.read_friendships,
            ITEM_DAILY_FEATURES: readers.read_daily,
            CAPTION_CATEGORY: readers.read_captions,
        }[name](source)


# ---------------------------------------------------------------- value strategies

# Text as it occurs in KuaiRec: CJK, emoji, NBSP, quotes, commas, words pandas would take for missing.
_TEXT_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from(
    list(",\"' ;[]#\\\xa0美食😀")
)
TEXT_VALUES = st.text(_TEXT_CHARS, min_size=1, max_size=10) | st.sampled_from(
    ["NA", "null", "NaN", "nan", "None", "N/A", "-", "0", "2.5", " lead", "trail ", UNKNOWN, "[27, 9]"]
)
CAPTION_VALUES = st.text(_TEXT_CHARS | st.just("\r"), min_size=1, max_size=12)  # the caption file's \r quirk
_TAG_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters=',[]"')
TAG_VALUES = st.text(_TAG_CHARS, min_size=1, max_size=6)
ID_VALUES = st.integers(-(2**63), 2**63 - 1)
# Interaction values a correct log holds (others are set aside by ingest's policy).
INTERACTION_VALUES = {
    "user_id": st.integers(0, EXACT_INT),
    "video_id": st.integers(0, EXACT_INT),
    "play_duration": st.integers(0, 10**9),
    "video_duration": st.integers(1, 10**9),
    "watch_ratio": st.floats(0, 1e6),
    "timestamp": st.floats(0, 2e9),
}
NULLABLE_INT_VALUES = st.integers(-EXACT_INT, EXACT_INT)
FLOAT_VALUES = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def encoded(draw, kind: str, column: str = "", interaction: bool = False):
    """(python value, CSV field text) for one cell of a column of `kind`; None is NULL (an empty field)."""
    if kind.endswith("?") and draw(st.integers(0, 4)) == 0:
        return None, ""
    if interaction and column in INTERACTION_VALUES:
        value = draw(INTERACTION_VALUES[column])
        return value, repr(value) if isinstance(value, float) else str(value)
    if kind == INT:
        value = draw(ID_VALUES)
        return value, str(value)
    if kind == INT_NULL:
        if column == "date":
            value = draw(st.integers(19700101, 20991231))
        else:
            value = draw(NULLABLE_INT_VALUES)
        return value, draw(st.sampled_from([str(value), f"{value}.0"]))  # `20200705` or `20200705.0`
    if kind in (FLOAT, FLOAT_NULL):
        value = draw(FLOAT_VALUES)
        return value, repr(value)
    value = draw(TEXT_VALUES)
    return value, encode_field(value)


def _unique_rows(draw, name: str, max_rows: int) -> list[dict[str, tuple]]:
    kinds, key, interaction = KINDS[name], KEYS.get(name, []), name in INTERACTIONS
    rows, seen = [], set()
    for _ in range(draw(st.integers(1, max_rows))):
        row = {column: draw(encoded(kind, column, interaction)) for column, kind in kinds.items()}
        identity = tuple(row[c][0] for c in key)
        if identity not in seen:
            seen.add(identity)
            rows.append(row)
    return rows


@st.composite
def typed_file(draw, name: str):
    """A valid file read through pyarrow (interactions, users, daily), maybe with its columns shuffled and
    an extra column: the readers select columns by name."""
    kinds = KINDS[name]
    rows = _unique_rows(draw, name, 5 if name in INTERACTIONS else 3)  # users and daily: 31 and 58 columns
    columns = list(kinds)
    if draw(st.booleans()):
        columns = draw(st.permutations(columns))
    extra = draw(st.booleans())
    header = columns + (["not_a_kuairec_column"] if extra else [])
    lines = [[row[c][1] for c in columns] + (["ignored, really"] if extra else []) for row in rows]
    lines = [[*line[:-1], encode_field(line[-1])] if extra else line for line in lines]
    return rows, csv_bytes(header, lines, final_newline=draw(st.booleans()))


def _nullable(values) -> list:
    return [None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v for v in values]


def assert_typed_round_trip(name: str, rows: list[dict], frame: pd.DataFrame) -> None:
    assert len(frame) == len(rows)
    for column, kind in KINDS[name].items():
        expected = [row[column][0] for row in rows]
        if name == USER_FEATURES and column == "user_active_degree":
            expected = [None if v == UNKNOWN else v for v in expected]
        got = _nullable(frame[column].tolist())
        if kind in (INT, INT_NULL):
            got = [None if v is None else int(v) for v in got]
            assert str(frame[column].dtype) == ("int64" if kind == INT else "Int64"), column
        if kind in (FLOAT, FLOAT_NULL):
            assert frame[column].dtype == np.float64, column
        # Exact: ids, integers, floats written with repr() and text must come back bit for bit.
        assert got == expected, column


@pytest.mark.parametrize("name", [BIG_MATRIX, SMALL_MATRIX, USER_FEATURES, ITEM_DAILY_FEATURES])
@READER_SETTINGS
@given(data=st.data())
def test_typed_files_round_trip(name, data):
    rows, raw = data.draw(typed_file(name))
    if name in INTERACTIONS:
        frame, rejected = read(name, raw)
        assert rejected.empty, rejected
    else:
        frame = read(name, raw)
    assert_typed_round_trip(name, rows, frame)


@st.composite
def list_file(draw, name: str):
    """item_categories.csv (unique video_id, feat `[27, 9]`) or social_network.csv (user_id, friend_list)."""
    id_column, list_column = KINDS[name]
    ids = draw(st.lists(ID_VALUES, min_size=1, max_size=6, unique=name == ITEM_CATEGORIES))
    lists = [draw(st.lists(ID_VALUES, max_size=4)) for _ in ids]
    lines = [[str(i), encode_field(json.dumps(values))] for i, values in zip(ids, lists, strict=True)]
    return ids, lists, csv_bytes([id_column, list_column], lines, final_newline=draw(st.booleans()))


def _pairs(ids, lists) -> list[tuple[int, int]]:
    return list(dict.fromkeys((i, v) for i, values in zip(ids, lists, strict=True) for v in values))


@READER_SETTINGS
@given(data=st.data())
def test_item_categories_round_trip(data):
    ids, lists, raw = data.draw(list_file(ITEM_CATEGORIES))
    tags, pairs = read(ITEM_CATEGORIES, raw)
    assert tags["video_id"].tolist() == ids
    assert tags["tags"].tolist() == [json.dumps(values) for values in lists]  # JSON text, `[27, 9]`
    assert list(zip(pairs["video_id"].tolist(), pairs["tag_id"].tolist(), strict=True)) == _pairs(ids, lists)


@READER_SETTINGS
@given(data=st.data())
def test_social_network_round_trip(data):
    ids, lists, raw = data.draw(list_file(SOCIAL_NETWORK))
    pairs, rows_in_file = read(SOCIAL_NETWORK, raw)
    assert rows_in_file == len(ids)
    assert list(zip(pairs["user_id"].tolist(), pairs["friend_id"].tolist(), strict=True)) == _pairs(ids, lists)


@st.composite
def caption_file(draw):
    """kuairec_caption_category.csv with UNKNOWN / -124 markers, empty captions, bare \\r, `[a,b]` tags."""
    rows = []
    for video_id in draw(st.lists(st.integers(-EXACT_INT, EXACT_INT), min_size=1, max_size=6, unique=True)):
        cover = draw(st.none() | st.just(UNKNOWN) | TEXT_VALUES)
        caption = draw(st.none() | CAPTION_VALUES)
        topic = draw(st.none() | st.lists(TAG_VALUES, max_size=4))
        levels = []
        for _ in range(3):
            level_id = draw(st.just(UNKNOWN_ID) | st.integers(-1000, 10**6))
            level_name = draw(st.none() | st.just(UNKNOWN) | TEXT_VALUES)
            levels.append((level_id, level_name))
        rows.append((video_id, cover, caption, topic, levels))
    lines = [caption_fields(row) for row in rows]
    return rows, csv_bytes(list(KINDS[CAPTION_CATEGORY]), lines, final_newline=draw(st.booleans()))


def caption_fields(row: tuple) -> list[str]:
    video_id, cover, caption, topic, levels = row
    fields = [str(video_id), encode_field(cover or ""), encode_field(caption or "")]
    fields.append("" if topic is None else encode_field("[" + ",".join(topic) + "]"))
    for level_id, level_name in levels:
        fields += [str(level_id), encode_field(level_name or "")]
    return fields


@READER_SETTINGS
@given(data=st.data())
def test_captions_round_trip(data):
    rows, raw = data.draw(caption_file())
    frame = read(CAPTION_CATEGORY, raw)
    assert frame["video_id"].tolist() == [r[0] for r in rows]
    assert _nullable(frame["manual_cover_text"].tolist()) == [None if r[1] == UNKNOWN else r[1] for r in rows]
    assert _nullable(frame["caption"].tolist()) == [(r[2] or "").replace("\r", "") or None for r in rows]
    expected_topics = [
        None if r[3] is None else json.dumps(r[3], ensure_ascii=False, separators=(",", ":")) for r in rows
    ]
    assert _nullable(frame["topic_tag"].tolist()) == expected_topics
    for index, level in enumerate(("first", "second", "third")):
        unknown = [r[4][index][0] == UNKNOWN_ID or r[4][index][1] == UNKNOWN for r in rows]
        ids = _nullable(frame[f"{level}_level_category_id"].tolist())
        names = _nullable(frame[f"{level}_level_category_name"].tolist())
        assert ids == [None if u else r[4][index][0] for u, r in zip(unknown, rows, strict=True)], level
        assert names == [None if u else r[4][index][1] for u, r in zip(unknown, rows, strict=True)], level


# ---------------------------------------------------------------- structurally broken files


@st.composite
def valid_lines(draw, name: str):
    """A valid file of `name` in canonical column order, as (header, rows of encoded fields)."""
    kinds = KINDS[name]
    if name in (ITEM_CATEGORIES, SOCIAL_NETWORK):
        ids, lists, _ = draw(list_file(name))
        return list(kinds), [[str(i), encode_field(json.dumps(v))] for i, v in zip(ids, lists, strict=True)]
    if name == CAPTION_CATEGORY:
        rows, _ = draw(caption_file())
        return list(kinds), [caption_fields(row) for row in rows]
    rows = _unique_rows(draw, name, 2 if name == ITEM_DAILY_FEATURES else 3)
    return list(kinds), [[row[c][1] for c in kinds] for row in rows]


ALL_FILES = [
    BIG_MATRIX,
    SMALL_MATRIX,
    USER_FEATURES,
    ITEM_CATEGORIES,
    SOCIAL_NETWORK,
    ITEM_DAILY_FEATURES,
    CAPTION_CATEGORY,
]
NUMERIC_KINDS = (INT, INT_NULL, FLOAT, FLOAT_NULL)


def assert_data_error(name: str, raw: bytes, *also: str) -> str:
    with pytest.raises(DataError) as caught:  # DataError only: any other exception fails the test
        read(name, raw)
    message = str(caught.value)
    assert message.startswith(f"{name}: "), message
    assert "\n" not in message and "\r" not in message, message
    for part in also:
        assert part in message, (part, message)
    return message


def assert_bad_value(name: str, header: list[str], rows: list[list[str]], row: int, column: str) -> None:
    """A catalogue file is refused naming column and line; an interaction file sets just that row aside."""
    raw = csv_bytes(header, rows)
    if name not in INTERACTIONS:
        assert_data_error(name, raw, f"column {column}", f"line {row + 2}")
        return
    frame, rejected = read(name, raw)
    assert rejected["line"].tolist() == [row + 2], rejected
    assert rejected["column"].tolist() == [column], rejected
    assert len(frame) == len(rows) - 1 and row not in frame.index  # the index still counts file rows
    assert str(frame["user_id"].dtype) == "int64" and str(frame["date"].dtype) == "Int64"


LETTERS = ["x", "1a", "一", "--1", "#", "1_000", "N/A", "١٢"]  # (pyarrow reads `0x1F` as 31: not listed)


@BROKEN_FILE_SETTINGS
@given(data=st.data())
def test_a_value_that_is_not_a_number(data):
    name = data.draw(st.sampled_from(ALL_FILES), label="file")
    header, rows = data.draw(valid_lines(name))
    kinds = KINDS[name]
    # The id column always; any other numeric column of the file sometimes.
    numeric = [c for c in header if kinds[c] in NUMERIC_KINDS]
    column = data.draw(st.sampled_from([header[0], *numeric]))
    row = data.draw(st.integers(0, len(rows) - 1))
    rows[row][header.index(column)] = encode_field(data.draw(st.sampled_from(LETTERS)))
    assert_bad_value(name, header, rows, row, column)


@BROKEN_FILE_SETTINGS
@given(data=st.data())
def test_integer_columns_refuse_fractions_infinities_and_overflow(data):
    name = data.draw(st.sampled_from(ALL_FILES), label="file")
    header, rows = data.draw(valid_lines(name))
    kinds = KINDS[name]
    integers = [c for c in header if kinds[c] in (INT, INT_NULL)]
    assume(integers)
    column = data.draw(st.sampled_from(integers))
    tokens = ["2.5", "-0.5", "inf", "-inf", "1e400", "99999999999999999999", "-99999999999999999999"]
    if kinds[column] == INT:
        tokens.append("nan")  # in a nullable column a NaN is a missing value
    row = data.draw(st.integers(0, len(rows) - 1))
    rows[row][header.index(column)] = data.draw(st.sampled_from(tokens))
    assert_bad_value(name, header, rows, row, column)


@BROKEN_FILE_SETTINGS
@given(data=st.data())
def test_renamed_or_missing_column_is_a_data_error(data):
    name = data.draw(st.sampled_from(ALL_FILES), label="file")
    header, rows = data.draw(valid_lines(name))
    column = data.draw(st.sampled_from(header))
    index = header.index(column)
    if data.draw(st.booleans()):
        renamed = [column + "_x", column.upper(), column.replace("_", " "), column[:-1], ""]
        header[index] = data.draw(st.sampled_from([other for other in renamed if other != column]))
    else:  # the column is gone from the header and from every row
        del header[index]
        rows = [row[:index] + row[index + 1 :] for row in rows]
    assert_data_error(name, csv_bytes(header, rows), f"missing column {column}")


@BROKEN_FILE_SETTINGS
@given(data=st.data())
def test_truncated_last_row_is_a_data_error(data):
    name = data.draw(st.sampled_from(ALL_FILES), label="file")
    header, rows = data.draw(valid_lines(name))
    last = rows[-1]
    # Cut the last line anywhere before its last separator: at least one field is missing, a quoted field
    # may be left open. (A cut inside the last field cannot be told from a shorter value.)
    line = ",".join(last)
    last_separator = len(line) - len(last[-1]) - 1
    cut = data.draw(st.integers(1, last_separator))
    text = "\n".join([",".join(encode_field(c) for c in header)] + [",".join(r) for r in rows[:-1]] + [line[:cut]])
    raw = (text + ("\n" if data.draw(st.booleans()) else "")).encode("utf-8")
    assert_data_error(name, raw)


INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82", b"\x80abc", b"\xf8\x88\x80\x80\x80"]


@BROKEN_FILE_SETTINGS
@given(data=st.data())
def test_bytes_that_are_not_utf8_are_a_data_error(data):
    name = data.draw(st.sampled_from(ALL_FILES), label="file")
    header, rows = data.draw(valid_lines(name))
    row = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.integers(0, len(header) - 1))
    field = rows[row][column].encode("utf-8")
    at = data.draw(st.integers(0, len(field)))
    if field.startswith(b'"'):  # inside the quotes
        at = min(max(at, 1), len(field) - 1)
    bad = data.draw(st.sampled_from(INVALID_UTF8))
    rows[row][column] = "\x00"  # placeholder, replaced at the byte level below
    raw = csv_bytes(header, rows).replace(b"\x00", field[:at] + bad + field[at:], 1)
    assert_data_error(name, raw)


@READER_SETTINGS
@given(
    data=st.data(),
    name=st.sampled_from(INTERACTIONS),
    token=st.sampled_from(["-1.0", "-0.001", "-1e-300", "nan", "NaN", "inf", "-inf", "1e400", ""]),
)
def test_an_impossible_watch_ratio_sets_the_row_aside(data, name, token):
    """Negative, NaN, infinite or missing: the row is set aside (never loaded, never another exception)."""
    header, rows = data.draw(valid_lines(name))
    row = data.draw(st.integers(0, len(rows) - 1))
    rows[row][header.index("watch_ratio")] = token
    assert_bad_value(name, header, rows, row, "watch_ratio")


@st.composite
def interaction_frames(draw):
    """Frames shaped like a read big_matrix, over a handful of values per column so that rows repeat, with
    missing values of every kind, -0.0 beside 0.0, and re-watches (rows differing only in time)."""
    n = draw(st.integers(0, 40))
    small = st.integers(0, 2)
    return pd.DataFrame(
        {
            "user_id": np.array(draw(st.lists(small, min_size=n, max_size=n)), dtype=np.int64),
            "video_id": np.array(draw(st.lists(small, min_size=n, max_size=n)), dtype=np.int64),
            "time": pd.array(draw(st.lists(st.sampled_from(["a", "b", None]), min_size=n, max_size=n)), dtype="str"),
            "date": pd.array(draw(st.lists(st.sampled_from([1, 2, None]), min_size=n, max_size=n)), dtype="Int64"),
            "watch_ratio": np.array(draw(st.lists(st.sampled_from([0.0, -0.0, 0.5, np.nan]), min_size=n, max_size=n))),
        }
    )


@READER_SETTINGS
@given(frame=interaction_frames(), collide=st.sampled_from([None, 0, 1]))
def test_exact_duplicates_are_pandas_duplicated(frame, collide):
    """The rows dropped are exactly pandas' `duplicated` (NaN equals NaN, -0.0 equals 0.0, first kept),
    with the real row keys or with keys that collide for unequal rows (all equal, or by user only)."""
    expected = frame.duplicated().to_numpy()
    if collide is None:
        repeated = dedup.exact_duplicates(frame)
        assert (repeated == expected).all()
        pd.testing.assert_frame_equal(dedup.keep_rows(frame, ~repeated), frame[~expected].reset_index(drop=True))
    else:
        key = np.zeros(len(frame), dtype=np.uint64) if collide == 0 else frame["user_id"].to_numpy().view(np.uint64)
        assert (dedup._repeated_rows(frame, key) == expected).all()


@READER_SETTINGS
@given(
    frame=interaction_frames(),
    by=st.sampled_from([("user_id",), ("user_id", "video_id"), ("video_id", "watch_ratio")]),
    sort=st.booleans(),
)
def test_exact_duplicates_of_a_sorted_frame_are_pandas_duplicated(frame, by, sort):
    """Sorted by `by` (as KuaiRec's logs are by user and time), the neighbours' way finds exactly pandas'
    `duplicated`; unsorted, or with a missing value in `by`, the general way does."""
    if sort:
        frame = frame.sort_values(list(by), kind="stable", ignore_index=True)
    expected = frame.duplicated().to_numpy()
    assert (dedup.exact_duplicates(frame, by) == expected).all()
    runs = dedup._repeated_in_runs(frame, by)
    if frame[list(by)].isna().any(axis=None):
        assert runs is None
    elif sort and len(frame) >= 2:
        assert runs is not None
    if runs is not None:  # sorted, or an unsorted draw that happens to be in order
        assert (runs == expected).all()


# ---------------------------------------------------------------- metrics


@st.composite
def cells(draw, *, max_users: int = 5, max_items: int = 12):
    """Evaluation cells: a few users, unique items per user, scores and truth with many ties."""
    tied = st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.0, 2.0000001, 3.0, 5.0, 7.5])
    users, items, scores, truth = [], [], [], []
    n_users = draw(st.integers(1, max_users))
    for user in range(n_users):
        mine = draw(st.lists(st.integers(0, 60), max_size=max_items, unique=True))
        users += [user] * len(mine)
        items += mine
        scores += [draw(tied | st.floats(-1e3, 1e3)) for _ in mine]
        truth += [draw(tied | st.floats(0, 600)) for _ in mine]
    k = draw(st.integers(1, max_items + 2))
    return (np.array(users, dtype=np.int64), np.array(items, dtype=np.int64), np.array(scores), np.array(truth), k)


RANKING = ("hit_ratio", "ndcg", "seed_ndcg", "precision", "recall")


def dense_rank(values: np.ndarray) -> np.ndarray:
    """A strictly increasing map of the values (0.0 and -0.0 are one value, as in the metrics)."""
    return np.unique(values, return_inverse=True)[1].reshape(values.shape)


def n_users_of(users: np.ndarray) -> int:
    return int(users.max()) + 1 if users.size else 1


@METRIC_SETTINGS
@given(cells(), st.randoms(use_true_random=False))
def test_metric_ranges_and_error_metrics(data, rnd):
    users, items, scores, truth, k = data
    n = n_users_of(users)
    predictions = np.array([rnd.uniform(-5, 50) for _ in users])
    got = user_metrics(users, items, scores, truth, k, predictions=predictions, n_users=n)
    for name in RANKING:
        defined = got[name][~np.isnan(got[name])]
        assert np.all((defined >= 0.0) & (defined <= 1.0)), name
    rho = got["spearman"][~np.isnan(got["spearman"])]
    assert np.all((rho >= -1.0 - 1e-12) & (rho <= 1.0 + 1e-12))
    present = got["n_items"] > 0
    assert np.all(got["mae"][present] >= 0) and np.all(np.isnan(got["mae"][~present]))
    # RMSE >= MAE (Jensen; an error below 1e-154 squares to 0, hence the absolute slack), both 0 when exact.
    assert np.all(got["rmse"][present] + 1e-150 >= got["mae"][present] * (1 - 1e-12))
    assert np.all(mae(users, truth, truth, n_users=n)[present] == 0.0)
    assert np.all(rmse(users, truth, truth, n_users=n)[present] == 0.0)


@METRIC_SETTINGS
@given(cells(), st.randoms(use_true_random=False))
def test_error_metrics_do_not_depend_on_row_order(data, rnd):
    users, items, scores, truth, _ = data
    n = n_users_of(users)
    order = list(range(users.size))
    rnd.shuffle(order)
    np.testing.assert_allclose(
        mae(users[order], scores[order], truth[order], n_users=n), mae(users, scores, truth, n_users=n), rtol=1e-12
    )
    np.testing.assert_allclose(
        rmse(users[order], scores[order], truth[order], n_users=n), rmse(users, scores, truth, n_users=n), rtol=1e-12
    )


@METRIC_SETTINGS
@given(cells(), st.sampled_from(["dense_rank", "exp_of_rank", "scaled", "shifted_rank"]))
def test_order_only_metrics_ignore_monotone_transforms_of_the_scores(data, transform):
    users, items, scores, truth, k = data
    n = n_users_of(users)
    ranks = dense_rank(scores)
    transformed = {
        "dense_rank": ranks.astype(float),
        "exp_of_rank": np.exp(ranks / 7.0) - 3.0,  # non-linear, strictly increasing, no new ties
        "scaled": scores * 4.0 + 0.0,  # exact in binary floating point
        "shifted_rank": ranks * 1e-3 - 1e6,
    }[transform]
    base = user_metrics(users, items, scores, truth, k, n_users=n)
    other = user_metrics(users, items, transformed, truth, k, n_users=n)
    for name in (*RANKING, "spearman"):  # bit for bit: these depend on the order of the scores only
        np.testing.assert_array_equal(other[name], base[name], err_msg=name)
    assert np.array_equal(
        rank_positions(users, items, transformed, n_users=n), rank_positions(users, items, scores, n_users=n)
    )


@METRIC_SETTINGS
@given(cells())
def test_hit_ratio_and_spearman_ignore_monotone_transforms_of_the_truth(data):
    users, items, scores, truth, k = data
    n = n_users_of(users)
    base = user_metrics(users, items, scores, truth, k, n_users=n)
    other = user_metrics(users, items, scores, np.sqrt(dense_rank(truth).astype(float)), k, n_users=n)
    np.testing.assert_array_equal(other["hit_ratio"], base["hit_ratio"])  # the actual top-k is the same set
    np.testing.assert_array_equal(other["spearman"], base["spearman"])


@METRIC_SETTINGS
@given(cells())
def test_reversing_the_scores_negates_spearman(data):
    users, items, scores, truth, k = data
    n = n_users_of(users)
    forward, backward = spearman(users, scores, truth, n_users=n), spearman(users, -scores, truth, n_users=n)
    np.testing.assert_allclose(backward, -forward, atol=1e-12)


@METRIC_SETTINGS
@given(cells(), st.sampled_from([0.0, -0.0, 1.0, -3.5, 1e300]))
def test_a_constant_predictor_is_the_item_id_order_and_never_nan(data, constant):
    users, items, _, truth, k = data
    n = n_users_of(users)
    constant_scores, predictions = np.full(users.size, constant), np.full(users.size, min(abs(constant), 9.0))
    got = user_metrics(users, items, constant_scores, truth, k, predictions=predictions, n_users=n)
    by_id = user_metrics(users, items, -items.astype(float), truth, k, n_users=n)  # ties broken by id ascending
    for name in RANKING:
        np.testing.assert_array_equal(got[name], by_id[name], err_msg=name)
    present = got["n_items"] > 0
    for name in ("hit_ratio", "ndcg", "seed_ndcg", "precision", "mae", "rmse"):
        assert not np.isnan(got[name][present]).any(), name  # documented NaN only for users without cells
    # recall: NaN exactly for users with no relevant item; spearman: 0 for a constant side, NaN below 2 cells.
    assert np.array_equal(np.isnan(got["recall"]), got["n_relevant"] == 0)
    assert np.all(got["spearman"][got["n_items"] >= 2] == 0.0)
    assert np.all(np.isnan(got["spearman"][got["n_items"] < 2]))


@METRIC_SETTINGS
@given(cells(), st.sampled_from([0.0, 0.3, 2.0, 5.0, 80.0]))
def test_constant_truth(data, value):
    users, items, scores, _, k = data
    n = n_users_of(users)
    got = user_metrics(users, items, scores, np.full(users.size, value), k, n_users=n)
    present = got["n_items"] > 0
    # Every order is ideal when all gains are equal; with no gain at all NDCG is 0 by definition.
    assert np.all(got["ndcg"][present] == (1.0 if value > 0 else 0.0))
    assert np.all(got["seed_ndcg"][present] == (1.0 if value > 0 else 0.0))
    assert np.all(got["spearman"][got["n_items"] >= 2] == 0.0)
    assert not np.isnan(got["hit_ratio"][present]).any()


@METRIC_SETTINGS
@given(cells())
def test_a_list_long_enough_for_everything(data):
    users, items, scores, truth, _ = data
    n = n_users_of(users)
    got = user_metrics(users, items, scores, truth, 10_000, n_users=n)
    present = got["n_items"] > 0
    assert np.all(got["hit_ratio"][present] == 1.0)  # both lists hold every item
    np.testing.assert_array_equal(got["precision"][present], got["n_relevant"][present] / got["n_items"][present])
    assert np.all(got["recall"][got["n_relevant"] > 0] == 1.0)


@METRIC_SETTINGS
@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.integers(0, n - 1), max_size=80),
            st.lists(st.floats(0, 1e6) | st.sampled_from([0.0, 1.0, 1.0]), min_size=n, max_size=n),
        )
    ),
    st.randoms(use_true_random=False),
)
def test_catalogue_metrics_ranges_and_invariances(data, rnd):
    n_catalog, recommended, popularity = data
    rec, popularity = np.array(recommended, dtype=np.int64), np.array(popularity)
    shuffled = rec.copy()
    rnd.shuffle(shuffled)
    coverage = catalog_coverage(rec, n_catalog)
    assert 0.0 <= coverage <= 1.0 and coverage == catalog_coverage(shuffled, n_catalog)
    if rec.size == 0:
        assert coverage == 0.0 and math.isnan(gini(rec, n_catalog))
        assert math.isnan(popularity_percentile(rec, popularity))
        return
    g = gini(rec, n_catalog)
    assert 0.0 <= g + 1e-12 and g <= (n_catalog - 1) / n_catalog + 1e-12
    assert g == pytest.approx(gini(shuffled, n_catalog), abs=1e-12)
    p = popularity_percentile(rec, popularity)
    assert 0.0 <= p <= 1.0
    assert p == pytest.approx(popularity_percentile(shuffled, popularity), abs=1e-12)
    # Percentiles depend only on the popularity order.
    assert p == popularity_percentile(rec, np.exp(dense_rank(popularity) / 3.0))
