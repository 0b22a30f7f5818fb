"""The real files' text: pandas-identical number and time text, built with Arrow kernels (12.5 M rows in seconds),
and the CSV writers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recgen.sample.params import DAY_MS, LOCAL_OFFSET_MS

BIG_HEADER = ["user_id", "video_id", "play_duration", "video_duration", "time", "date", "timestamp", "watch_ratio"]


@functools.cache
def _clock_tables() -> tuple[pa.Array, pa.Array]:
    """`HH:MM:SS` for every second of a day, and the trimmed millisecond fraction (`.438`, `.5`, ``)."""
    sec = np.arange(86_400)
    hms = [f"{h:02d}:{m:02d}:{s:02d}" for h, m, s in zip(sec // 3600, sec // 60 % 60, sec % 60, strict=True)]
    frac = [("." + f"{ms:03d}".rstrip("0")) if ms else "" for ms in range(1000)]
    return pa.array(hms), pa.array(frac)


def _time_text(ts_ms: np.ndarray) -> pa.Array:
    """Local (UTC+8) `YYYY-MM-DD HH:MM:SS.fff` with trailing zeros of the fraction trimmed."""
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


def float_text(x: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
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


def date_int(day: np.ndarray) -> np.ndarray:
    """YYYYMMDD integers of day numbers relative to day 0."""
    d = (np.datetime64("2020-07-05") + day.astype("timedelta64[D]")).astype("datetime64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    return y * 10_000 + m * 100 + dd


def interaction_table(user, video, play, dur, ts_ms, date, null=None) -> pa.Table:
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
            "date": pa.array(date_int(date), mask=null),
            "timestamp": float_text(ts_ms / 1000.0, null),
            "watch_ratio": float_text(play / dur),
        }
    )


def write_arrow_csv(path: Path, header: list[str], tables: Iterator[pa.Table]) -> None:
    """Unquoted CSV (no field here can hold a comma), header written by hand: Arrow would quote it."""
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as out:
        out.write((",".join(header) + "\n").encode())
        for table in tables:
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, options)
            out.write(sink.getvalue().to_pybytes())


def write_pandas_csv(path: Path, frame: pd.DataFrame, append: bool = False) -> None:
    """The frame as pandas writes it; `append` adds rows after an earlier chunk, without a second header."""
    frame.to_csv(
        path, mode="a" if append else "w", header=not append, index=False, lineterminator="\n", encoding="utf-8"
    )


def list_text(lists: list[list[int]]) -> list[str]:
    return ["[" + ", ".join(map(str, items)) + "]" for items in lists]


def quote(field: str) -> str:
    if "," in field or '"' in field or "\n" in field:
        return '"' + field.replace('"', '""') + '"'
    return field
