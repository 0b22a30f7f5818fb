"""Bulk writes: DataFrames into tables inside the caller's transaction, the fastest way each database allows.

Into SQLite, from STAGE_MIN_ROWS rows, `replace_rows` goes through staging files. Per value, `executemany`
costs a Python object and a DB-API bind; that, not SQLite, is most of its time. ADBC writes Arrow columns
into SQLite from C. It cannot join the caller's transaction (its own connection, its own SQLite library,
whose symbols it keeps to itself), so it writes a staging file beside the database with the table's exact
DDL, and the caller's connection copies it in with `INSERT INTO t SELECT * FROM stage.t`. Into an empty
table of identical shape, or one without any index, SQLite runs that as a transfer (its "xfer
optimisation"): records are copied in order, not decoded, not re-encoded. A large table is written as
consecutive slices, one staging file each, by threads at once (ADBC's writes release the GIL). The two
libraries never hold the same file open at once (ADBC closes a staging file before it is attached). Only
the copies and the index builds write to the database, inside the caller's transaction: a failure or a kill
before the commit leaves the previous rows. A staging file can only be detached once the transaction is
over: pool check-in (`_release_stages`) detaches and deletes them; one left by a killed process is deleted
by the next load (`_remove_stale_stages`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine, Table, delete, event

from recgen.constants import INSERT_CHUNK_ROWS, MAX_STAGE_FILES, STAGE_MIN_ROWS, STAGE_ROWS_PER_WRITER, STAGE_SUFFIX
from recgen.runtime import available_cores
from recgen.store.engine import sqlite_file


def insert_frame(conn: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Insert a DataFrame through the DB-API `executemany`, in chunks, inside the caller's transaction.

    Faster into SQLite than pandas.to_sql or sqlite-utils' insert_all at these sizes. Missing values (NaN,
    NA, None) become NULL. Returns the number of rows inserted. Into PostgreSQL: COPY instead
    (`postgres.copy_frame`).
    """
    if conn.dialect.name == "postgresql":
        from recgen.store import postgres

        return postgres.copy_frame(conn, table, frame)
    columns = list(frame.columns)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"  # sqlite3 vs psycopg
    placeholders = ", ".join([mark] * len(columns))
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})"
    cursor = conn.connection.dbapi_connection.cursor()
    for start in range(0, len(frame), INSERT_CHUNK_ROWS):
        part = frame.iloc[start : start + INSERT_CHUNK_ROWS]
        cursor.executemany(sql, zip(*(_python_values(part[c]) for c in columns), strict=True))
    cursor.close()
    return len(frame)


def replace_rows(conn: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Replace every row of `table` with the rows of `frame`, inside the caller's transaction; returns the count.

    Into a SQLite file, from STAGE_MIN_ROWS rows, they go through a staging database (`_copy_through_stage`),
    faster than any `executemany` (the figures are in docs/benchmarks.md). Otherwise (or without
    adbc-driver-sqlite): DELETE, secondary indexes dropped,
    `insert_frame`, indexes rebuilt, since a database builds an index over sorted keys several times faster
    than it maintains one row by row. Into PostgreSQL: TRUNCATE and COPY (`postgres.replace_table`).
    """
    frame = frame[[c.name for c in table.columns]]
    if conn.dialect.name == "postgresql":
        from recgen.store import postgres

        return postgres.replace_table(conn, table, frame)
    database = _staged_database(conn) if len(frame) >= STAGE_MIN_ROWS else None
    if database is not None:
        return _copy_through_stage(conn, table, frame, database)
    conn.execute(delete(table))
    indexes = sorted(table.indexes, key=lambda index: index.name)
    for index in indexes:
        index.drop(conn)
    insert_frame(conn, table, frame)
    for index in indexes:
        index.create(conn)
    return len(frame)


_STAGES = "recgen_stages"  # Connection.info key: [(schema name, path)] staged during this checkout


_stage_numbers = itertools.count(1)


def _staged_database(conn: Connection) -> Path | None:
    """The SQLite database file that staging files go beside; None when the fast path does not apply (not
    a SQLite file, no ADBC)."""
    database = sqlite_file(conn.engine)
    if database is None:
        return None
    try:
        import adbc_driver_sqlite.dbapi  # noqa: F401  (optional at run time: the fallback is executemany)
    except ImportError:
        return None
    return database


def _copy_through_stage(conn: Connection, table: Table, frame: pd.DataFrame, database: Path) -> int:
    import adbc_driver_sqlite.dbapi as adbc_sqlite
    import pyarrow as pa

    ddl = conn.exec_driver_sql("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ?", (table.name,)).all()
    create_table = next(sql for kind, _, sql in ddl if kind == "table")
    indexes = sorted((name, sql) for kind, name, sql in ddl if kind == "index" and sql is not None)
    # Slices are copied in order, each a transfer that appends (no index), so the rowids follow the frame's
    # order as with one file. A constraint's index (UNIQUE, a composite key) cannot be dropped, and SQLite
    # transfers into such a table only while it is empty: one file then.
    constrained = any(kind == "index" and sql is None for kind, _, sql in ddl)
    parts = 1 if constrained else min(available_cores(), MAX_STAGE_FILES, -(-len(frame) // STAGE_ROWS_PER_WRITER))
    _remove_stale_stages(database)
    numbers = [next(_stage_numbers) for _ in range(parts)]
    schemas = [f"stage_{number}" for number in numbers]  # attached under these names
    paths = {
        schema: database.with_name(f"{database.name}{STAGE_SUFFIX}{os.getpid()}-{number}-{table.name}")
        for schema, number in zip(schemas, numbers, strict=True)
    }
    conn.info.setdefault(_STAGES, []).extend(paths.items())  # released at check-in, even if writing them fails
    _listen_for_checkin(conn.engine)
    conn.execute(delete(table))
    rows = pa.Table.from_pandas(frame, preserve_index=False)  # zero-copy for most columns; NaN/NA -> null
    size = -(-len(rows) // parts)
    slices = {schema: rows.slice(i * size, size) for i, schema in enumerate(schemas)}

    def write(schema: str) -> None:
        """One slice into a new staging file, with the table's exact DDL."""
        with contextlib.closing(adbc_sqlite.connect(str(paths[schema]), autocommit=True)) as staging:
            with contextlib.closing(staging.cursor()) as cursor:
                # A scratch file: no journal, no fsync. Crash safety is the database's, whose copy is transactional.
                for statement in ("PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", create_table, "BEGIN"):
                    cursor.execute(statement)
                cursor.adbc_ingest(table.name, slices[schema], mode="append")
                cursor.execute("COMMIT")

    # The transfer needs the same indexes on both sides; building the secondary ones here, after it, costs
    # less than building them in the staging file and transferring their entries.
    for name, _ in indexes:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    with ThreadPoolExecutor(max_workers=parts) as writers:
        written = {schema: writers.submit(write, schema) for schema in schemas}
        for schema in schemas:
            written[schema].result()
            conn.exec_driver_sql(f"ATTACH DATABASE ? AS {schema}", (str(paths[schema]),))
            conn.exec_driver_sql(f"INSERT INTO main.{table.name} SELECT * FROM {schema}.{table.name}")
    for _, sql in indexes:
        conn.exec_driver_sql(sql)
    return len(frame)


def _listen_for_checkin(engine: Engine) -> None:
    if not event.contains(engine, "checkin", _release_stages):
        event.listen(engine, "checkin", _release_stages)


def _release_stages(dbapi_connection, connection_record) -> None:
    """Pool check-in, the transaction over: detach this connection's staging files and delete them."""
    for schema, path in connection_record.info.pop(_STAGES, []):
        if dbapi_connection is not None:
            with contextlib.suppress(Exception):  # never attached, or still in a transaction: deleted anyway
                dbapi_connection.execute(f"DETACH DATABASE {schema}")
        _remove_files(path)


def _remove_stale_stages(database: Path) -> None:
    """Delete staging files left by processes that no longer run (a load killed before its check-in)."""
    for path in database.parent.glob(f"{database.name}{STAGE_SUFFIX}*"):
        pid = path.name.removeprefix(f"{database.name}{STAGE_SUFFIX}").split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            _remove_files(path)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove_files(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _python_values(series: pd.Series) -> list:
    """Plain Python values for the DB-API, with None for every kind of missing value."""
    if not series.hasnans:
        # Nullable Int64 without gaps: plain int64 (its tolist() would still hand out numpy scalars).
        return series.astype("int64").tolist() if isinstance(series.dtype, pd.Int64Dtype) else series.tolist()
    return series.astype(object).where(series.notna(), None).tolist()
