"""The Datasette plugin: plain `datasette output/recs.db` shows recgen's descriptions and canned queries.

Registered by entry point (setup.cfg, `datasette = recgen = recgen.plugin`), so no flags are needed. It adds
metadata (hook `get_metadata`, Datasette 0.65) and read-only canned queries to every attached database that
is a recgen database, and leaves every other database alone. Descriptions come from `recgen.schema` (the
`comment=` of each table and column, `VIEW_DESCRIPTIONS`), so they are written once, next to the code.

It also serves recgen's own pages (hook `register_routes`, linked from Datasette's menu by `menu_links` and
from the database page's description): a run dashboard `/-/recgen/dashboard`, a page per user
`/-/recgen/user/<user_id>`, and the data-analysis report written by `recgen report` beside the database,
`/-/recgen/report/`. Charts are PNGs rendered on the server (recgen.charts) and embedded as data: URIs, so
nothing is loaded from the internet. Page data is cached per database file state (a run or an ingest
invalidates it).

Read-only: Datasette already reads files through `mode=ro` connections and only accepts SELECT on its SQL
endpoint; the plugin defines no writable canned query, and sets `PRAGMA query_only` on every connection
Datasette opens to a recgen database, so even a write from another plugin or a metadata file fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
from functools import lru_cache
from importlib import resources
from pathlib import Path

from datasette import Response, hookimpl
from jinja2 import FileSystemLoader

from recgen.constants import REPORT_SUBDIR  # `recgen report` writes beside the database
from recgen.plugin.queries import CANNED_QUERIES, REQUIRED_TABLES, VARIANTS
from recgen.report.write import REPORT_FILE
from recgen.store import fts as publish
from recgen.store.schema import VIEW_DESCRIPTIONS, VIEWS, metadata, videos

# A database is recgen's when it has the tables the canned queries read (a lone `runs` is too common a name).
RECGEN_MARKER_TABLES = frozenset({"runs", "recommendations", "run_metrics"})
INTERNAL_TABLES = ("alembic_version", "sqlite_stat1", "sqlite_stat4")
FTS_TABLE = re.compile(r"_fts($|_)")  # the FTS table `videos_fts` and its shadow tables
ROUTE_PREFIX = "/-/recgen"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # SQLite's INTEGER range

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
    publish.FTS_TABLE: {
        "description": (
            "Full-text index (SQLite FTS5) over videos: caption, cover text, topic tags and category names; "
            "rowid = video_id. Written by recgen after each ingest; search it from the videos table's search "
            "box or the who_gets_videos_about query."
        ),
        "columns": {c: f"{videos.c[c].comment} ({_INDEXED})" for c in publish.FTS_COLUMNS},
    },
    f"{publish.FTS_TABLE}_data": {
        "description": "FTS5 internal storage of videos_fts: the index's pages.",
        "columns": {"id": "Block id", "block": "Index data (binary)"},
    },
    f"{publish.FTS_TABLE}_idx": {
        "description": "FTS5 internal storage of videos_fts: where each index segment's pages start.",
        "columns": {"segid": "Segment id", "term": "First term of the page (binary)", "pgno": "Page number"},
    },
    f"{publish.FTS_TABLE}_content": {
        "description": "FTS5 internal storage of videos_fts: the indexed text, one row per video.",
        "columns": {
            "id": "Video id (the rowid of videos_fts)",
            **{f"c{i}": f"Indexed {c} ({_INDEXED})" for i, c in enumerate(publish.FTS_COLUMNS)},
        },
    },
    f"{publish.FTS_TABLE}_docsize": {
        "description": "FTS5 internal storage of videos_fts: tokens per column of each video, for ranking.",
        "columns": {"id": "Video id (the rowid of videos_fts)", "sz": "Token count per column (binary varints)"},
    },
    f"{publish.FTS_TABLE}_config": {
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
def _database_metadata_json(names: frozenset[str], database: str) -> str:
    tables = dict(SCHEMA_TABLES)
    for name, table_metadata in DYNAMIC_TABLES.items():
        if name in names and name not in tables:
            tables[name] = table_metadata
    for name in sorted(names):
        if name in INTERNAL_TABLES or FTS_TABLE.search(name):
            tables[name] = {**tables.get(name, {}), "hidden": True}
    if publish.FTS_TABLE in names:
        # Datasette's search box on the videos table, matched through the plugin's CJK-aware escape_fts.
        tables["videos"] = {**tables["videos"], "fts_table": publish.FTS_TABLE, "fts_pk": publish.FTS_PK}
    pages = PAGES_HTML.format(prefix=ROUTE_PREFIX.lstrip("/"), database=database)
    description_html = f"<p>{DATABASE['description']}</p>{pages}"
    return json.dumps({**DATABASE, "description_html": description_html, "tables": tables})


def recgen_databases(datasette) -> list[str]:
    """Names of the attached recgen databases, in Datasette's order."""
    return [name for name in datasette.databases if recgen_table_names(datasette, name) is not None]


@hookimpl
def get_metadata(datasette, key, database, table):
    databases = {}
    for name in recgen_databases(datasette):
        # A fresh copy each call: Datasette merges other metadata into what hooks return.
        databases[name] = json.loads(_database_metadata_json(recgen_table_names(datasette, name), name))
    if not databases:
        return {}
    return {**INSTANCE, "databases": databases}


@hookimpl
def canned_queries(datasette, database, actor):
    names = recgen_table_names(datasette, database)
    if names is None:
        return None
    # A query of the same name in the user's metadata file wins, as Datasette's own do over plugins'.
    configured = datasette.metadata("queries", database=database, fallback=False) or {}
    queries = {}
    for name, query in CANNED_QUERIES.items():
        if name in configured or not REQUIRED_TABLES.get(name, frozenset()) <= names:
            continue
        queries[name] = dict(query)
        table, sql = VARIANTS.get(name, (None, None))
        if table in names:
            queries[name]["sql"] = sql
    return queries


@hookimpl(trylast=True)  # after Datasette's own escape_fts, which recgen's CJK-aware one replaces
def prepare_connection(conn, database, datasette):
    if recgen_table_names(datasette, database) is not None:
        publish.register_functions(conn)
        conn.execute("PRAGMA query_only = 1")


@hookimpl
def startup(datasette):
    # recgen's page templates, after any --template-dir and Datasette's own, so both can override them.
    folder = str(resources.files("recgen.plugin") / "templates")
    loaders = getattr(datasette.jinja_env.loader, "loaders", None)
    if loaders is not None and not any(getattr(x, "searchpath", None) == [folder] for x in loaders):
        loaders.append(FileSystemLoader(folder))


@hookimpl
def menu_links(datasette, actor, request):
    databases = recgen_databases(datasette)
    if not databases:
        return []
    links = []
    for name in databases:
        suffix = f" ({name})" if len(databases) > 1 else ""
        links.append({"href": _page_url(datasette, "dashboard", name), "label": f"recgen dashboard{suffix}"})
        links.append({"href": _page_url(datasette, "report/", name), "label": f"recgen data report{suffix}"})
    return links


@hookimpl
def register_routes(datasette):
    return [
        (rf"^{ROUTE_PREFIX}/dashboard$", dashboard_page),
        (rf"^{ROUTE_PREFIX}/user/(?P<user_id>-?[0-9]+)$", user_page),
        (rf"^{ROUTE_PREFIX}/report/?$", report_page),
        (rf"^{ROUTE_PREFIX}/report/(?P<name>[A-Za-z0-9_.-]+)$", report_file),
    ]


# ---------------------------------------------------------------- pages


def _page_url(datasette, page: str, database: str) -> str:
    path = datasette.urls.path(f"{ROUTE_PREFIX}/{page}")
    return f"{path}?database={database}" if len(recgen_databases(datasette)) > 1 else path


def _chosen_database(datasette, request) -> str | None:
    """The database named by ?database=, else the first recgen database; None if there is none."""
    databases = recgen_databases(datasette)
    wanted = request.args.get("database")
    if wanted:
        return wanted if wanted in databases else None
    return databases[0] if databases else None


async def _message(datasette, request, title: str, message: str, status: int = 200, database: str | None = None):
    html = await datasette.render_template(
        "recgen_message.html",
        {"title": title, "message": message, "database": database, "links": _links(datasette, database)},
        request=request,
    )
    return Response.html(html, status=status)


def _links(datasette, database: str | None) -> dict:
    if database is None:
        return {}
    base = datasette.urls.database(database)
    return {
        "dashboard": _page_url(datasette, "dashboard", database),
        "report": _page_url(datasette, "report/", database),
        "database": base,
        "query": lambda name, **params: (
            f"{base}/{name}" + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        ),
        "user": lambda user_id: _page_url(datasette, f"user/{user_id}", database),
    }


async def _in_thread(function, *args):
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


async def dashboard_page(datasette, request):
    from recgen.plugin import pages

    database = _chosen_database(datasette, request)
    if database is None:
        return await _message(datasette, request, "recgen dashboard", "No recgen database is attached.", 404)
    path = datasette.databases[database].path
    data = await _in_thread(pages.dashboard, path, _file_signature(path))
    if data["run"] is None:
        return await _message(
            datasette,
            request,
            "recgen dashboard",
            "No run has been published yet: the dashboard fills in after the first successful `recgen run-batch`.",
            database=database,
        )
    context = {**data, "database": database, "links": _links(datasette, database)}
    return Response.html(await datasette.render_template("recgen_dashboard.html", context, request=request))


async def user_page(datasette, request):
    from recgen.plugin import pages

    database = _chosen_database(datasette, request)
    if database is None:
        return await _message(datasette, request, "recgen user", "No recgen database is attached.", 404)
    text = request.url_vars["user_id"]
    # An id beyond SQLite's 64-bit integers cannot be in the database; binding it would raise (a 500).
    user_id = int(text) if len(text) <= len(str(INT64_MIN)) else None
    if user_id is None or not INT64_MIN <= user_id <= INT64_MAX:
        shown = text if len(text) <= 30 else f"{text[:30]}..."
        message = f"User {shown} is not in this database."
        return await _message(datasette, request, "recgen user", message, 404, database)
    path = datasette.databases[database].path
    data = await _in_thread(pages.user, path, _file_signature(path), user_id)
    if data is None:
        return await _message(
            datasette, request, f"User {user_id}", f"User {user_id} is not in this database.", 404, database
        )
    context = {**data, "database": database, "links": _links(datasette, database)}
    return Response.html(await datasette.render_template("recgen_user.html", context, request=request))


def _report_folder(datasette, database: str) -> Path:
    return Path(datasette.databases[database].path).resolve().parent / REPORT_SUBDIR


async def report_page(datasette, request):
    database = _chosen_database(datasette, request)
    if database is None:
        return await _message(datasette, request, "recgen data report", "No recgen database is attached.", 404)
    if not request.path.endswith("/"):
        query = f"?{request.query_string}" if request.query_string else ""
        return Response.redirect(f"{request.path}/{query}")
    return await _serve_report_file(datasette, request, database, REPORT_FILE)


async def report_file(datasette, request):
    database = _chosen_database(datasette, request)
    if database is None:
        return Response.text("No recgen database is attached.", status=404)
    return await _serve_report_file(datasette, request, database, request.url_vars["name"])


async def _serve_report_file(datasette, request, database: str, name: str):
    folder = _report_folder(datasette, database)
    path = (folder / name).resolve()
    if path.parent != folder or path.suffix not in (".html", ".png") or not path.is_file():
        if name == REPORT_FILE:
            return await _message(
                datasette,
                request,
                "recgen data report",
                f"No report yet in {folder}: run `recgen report` (run-batch writes it when the data changes).",
                404,
                database,
            )
        return Response.text("Not found", status=404)
    content_type = "text/html; charset=utf-8" if path.suffix == ".html" else "image/png"
    body = await _in_thread(path.read_bytes)
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-cache"})
