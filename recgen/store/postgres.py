"""PostgreSQL, the store past one machine: COPY in and out, a partition per run, the advisory job lock.

Imported only for a PostgreSQL database (bulk, features, runs and lock check the dialect first), so a SQLite
run imports none of it, nor its drivers (`pip install 'recgen[postgres]'`):

- writes go through psycopg 3's `COPY ... FROM STDIN` on the caller's connection, inside its transaction,
  fed CSV that pyarrow encodes from whole columns, a slice at a time;
- large reads go through ADBC (`adbc-driver-postgresql`), whose C++ reader turns the server's binary COPY
  output into Arrow columns: psycopg hands out one Python object per row of a COPY;
- `recommendations` and `user_metrics` are partitioned by run (migration 0003): a run's partitions are
  created with its `runs` row, and retention drops them instead of deleting their rows;
- the job lock is a session advisory lock, held on a connection of its own: the server releases it when
  that session ends, however the process ended, and whichever host it ran on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Boolean, Connection, Engine, Float, Integer, Table, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from recgen.constants import ADVISORY_LOCK_KEY, COPY_CHUNK_ROWS
from recgen.errors import LockedError, UnavailableError, one_line
from recgen.store.schema import PARTITIONED_TABLES

# Without these a sequential scan may start where another one is (synchronised scans) or be split among
# workers: the rows would not come back in the order they were loaded, which training depends on.
_LOAD_ORDER_SETTINGS = ("SET synchronize_seqscans = off", "SET max_parallel_workers_per_gather = 0")


def is_postgres(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "postgresql"


# ---------------------------------------------------------------- writes: COPY inside the caller's transaction


def copy_frame(conn: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Insert a DataFrame with COPY inside the caller's transaction; missing values become NULL.

    Column names are the table's own (`table.c[...]` refuses any other). Each slice's CSV is encoded by a
    thread while the previous one is sent, so encoding and the server's parsing overlap.
    """
    columns = ", ".join(f'"{table.c[name].name}"' for name in frame.columns)  # quoted: `column` is reserved
    rows = _arrow_rows(table, frame)
    cursor = conn.connection.dbapi_connection.cursor()
    with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN (FORMAT csv)") as copy:
        with ThreadPoolExecutor(max_workers=1) as encoder:
            pending = None
            for batch in rows.to_batches(COPY_CHUNK_ROWS):
                encoded = encoder.submit(_csv, batch)
                if pending is not None:
                    copy.write(pending.result())
                pending = encoded
            if pending is not None:
                copy.write(pending.result())
    cursor.close()
    return len(frame)


def replace_table(conn: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Replace every row of `table` inside the caller's transaction: TRUNCATE (transactional here), secondary
    indexes dropped, COPY, indexes rebuilt over sorted keys, fresh planner statistics."""
    conn.execute(text(f"TRUNCATE {table.name}"))
    indexes = sorted(table.indexes, key=lambda index: index.name)
    for index in indexes:
        index.drop(conn)
    copy_frame(conn, table, frame)
    for index in indexes:
        index.create(conn)
    conn.execute(text(f"ANALYZE {table.name}"))
    return len(frame)


def _arrow_rows(table: Table, frame: pd.DataFrame) -> pa.Table:
    """The frame as Arrow columns of the table's types: integers stay integers in the CSV (not `3.0`) and
    float32 scores are widened exactly, so the text read back is the double SQLite would store."""
    schema = pa.schema([pa.field(name, _arrow_type(table.c[name].type)) for name in frame.columns])
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)  # NaN, NA and None -> null


def _arrow_type(sql_type) -> pa.DataType:
    if isinstance(sql_type, Boolean):
        return pa.bool_()
    if isinstance(sql_type, Integer):
        return pa.int64()
    if isinstance(sql_type, Float):
        return pa.float64()
    return pa.string()


def _csv(batch: pa.RecordBatch) -> pa.Buffer:
    """One slice as PostgreSQL's CSV: strings quoted, so an unquoted empty field is NULL and `""` is ''."""
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(batch, sink, write_options=pa_csv.WriteOptions(include_header=False))
    return sink.getvalue()


# ---------------------------------------------------------------- reads: binary COPY into Arrow


def read_arrow(engine: Engine, sql: str) -> pa.Table:
    """The rows of one query (recgen's own SQL text) as Arrow columns, in the order a plain scan returns
    them: a freshly loaded table's load order."""
    import adbc_driver_postgresql.dbapi as adbc_postgres

    uri = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with contextlib.closing(adbc_postgres.connect(uri)) as conn, contextlib.closing(conn.cursor()) as cursor:
        for setting in _LOAD_ORDER_SETTINGS:
            cursor.execute(setting)
        cursor.execute(sql)
        return cursor.fetch_arrow_table()


def read_columns(engine: Engine, table: str, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Columns of a table as numpy arrays, in load order (NOT NULL numeric columns: no masked values)."""
    rows = read_arrow(engine, f"SELECT {', '.join(columns)} FROM {table}")
    return {name: rows.column(name).to_numpy() for name in columns}


def read_frame(engine: Engine, table: Table, where: str = "") -> pd.DataFrame:
    """A table's rows (those `where` keeps, recgen's own SQL) as a DataFrame of its columns; integer columns
    with NULLs become nullable Int64 rather than floats."""
    names = [c.name for c in table.columns]
    quoted = ", ".join(f'"{name}"' for name in names)
    rows = read_arrow(engine, f"SELECT {quoted} FROM {table.name} {where}")
    integers = {pa.int16(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype(), pa.int64(): pd.Int64Dtype()}
    return rows.to_pandas(types_mapper=integers.get)[names]


# ---------------------------------------------------------------- partitions per run


def partition_name(table: Table, run_id: int) -> str:
    return f"{table.name}_run_{int(run_id)}"


def create_run_partitions(conn: Connection, run_id: int) -> None:
    """The run's partitions of `recommendations` and `user_metrics`, created in the short transaction that
    inserts its `runs` row: creating one locks the parent table, which must not last as long as the writes."""
    number = int(run_id)
    for table in PARTITIONED_TABLES:
        partition = partition_name(table, number)
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {partition} PARTITION OF {table.name} FOR VALUES IN ({number})"))


def drop_run_partitions(conn: Connection, run_ids: list[int]) -> int:
    """Retention: drop the runs' partitions (their rows go with them, no DELETE); returns how many existed."""
    dropped = 0
    for run_id in run_ids:
        for table in PARTITIONED_TABLES:
            partition = partition_name(table, int(run_id))
            exists = conn.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": partition}).scalar()
            if exists:
                conn.execute(text(f"DROP TABLE {partition}"))
                dropped += 1
    return dropped


# ---------------------------------------------------------------- the job lock


class _SessionLock:
    """The advisory lock held by one session: lost if the server ends that session."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def verify(self) -> None:
        try:
            self.conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            raise UnavailableError(
                f"the job lock was lost: the database server ended the session that held it ({one_line(exc.orig)})"
            ) from exc


@contextlib.contextmanager
def advisory_lock(engine: Engine) -> Iterator[_SessionLock]:
    """Hold the database's recgen job lock for the duration: LockedError if another session holds it.

    The lock's session is a connection of its own, outside the pool (closing it ends the session and so
    releases the lock), in autocommit, so that holding it all night keeps no transaction or snapshot open.
    """
    lock_engine = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with lock_engine.connect() as conn:
            held = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}).scalar()
            if not held:
                name = engine.url.database
                raise LockedError(f"another recgen job is running (PostgreSQL advisory lock held on database {name})")
            yield _SessionLock(conn)
    finally:
        lock_engine.dispose()
