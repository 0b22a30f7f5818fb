"""What the plugin tells Datasette about a recgen database: which attached databases are recgen's, and their
metadata (descriptions of every table and column from recgen.store.schema, display options, search)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from functools import lru_cache
from pathlib import Path

from recgen.plugin.queries import TABLE_NAMES
from recgen.store import fts
from recgen.store.schema import VIEW_DESCRIPTIONS, VIEWS, metadata, videos

ROUTE_PREFIX = "/-/recgen"
# A database is recgen's when it has the tables the canned queries read (a lone `runs` is too common a name).
RECGEN_MARKER_TABLES = frozenset({"runs", "recommendations", "run_metrics"})


INTERNAL_TABLES = ("alembic_version", "sqlite_stat1", "sqlite_stat4")


FTS_TABLE = re.compile(r"_fts($|_)")  # the FTS table `videos_fts` and its shadow tables


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


PAGES_HTML = (
    '<p>Pages: <a href="{prefix}/dashboard?database={database}">run dashboard</a> (metrics vs baselines, '
    'per-user distributions, coverage and popularity) &middot; <a href="{prefix}/report/?database={database}">'
    "data-analysis report</a> &middot; a user's page: <code>{prefix}/user/&lt;user_id&gt;</code>.</p>"
)


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
    "data_profile": {"sort": "section", "facets": ["section", "unit"]},
}


_INDEXED = "as indexed: CJK characters separated by spaces, one token each"


DYNAMIC_TABLES = {
    fts.FTS_TABLE: {
        "description": (
            "Full-text index (SQLite FTS5) over videos: caption, cover text, topic tags and category names; "
            "rowid = video_id. Written by recgen after each ingest; search it from the videos table's search "
            "box or the who_gets_videos_about query."
        ),
        "columns": {c: f"{videos.c[c].comment} ({_INDEXED})" for c in fts.FTS_COLUMNS},
    },
    f"{fts.FTS_TABLE}_data": {
        "description": "FTS5 internal storage of videos_fts: the index's pages.",
        "columns": {"id": "Block id", "block": "Index data (binary)"},
    },
    f"{fts.FTS_TABLE}_idx": {
        "description": "FTS5 internal storage of videos_fts: where each index segment's pages start.",
        "columns": {"segid": "Segment id", "term": "First term of the page (binary)", "pgno": "Page number"},
    },
    f"{fts.FTS_TABLE}_content": {
        "description": "FTS5 internal storage of videos_fts: the indexed text, one row per video.",
        "columns": {
            "id": "Video id (the rowid of videos_fts)",
            **{f"c{i}": f"Indexed {c} ({_INDEXED})" for i, c in enumerate(fts.FTS_COLUMNS)},
        },
    },
    f"{fts.FTS_TABLE}_docsize": {
        "description": "FTS5 internal storage of videos_fts: tokens per column of each video, for ranking.",
        "columns": {"id": "Video id (the rowid of videos_fts)", "sz": "Token count per column (binary varints)"},
    },
    f"{fts.FTS_TABLE}_config": {
        "description": "FTS5 internal storage of videos_fts: its configuration.",
        "columns": {"k": "Setting name", "v": "Setting value"},
    },
    "sqlite_stat1": {
        "description": "SQLite's query-planner statistics, written by ANALYZE after each ingest.",
        "columns": {"tbl": "Table", "idx": "Index", "stat": "Rows, then average rows per distinct key prefix"},
    },
}


def _view_source_table(sql: str) -> str:
    """The table a `latest_*` view selects from (`SELECT * FROM recommendations WHERE ...`)."""
    match = re.search(r"\bFROM\s+(\w+)", sql, re.IGNORECASE)
    if match is None:
        raise ValueError(f"cannot find the table of view: {sql}")
    return match.group(1)


def _schema_tables() -> dict[str, dict]:
    """Metadata of every table and view in `recgen.store.schema`, before looking at any database."""
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


def file_signature(path: str) -> tuple:
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
            names = frozenset(row[0] for row in conn.execute(TABLE_NAMES))
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
    return _probe(db.path, file_signature(db.path))


@lru_cache(maxsize=64)
def database_metadata_json(names: frozenset[str], database: str) -> str:
    tables = dict(SCHEMA_TABLES)
    for name, table_metadata in DYNAMIC_TABLES.items():
        if name in names and name not in tables:
            tables[name] = table_metadata
    for name in sorted(names):
        if name in INTERNAL_TABLES or FTS_TABLE.search(name):
            tables[name] = {**tables.get(name, {}), "hidden": True}
    if fts.FTS_TABLE in names:
        # Datasette's search box on the videos table, matched through the plugin's CJK-aware escape_fts.
        tables["videos"] = {**tables["videos"], "fts_table": fts.FTS_TABLE, "fts_pk": fts.FTS_PK}
    pages = PAGES_HTML.format(prefix=ROUTE_PREFIX.lstrip("/"), database=database)
    description_html = f"<p>{DATABASE['description']}</p>{pages}"
    return json.dumps({**DATABASE, "description_html": description_html, "tables": tables})


def recgen_databases(datasette) -> list[str]:
    """Names of the attached recgen databases, in Datasette's order."""
    return [name for name in datasette.databases if recgen_table_names(datasette, name) is not None]
