"""Engine, migrations and bulk writes: every stage reaches the database through these functions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

from recgen.constants import INSERT_CHUNK_ROWS
from recgen.errors import OutputError
from recgen.schema import VIEWS

# Installed wheels carry the migrations as recgen/migrations; a source checkout has them at the top level.
_PACKAGE_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = next(
    (p for p in (_PACKAGE_DIR / "migrations", _PACKAGE_DIR.parent / "migrations") if (p / "env.py").exists()),
    _PACKAGE_DIR.parent / "migrations",
)


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a file path (`output/recs.db` -> `sqlite:///output/recs.db`)."""
    text_db = str(db)
    if "://" in text_db:
        return text_db
    return f"sqlite:///{Path(text_db)}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets Datasette read while a run writes; foreign keys keep runs/models consistent.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def get_engine(db: str | Path) -> Engine:
    """An engine for `db` (path or URL); SQLite files get WAL mode and their folder is created."""
    url = make_url(database_url(db))
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        try:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the database folder for {url.database}: {exc}") from exc
    engine = create_engine(url)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest migration and (re)create the views; safe to call every run."""
    try:
        command.upgrade(alembic_config(engine), "head")
        ensure_views(engine)
    except OSError as exc:
        raise OutputError(f"cannot write the database {engine.url.database}: {exc}") from exc


def ensure_views(engine: Engine) -> None:
    """Create or replace the `latest_*` views (idempotent)."""
    existing = set(inspect(engine).get_view_names())
    with engine.begin() as conn:
        for name, sql in VIEWS.items():
            if name in existing:
                conn.execute(text(f"DROP VIEW {name}"))
            conn.execute(text(f"CREATE VIEW {name} AS {sql}"))


def insert_frame(conn: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Insert a DataFrame through the DB-API `executemany`, in chunks, inside the caller's transaction.

    The fastest way into SQLite from Python (pandas.to_sql and sqlite-utils' insert_all are 5-10x slower at
    these sizes). Missing values (NaN, NA, None) become NULL. Returns the number of rows inserted.
    """
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


def _python_values(series: pd.Series) -> list:
    """Plain Python values for the DB-API, with None for every kind of missing value."""
    if not series.hasnans:
        # Nullable Int64 without gaps: plain int64 (its tolist() would still hand out numpy scalars).
        return series.astype("int64").tolist() if isinstance(series.dtype, pd.Int64Dtype) else series.tolist()
    return series.astype(object).where(series.notna(), None).tolist()


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
