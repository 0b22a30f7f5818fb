"""recgen's own pages in Datasette: the run dashboard, a page per user, and the data-analysis report's files."""

from __future__ import annotations

import asyncio
from pathlib import Path

from datasette import Response

from recgen.constants import REPORT_SUBDIR  # `recgen report` writes beside the database
from recgen.plugin.metadata import ROUTE_PREFIX, file_signature, recgen_databases
from recgen.report.write import REPORT_FILE

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # SQLite's INTEGER range


def page_url(datasette, page: str, database: str) -> str:
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
        "dashboard": page_url(datasette, "dashboard", database),
        "report": page_url(datasette, "report/", database),
        "database": base,
        "query": lambda name, **params: (
            f"{base}/{name}" + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        ),
        "user": lambda user_id: page_url(datasette, f"user/{user_id}", database),
    }


async def _in_thread(function, *args):
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


async def dashboard_page(datasette, request):
    from recgen.plugin import pages

    database = _chosen_database(datasette, request)
    if database is None:
        return await _message(datasette, request, "recgen dashboard", "No recgen database is attached.", 404)
    path = datasette.databases[database].path
    data = await _in_thread(pages.dashboard, path, file_signature(path))
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
    data = await _in_thread(pages.user, path, file_signature(path), user_id)
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
