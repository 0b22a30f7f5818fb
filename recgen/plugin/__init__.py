"""The Datasette plugin: plain `datasette output/recs.db` shows recgen's descriptions and canned queries.

Registered by entry point (setup.cfg, `datasette = recgen = recgen.plugin`), so no flags are needed. It adds
metadata (hook `get_metadata`, Datasette 0.65) and read-only canned queries to every attached database that
is a recgen database, and leaves every other database alone (`metadata`). Descriptions come from
`recgen.store.schema` (the `comment=` of each table and column, `VIEW_DESCRIPTIONS`), so they are written
once, next to the code; every SQL text the plugin runs is in `queries`.

It also serves recgen's own pages (hook `register_routes`, linked from Datasette's menu by `menu_links` and
from the database page's description): a run dashboard `/-/recgen/dashboard`, a page per user
`/-/recgen/user/<user_id>`, and the data-analysis report written by `recgen report` beside the database,
`/-/recgen/report/` (`routes`, `pages`). Charts are PNGs rendered on the server (recgen.report.charts) and
embedded as data: URIs, so nothing is loaded from the internet. Page data is cached per database file state
(a run or an ingest invalidates it).

Read-only: Datasette already reads files through `mode=ro` connections and only accepts SELECT on its SQL
endpoint; the plugin defines no writable canned query, and sets `PRAGMA query_only` on every connection
Datasette opens to a recgen database, so even a write from another plugin or a metadata file fails.
"""

from __future__ import annotations

import json
from importlib import resources

from datasette import hookimpl
from jinja2 import FileSystemLoader

from recgen.plugin.metadata import (
    INSTANCE,
    ROUTE_PREFIX,
    database_metadata_json,
    recgen_databases,
    recgen_table_names,
)
from recgen.plugin.queries import CANNED_QUERIES, REQUIRED_TABLES, VARIANTS
from recgen.plugin.routes import dashboard_page, page_url, report_file, report_page, user_page
from recgen.store import fts


@hookimpl
def get_metadata(datasette, key, database, table):
    databases = {}
    for name in recgen_databases(datasette):
        # A fresh copy each call: Datasette merges other metadata into what hooks return.
        databases[name] = json.loads(database_metadata_json(recgen_table_names(datasette, name), name))
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
        fts.register_functions(conn)
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
        links.append({"href": page_url(datasette, "dashboard", name), "label": f"recgen dashboard{suffix}"})
        links.append({"href": page_url(datasette, "report/", name), "label": f"recgen data report{suffix}"})
    return links


@hookimpl
def register_routes(datasette):
    return [
        (rf"^{ROUTE_PREFIX}/dashboard$", dashboard_page),
        (rf"^{ROUTE_PREFIX}/user/(?P<user_id>-?[0-9]+)$", user_page),
        (rf"^{ROUTE_PREFIX}/report/?$", report_page),
        (rf"^{ROUTE_PREFIX}/report/(?P<name>[A-Za-z0-9_.-]+)$", report_file),
    ]
