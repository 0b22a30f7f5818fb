"""Reference figures for the big_matrix ingest, measured side by side: what a loader without recgen's checks
would take, recgen's own insert path, and recgen's whole big_matrix load phase by phase; and the seed
notebook's per-row data preparation, which recgen's training throughput is judged against.

    python benchmarks/references.py --sample /tmp/recgen-bench/full-s42   # a `recgen sample --scale full`

- raw `sqlite3.executemany` of the same (de-duplicated) big_matrix rows into an empty 8-column table in one
  transaction (WAL, synchronous=NORMAL, like recgen's database), two ways: a plain one, fed straight from
  the frame (`itertuples`), and a stricter one that times only the executemany of tuples built beforehand;
- recgen's own insert path (`bulk.replace_rows`) of the same rows into train_interactions, without and with
  its indexes, and a whole big_matrix load through `ingest()` on a database that has everything else loaded,
  phase by phase (hashing, parsing and validating, the checks, de-duplicating, inserting, commit, cache);
- the seed notebook's data preparation: a per-row Python loop (`iterrows`) building each feature row,
  timed on 100,000 rows and scaled.

Run by hand; not part of the test suite.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import time
from pathlib import Path

from common import load_average, machine

NOTEBOOK_SAMPLE_ROWS = 100_000


def raw_executemany(sample: Path, out: Path) -> dict[str, float]:
    """Raw sqlite3.executemany of the de-duplicated big_matrix rows, one transaction: plain (from the frame)
    and prebuilt tuples (only the executemany timed); then recgen's insert path and whole load beside them."""
    from recgen.ingest.dedup import exact_duplicates, keep_rows
    from recgen.ingest.readers import read_interactions
    from recgen.ingest.source import locate_data
    from recgen.store.bulk import _python_values

    print(f"reference: raw sqlite3 executemany (load average {load_average()})", flush=True)
    frame = read_interactions(locate_data(sample), "big_matrix.csv")[0].reset_index(drop=True)
    frame = keep_rows(frame, ~exact_duplicates(frame))
    columns = list(frame.columns)
    target = out / "raw-executemany.db"
    sql = f"INSERT INTO t VALUES ({', '.join('?' * len(columns))})"

    began = time.perf_counter()
    conn = _raw_table(target)
    conn.execute("BEGIN")
    # numpy scalars of a nullable column would be stored as blobs: Python ints (None where missing) first.
    plain = frame.astype({c: object for c in columns if str(frame[c].dtype) == "Int64"})
    conn.executemany(sql, plain.itertuples(index=False, name=None))
    conn.execute("COMMIT")
    plain_seconds = time.perf_counter() - began
    stored = dict(conn.execute("SELECT typeof(date), count(*) FROM t GROUP BY 1").fetchall())
    assert set(stored) <= {"integer", "null"}, stored
    conn.close()
    del plain
    print(f"reference: plain executemany from the frame {len(frame):,} rows in {plain_seconds:.1f} s", flush=True)

    conn = _raw_table(target)
    chunk, seconds = 1_000_000, 0.0
    conn.execute("BEGIN")
    for start in range(0, len(frame), chunk):
        part = frame.iloc[start : start + chunk]
        rows = list(zip(*(_python_values(part[c]) for c in columns), strict=True))  # prebuilt: not timed
        began = time.perf_counter()
        conn.executemany(sql, rows)
        seconds += time.perf_counter() - began
    began = time.perf_counter()
    conn.execute("COMMIT")
    seconds += time.perf_counter() - began
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    n = len(frame)
    print(f"reference: raw executemany of prebuilt tuples {n:,} rows in {seconds:.1f} s", flush=True)
    insert_seconds = recgen_insert(frame, out, indexes=False)
    print(f"recgen insert path (db.replace_rows) of the same rows, no indexes: {insert_seconds:.1f} s", flush=True)
    indexed_seconds = recgen_insert(frame, out, indexes=True)
    print(f"recgen insert path of the same rows, indexes built: {indexed_seconds:.1f} s", flush=True)
    del frame
    phases = recgen_big_load(sample, out)
    print(f"recgen whole big_matrix load: {fmt(phases)}", flush=True)
    return {
        "raw_rows": float(n),
        "raw_seconds": seconds,
        "raw_rows_per_s": n / seconds,
        "plain_seconds": plain_seconds,
        "plain_rows_per_s": n / plain_seconds,
        "insert_rows_per_s": n / insert_seconds,
        "indexed_insert_rows_per_s": n / indexed_seconds,
        "load_rows_per_s": n / phases["whole"],
        **{f"load_{phase}_seconds": value for phase, value in phases.items()},
    }


def _raw_table(target: Path) -> sqlite3.Connection:
    """An empty 8-column table in a new SQLite file, with recgen's pragmas (WAL, synchronous=NORMAL)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE t (user_id INTEGER, video_id INTEGER, play_duration INTEGER, video_duration INTEGER, "
        "time TEXT, date INTEGER, timestamp REAL, watch_ratio REAL)"
    )
    return conn


def _fresh(target: Path):
    from recgen.store.engine import get_engine

    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(f"{target}.cache", ignore_errors=True)
    return get_engine(target)


def recgen_insert(frame, out: Path, indexes: bool) -> float:
    """recgen's own insert path (`db.replace_rows`, as ingest calls it) for the same rows, into the real
    train_interactions table, with or without its indexes, one transaction, commit included."""
    from recgen.store.bulk import replace_rows
    from recgen.store.engine import migrate
    from recgen.store.schema import train_interactions

    target = out / "recgen-insert.db"
    engine = _fresh(target)
    migrate(engine)
    if not indexes:
        with engine.begin() as conn:
            for index in train_interactions.indexes:
                index.drop(conn)
    began = time.perf_counter()
    with engine.begin() as conn:
        replace_rows(conn, train_interactions, frame)
    seconds = time.perf_counter() - began
    engine.dispose()
    _fresh(target).dispose()
    return seconds


LOAD_PHASES = ("hash", "parse_validate", "checks", "dedup", "insert_index", "commit", "cache", "whole")


def recgen_big_load(sample: Path, out: Path) -> dict[str, float]:
    """`ingest()` reloading big_matrix.csv alone, into a database holding everything else, timed by phase.

    The database is prepared untimed: a full ingest, then big_matrix's rows and `source_files` row removed
    (so the timed ingest sees only that file as changed, and inserts into an empty table as a cold run
    does). The phases are timed by wrapping the functions the load calls; `dedup` is the search for
    duplicates, which a thread runs beside the checks, and dropping them with the rows set aside; `checks` is
    the rest of the file's load (ids against the catalogue, leaks from the evaluation matrix, rejected rows,
    waiting for that thread). `hash` sums the time of ingest's two hashing threads, so it is more than the
    wall time they take, and the phases overlap where `dedup`'s thread runs beside the checks.
    """
    from recgen.ingest import load as ingest
    from recgen.ingest import source
    from recgen.store import engine as db

    target = out / "recgen-load.db"
    engine = _fresh(target)
    ingest.ingest(engine, sample)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM train_interactions")
        conn.exec_driver_sql("DELETE FROM source_files WHERE name = 'big_matrix.csv'")
    db.checkpoint(engine, truncate=True)
    seconds = dict.fromkeys((*LOAD_PHASES, "keep"), 0.0)
    marks = {}

    def timed(owner, name, phase, mark=None):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            if mark:
                marks.setdefault(f"{mark}_start", began)
            try:
                return original(*args, **kwargs)
            finally:
                seconds[phase] += time.perf_counter() - began
                if mark:
                    marks[f"{mark}_end"] = time.perf_counter()

        setattr(owner, name, wrapper)
        return original

    wrapped = [
        (owner, name, timed(owner, name, phase, mark))
        for owner, name, phase, mark in (
            (source.DataSource, "sha256", "hash", None),
            (ingest, "read_interactions", "parse_validate", None),
            (ingest, "exact_duplicates", "dedup", None),
            (ingest, "keep_rows", "keep", None),
            (ingest, "replace_rows", "insert_index", None),
            (ingest._Load, "_big", "checks", None),
            (ingest._Load, "run", "commit", "run"),
            (ingest, "write_interaction_cache", "cache", "cache"),
        )
    ]
    print(f"recgen: whole big_matrix load (load average {load_average()})", flush=True)
    began = time.perf_counter()
    try:
        result = ingest.ingest(engine, sample)
    finally:
        for owner, name, original in wrapped:
            setattr(owner, name, original)
    seconds["whole"] = time.perf_counter() - began
    assert result.loaded == ["big_matrix.csv"], result.loaded
    keep = seconds.pop("keep")
    seconds["checks"] -= seconds["parse_validate"] + keep + seconds["insert_index"]
    seconds["dedup"] += keep
    seconds["commit"] = marks["cache_start"] - marks["run_end"]  # the `with engine.begin()` exit
    engine.dispose()
    _fresh(target).dispose()
    return seconds


def notebook_loop(sample: Path) -> dict[str, float]:
    """The seed notebook's per-row preparation of training rows, on the first 100k rows of big_matrix.

    Two variants of the same `iterrows` loop (user index, video index, the video's 15 features, target):
    with the features in a dict (the cheapest a per-row loop can be) and with a DataFrame `.loc` lookup per
    row (how a notebook usually writes it). Either way the model is not even trained yet.
    """
    import numpy as np
    import pandas as pd

    from recgen.features import SEED_FEATURES
    from recgen.ingest.source import locate_data

    print(f"reference: the seed notebook's per-row loop (load average {load_average()})", flush=True)
    with locate_data(sample).open("big_matrix.csv") as stream:
        frame = pd.read_csv(stream, nrows=NOTEBOOK_SAMPLE_ROWS)
    rng = np.random.default_rng(0)
    video_ids = np.sort(frame["video_id"].unique())
    table = pd.DataFrame(rng.normal(size=(len(video_ids), len(SEED_FEATURES))), index=video_ids, columns=SEED_FEATURES)
    as_dict = {int(v): table.loc[v].tolist() for v in video_ids}
    user_index = {int(u): i for i, u in enumerate(sorted(frame["user_id"].unique()))}
    video_index = {int(v): i for i, v in enumerate(video_ids)}
    out = {}
    for variant, lookup in (("dict", as_dict.__getitem__), ("loc", lambda v: table.loc[v].to_numpy())):
        began = time.perf_counter()
        users, videos, feats, targets = [], [], [], []
        for _, row in frame.iterrows():  # the notebook's loop, kept as it was: this is the reference
            video = int(row["video_id"])
            users.append(user_index[int(row["user_id"])])
            videos.append(video_index[video])
            feats.append(lookup(video))
            targets.append(float(row["watch_ratio"]))
        inputs = [np.array(users), np.array(videos), np.array(feats, dtype=np.float32), np.array(targets)]
        seconds = time.perf_counter() - began
        del inputs
        out[f"notebook_{variant}_rows_per_s"] = NOTEBOOK_SAMPLE_ROWS / seconds
        print(f"reference: notebook loop ({variant}) {NOTEBOOK_SAMPLE_ROWS:,} rows in {seconds:.1f} s", flush=True)
    out["notebook_rows_per_s"] = out["notebook_dict_rows_per_s"]  # the conservative reference for the ratio
    return out


def fmt(values: dict) -> str:
    return ", ".join(f"{k} {v:,.1f}" for k, v in values.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, required=True, help="a `recgen sample --scale full` folder")
    parser.add_argument("--out", type=Path, default=Path("/tmp/recgen-references"), help="scratch databases")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(machine(), flush=True)
    figures = {**raw_executemany(args.sample, args.out), **notebook_loop(args.sample)}
    print(f"load average after: {load_average()}")
    for name, value in figures.items():
        print(f"{name}: {value:,.1f}")


if __name__ == "__main__":
    main()
