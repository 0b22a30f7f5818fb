"""Hostile input never becomes SQL: request values, paths on the command line, CSV headers and text.

(a) The plugin's pages and every canned query, through Datasette, with injection attempts, quotes,
    wildcards, unicode and very long values: 4xx or a valid (possibly empty) answer, never a 500, tautologies
    match nothing, and the database is unchanged.
(b) One real `recgen run-batch` (the tiny sample, --model seed) with --db and --data-dir in folders named
    with quotes, semicolons, spaces, shell syntax and unicode, on data whose CSV header and captions carry
    SQL; then `ingest`, `evaluate` and `report --out` with such paths, and Datasette on the result.
(c) A static check of recgen/*.py: every SQL text passed to execute()/text()/read_sql()... is traced back
    (through variables, f-strings, `%`, `.format`, joins, function parameters at every call site and return
    values) to constants, names of recgen.store.schema / recgen.constants, or a short list of reviewed exceptions;
    a request value, a path or any other outside value reaching SQL text fails the test.
"""

import ast
import asyncio
import csv
import hashlib
import importlib
import io
import re
import shutil
import sqlite3
import urllib.parse
from pathlib import Path

import pytest
import sqlalchemy
from conftest import backup_copy, run_cli
from datasette.app import Datasette

from recgen import plugin
from recgen.batch import BatchOptions
from recgen.plugin.queries import CANNED_QUERIES, VARIANTS
from recgen.store.engine import get_engine

RECGEN = Path(plugin.__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def quiet_datasette(monkeypatch):
    """Run the in-process Datasette as it runs without the optional `rich` (which prints every handled error
    with all its locals, ~0.4 s each). Responses are unchanged."""
    monkeypatch.setattr("datasette.handle_exception.rich", None)


def fetch(ds: Datasette, paths: list[str]) -> list:
    async def run():
        return [await ds.client.get(path) for path in paths]

    return asyncio.run(run())


def content(path: Path) -> tuple[str, str]:
    """The file's bytes and its logical content (a write may sit in the WAL)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    dump = hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    conn.close()
    return hashlib.sha256(path.read_bytes()).hexdigest(), dump


# ---------------------------------------------------------------- (a) hostile request values

HOSTILE_VALUES = [
    "1; DROP TABLE runs",
    "1 OR 1=1",
    "x' OR '1'='1",
    "'",
    '"',
    "'; DELETE FROM recommendations; --",
    "%",
    "_",
    "%' OR video_id LIKE '%",
    "美食 😀 \u202e",
    "-1",
    "99999999999999999999",
    "1e308",
    "NaN",
    'NEAR(a b) OR "x" AND *',
    "\\",
    "x" * 5000,
]


@pytest.fixture
def recs_db(published, tmp_path) -> Path:
    db, _ = published
    return backup_copy(db, tmp_path / "recs.db")


def test_canned_queries_bind_every_hostile_value(recs_db):
    before = content(recs_db)
    ds = Datasette([str(recs_db)])
    offered = {q["name"]: q for q in fetch(ds, ["/recs.json"])[0].json()["queries"]}
    assert len(offered) >= 10
    cases = [(name, param, value) for name, q in offered.items() for param in q["params"] for value in HOSTILE_VALUES]
    paths = [f"/recs/{n}.json?" + urllib.parse.urlencode({p: v, "_shape": "objects"}) for n, p, v in cases]
    failures = []
    for (name, param, value), response in zip(cases, fetch(ds, paths), strict=True):
        answered = response.status_code == 200 and isinstance(response.json()["rows"], list)
        if not (answered or 400 <= response.status_code < 500):  # a valid answer or a client error, never a 500
            failures.append((name, param, value[:30], response.status_code))
    assert not failures, failures
    # A tautology is a string like any other: as a bound value it matches no row.
    tautology = "published' OR '1'='1"
    checks = {"run_history": "status", "model_vs_baselines_over_runs": "metric"}
    if "rejected_rows_by_reason" in offered:
        checks["rejected_rows_by_reason"] = "file"
    for name, param in checks.items():
        (response,) = fetch(ds, [f"/recs/{name}.json?" + urllib.parse.urlencode({param: tautology, "_shape": "array"})])
        assert response.status_code == 200 and response.json() == [], name
    # An integer parameter takes the value's leading digits (SQLite's CAST), never the rest as SQL.
    user = sqlite3.connect(recs_db).execute("SELECT min(user_id) FROM latest_recommendations").fetchone()[0]
    lists = fetch(
        ds,
        [
            f"/recs/user_recommendations.json?_shape=array&user_id={urllib.parse.quote(value)}"
            for value in (str(user), f"{user} OR 1=1", f"{user}; DROP TABLE runs")
        ],
    )
    plain, *injected = [r.json() for r in lists]
    assert plain and all(rows == plain for rows in injected)
    assert content(recs_db) == before


def test_plugin_pages_with_hostile_ids_and_names(recs_db):
    before = content(recs_db)
    ds = Datasette([str(recs_db)])
    user = sqlite3.connect(recs_db).execute("SELECT min(user_id) FROM latest_recommendations").fetchone()[0]
    quoted = [urllib.parse.quote(v, safe="") for v in HOSTILE_VALUES]
    paths = [f"/-/recgen/user/{v}" for v in quoted]
    paths += [f"/-/recgen/dashboard?database={v}" for v in quoted] + [f"/-/recgen/user/{user}?database={quoted[0]}"]
    paths += [f"/-/recgen/report/{v}" for v in quoted] + ["/-/recgen/report/..", "/-/recgen/report/recs.db"]
    # Integers the route accepts but SQLite cannot hold (were a 500: OverflowError binding them).
    huge = ["9223372036854775808", "-9223372036854775809", "99999999999999999999", "9" * 5000, "-" + "9" * 30]
    paths += [f"/-/recgen/user/{n}" for n in huge]
    responses = fetch(ds, paths)
    assert not [(p[:60], r.status_code) for p, r in zip(paths, responses, strict=True) if r.status_code >= 500]
    assert not [(p[:60], r.status_code) for p, r in zip(paths, responses, strict=True) if r.status_code == 200]
    for path, response in zip(paths[-len(huge) :], responses[-len(huge) :], strict=True):
        assert response.status_code == 404 and "is not in this database" in response.text, path[:60]
    # The database file itself is never served from the report folder.
    assert all(b"SQLite format 3" not in r.content for r in responses)
    ok, leading_zeros = fetch(ds, [f"/-/recgen/user/{user}", f"/-/recgen/user/000{user}"])
    assert ok.status_code == 200 and leading_zeros.status_code == 200
    assert content(recs_db) == before


# ---------------------------------------------------------------- (b) hostile paths on the command line

# No `?`, `#` or `%`: SQLite URIs (Datasette's own `file:{path}?mode=ro`) cannot name such files, see below.
HOSTILE_DIR = 'o\'k; "dir" 数据 ☃ $(touch pwned) `touch pwned` & | <x>'
HOSTILE_HEADER = 'evil"); DROP TABLE users; --'
HOSTILE_CAPTION = 'Robert\'); DROP TABLE videos; -- "quoted", 美食 100% _x_ ☃'


def _plant_sql_in_the_csvs(data: Path) -> int:
    """An extra user_features column named with SQL, and SQL in the first caption; returns that video id."""
    users = (data / "user_features.csv").read_text(encoding="utf-8").splitlines()
    quoted_header = '"' + HOSTILE_HEADER.replace('"', '""') + '"'
    users = [users[0] + "," + quoted_header] + [line + ",'); DROP TABLE runs; --" for line in users[1:]]
    (data / "user_features.csv").write_text("\n".join(users) + "\n", encoding="utf-8")
    path = data / "kuairec_caption_category.csv"
    header, first, rest = path.read_bytes().decode("utf-8").split("\n", 2)
    fields = next(csv.reader([first.replace("\r", "")]))
    fields[2] = HOSTILE_CAPTION
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(fields)
    path.write_bytes(f"{header}\n{line.getvalue()}{rest}".encode())
    return int(fields[0])


@pytest.fixture(scope="module")
def hostile_run(tiny_sample, tmp_path_factory):
    """The one run-batch of this file: hostile folders for the data and the database, SQL in the CSVs."""
    root = tmp_path_factory.mktemp("hostile") / HOSTILE_DIR
    data = root / 'da\'ta; "in" 目录'
    shutil.copytree(tiny_sample, data)
    video = _plant_sql_in_the_csvs(data / "KuaiRec 2.0" / "data")
    db = root / 'o\'k; "db" ☃' / 're\'cs; "x" 数据.db'
    result = run_cli("run-batch", "--model", "seed", "--data-dir", str(data), "--db", str(db))
    return root, data, db, video, result


def test_run_batch_with_hostile_paths_writes_exactly_there(hostile_run):
    root, _, db, _, result = hostile_run
    assert result.exit_code == 0, result.output
    assert db.is_file()
    assert (db.parent / "recgen.lock").is_file() and (db.parent / "report" / "index.html").is_file()
    databases = {p for p in root.parent.rglob("*") if p.is_file() and _header(p) == b"SQLite format 3\x00"}
    assert databases == {db}, databases  # no stray database at a mangled path
    assert not list(root.parent.rglob("pwned")) and not Path("pwned").exists()  # no shell ever saw the path
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT status FROM runs").fetchall() == [("published",)]
    assert conn.execute("SELECT count(*) FROM latest_recommendations").fetchone()[0] > 0
    conn.close()


def _header(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(16)


def test_sql_in_csv_headers_and_text_is_only_ever_data(hostile_run):
    root, _, db, video, result = hostile_run
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"users", "videos", "runs", "recommendations"} <= tables
    columns = [r[1] for r in conn.execute("PRAGMA table_info(users)")]
    assert not [c for c in columns if "evil" in c or "DROP" in c]  # the extra CSV column never reached DDL
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] > 0
    (caption,) = conn.execute("SELECT caption FROM videos WHERE video_id = ?", (video,)).fetchone()
    assert caption == HOSTILE_CAPTION
    conn.close()
    # Datasette on the hostile path: the plugin's own ro connections (file URIs) and its FTS query function.
    ds = Datasette([str(db)])
    (name,) = plugin.recgen_databases(ds)
    query = urllib.parse.urlencode({"q": "Robert DROP", "_shape": "array"})
    search_path = ds.urls.query(name, "who_gets_videos_about", format="json") + "?" + query
    search, dashboard = fetch(ds, [search_path, "/-/recgen/dashboard"])
    assert search.status_code == 200 and [r["video_id"] for r in search.json()] == [video]
    assert dashboard.status_code == 200 and dashboard.text.count("data:image/png;base64,") >= 2


def test_other_commands_with_hostile_paths(hostile_run):
    root, data, db, _, result = hostile_run
    assert result.exit_code == 0, result.output
    again = run_cli("ingest", "--data-dir", str(data), "--db", str(db))
    assert again.exit_code == 0 and "skipped 7 unchanged" in again.stdout, again.output
    evaluated = run_cli("evaluate", "--db", str(db))
    assert evaluated.exit_code == 0 and evaluated.stdout.startswith("run 1"), evaluated.output
    out = root / 'rep\'ort; "out" ☃ $(touch pwned)'
    reported = run_cli("report", "--db", str(db), "--out", str(out))
    assert reported.exit_code == 0, reported.output
    assert (out / "index.html").is_file() and str(out / "index.html") in reported.stdout
    assert not list(root.parent.rglob("pwned"))


SAFE_NAMES = ["a'b", 'a"b', "a;b", "a b", "数据 ☃", "a#b", "a@b:c", "a&b|c", "$(x)"]
URL_SYNTAX = ["a?b", "a%41b", "a%2Fb"]


@pytest.mark.parametrize("name", SAFE_NAMES + URL_SYNTAX)
def test_a_database_path_is_taken_literally(tmp_path, name):
    path = tmp_path / name / "recs.db"
    engine = get_engine(str(path))
    assert engine.url.database == str(path)
    assert BatchOptions(db=str(path)).output_dir == path.parent
    engine.dispose()


# ---------------------------------------------------------------- (c) static check: SQL text is never built from input

SQL_SINKS = {"execute", "executemany", "executescript", "exec_driver_sql", "read_sql", "read_sql_query", "copy"}
# SQLAlchemy Core constructs: their values become bound parameters.
SQLALCHEMY_BUILDERS = {"select", "insert", "update", "delete", "bindparam"}
RECEIVER_ONLY = {  # a method whose result is as safe as its receiver, whatever its arguments
    *("where", "values", "order_by", "limit", "offset", "select_from", "group_by", "returning", "insert"),
    *("delete", "update", "desc", "asc", "in_", "label", "first", "scalar", "one"),
    *("items", "keys", "strip", "lstrip", "rstrip", "lower", "upper", "split", "removeprefix", "removesuffix"),
}
RECEIVER_AND_ARGS = {"join", "format", "replace", "get"}  # as safe as the receiver and the arguments
NUMERIC_BUILTINS = {"len", "int", "float", "round", "bool", "range", "abs", "sum"}
PASS_THROUGH_BUILTINS = {"list", "tuple", "sorted", "set", "frozenset", "str", "reversed", "dict", "min", "max", "next"}
COUNTERS = {("itertools", "count")}  # iterators of integers
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
# The identifier allow-list: every module-level name of these modules (table and column names, constants).
TRUSTED_MODULES = {"recgen.store.schema", "recgen.constants"}
# Reviewed exceptions, each a place where the analysis cannot see that the value is recgen's own.
REVIEWED = {
    "recgen.store.bulk:insert_frame:frame": (
        "column labels of DataFrames recgen builds itself from schema column names; a CSV header never reaches "
        "them, as the readers keep only the columns of readers.KINDS (test_sql_in_csv_headers_and_text_...)"
    ),
    "recgen.store.bulk:_copy_through_stage:ddl": (
        "the CREATE statements of recgen's own table, read back from sqlite_master"
    ),
    "recgen.store.bulk:_release_stages:schema": "the names `recgen_stage_<n>` that _copy_through_stage attached",
}


class SqlSources:
    """Where can the text of an SQL statement come from? A small context-insensitive taint analysis.

    `unsafe(module, node)` is the set of sources of an expression that are neither constants, names of the
    trusted modules, SQLAlchemy constructs nor reviewed exceptions, each described `module:function:source`.
    A function parameter is followed to the argument of every call of that function by name anywhere in the
    package (a parameter of a function never called by name is unsafe), a local variable to its assignments
    and loop iterables, a call of a package function to its return values.
    """

    def __init__(self, sources: dict[str, str], trusted=TRUSTED_MODULES, reviewed=REVIEWED):
        self.trees = {name: ast.parse(text) for name, text in sources.items()}
        self.trusted, self.reviewed = set(trusted), dict(reviewed)
        self.calls: dict[str, list[tuple[str, ast.Call]]] = {}
        for module, tree in self.trees.items():
            for node in ast.walk(tree):
                for child in ast.iter_child_nodes(node):
                    child.parent = node
                if isinstance(node, ast.Call):
                    callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                    self.calls.setdefault(callee, []).append((module, node))
        self.memo: dict[tuple[str, int], frozenset[str]] = {}
        self.trusted_names: set[tuple[str, str]] = set()
        self.reviewed_seen: set[str] = set()

    def sinks(self):
        """(module, call, SQL argument) of every call that runs SQL text."""
        for module, tree in self.trees.items():
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and node.args:
                    func = node.func
                    if (isinstance(func, ast.Attribute) and func.attr in SQL_SINKS) or self._sqlalchemy(
                        module, func, "text"
                    ):
                        yield module, node, node.args[0]

    def describe(self, module: str, node: ast.AST) -> str:
        names, scope = [], node
        while scope is not None:
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.append(scope.name)
            scope = getattr(scope, "parent", None)
        return f"{module}:{'.'.join(reversed(names)) or '<module>'}:{ast.unparse(node)}"

    def unsafe(self, module: str, node: ast.AST) -> frozenset[str]:
        key = (module, id(node))
        if key not in self.memo:
            self.memo[key] = frozenset()  # a cycle adds nothing new
            description = self.describe(module, node)
            if description in self.reviewed:
                self.reviewed_seen.add(description)
            else:
                self.memo[key] = frozenset(self._unsafe(module, node))
        return self.memo[key]

    def _all(self, module: str, nodes) -> set[str]:
        return set().union(*(self.unsafe(module, n) for n in nodes if n is not None))

    def _unsafe(self, module: str, node: ast.AST) -> set[str]:
        match node:
            case ast.Constant() | ast.Compare():
                return set()
            case ast.JoinedStr() | ast.BoolOp():
                return self._all(module, node.values)
            case ast.FormattedValue() | ast.Starred() | ast.Await() | ast.NamedExpr() | ast.Subscript():
                return self.unsafe(module, node.value)
            case ast.Attribute():
                return self.unsafe(module, node.value)
            case ast.BinOp():  # `+` concatenation and `%` formatting alike
                return self._all(module, [node.left, node.right])
            case ast.UnaryOp():
                return self.unsafe(module, node.operand)
            case ast.IfExp():
                return self._all(module, [node.body, node.orelse])
            case ast.List() | ast.Tuple() | ast.Set():
                return self._all(module, node.elts)
            case ast.Dict():
                return self._all(module, [*node.keys, *node.values])
            case ast.ListComp() | ast.SetComp() | ast.GeneratorExp():
                return self.unsafe(module, node.elt)
            case ast.DictComp():
                return self._all(module, [node.key, node.value])
            case ast.Name():
                return self._name(module, node)
            case ast.Call():
                return self._call(module, node)
        return {self.describe(module, node)}

    def _sqlalchemy(self, module: str, func: ast.AST, name: str) -> bool:
        if isinstance(func, ast.Name) and func.id == name:
            found = self._module_binding(module, name)
            return found is not None and found[0] == "import" and found[1].split(".")[0] == "sqlalchemy"
        if isinstance(func, ast.Attribute) and func.attr == name and isinstance(func.value, ast.Name):
            found = self._module_binding(module, func.value.id)
            return found is not None and found[0] == "module" and found[1].split(".")[0] == "sqlalchemy"
        return False

    def _call(self, module: str, call: ast.Call) -> set[str]:
        func, args = call.func, [*call.args, *(k.value for k in call.keywords)]
        if self._sqlalchemy(module, func, "text"):
            return self._all(module, call.args[:1])
        if isinstance(func, ast.Attribute):
            if func.attr in RECEIVER_AND_ARGS:
                return self._all(module, [func.value, *args])
            if func.attr in RECEIVER_ONLY:
                return self.unsafe(module, func.value)
            if isinstance(func.value, ast.Name):
                found = self._module_binding(module, func.value.id)
                if found is not None and found[0] == "module" and (found[1], func.attr) in COUNTERS:
                    return set()
        elif isinstance(func, ast.Name):
            if any(self._sqlalchemy(module, func, name) for name in SQLALCHEMY_BUILDERS):
                return set()
            found = self._binding(module, func)
            if found is not None and found[0] == "def":
                _, where, definition = found
                returns = [n.value for n in _own_nodes(definition) if isinstance(n, ast.Return) and n.value]
                return self._all(where, returns)
            if found is None and func.id in NUMERIC_BUILTINS:
                return set()
            if found is None and func.id in PASS_THROUGH_BUILTINS:
                return self._all(module, args)
        return {self.describe(module, call)}

    def _name(self, module: str, node: ast.Name) -> set[str]:
        found = self._binding(module, node)
        if found is None:
            return set() if node.id in ("True", "False", "None") else {self.describe(module, node)}
        if found[0] == "trusted":
            self.trusted_names.add((found[1], found[2]))
            return set()
        if found[0] in ("values", "iter"):
            return self._all(found[1], found[2])
        if found[0] == "param":
            return self._parameter(module, node, *found[1:])
        if found[0] == "lambda":  # `map(lambda x: ..., values)`: x is an element of values
            call = getattr(found[1], "parent", None)
            if isinstance(call, ast.Call) and call.args[:1] == [found[1]] and len(call.args) == 2:
                if getattr(call.func, "attr", getattr(call.func, "id", None)) == "map":
                    return self.unsafe(module, call.args[1])
        return {self.describe(module, node)}

    def _parameter(self, module: str, node: ast.Name, function, index, is_method) -> set[str]:
        names = [a.arg for a in [*function.args.posonlyargs, *function.args.args]]
        defaults = dict(zip(names[len(names) - len(function.args.defaults) :], function.args.defaults, strict=True))
        sites = self.calls.get(function.name, [])
        if not sites:
            return {self.describe(module, node) + " (parameter of a function never called by name)"}
        out: set[str] = set()
        for site_module, call in sites:
            shift = 1 if is_method and isinstance(call.func, ast.Attribute) else 0
            keyword = next((k.value for k in call.keywords if k.arg == node.id), None)
            if keyword is not None:
                out |= self.unsafe(site_module, keyword)
            elif index is not None and (position := index - shift) >= 0 and self._before_star(call, position):
                out |= self.unsafe(site_module, call.args[position])
            elif index is not None and (star := self._star(call, index - shift)) is not None:
                # `f(a, *pair)`: the parameter is an element of the tuple `pair` evaluates to.
                out |= self._element(site_module, call.args[star].value, index - shift - star)
            elif node.id in defaults:
                out |= self.unsafe(module, defaults[node.id])
            else:
                out.add(self.describe(site_module, call) + f" (passes {node.id} in a way not followed)")
        return out

    @staticmethod
    def _before_star(call: ast.Call, position: int) -> bool:
        return position < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[: position + 1])

    @staticmethod
    def _star(call: ast.Call, position: int) -> int | None:
        """The index of the last `*args` of the call at or before `position`, if it is the only one."""
        stars = [i for i, a in enumerate(call.args) if isinstance(a, ast.Starred)]
        return stars[0] if len(stars) == 1 and stars[0] <= position else None

    def _element(self, module: str, node: ast.AST, k: int) -> set[str]:
        """The sources of element `k` of a tuple-valued expression (a tuple, a variable, a function's return)."""
        match node:
            case ast.Tuple() if k < len(node.elts) and not any(isinstance(e, ast.Starred) for e in node.elts):
                return self.unsafe(module, node.elts[k])
            case ast.Constant(value=None):
                return set()
            case ast.IfExp():
                return self._element(module, node.body, k) | self._element(module, node.orelse, k)
            case ast.Name():
                found = self._binding(module, node)
                if found is not None and found[0] == "values":
                    return set().union(*(self._element(found[1], v, k) for v in found[2]))
            case ast.Call() if isinstance(node.func, ast.Name):
                found = self._binding(module, node.func)
                if found is not None and found[0] == "def":
                    returns = [n.value for n in _own_nodes(found[2]) if isinstance(n, ast.Return) and n.value]
                    return set().union(*(self._element(found[1], r, k) for r in returns))
        return set(self.unsafe(module, node))

    def _binding(self, module: str, node: ast.Name):
        child, scope = node, getattr(node, "parent", None)
        while scope is not None:
            # The variable of an enclosing `for` is an element of that loop's iterable.
            if isinstance(scope, (ast.For, ast.AsyncFor)) and child is not scope.iter:
                if node.id in _target_names(scope.target):
                    return ("iter", module, [scope.iter])
            if isinstance(scope, SCOPES):
                found = self._scope_binding(module, scope, node)
                if found is not None:
                    return found
            child, scope = scope, getattr(scope, "parent", None)
        found = self._module_binding(module, node.id)
        if found is not None and found[0] == "import":
            return self._imported(found[1], found[2]) if found[1] in self.trees else ("external", found[1])
        return found if found is None or found[0] != "module" else ("external", found[1])

    def _imported(self, module: str, name: str):
        if module in self.trusted:
            return ("trusted", module, name)
        found = self._module_binding(module, name)
        if found is not None and found[0] == "import" and found[1] in self.trees:
            return self._imported(found[1], found[2])
        return found

    def _scope_binding(self, module: str, scope, use: ast.Name):
        name = use.id
        if isinstance(scope, ast.Lambda):
            return ("lambda", scope) if name in [a.arg for a in scope.args.args] else None
        if not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):  # a comprehension
            iterables = [g.iter for g in scope.generators if name in _target_names(g.target)]
            return ("iter", module, iterables) if iterables else None
        arguments = scope.args
        positional = [a.arg for a in [*arguments.posonlyargs, *arguments.args]]
        is_method = isinstance(getattr(scope, "parent", None), ast.ClassDef) and positional[:1] in (["self"], ["cls"])
        if name in positional:
            return ("param", scope, positional.index(name), is_method)
        others = [a.arg for a in arguments.kwonlyargs] + [a.arg for a in (arguments.vararg, arguments.kwarg) if a]
        if name in others:
            return ("param", scope, None, is_method)
        return self._body_binding(module, scope, name, use)

    def _module_binding(self, module: str, name: str):
        for node in self.trees[module].body:
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        return ("import", node.module, alias.name)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if (alias.asname or alias.name.split(".")[0]) == name:
                        return ("module", alias.name)
        if module in self.trusted:
            return ("trusted", module, name)
        return self._body_binding(module, self.trees[module], name)

    def _body_binding(self, module: str, scope, name: str, use: ast.Name | None = None):
        values, above = [], []
        for node in _own_nodes(scope):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                return ("def", module, node)
            value = None
            if isinstance(node, ast.Assign) and any(name in _target_names(t) for t in node.targets):
                value = node.value
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and name in _target_names(node.target):
                value = node.value
            elif isinstance(node, (ast.For, ast.AsyncFor)) and name in _target_names(node.target):
                value = node.iter
            elif isinstance(node, ast.withitem) and node.optional_vars and name in _target_names(node.optional_vars):
                value = node.context_expr
            if value is not None:
                values.append(value)
                if use is not None and (value.lineno, value.col_offset) < (use.lineno, use.col_offset):
                    above.append(value)
        values = above or values  # roughly, the assignments that reach the use
        return ("values", module, values) if values else None


def _target_names(target: ast.AST) -> set[str]:
    """Names bound by an assignment target (`a`, `a, (b, *c)`), not those read in `x[a]` or `a.b`."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(_target_names(t) for t in target.elts))
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return set()


def _own_nodes(scope: ast.AST):
    """The nodes of a function or module body, nested scopes yielded but not entered."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (*SCOPES, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))


def unsafe_sql(analysis: SqlSources, extra_sinks: list[tuple[str, str]] = ()) -> dict[str, list[str]]:
    """Unsafe source -> the SQL calls it reaches; `extra_sinks` are (module, name) of module-level SQL values."""
    found: dict[str, list[str]] = {}
    targets = [(module, analysis.describe(module, call), sql) for module, call, sql in analysis.sinks()]
    for module, name in extra_sinks:
        (assignment,) = [
            n.value
            for n in analysis.trees[module].body
            if isinstance(n, ast.Assign) and name in set().union(*map(_target_names, n.targets))
        ]
        targets.append((module, f"{module}:{name}", assignment))
    for module, where, sql in targets:
        for source in analysis.unsafe(module, sql):
            found.setdefault(source, []).append(where[:120])
    return found


def recgen_sources() -> dict[str, str]:
    return {_module_name(path): path.read_text(encoding="utf-8") for path in sorted(RECGEN.rglob("*.py"))}


def _module_name(path: Path) -> str:
    """`recgen.store.schema` for recgen/store/schema.py, `recgen.store` for recgen/store/__init__.py."""
    parts = path.relative_to(RECGEN.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


INJECTABLE = """
import itertools
from sqlalchemy import select, text
from recgen.store.schema import runs
TABLE = "runs"
_numbers = itertools.count(1)

def user_page(conn, request):
    user_id = request.args["user_id"]
    return conn.execute(f"SELECT * FROM runs WHERE user_id = {user_id}").fetchall()

def by_percent(conn, name):
    return conn.execute("SELECT * FROM %s" % name)

def helper(conn, where):
    return conn.execute(text("SELECT * FROM videos WHERE {}".format(where)))

def caller(conn, request):
    return helper(conn, request.args.get("q"))

def concatenated(conn, value):
    sql = "SELECT * FROM runs WHERE status = '" + str(value) + "'"
    return conn.execute(sql)

def through_a_loop(conn, names):
    for name in names:
        conn.execute(f"SELECT count(*) FROM {name}")

def _pair(request):
    return request.args["path"], request.args["name"]

def starred(conn, request):
    _attach(conn, *_pair(request))

def _attach(conn, path, schema):
    conn.execute(f"ATTACH DATABASE ? AS {schema}", (path,))

def _stage(path):
    return path, f"stage_{next(_numbers)}"

def starred_fine(conn, path):
    _attach_fine(conn, *_stage(path))

def _attach_fine(conn, path, schema):
    conn.execute(f"ATTACH DATABASE ? AS {schema}", (path,))

def fine(conn, user_id, path):
    conn.execute(f"SELECT * FROM {TABLE} WHERE user_id = ?", (user_id,))
    conn.execute(text(f"SELECT * FROM {runs.name} WHERE id = :id"), {"id": user_id})
    conn.execute(select(runs).where(runs.c.id == user_id))
    conn.execute(f"ATTACH DATABASE ? AS stage_{next(_numbers)}", (path,))
    for name in ("users", "videos"):
        conn.execute(f"SELECT count(*) FROM {name}")
    columns = ", ".join(f"max({c.name})" for c in runs.columns)
    conn.execute(f"SELECT {columns} FROM {runs.name}")
"""


def test_the_static_check_catches_input_in_sql_text():
    """The analysis on code written to be injectable: it must flag every function but the last."""
    sources = {"recgen.store.schema": "runs = None\n", "injectable": INJECTABLE}
    found = unsafe_sql(SqlSources(sources, reviewed={}))
    flagged = {source.split(":")[1] for source in found}
    assert flagged == {"user_page", "by_percent", "caller", "concatenated", "through_a_loop", "starred"}, found


def test_sql_text_in_recgen_is_built_from_constants_and_schema_names_only():
    analysis = SqlSources(recgen_sources())
    sinks = list(analysis.sinks())
    assert len(sinks) >= 30
    # The canned queries go to Datasette as text: analysed too.
    found = unsafe_sql(analysis, [("recgen.plugin.queries", "CANNED_QUERIES"), ("recgen.plugin.queries", "VARIANTS")])
    assert not found, "SQL text built from values that are not constants or schema names:\n" + "\n".join(
        f"  {source}\n      -> {calls[0]}" for source, calls in sorted(found.items())
    )
    # The check saw the places that do interpolate: the views, the FTS index, the report's counts.
    interpolating = [
        call for module, call, sql in sinks if any(isinstance(n, ast.FormattedValue) for n in ast.walk(sql))
    ]
    assert len(interpolating) >= 8
    # Every trusted name that reaches SQL text is plain data: a string, numbers, names, or schema objects.
    for module, name in sorted(analysis.trusted_names):
        value = getattr(importlib.import_module(module), name)
        values = list(value.values()) + list(value) if isinstance(value, dict) else value
        if isinstance(values, (list, tuple, set, frozenset)):
            assert all(isinstance(v, (str, int, float, sqlalchemy.Table)) for v in values), (module, name)
        else:
            assert isinstance(value, (str, int, float, sqlalchemy.Table, sqlalchemy.MetaData)), (module, name, value)


def _placeholders(sql: str) -> set[str]:
    without_comments = re.sub(r"--[^\n]*", "", sql)  # a comment may hold an apostrophe ("user's")
    without_literals = re.sub(r"'(?:[^']|'')*'", "''", without_comments)
    return set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", without_literals))


def test_every_canned_query_takes_its_values_as_named_parameters():
    for name, query in CANNED_QUERIES.items():
        assert _placeholders(query["sql"]) == set(query["params"]), name
        assert "{" not in query["sql"] and "%s" not in query["sql"], name  # no template left for anyone to fill
    for name, (_table, sql) in VARIANTS.items():
        assert _placeholders(sql) == set(CANNED_QUERIES[name]["params"]), name
