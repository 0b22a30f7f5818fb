"""Exact duplicate rows (every column equal), found without hashing whole rows where the log's order allows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa


def exact_duplicates(frame: pd.DataFrame, sorted_by: tuple[str, ...] = ()) -> np.ndarray:
    """Which rows of `frame` are identical in every column to an earlier row (`drop_exact_duplicates`' mask).

    A frame sorted by the columns `sorted_by`, none of them missing (KuaiRec's logs: by user, then time),
    takes a shorter way: identical rows are neighbours there (`_repeated_in_runs`). Whether it is sorted is
    checked, never assumed: any other frame takes the general way, which finds the same rows.
    """
    repeated = _repeated_in_runs(frame, sorted_by) if sorted_by else None
    return _repeated_rows(frame, _row_keys(frame, _numeric(frame))) if repeated is None else repeated


def _numeric(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if frame[c].dtype.kind in "iuf" or str(frame[c].dtype) == "Int64"]


def _repeated_in_runs(frame: pd.DataFrame, by: tuple[str, ...]) -> np.ndarray | None:
    """`exact_duplicates` of a frame sorted by the columns `by`; None when it is not, or one of them is missing.

    Sorted, rows with the same values in `by` form a run of neighbours, and identical rows share a run. A
    run of two holds a duplicate when its second row equals its first; the rare longer runs are settled
    together by `_repeated_rows`: no key per row and no sort of all of them, as the general way needs.
    """
    n = len(frame)
    if n < 2:
        return None
    later = np.zeros(n - 1, dtype=bool)  # row i + 1 sorts after row i
    same = np.ones(n - 1, dtype=bool)  # row i + 1 has the same values in `by` as row i
    for column in by:
        values = frame[column]
        if values.hasnans:
            return None
        values = values.to_numpy()
        later |= same & (values[1:] > values[:-1])
        same &= values[1:] == values[:-1]
    if not (later | same).all():
        return None
    run = np.concatenate([[0], np.cumsum(~same)])  # each row's run number
    length = np.bincount(run)[run]
    repeated = np.zeros(n, dtype=bool)
    second = np.flatnonzero(same) + 1  # rows that continue a run
    pairs = second[length[second] == 2]
    equal = np.ones(len(pairs), dtype=bool)
    for _, values in frame.items():
        equal &= _equal(values, pairs, pairs - 1)
    repeated[pairs[equal]] = True
    longer = np.flatnonzero(length > 2)
    if len(longer):
        repeated[longer] = exact_duplicates(frame.iloc[longer])  # the general way
    return repeated


def keep_rows(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """`frame[keep]` with a fresh RangeIndex, column by column with numpy's boolean filter, and Arrow's for
    Arrow-backed text: faster than taking the rows by position or pandas' own boolean indexing."""
    if keep.all():
        return frame.reset_index(drop=True)
    columns = {}
    for column, values in frame.items():
        if isinstance(values.dtype, np.dtype):
            columns[column] = values.to_numpy()[keep]
        elif isinstance(values.array, pd.arrays.ArrowStringArray):
            columns[column] = pd.array(pa.array(values.array).filter(pa.array(keep)), dtype=values.dtype)
        else:
            columns[column] = values.array[keep]
    return pd.DataFrame(columns, copy=False)


def _repeated_rows(frame: pd.DataFrame, key: np.ndarray) -> np.ndarray:
    """Which rows of `frame` equal an earlier row in every column, given a per-row uint64 `key` that is equal
    for equal rows (and may collide for unequal ones).

    One sort groups the rows by key, each group in row order: the key's high bits and the row number packed
    in one uint64 (a plain sort, much faster than an argsort of the keys). Each row of a group is then
    compared, column by column, with the group's first row (few rows: the duplicates and their firsts).
    Only groups where that finds a difference (the key's bits collide for unequal rows) are settled by
    pandas' `duplicated` over their rows.
    """
    n = len(key)
    row_bits = np.uint64((1 << max(n - 1, 1).bit_length()) - 1)
    packed = np.sort(key & ~row_bits | np.arange(n, dtype=np.uint64))
    rows = (packed & row_bits).astype(np.intp)
    starts_group = np.ones(n, dtype=bool)
    starts_group[1:] = (packed[1:] ^ packed[:-1]) > row_bits  # the key bits differ
    del packed
    group = np.cumsum(starts_group) - 1
    first = rows[starts_group]  # each group's earliest row
    later = ~starts_group
    rows, group = rows[later], group[later]
    same = np.ones(len(rows), dtype=bool)
    for _, values in frame.items():
        same &= _equal(values, rows, first[group])
    repeated = np.zeros(n, dtype=bool)
    repeated[rows[same]] = True
    if not same.all():
        unsettled = np.isin(group, group[~same])
        members = np.union1d(rows[unsettled], first[group[unsettled]])
        repeated[members] = frame.iloc[members].duplicated().to_numpy()
    return repeated


def _equal(values: pd.Series, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Whether `values` at positions `left` equal those at `right`, missing equal to missing."""
    a, b = values.take(left).reset_index(drop=True), values.take(right).reset_index(drop=True)
    return ((a == b).fillna(False) | (a.isna() & b.isna())).to_numpy(dtype=bool)


def _row_keys(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """A uint64 per row, equal for rows equal in `columns` (polynomial in the values' bits, mod 2**64).

    Equal values must give equal bits: floats are canonicalised (-0.0 -> 0.0, one NaN), missing integers
    become NaN floats. Unequal rows may collide; the caller compares candidates exactly.
    """
    key = np.zeros(len(frame), dtype=np.uint64)
    multiplier = np.uint64(0x9E3779B97F4A7C15)  # odd, so multiplying never loses information mod 2**64
    with np.errstate(over="ignore"):
        for column in columns:
            values = frame[column]
            if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iu":
                bits = values.to_numpy().astype(np.int64, copy=False).view(np.uint64)
            else:
                floats = values.to_numpy(dtype=np.float64, na_value=np.nan) + 0.0  # -0.0 + 0.0 is 0.0
                floats[np.isnan(floats)] = np.nan
                bits = floats.view(np.uint64)
            key *= multiplier
            key += bits
    return key
