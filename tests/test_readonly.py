"""`datasette output/recs.db` with the recgen plugin never changes the database, whatever is asked of it.

On a copy of a real published run (the session's `published` database, report folder beside it): every
kind of writing SQL through the SQL endpoint (a) is refused and leaves the file, its WAL and its
`PRAGMA user_version` as they were, and creates no file; a POST to every route of the app's routing table
(b) changes nothing; and no canned query is writable (c), while even a writable query configured by an
administrator is stopped by the plugin's `PRAGMA query_only`. tests/test_datasette.py covers the basic
write statements on a hand-made database; these extend that to the full list, the real run and the real
`datasette` command.
"""

import asyncio
import hashlib
import shutil
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import backup_copy, datasette_server
from datasette.app import Datasette

from recgen import plugin
from recgen.plugin.queries import CANNED_QUERIES


@pytest.fixture(autouse=True)
def quiet_datasette(monkeypatch):
    """Datasette prints every handled error with `rich` when it is installed (all locals: ~0.4 s per refused
    statement here); run the in-process app as it runs without rich. Responses are unchanged."""
    monkeypatch.setattr("datasette.handle_exception.rich", None)


@pytest.fixture(scope="module")
def template(published, tmp_path_factory) -> Path:
    """A consistent copy of the published run's database, with the report it was published with."""
    db, _ = published
    folder = tmp_path_factory.mktemp("readonly-template")
    backup_copy(db, folder / "recs.db")
    report = Path(db).parent / "report"
    if report.is_dir():
        shutil.copytree(report, folder / "report")
    return folder / "recs.db"


@pytest.fixture
def recs_db(template, tmp_path) -> Path:
    """A fresh copy per test (the database's name in Datasette is `recs`)."""
    shutil.copyfile(template, tmp_path / "recs.db")
    if (template.parent / "report").is_dir():
        shutil.copytree(template.parent / "report", tmp_path / "report")
    return tmp_path / "recs.db"


def state(path: Path) -> dict:
    """What any write would change: the file's bytes, anything in its WAL (where a write lands first in WAL
    mode, leaving the main file as it was), the schema and user versions and the logical content."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        dump = hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
        versions = [conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("user_version", "schema_version")]
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    wal = path.with_name(path.name + "-wal")
    return {
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "versions": versions,
        "journal_mode": journal,
        "dump": dump,
    }


def requests(ds: Datasette, calls: list[tuple[str, str, dict]]) -> list:
    """Run (method, path, httpx keyword arguments) calls through Datasette's in-process client, in order."""

    async def run():
        return [await getattr(ds.client, method)(path, **kwargs) for method, path, kwargs in calls]

    return asyncio.run(run())


# ---------------------------------------------------------------- (a) writing SQL through the SQL endpoint


def writes(folder: Path) -> list[str]:
    """Statements that would change the database or create a file, each of which must be refused."""
    return [
        "INSERT INTO runs (started_at, status) VALUES ('2030-01-01', 'published')",
        "INSERT INTO runs (started_at, status) VALUES ('2030-01-01', 'published') RETURNING id",
        "INSERT INTO recommendations SELECT * FROM recommendations",
        "REPLACE INTO run_metrics (run_id, model_name, metric, value) SELECT run_id, model_name, metric, 1.0 "
        "FROM run_metrics",
        "INSERT INTO videos_fts (videos_fts) VALUES ('delete-all')",
        "UPDATE runs SET status = 'failed' WHERE status = 'published'",
        "UPDATE recommendations SET score = -score RETURNING *",
        "DELETE FROM runs WHERE id = (SELECT max(id) FROM runs)",
        "DELETE FROM latest_recommendations",
        "WITH latest AS (SELECT max(id) AS id FROM runs) UPDATE runs SET status = 'failed' "
        "WHERE id IN (SELECT id FROM latest)",
        "/* a comment first */ DELETE FROM users",
        "-- a line comment first\nDELETE FROM users",
        "\n\t  DELETE FROM users",
        "SELECT 1; DROP TABLE recommendations",
        "BEGIN; DELETE FROM runs; COMMIT",
        "DROP TABLE recommendations",
        "DROP VIEW latest_recommendations",
        "DROP INDEX IF EXISTS ix_recommendations_run_id",
        "CREATE TABLE evil (x)",
        "CREATE TEMP TABLE evil (x)",
        "CREATE VIEW evil AS SELECT 1",
        "CREATE INDEX evil ON runs (status)",
        "CREATE TRIGGER evil AFTER INSERT ON runs BEGIN DELETE FROM recommendations; END",
        "ALTER TABLE runs ADD COLUMN evil TEXT",
        "ALTER TABLE runs RENAME TO evil",
        f"ATTACH DATABASE '{folder / 'attached.db'}' AS evil",
        f"ATTACH DATABASE 'file:{folder / 'attached_uri.db'}?mode=rwc' AS evil",
        "DETACH DATABASE main",
        "PRAGMA user_version = 5",
        "PRAGMA main.user_version = 5",
        "PRAGMA application_id = 7",
        "PRAGMA journal_mode = delete",
        "PRAGMA journal_mode = memory",
        "PRAGMA query_only = 0",
        "PRAGMA writable_schema = ON",
        "PRAGMA schema_version = 1",
        "PRAGMA auto_vacuum = FULL",
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "PRAGMA optimize",
        "PRAGMA incremental_vacuum",
        "SELECT * FROM pragma_user_version(5)",
        "SELECT * FROM pragma_journal_mode('delete')",
        "VACUUM",
        f"VACUUM INTO '{folder / 'vacuumed.db'}'",
        f"VACUUM main INTO '{folder / 'vacuumed_main.db'}'",
        "ANALYZE",
        "REINDEX",
        "SAVEPOINT evil",
        "SELECT load_extension('/tmp/evil')",
    ]


# What the real server is sent: it prints each refusal with rich and all its locals (about 1 s each on a busy
# 2-core machine), so a sample; the in-process tests send everything.
SERVER_SAMPLE = ("WITH latest", "ATTACH DATABASE '", "VACUUM INTO", "PRAGMA user_version", "BEGIN;")
CREATED_BY_WRITES = ("attached.db", "attached_uri.db", "vacuumed.db", "vacuumed_main.db")


def test_every_writing_statement_is_refused_and_nothing_changes(recs_db):
    folder = recs_db.parent
    before = state(recs_db)
    ds = Datasette([str(recs_db)])
    statements = writes(folder)
    control = "SELECT count(*) AS n FROM recommendations"
    calls = [("get", "/recs.json?" + urllib.parse.urlencode({"sql": sql}), {}) for sql in [control, *statements]]
    # The same through the HTML and CSV renderers of the endpoint.
    for extension in ("", ".csv"):
        calls += [("get", f"/recs{extension}?" + urllib.parse.urlencode({"sql": sql}), {}) for sql in statements]
    responses = requests(ds, calls)
    (control_response, *json_responses) = responses[: len(statements) + 1]
    assert control_response.status_code == 200 and control_response.json()["rows"][0][0] > 0  # the endpoint works
    accepted = [(sql, r.status_code) for sql, r in zip(statements, json_responses, strict=True) if r.status_code < 400]
    assert not accepted, accepted
    assert all(r.json()["ok"] is False and r.json()["error"] for r in json_responses)
    html, csv = responses[len(statements) + 1 : 2 * len(statements) + 1], responses[2 * len(statements) + 1 :]
    assert not [sql for sql, r in zip(statements, html, strict=True) if r.status_code < 400]
    # The CSV renderer streams: a statement SQLite refuses while running ends as an empty 200 body.
    assert not [sql for sql, r in zip(statements, csv, strict=True) if r.status_code < 400 and r.text.strip()]
    assert state(recs_db) == before
    assert not [name for name in CREATED_BY_WRITES if (folder / name).exists()]
    assert {p.name for p in folder.iterdir()} - {"recs.db-shm", "recs.db-wal", "report"} == {"recs.db"}


def test_sql_smuggled_into_other_endpoints_is_ignored_or_refused(recs_db):
    before = state(recs_db)
    user = sqlite3.connect(recs_db).execute("SELECT min(user_id) FROM latest_recommendations").fetchone()[0]
    evil = "DELETE FROM recommendations"
    calls = [
        # A canned query runs its own SQL: a `sql` parameter is not used.
        ("get", f"/recs/user_recommendations.json?user_id={user}&_shape=array&sql={urllib.parse.quote(evil)}", {}),
        # A column filter is a bound parameter: no row has that status.
        ("get", "/recs/runs.json?" + urllib.parse.urlencode({"status": f"x'; {evil}; --", "_shape": "array"}), {}),
        # The videos search box goes through recgen's escape_fts (registered by the plugin).
        ("get", "/recs/videos.json?" + urllib.parse.urlencode({"_search": f"'); {evil}; --"}), {}),
        ("get", "/recs/videos.json?" + urllib.parse.urlencode({"_search": 'NEAR("a" OR b) "'}), {}),
        # Raw WHERE fragments, sort and facet columns (Datasette answers some of these with a 500 of its own).
        ("get", "/recs/runs.json?" + urllib.parse.urlencode({"_where": f"1=1); {evil}; --"}), {}),
        ("get", "/recs/runs.json?" + urllib.parse.urlencode({"_where": f"id IN (SELECT 1); {evil}"}), {}),
        ("get", "/recs/runs.json?" + urllib.parse.urlencode({"_sort": f"id; {evil}"}), {}),
        ("get", "/recs/runs.json?" + urllib.parse.urlencode({"_facet": f"status; {evil}"}), {}),
        ("get", "/recs/videos.json?" + urllib.parse.urlencode({"_search": f"x; {evil}", "_searchmode": "raw"}), {}),
    ]
    canned, filtered, *searches = requests(Datasette([str(recs_db)]), calls)[:4]  # the rest: no change
    assert canned.status_code == 200 and canned.json() and {r["run_id"] for r in canned.json()}
    assert filtered.status_code == 200 and filtered.json() == []
    assert [r.status_code for r in searches] == [200, 200] and all(r.json()["rows"] == [] for r in searches)
    assert state(recs_db) == before


# ---------------------------------------------------------------- (b) a POST to every route


def route_paths(recs_db: Path) -> list[str]:
    """A concrete path for every kind of page the app serves: Datasette's own, the database, each table,
    view, row and canned query, and the plugin's pages and report files."""
    conn = sqlite3.connect(recs_db)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
    run_id = conn.execute("SELECT max(id) FROM runs").fetchone()[0]
    user = conn.execute("SELECT min(user_id) FROM latest_recommendations").fetchone()[0]
    video = conn.execute("SELECT min(video_id) FROM videos").fetchone()[0]
    conn.close()
    paths = ["/", "/.json", "/favicon.ico", "/-/static/app.css", "/:memory:", "/recs.db", "/recs", "/recs.json"]
    paths += [f"/-/{page}" for page in ("metadata", "versions", "plugins", "settings", "threads", "databases")]
    paths += [f"/-/{page}.json" for page in ("metadata", "versions", "plugins", "settings", "threads", "databases")]
    paths += ["/-/actor.json", "/-/config", "/-/config.json", "/-/auth-token", "/-/logout", "/-/permissions"]
    paths += ["/-/messages", "/-/allow-debug", "/-/patterns"]
    for name in tables + list(CANNED_QUERIES):
        paths += [f"/recs/{name}", f"/recs/{name}.json"]
    paths += [f"/recs/runs/{run_id}", f"/recs/runs/{run_id}.json", f"/recs/videos/{video}", f"/recs/users/{user}"]
    paths += ["/-/recgen/dashboard?database=recs", f"/-/recgen/user/{user}", "/-/recgen/user/-1"]
    paths += ["/-/recgen/report", "/-/recgen/report/", "/-/recgen/report/index.html", "/-/recgen/report/x.png"]
    return paths


def test_every_route_of_the_app_is_covered(recs_db):
    ds = Datasette([str(recs_db)])
    paths = [urllib.parse.urlsplit(p).path for p in route_paths(recs_db)]
    routes = [regex for regex, _view in ds._routes()]  # the routing table, plugin routes included
    assert len(routes) >= 25
    uncovered = [regex.pattern for regex in routes if not any(regex.match(p) for p in paths)]
    assert not uncovered, f"routes without a path in route_paths(): {uncovered}"


def test_posting_to_every_route_changes_nothing(recs_db):
    before = state(recs_db)
    ds = Datasette([str(recs_db)])
    form = {"sql": "DELETE FROM recommendations", "user_id": "1", "status": "published", "_json": "1"}
    calls = []
    for path in route_paths(recs_db):
        calls += [
            ("post", path, {"data": form}),  # no cookies: Datasette's CSRF check lets it through to the view
            ("post", path, {"json": {**form, "rows": [{"id": 1}], "row": {"id": 1}}}),
            ("put", path, {"data": form}),
            ("delete", path, {}),
        ]
    responses = requests(ds, calls)
    assert len(responses) == len(calls)
    # recgen's own pages only read: a POST gets the page (or its 404), never an error of the plugin.
    for (method, path, _), response in zip(calls, responses, strict=True):
        if path.startswith(plugin.ROUTE_PREFIX):
            assert response.status_code < 500, (method, path, response.status_code)
    assert state(recs_db) == before


def _http(url: str, data: bytes | None = None, timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_datasette_command_refuses_every_write_over_http(recs_db, tmp_path):
    """The exact command analysts run, `datasette output/recs.db`, as a real server on 127.0.0.1."""
    before = state(recs_db)
    with datasette_server(recs_db, tmp_path / "datasette.log") as base:
        sample = [sql for sql in writes(tmp_path) if any(sql.startswith(kind) for kind in SERVER_SAMPLE)]
        assert len(sample) >= len(SERVER_SAMPLE)
        refused = [_http(f"{base}/recs.json?" + urllib.parse.urlencode({"sql": sql}))[0] for sql in sample]
        assert all(code >= 400 for code in refused), refused
        control, body = _http(f"{base}/recs.json?" + urllib.parse.urlencode({"sql": "SELECT count(*) FROM runs"}))
        assert control == 200 and b'"ok": true' in body
        form = urllib.parse.urlencode({"sql": "DELETE FROM recommendations", "user_id": "1"}).encode()
        kinds = ["/", "/recs", "/-/messages"]  # (a POST to a table or a query is a 500 printed with rich)
        kinds += [path for path in route_paths(recs_db) if path.startswith(plugin.ROUTE_PREFIX)]
        posted = {path: _http(f"{base}{path}", data=form)[0] for path in kinds}
        assert all(code < 500 for path, code in posted.items() if path.startswith(plugin.ROUTE_PREFIX)), posted
    assert state(recs_db) == before
    assert not [name for name in CREATED_BY_WRITES if (tmp_path / name).exists()]


# ---------------------------------------------------------------- (c) no canned query writes


def test_no_canned_query_is_writable(recs_db):
    ds = Datasette([str(recs_db)])
    listed, metadata, *pages = requests(
        ds,
        [("get", "/recs.json", {}), ("get", "/-/metadata.json", {})]
        + [("get", f"/recs/{name}", {}) for name in CANNED_QUERIES],
    )
    queries = {q["name"]: q for q in listed.json()["queries"]}
    assert set(queries) >= set(CANNED_QUERIES) - {"rejected_rows_by_reason"}  # offered on a real run
    assert not [name for name, q in queries.items() if q.get("write")]
    # What Datasette resolves for an anonymous actor, and what the plugin's hook returns.
    resolved = asyncio.run(ds.get_canned_queries("recs", None))
    assert set(resolved) == set(queries)
    assert not [name for name, q in resolved.items() if q.get("write")]
    hooked = plugin.canned_queries(ds, "recs", None)
    assert set(hooked) == set(queries)
    for name, query in hooked.items():
        assert not {"write", "on_success_redirect", "on_error_redirect"} & set(query), name
    # The metadata Datasette reports has no writable query either (recgen adds its queries through the hook).
    for database in metadata.json().get("databases", {}).values():
        assert not [name for name, q in (database.get("queries") or {}).items() if q.get("write")]
    # A read-only canned query's page offers a GET form, never a POST one (Datasette's mark of a write).
    for name, page in zip(CANNED_QUERIES, pages, strict=True):
        if name in queries:
            assert page.status_code == 200 and 'method="post"' not in page.text.lower(), name


def test_even_a_writable_query_configured_by_an_administrator_cannot_write(recs_db):
    """Defence in depth: Datasette runs a configured `write: true` query on a read-write connection, which
    recgen's plugin has put in `PRAGMA query_only`."""
    before = state(recs_db)
    user = sqlite3.connect(recs_db).execute("SELECT min(user_id) FROM latest_recommendations").fetchone()[0]
    metadata = {
        "databases": {
            "recs": {
                "queries": {
                    "configured_write": {"sql": "DELETE FROM recommendations WHERE user_id = :user_id", "write": True}
                }
            }
        }
    }
    ds = Datasette([str(recs_db)], metadata=metadata)
    assert asyncio.run(ds.get_canned_queries("recs", None))["configured_write"]["write"] is True
    form, as_json = requests(
        ds,
        [
            ("post", "/recs/configured_write", {"data": {"user_id": str(user)}}),
            ("post", "/recs/configured_write.json", {"json": {"user_id": str(user)}}),
        ],
    )
    # Datasette reports SQLite's refusal in a message and redirects back; the rows are still there.
    assert form.status_code == 302 and as_json.status_code == 302
    messages = ds.unsign(form.cookies["ds_messages"], "messages")
    assert any("readonly" in message for message, _type in messages), messages
    assert state(recs_db) == before
