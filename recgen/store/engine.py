"""The database: an engine from a path or URL, migrations, the `latest_*` views, write-ahead log checkpoints."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url

from recgen.constants import OUTPUT_DIR, POSTGRES_EXTRA
from recgen.errors import ConfigError, MissingInputError, OutputError
from recgen.store.schema import VIEWS

# Installed wheels carry the migrations as recgen/migrations; a source checkout has them at the top level.
_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # recgen/
MIGRATIONS_DIR = next(
    (p for p in (_PACKAGE_DIR / "migrations", _PACKAGE_DIR.parent / "migrations") if (p / "env.py").exists()),
    _PACKAGE_DIR.parent / "migrations",
)


# A PostgreSQL URL without a driver (`postgresql://`, `postgres://`) means psycopg 3, the one recgen ships.
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
POSTGRES_DRIVER = "postgresql+psycopg"


def database_url(db: str | Path) -> str | URL:
    """A SQLAlchemy URL from a URL (`postgresql://...`) or a file path, taken literally: a `?` or `%41` in
    a folder name is part of the path, not URL syntax."""
    text_db = str(db)
    for scheme in _POSTGRES_SCHEMES:
        if text_db.startswith(scheme):
            return f"{POSTGRES_DRIVER}://{text_db.removeprefix(scheme)}"
    if "://" in text_db:
        return text_db
    return URL.create("sqlite", database=str(Path(text_db)))


def is_postgres_url(db: str | Path) -> bool:
    return make_url(database_url(db)).get_backend_name() == "postgresql"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets Datasette read while a run writes; foreign keys keep runs/models consistent.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sqlite_file(db: str | Path | URL | Engine) -> Path | None:
    """The SQLite file behind `db` (a path, URL or engine); None for another database, or one in memory."""
    url = db.url if isinstance(db, Engine) else make_url(db if isinstance(db, URL) else database_url(db))
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or url.database.startswith("file:"):
        return None
    return Path(url.database)


def output_folder(db: str | Path) -> Path:
    """Where a database's models, embedded sample, report and lock live: beside a SQLite file, else ./output."""
    path = sqlite_file(db)
    return path.parent if path is not None else OUTPUT_DIR


def get_engine(db: str | Path) -> Engine:
    """An engine for `db` (path or URL); SQLite files get WAL mode and their folder is created."""
    url = make_url(database_url(db))
    path = sqlite_file(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the database folder for {path}: {exc}") from exc
    if url.get_backend_name() == "postgresql":
        return _postgres_engine(url)
    engine = create_engine(url)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _postgres_engine(url: URL) -> Engine:
    """An engine for a PostgreSQL URL; ConfigError naming the extra when its drivers are not installed."""
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401  (bulk reads; imported here only to check it is there)

        return create_engine(url)
    except ImportError as exc:
        raise ConfigError(
            f"{url.render_as_string()} is a PostgreSQL database, whose drivers are not installed "
            f"({exc.name} missing): pip install '{POSTGRES_EXTRA}'"
        ) from None


# SQLSTATEs of a connection that failed or broke: class 08, and the server shutting down or starting up.
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03")


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database server cannot be reached or the connection to it broke, as opposed
    to a bug in a statement: a disconnect SQLAlchemy detected, or a driver error without a server SQLSTATE
    (the client's own: refused, timed out, closed) or with a connection one."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig
    if type(exc).__module__.split(".")[0] not in ("psycopg", "adbc_driver_manager"):
        return False
    if type(exc).__name__ != "OperationalError" and type(exc).__module__ != "psycopg.errors":
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith(_UNAVAILABLE_STATES)


def server_message(exc: BaseException) -> str:
    """The driver's own words for a database error, on one line (without SQLAlchemy's wrapping)."""
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


def existing_engine(db: str | Path) -> Engine:
    """An engine for a database that must already hold recgen's tables (commands that only read it)."""
    path = sqlite_file(db)
    if path is not None and not path.is_file():
        raise MissingInputError(f"no database at {path} (run `recgen run-batch` first, or pass --db)")
    engine = get_engine(db)
    if not inspect(engine).has_table("runs"):
        raise MissingInputError(f"{db} is not a recgen database (it has no runs table)")
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


@contextlib.contextmanager
def checkpoint_deferred(conn: Connection) -> Iterator[None]:
    """Inside, a commit on `conn` leaves its write-ahead log in place instead of copying it into the database
    file itself (SQLite's automatic checkpoint, past 1000 pages of log), so that the caller can `checkpoint`
    beside other work: after reloading big_matrix that copy is nearly all of the commit's time."""
    if conn.dialect.name != "sqlite":
        yield
        return
    dbapi_connection = conn.connection.dbapi_connection
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
    try:
        yield
    finally:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=1000")  # SQLite's default, which recgen keeps


def checkpoint(engine: Engine, truncate: bool = False) -> None:
    """Copy the write-ahead log into the database file, without waiting for readers (PASSIVE); with
    `truncate`, waiting for them and emptying the -wal file too (TRUNCATE)."""
    if engine.url.get_backend_name() == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)" if truncate else "PRAGMA wal_checkpoint(PASSIVE)")


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
