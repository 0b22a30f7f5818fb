"""The Datasette plugin: plain `datasette output/recs.db` shows recgen's descriptions and canned queries.

Registered by entry point (setup.cfg, `datasette = recgen = recgen.plugin`), so no flags are needed. It adds
metadata (hook `get_metadata`, Datasette 0.65) and read-only canned queries to every attached database that
is a recgen database, and leaves every other database alone. Descriptions come from `recgen.schema` (the
`comment=` of each table and column, `VIEW_DESCRIPTIONS`), so they are written once, next to the code.

Read-only: Datasette already reads files through `mode=ro` connections and only accepts SELECT on its SQL
endpoint; the plugin defines no writable canned query, and sets `PRAGMA query_only` on every connection
Datasette opens to a recgen database, so even a write from another plugin or a metadata file fails.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from functools import lru_cache
from pathlib import Path

from datasette import hookimpl

from recgen.queries import CANNED_QUERIES
from recgen.schema import VIEW_DESCRIPTIONS, VIEWS, metadata

# A database is recgen's when it has the tables the canned queries read (a lone `runs` is too common a name).
RECGEN_MARKER_TABLES = frozenset({"runs", "recommendations", "run_metrics"})
INTERNAL_TABLES = ("alembic_version",)
FTS_TABLE = re.compile(r"_fts($|_)")  # sqlite-utils' FTS table `videos_fts` and its shadow tables

INSTANCE = {
    "title": "recgen: short-video recommendations",
    "description": (
        "Nightly batch recommendations for KuaiRec 2.0 short-video data: the inputs, every run, the top-k "
        "list of every user, and the model's evaluation next to baselines. Read-only. Start with the "
        "latest_* views (the last published run) or the canned queries."
    ),
}
DATABASE = {
    "description": (
        "recgen output database. A run writes under its own run_id and becomes visible in the latest_* views "
        "only once published; older runs stay for comparison. Times are UTC (ISO 8601) unless a column says "
        "otherwise; units are given in each column's description."
    ),
    "source": "KuaiRec 2.0 (Gao et al., CIKM 2022), or recgen's synthetic sample when runs.synthetic = 1",
    "source_url": "https://kuairec.com/",
}

# Display options: newest first where an id grows with time; sorts only on indexed columns, facets only on
# small tables, so that no page of a full-size database runs into Datasette's time limits.
TABLE_OPTIONS = {
    "runs": {"sort_desc": "id", "facets": ["status", "model_name", "trained"]},
    "models": {"sort_desc": "id", "facets": ["name"]},
    "run_metrics": {"sort_desc": "run_id", "facets": ["model_name", "metric"]},
    "latest_run_metrics": {"sort": "metric", "facets": ["model_name"]},
    "source_files": {"sort": "name"},
    "videos": {"label_column": "caption", "facets": ["first_level_category_name", "video_type", "upload_type"]},
    "users": {"facets": ["user_active_degree", "is_video_author"]},
}


def _view_source_table(sql: str) -> str:
    """The table a `latest_*` view selects from (`SELECT * FROM recommendations WHERE ...`)."""
    match = re.search(r"\bFROM\s+(\w+)", sql, re.IGNORECASE)
    if match is None:
        raise ValueError(f"cannot find the table of view: {sql}")
    return match.group(1)


def _schema_tables() -> dict[str, dict]:
    """Metadata of every table and view in `recgen.schema`, before looking at any database."""
    tables = {}
    for table in metadata.sorted_tables:
        tables[table.name] = {
            "description": table.comment,
            "columns": {column.name: column.comment for column in table.columns},
        }
    for view, sql in VIEWS.items():
        source = _view_source_table(sql)
        tables[view] = {"description": VIEW_DESCRIPTIONS[view], "columns": dict(tables[source]["columns"])}
    for name, options in TABLE_OPTIONS.items():
        tables[name].update(options)
    return tables


SCHEMA_TABLES = _schema_tables()


def _file_signature(path: str) -> tuple:
    """Changes whenever the database (or its WAL) is written, so cached probes notice new tables."""
    signature = []
    for name in (path, f"{path}-wal"):
        try:
            stat = os.stat(name)
        except OSError:
            signature.append(None)
        else:
            signature.append((stat.st_mtime_ns, stat.st_size))
    return tuple(signature)


@lru_cache(maxsize=64)
def _probe(path: str, signature: tuple) -> frozenset[str] | None:
    """The table names of a recgen database file, or None if it is not one (or cannot be read)."""
    del signature  # part of the cache key only
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            names = frozenset(
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return names if RECGEN_MARKER_TABLES <= names else None


def recgen_table_names(datasette, database: str) -> frozenset[str] | None:
    """Table names of an attached database if it is a recgen database, else None. Cheap: one stat per call."""
    db = datasette.databases.get(database)
    if db is None or db.is_memory or not db.path:
        return None
    return _probe(db.path, _file_signature(db.path))


@lru_cache(maxsize=64)
def _database_metadata_json(names: frozenset[str]) -> str:
    tables = dict(SCHEMA_TABLES)
    for name in sorted(names):
        if name in INTERNAL_TABLES or FTS_TABLE.search(name):
            tables[name] = {**tables.get(name, {}), "hidden": True}
    return json.dumps({**DATABASE, "tables": tables})


@hookimpl
def get_metadata(datasette, key, database, table):
    databases = {}
    for name in datasette.databases:
        names = recgen_table_names(datasette, name)
        if names is not None:
            # A fresh copy each call: Datasette merges other metadata into what hooks return.
            databases[name] = json.loads(_database_metadata_json(names))
    if not databases:
        return {}
    return {**INSTANCE, "databases": databases}


@hookimpl
def canned_queries(datasette, database, actor):
    if recgen_table_names(datasette, database) is None:
        return None
    # A query of the same name in the user's metadata file wins, as Datasette's own do over plugins'.
    configured = datasette.metadata("queries", database=database, fallback=False) or {}
    return {name: dict(query) for name, query in CANNED_QUERIES.items() if name not in configured}


@hookimpl
def prepare_connection(conn, database, datasette):
    if recgen_table_names(datasette, database) is not None:
        conn.execute("PRAGMA query_only = 1")
