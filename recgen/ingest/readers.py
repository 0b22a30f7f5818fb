"""Reading the seven KuaiRec CSVs: where they are (a folder or the zip itself), their hashes, and typed frames.

Every reader parses with explicit column types (never type detection), applies the quirks of
the real files and raises a one-line `DataError` naming the file, the column or line and what was
expected. Line numbers count the header as line 1, like an editor does.
"""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from recgen.constants import (
    BIG_MATRIX,
    CAPTION_CATEGORY,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    SMALL_MATRIX,
    SOCIAL_NETWORK,
    UNKNOWN,
    UNKNOWN_CATEGORY_ID,
    USER_FEATURES,
)
from recgen.errors import DataError, one_line
from recgen.ingest.source import DataSource
from recgen.store.schema import DAILY_COLUMNS, INTERACTION_COLUMNS, users

MAX_EXACT_INT = 2**53  # integers read through float64 are exact up to here; larger ones are refused

# Column kinds. "int" columns must hold an integer on every line and are parsed as int64; "int?" columns are
# integers that may be empty or written as floats (`20200705.0`, `2.0`), parsed as float64 then cast to a
# nullable Int64 (exact below 2**53); "float"/"float?" and "text"/"text?" likewise, "?" meaning NULL allowed.
INT, INT_NULL, FLOAT, FLOAT_NULL, TEXT, TEXT_NULL = "int", "int?", "float", "float?", "text", "text?"

_INTERACTION_KINDS = dict(
    zip(INTERACTION_COLUMNS, [INT, INT, INT, INT, TEXT_NULL, INT_NULL, FLOAT_NULL, FLOAT], strict=True)
)
_DAILY_TEXT = {"video_type", "upload_dt", "upload_type", "visible_status", "video_tag_name"}
_DAILY_FLOAT = {"video_duration", "play_progress"}
_USER_TEXT = {"user_active_degree", *(c.name for c in users.columns if c.name.endswith("_range"))}
_CATEGORY_LEVELS = ("first", "second", "third")

KINDS: dict[str, dict[str, str]] = {
    BIG_MATRIX: _INTERACTION_KINDS,
    SMALL_MATRIX: _INTERACTION_KINDS,
    USER_FEATURES: {
        c.name: INT if c.name == "user_id" else TEXT_NULL if c.name in _USER_TEXT else INT_NULL for c in users.columns
    },
    ITEM_CATEGORIES: {"video_id": INT, "feat": TEXT},
    SOCIAL_NETWORK: {"user_id": INT, "friend_list": TEXT},
    ITEM_DAILY_FEATURES: {
        c: INT
        if c in ("video_id", "date")
        else TEXT_NULL
        if c in _DAILY_TEXT
        else FLOAT_NULL
        if c in _DAILY_FLOAT
        else INT_NULL
        for c in DAILY_COLUMNS
    },
    CAPTION_CATEGORY: {
        "video_id": INT,
        "manual_cover_text": TEXT_NULL,
        "caption": TEXT_NULL,
        "topic_tag": TEXT_NULL,
        **{
            f"{level}_level_category_{part}": INT if part == "id" else TEXT_NULL
            for level in _CATEGORY_LEVELS
            for part in ("id", "name")
        },
    },
}

_ARROW_TYPES = {INT: pa.int64(), INT_NULL: pa.float64(), FLOAT: pa.float64(), FLOAT_NULL: pa.float64()}


# ---------------------------------------------------------------- where the files are


# ---------------------------------------------------------------- generic typed parsing


def _header(source: DataSource, name: str) -> list[str]:
    with source.open(name) as stream:
        first = stream.readline()
        if not first.strip():
            raise DataError(f"{name}: empty file (expected a header line)")
        if not stream.readline().strip():
            raise DataError(f"{name}: no data rows after the header")
    text = first.decode("utf-8-sig", errors="replace")
    return [column.strip() for column in next(csv.reader([text]))]


def _check_columns(name: str, found: list[str]) -> None:
    expected = list(KINDS[name])
    missing = [c for c in expected if c not in found]
    if missing:
        unexpected = [c for c in found if c not in expected]
        extra = f"; unexpected: {', '.join(unexpected)}" if unexpected else ""
        raise DataError(f"{name}: missing column {', '.join(missing)}{extra}")


def read_typed(source: DataSource, name: str) -> pd.DataFrame:
    """Parse one CSV with pyarrow and the explicit column kinds of `KINDS[name]` (other columns are ignored).

    The frame keeps a RangeIndex, so row `i` is line `i + 2` of the file.
    """
    _check_columns(name, _header(source, name))
    kinds = KINDS[name]
    try:
        with source.open(name) as stream:
            table = pacsv.read_csv(stream, convert_options=_typed_options(kinds))
    except pa.ArrowInvalid as exc:
        raise _diagnose(source, name, exc) from None
    for column, kind in kinds.items():
        if not kind.endswith("?") and table.column(column).null_count:
            first = int(np.argmax(table.column(column).is_null().to_numpy(zero_copy_only=False)))
            expected = "a value" if kind == TEXT else "a number"
            raise DataError(f"{name}: column {column}, line {first + 2}: empty value (expected {expected})")
    frame = table.to_pandas()
    for column, kind in kinds.items():
        if kind == INT_NULL:
            frame[column] = _nullable_int(frame[column], name, column)
    return frame


def _nullable_int(values: pd.Series, name: str, column: str) -> pd.Series:
    """float64 (NaN = missing) -> nullable Int64, refusing fractions like 2.5, infinities and |x| > 2**53."""
    finite = values.to_numpy()
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(finite) & ((finite != np.round(finite)) | ~(np.abs(finite) <= MAX_EXACT_INT))
    if bad.any():
        index = int(np.argmax(bad))
        raise DataError(f"{name}: column {column}, line {index + 2}: {float(finite[index])!r} is not an integer")
    return values.astype("Int64")


def _diagnose(source: DataSource, name: str, exc: pa.ArrowInvalid) -> DataError:
    """Turn pyarrow's error (which names no line) into one naming the column and the first bad line."""
    kinds = KINDS[name]
    table = _read_as_text(source, name)  # a structural problem raises its own DataError here
    first: tuple[int, str, str, str] | None = None
    for column, kind in kinds.items():
        if kind in (TEXT, TEXT_NULL):
            continue
        text = table[column]
        number = pd.to_numeric(text, errors="coerce")
        bad = (text.notna() & number.isna()).to_numpy()
        what = "not a number"
        if kind == INT:
            # A fraction, an infinity or a number beyond int64 (pyarrow names neither column nor line).
            fraction = (number.notna() & ((number != number.round()) | (number.abs() > 2**63))).to_numpy()
            bad, what = bad | fraction, "not an integer"
        if bad.any():
            index = int(np.argmax(bad))
            if first is None or index < first[0]:
                first = (index, column, str(text.iloc[index]), what)
    if first is None:
        return DataError(f"{name}: {one_line(exc)}")
    index, column, value, what = first
    return DataError(f"{name}: column {column}, line {index + 2}: {value!r} is {what}")


def check_unique(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    """Raise DataError naming the first line whose `columns` repeat an earlier line."""
    repeated = frame.duplicated(subset=columns).to_numpy()
    if repeated.any():
        index = int(np.argmax(repeated))
        key = ", ".join(f"{c}={frame[c].iloc[index]}" for c in columns)
        raise DataError(f"{name}: line {index + 2} repeats ({key}); expected one row per ({', '.join(columns)})")


def _parse_lists(texts: pd.Series, name: str, column: str) -> list[list[int]]:
    """Python-list text of integers (`[8]`, `[27, 9]`) -> lists; 10k short strings, so a comprehension."""
    lists = [_int_list(text) for text in texts]
    bad = [index for index, value in enumerate(lists) if value is None]
    if bad:
        shown = texts.iloc[bad[0]]
        raise DataError(f"{name}: column {column}, line {bad[0] + 2}: {shown!r} is not a list of integers like [27, 9]")
    return lists


def _int_list(text: str) -> list[int] | None:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    return value if isinstance(value, list) and all(type(x) is int for x in value) else None


# ---------------------------------------------------------------- one reader per file


REJECTED_COLUMNS = ["line", "column", "value", "reason"]
NOT_INT = "is not an integer"

# Interaction values no correct log holds: (is bad, what is expected). NaN never compares, so a missing
# value is not caught here but by the check for required columns.
_OUT_OF_RANGE = {
    "play_duration": (lambda v: v < 0, "a duration >= 0 ms"),
    "video_duration": (lambda v: v <= 0, "a duration > 0 ms"),
    "watch_ratio": (lambda v: np.isinf(v) | (v < 0), "a finite ratio >= 0"),
}


def read_interactions(source: DataSource, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """big_matrix.csv or small_matrix.csv, typed (time text, date nullable), and the rows set aside.

    The file's structure must be right (header, columns, field count, UTF-8), or DataError. A row with a
    bad value (missing, not a number, a fraction in an id, a negative or infinite watch_ratio, a duration
    that cannot be) is set aside: it is left out of the frame and described in `rejected` (line, column,
    value, reason; one row each, the first problem found), so one bad line does not cost a night's run.
    Clean files take the fast typed parse; only a file with unparsable values is re-read as text.
    """
    _check_columns(name, _header(source, name))
    kinds = KINDS[name]
    try:
        with source.open(name) as stream:
            table = pacsv.read_csv(stream, convert_options=_typed_options(kinds))
        values = table.to_pandas()
        text = None
    except pa.ArrowInvalid:
        text = _read_as_text(source, name)
        values = pd.DataFrame({c: text[c] if k.startswith(TEXT) else _to_number(text[c]) for c, k in kinds.items()})
    problems = _Problems(len(values))
    for column, kind in kinds.items():
        if kind.startswith(TEXT):
            continue
        if text is not None:
            problems.add(text[column].notna() & values[column].isna(), column, "is not a number")
        if values[column].dtype == np.int64:
            # Parsed as integers, so none is missing, fractional or infinite: the float64 checks below would
            # scan every row to find nothing.
            number = values[column].to_numpy()
        else:
            number = values[column].to_numpy(dtype=np.float64, na_value=np.nan)
            if kind in (INT, INT_NULL):
                beyond = np.isinf(number)
                if text is not None or kind == INT_NULL:  # read as float64: beyond 2**53 it may have been rounded
                    with np.errstate(invalid="ignore"):
                        beyond |= np.abs(number) > MAX_EXACT_INT
                problems.add(beyond | (number != np.round(number)) & ~np.isnan(number), column, NOT_INT)
            if not kind.endswith("?"):
                problems.add(np.isnan(number), column, "is missing (expected a number)")
        if column in _OUT_OF_RANGE:
            is_bad, expected = _OUT_OF_RANGE[column]
            with np.errstate(invalid="ignore"):
                problems.add(is_bad(number), column, f"is out of range (expected {expected})")
    rejected = problems.frame(text if text is not None else values)
    if len(rejected):
        values = values.take(np.flatnonzero(~problems.bad))  # the index still counts rows of the file
    for column, kind in kinds.items():
        if kind == INT and values[column].dtype != np.int64:
            values[column] = values[column].astype("int64")
        elif kind == INT_NULL:
            values[column] = values[column].astype("Int64")
    return values, rejected


def rejections(frame: pd.DataFrame, mask, column: str | None, reason: str) -> pd.DataFrame:
    """Rows of `frame` (index = row of the file, as read_interactions leaves it) set aside for `reason`."""
    picked = frame[np.asarray(mask, dtype=bool)]
    value = None if column is None else picked[column].astype(str).to_numpy()
    return pd.DataFrame(
        {"line": picked.index.to_numpy() + 2, "column": column, "value": value, "reason": reason},
        columns=REJECTED_COLUMNS,
    )


class _Problems:
    """The first problem of each row of a file: which column, and why (filled check by check, vectorised)."""

    def __init__(self, n_rows: int):
        self.bad = np.zeros(n_rows, dtype=bool)
        # (rows newly bad, column, reason) per check that found any: no object arrays over every row of a
        # clean file.
        self.found: list[tuple[np.ndarray, str, str]] = []

    def add(self, mask, column: str, reason: str) -> None:
        new = np.asarray(mask, dtype=bool) & ~self.bad
        if new.any():
            self.bad |= new
            self.found.append((np.flatnonzero(new), column, f"{column} {reason}"))

    def frame(self, values: pd.DataFrame) -> pd.DataFrame:
        """line (1 = header), column, offending value as text, reason: one row per bad row, in file order."""
        rows = np.flatnonzero(self.bad)
        columns = np.full(len(rows), None, dtype=object)
        reasons = np.full(len(rows), None, dtype=object)
        for found, column, reason in self.found:
            at = np.searchsorted(rows, found)
            columns[at], reasons[at] = column, reason
        shown = pd.Series(None, index=rows, dtype=object)
        for column in pd.unique(columns):
            here = rows[columns == column]
            shown[here] = values[column].iloc[here].astype(str).where(values[column].iloc[here].notna(), None).array
        return pd.DataFrame(
            {"line": rows + 2, "column": columns, "value": shown.to_numpy(), "reason": reasons},
            columns=REJECTED_COLUMNS,
        )


def _typed_options(kinds: dict[str, str]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types={c: _ARROW_TYPES.get(k, pa.string()) for c, k in kinds.items()},
        include_columns=list(kinds),
        null_values=[""],
        strings_can_be_null=True,
    )


def _read_as_text(source: DataSource, name: str) -> pd.DataFrame:
    """Every column as text (None for empty), for a file whose values did not all parse; a structural
    problem (field count, encoding) is still a DataError for the whole file."""
    kinds = KINDS[name]
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(kinds, pa.string()),
        include_columns=list(kinds),
        null_values=[""],
        strings_can_be_null=True,
    )
    try:
        with source.open(name) as stream:
            # Single-threaded so that pyarrow reports the physical row number of a malformed line.
            table = pacsv.read_csv(stream, read_options=pacsv.ReadOptions(use_threads=False), convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise DataError(f"{name}: {_structure_error(exc)}") from None
    return table.to_pandas()


def _structure_error(exc: pa.ArrowInvalid) -> str:
    message = re.sub(r"Row #(\d+)", r"line \1", one_line(exc).removeprefix("CSV parse error: "))
    if "UTF8" in message or "UTF-8" in message:
        return f"not UTF-8 text ({message}); KuaiRec files are UTF-8"
    if "Expected" in message and "columns" in message:
        return f"{message} (a line with missing or extra fields: is the file truncated or edited?)"
    return message


def _to_number(text: pd.Series) -> pd.Series:
    """Text -> float64, NaN where empty or not a number (ids stay exact below 2**53)."""
    return pd.to_numeric(text, errors="coerce").astype("float64")


def read_users(source: DataSource) -> pd.DataFrame:
    """user_features.csv -> users rows; `UNKNOWN` activity degree -> NULL, NaN features stay NULL."""
    frame = read_typed(source, USER_FEATURES)
    check_unique(frame, ["user_id"], USER_FEATURES)
    degree = frame["user_active_degree"]
    frame["user_active_degree"] = degree.where(degree != UNKNOWN)
    return frame


def read_friendships(source: DataSource) -> tuple[pd.DataFrame, int]:
    """social_network.csv -> one (user_id, friend_id) row per friend-list entry; also the file's row count."""
    frame = read_typed(source, SOCIAL_NETWORK)
    lists = _parse_lists(frame["friend_list"], SOCIAL_NETWORK, "friend_list")
    pairs = pd.DataFrame({"user_id": frame["user_id"], "friend_id": lists}).explode("friend_id")
    pairs = pairs.dropna().astype("int64").drop_duplicates(ignore_index=True)
    return pairs, len(frame)


def read_item_categories(source: DataSource) -> tuple[pd.DataFrame, pd.DataFrame]:
    """item_categories.csv -> (video_id, tags as JSON text `[27, 9]`) and video_tags rows (video_id, tag_id)."""
    frame = read_typed(source, ITEM_CATEGORIES)
    check_unique(frame, ["video_id"], ITEM_CATEGORIES)
    lists = _parse_lists(frame["feat"], ITEM_CATEGORIES, "feat")
    tags = pd.DataFrame({"video_id": frame["video_id"], "tags": [json.dumps(v) for v in lists]})
    pairs = pd.DataFrame({"video_id": frame["video_id"], "tag_id": lists}).explode("tag_id")
    pairs = pairs.dropna().astype("int64").drop_duplicates(ignore_index=True)
    return tags, pairs


def read_captions(source: DataSource) -> pd.DataFrame:
    """kuairec_caption_category.csv -> one row per video, with NULL for every `UNKNOWN`/-124 marker.

    Four captions hold a bare `\\r` in an unquoted field, which pandas' and pyarrow's parsers both take
    as a line break (10,732 rows, junk ids); the `\\r` is removed before parsing, so only `\\n` ends a line
    (exactly 10,728 rows in the real file). The stdlib parser, strict: a line with too few fields (a truncated
    file) or an unclosed quote is a DataError, where pandas would pad it with NULLs. Read as text first,
    then typed, so a bad id still names its line.
    """
    name = CAPTION_CATEGORY
    _check_columns(name, _header(source, name))
    kinds = KINDS[name]
    try:
        with source.open(name) as stream:
            content = stream.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: not UTF-8 text ({one_line(exc)})") from None
    lines = csv.reader(io.StringIO(content.replace("\r", ""), newline=""), strict=True)
    try:
        header = [column.strip() for column in next(lines)]
        rows = [row for row in lines if row]  # blank lines are skipped, as pandas does
    except csv.Error as exc:
        raise DataError(f"{name}: line {lines.line_num}: {one_line(exc)}") from None
    widths = np.array([len(row) for row in rows], dtype=np.int64)
    if (widths != len(header)).any():
        index = int(np.argmax(widths != len(header)))
        raise DataError(
            f"{name}: line {index + 2} has {widths[index]} fields, expected {len(header)} (is the file truncated?)"
        )
    text = pd.DataFrame(rows, columns=header, dtype=object)
    text = text.mask(text == "")  # a caption reading "NA" or "null" is text; only an empty field is NULL
    text = text[list(kinds)]
    frame = pd.DataFrame(index=text.index)
    for column, kind in kinds.items():
        values = text[column]
        if kind == INT:
            frame[column] = _strict_int(values, name, column)
        else:
            frame[column] = values
    check_unique(frame, ["video_id"], name)
    cover = frame["manual_cover_text"]
    frame["manual_cover_text"] = cover.where(cover != UNKNOWN)
    for level in _CATEGORY_LEVELS:
        ids, names = frame[f"{level}_level_category_id"], frame[f"{level}_level_category_name"]
        unknown = (ids == UNKNOWN_CATEGORY_ID) | (names == UNKNOWN)
        frame[f"{level}_level_category_id"] = ids.astype("Int64").mask(unknown)
        frame[f"{level}_level_category_name"] = names.mask(unknown)
    frame["topic_tag"] = _topic_tags_json(frame["topic_tag"], name)
    return frame


def _strict_int(values: pd.Series, name: str, column: str) -> pd.Series:
    number = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = (number.isna() | (number != number.round()) | ~(number.abs() <= MAX_EXACT_INT)).to_numpy()
    if bad.any():
        index = int(np.argmax(bad))
        shown = values.iloc[index]
        what = "empty value (expected an integer)" if pd.isna(shown) else f"{shown!r} is not an integer"
        raise DataError(f"{name}: column {column}, line {index + 2}: {what}")
    return number.astype("int64")


def _topic_tags_json(values: pd.Series, name: str) -> pd.Series:
    """`[a,b]` (unquoted, comma-separated) -> JSON text `["a","b"]`; `[]` -> `[]`; empty stays NULL."""
    present = values.notna()
    bracketed = values.str.startswith("[") & values.str.endswith("]")
    bad = (present & ~bracketed.fillna(False)).to_numpy()
    if bad.any():
        index = int(np.argmax(bad))
        raise DataError(f"{name}: column topic_tag, line {index + 2}: {values.iloc[index]!r} is not a list like [a,b]")
    converted = [
        json.dumps([tag for tag in text[1:-1].split(",") if tag], ensure_ascii=False, separators=(",", ":"))
        for text in values[present]
    ]
    result = values.astype(object).where(present, None)
    result[present] = converted
    return result


def read_daily(source: DataSource) -> pd.DataFrame:
    """item_daily_features.csv -> video_daily rows, all 58 columns, NaN -> NULL."""
    frame = read_typed(source, ITEM_DAILY_FEATURES)
    check_unique(frame, ["video_id", "date"], ITEM_DAILY_FEATURES)
    return frame
