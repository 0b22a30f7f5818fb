"""The Datasette plugin, through Datasette itself: its in-process client and the real `datasette` CLI."""

import asyncio
import hashlib
import json
import re
import shutil
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import sqlite_utils
from conftest import backup_copy, datasette_server
from datasette.app import Datasette
from sqlalchemy import insert

from recgen.plugin.queries import CANNED_QUERIES
from recgen.report.write import write_report
from recgen.store import fts, schema
from recgen.store.engine import get_engine, migrate

BASELINES = ("seed", "item_mean", "popularity", "random")
# run_metrics rows of the published run: (model_name, metric) -> value
PUBLISHED_METRICS = {
    (model, metric): value
    for model, values in {
        "model": (0.61, 0.31, 0.42),
        "random": (0.40, 0.05, 0.99),
        "popularity": (0.52, 0.20, 0.01),
        "item_mean": (0.55, 0.22, 0.10),
    }.items()
    for metric, value in zip(("ndcg@50", "hit_ratio@50", "coverage@50"), values, strict=True)
}


def _fill(conn) -> None:
    conn.execute(
        insert(schema.videos),
        [
            {
                "video_id": 101,
                "tags": "[27, 9]",
                "caption": "猫咪日常",
                "first_level_category_name": "宠物",
                "video_duration": 12345.0,
            },
            {
                "video_id": 102,
                "tags": "[3]",
                "caption": "做饭",
                "first_level_category_name": "美食",
                "video_duration": 60000.0,
            },
            {
                "video_id": 103,
                "tags": "[]",
                "caption": None,
                "first_level_category_name": None,
                "video_duration": 7000.0,
            },
        ],
    )
    conn.execute(
        insert(schema.users),
        [{"user_id": 7, "user_active_degree": "full_active"}, {"user_id": 8, "user_active_degree": None}],
    )
    conn.execute(
        insert(schema.models),
        [
            {
                "id": 1,
                "name": "seed",
                "path": "output/models/1.keras",
                "sha256": "ab" * 32,
                "architecture": "[]",
                "params": "{}",
                "n_parameters": 1234,
                "data_fingerprint": "cd" * 32,
                "settings_key": "ef" * 32,
                "created_at": "2024-05-01T02:10:00+00:00",
            }
        ],
    )
    run = {"model_name": "seed", "model_id": 1, "k": 50, "n_users": 2, "n_videos": 3, "ingest_seconds": 1.5}
    conn.execute(
        insert(schema.runs),
        [
            {
                **run,
                "id": 1,
                "started_at": "2024-05-01T02:00:00+00:00",
                "finished_at": "2024-05-01T02:20:00+00:00",
                "status": "published",
                "exit_code": 0,
                "trained": True,
                "n_recommendations": 5,
                "error": None,
            },
            {
                **run,
                "id": 2,
                "started_at": "2024-05-02T02:00:00+00:00",
                "finished_at": "2024-05-02T02:05:30+00:00",
                "status": "failed",
                "exit_code": 3,
                "trained": False,
                "n_recommendations": 2,
                "error": "evaluation failed",
            },
        ],
    )

    def rec(run_id, user_id, rank, video_id, score, source="model"):
        return {
            "run_id": run_id,
            "user_id": user_id,
            "rank": rank,
            "video_id": video_id,
            "score": score,
            "source": source,
        }

    conn.execute(
        insert(schema.recommendations),
        [
            rec(1, 7, 1, 101, 2.5),
            rec(1, 7, 2, 102, 1.75),
            rec(1, 7, 3, 103, 0.5, "popularity"),
            rec(1, 8, 1, 102, 3.0),
            rec(1, 8, 2, 101, 1.0),
            # The failed run's rows must never show through the latest_* views.
            rec(2, 7, 1, 103, 9.0),
            rec(2, 7, 2, 101, 8.0),
        ],
    )
    conn.execute(
        insert(schema.user_metrics),
        [
            {"run_id": 1, "user_id": 7, "n_items": 30, "n_relevant": 4, "ndcg": 0.6, "hit_ratio": 0.3},
            {"run_id": 1, "user_id": 8, "n_items": 25, "n_relevant": 2, "ndcg": 0.62, "hit_ratio": 0.32},
        ],
    )
    conn.execute(
        insert(schema.run_metrics),
        [{"run_id": 1, "model_name": m, "metric": k, "value": v} for (m, k), v in PUBLISHED_METRICS.items()]
        + [
            {"run_id": 2, "model_name": "model", "metric": "ndcg@50", "value": 0.11},
            {"run_id": 2, "model_name": "random", "metric": "ndcg@50", "value": 0.12},
        ],
    )


@pytest.fixture(scope="module")
def recs_db_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "recs.db"
    engine = get_engine(path)
    migrate(engine)
    with engine.begin() as conn:
        _fill(conn)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture
def recs_db(recs_db_template, tmp_path):
    """A migrated recgen database with one published run and a newer failed one (a fresh copy per test)."""
    path = tmp_path / "recs.db"
    shutil.copyfile(recs_db_template, path)
    return path


def fingerprint(path) -> tuple:
    """The file's bytes and its logical content: both must survive any request unchanged."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    dump = hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    conn.close()
    return hashlib.sha256(path.read_bytes()).hexdigest(), dump


def fetch(ds: Datasette, *paths: str, method: str = "get", **kwargs) -> list:
    async def run():
        return [await getattr(ds.client, method)(p, **kwargs) for p in paths]

    return asyncio.run(run())


def fetch_json(ds: Datasette, path: str):
    (response,) = fetch(ds, path)
    assert response.status_code == 200, response.text
    return response.json()


def query_rows(ds: Datasette, name: str, **params) -> list[dict]:
    query = urllib.parse.urlencode({**params, "_shape": "array"})
    return fetch_json(ds, f"/recs/{name}.json?{query}")


def recgen_columns(path) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
    columns = {n: [r[1] for r in conn.execute(f"PRAGMA table_info([{n}])")] for n in names}
    conn.close()
    return columns


def test_plugin_is_loaded(recs_db):
    plugins = fetch_json(Datasette([str(recs_db)]), "/-/plugins.json")
    (plugin,) = [p for p in plugins if p["name"] == "recgen"]
    assert {"get_metadata", "canned_queries", "prepare_connection", "register_routes", "menu_links"} <= set(
        plugin["hooks"]
    )


def test_every_table_view_and_column_is_described(recs_db):
    ds = Datasette([str(recs_db)])
    metadata = fetch_json(ds, "/-/metadata.json")
    assert metadata["title"].startswith("recgen")
    assert metadata["description"]
    tables = metadata["databases"]["recs"]["tables"]
    actual = recgen_columns(recs_db)
    assert set(schema.VIEWS) <= set(actual)
    assert_every_column_described(tables, actual)
    # Views inherit their table's column descriptions; units are part of the descriptions.
    assert tables["latest_recommendations"]["columns"] == tables["recommendations"]["columns"]
    assert "(s)" in tables["runs"]["columns"]["train_seconds"]
    assert "milliseconds" in tables["videos"]["columns"]["video_duration"]
    # The table page shows them too.
    page = fetch(ds, "/recs/runs")[0].text
    assert schema.runs.comment in page
    assert schema.runs.c.train_seconds.comment in page


def test_internal_and_fts_tables_are_hidden(recs_db):
    sqlite_utils.Database(recs_db)["videos"].enable_fts(["caption"])
    ds = Datasette([str(recs_db)])
    tables = {t["name"]: t for t in fetch_json(ds, "/recs.json")["tables"]}
    hidden = {name for name, t in tables.items() if t["hidden"]}
    assert "alembic_version" in hidden
    assert {"videos_fts", "videos_fts_data", "videos_fts_idx", "videos_fts_docsize", "videos_fts_config"} <= hidden
    assert not hidden & {"runs", "recommendations", "videos", "run_metrics"}
    assert fetch_json(ds, "/recs/runs.json?_shape=array")[0]["id"] == 2  # sort_desc id: newest first


def test_canned_queries_are_read_only_and_documented(recs_db):
    queries = {q["name"]: q for q in fetch_json(Datasette([str(recs_db)]), "/recs.json")["queries"]}
    assert {"user_recommendations", "model_vs_baselines", "run_history"} <= set(queries)
    for name, query in queries.items():
        assert not query.get("write"), name
        assert query["title"] and query["description"] and query["params"], name
        sql = query["sql"].lstrip().upper()
        assert sql.startswith(("SELECT", "WITH")), name
        assert not re.search(r"\b(INSERT|UPDATE|DELETE|REPLACE|DROP|CREATE|ALTER|ATTACH|PRAGMA|VACUUM)\b", sql), name


def test_user_recommendations_are_the_published_run(recs_db):
    ds = Datasette([str(recs_db)])
    rows = query_rows(ds, "user_recommendations", user_id=7)
    assert [(r["rank"], r["video_id"], r["score"], r["source"]) for r in rows] == [
        (1, 101, 2.5, "model"),
        (2, 102, 1.75, "model"),
        (3, 103, 0.5, "popularity"),
    ]
    assert {r["run_id"] for r in rows} == {1}  # not the newer failed run
    assert rows[0]["caption"] == "猫咪日常"
    assert rows[0]["category"] == "宠物"
    assert rows[0]["duration_seconds"] == 12.3
    assert [r["video_id"] for r in query_rows(ds, "user_recommendations", user_id=8)] == [102, 101]
    assert query_rows(ds, "user_recommendations") == rows  # defaults to the first user with recommendations
    assert query_rows(ds, "user_recommendations", user_id=999) == []


def test_model_vs_baselines_pivots_the_published_run(recs_db):
    ds = Datasette([str(recs_db)])
    rows = query_rows(ds, "model_vs_baselines")
    assert [r["metric"] for r in rows] == ["coverage@50", "hit_ratio@50", "ndcg@50"]
    for row in rows:
        assert list(row) == ["metric", "model", *BASELINES]
        for model in ("model", *BASELINES):
            assert row[model] == PUBLISHED_METRICS.get((model, row["metric"]))  # no seed rows: NULL
    older = query_rows(ds, "model_vs_baselines", run_id=2)
    assert older == [
        {"metric": "ndcg@50", "model": 0.11, "seed": None, "item_mean": None, "popularity": None, "random": 0.12}
    ]


def test_run_history(recs_db):
    ds = Datasette([str(recs_db)])
    rows = query_rows(ds, "run_history")
    assert [(r["run_id"], r["status"], r["model_was"], r["exit_code"]) for r in rows] == [
        (2, "failed", "reloaded", 3),
        (1, "published", "trained", 0),
    ]
    failed, published = rows
    assert published["ndcg@k"] == 0.61 and published["hit_ratio@k"] == 0.31
    assert failed["ndcg@k"] == 0.11 and failed["hit_ratio@k"] is None
    assert published["wall_seconds"] == 1200.0 and failed["wall_seconds"] == 330.0
    assert published["ingest_seconds"] == 1.5 and published["n_recommendations"] == 5
    assert failed["error"] == "evaluation failed"
    assert [r["run_id"] for r in query_rows(ds, "run_history", status="published")] == [1]


def test_top_recommended_videos(recs_db):
    rows = query_rows(Datasette([str(recs_db)]), "top_recommended_videos", limit=2)
    assert [(r["video_id"], r["n_users"], r["mean_rank"]) for r in rows] == [(101, 2, 1.5), (102, 2, 1.5)]


WRITES = [
    "INSERT INTO runs (started_at, status) VALUES ('2024-06-01', 'published')",
    "UPDATE runs SET status = 'published' WHERE id = 2",
    "DELETE FROM recommendations",
    "DROP TABLE runs",
    "ATTACH DATABASE 'other.db' AS other",
    "PRAGMA journal_mode=DELETE",
    "WITH doomed AS (SELECT 1) DELETE FROM recommendations",  # passes Datasette's SELECT check
    "SELECT 1; DELETE FROM recommendations",
]


@pytest.mark.parametrize("sql", WRITES)
def test_writes_through_the_sql_endpoint_fail(recs_db, sql):
    before = fingerprint(recs_db)
    ds = Datasette([str(recs_db)])
    (response,) = fetch(ds, "/recs.json?" + urllib.parse.urlencode({"sql": sql}))
    assert response.status_code >= 400
    assert response.json()["ok"] is False
    assert fingerprint(recs_db) == before


def test_posts_to_canned_queries_write_nothing(recs_db):
    before = fingerprint(recs_db)
    ds = Datasette([str(recs_db)])
    paths = [f"/recs/{name}" for name in CANNED_QUERIES]
    for response in fetch(ds, *paths, method="post", data={"user_id": "7", "sql": "DELETE FROM runs"}):
        # Datasette 0.65 answers a POST to a read-only canned query with an error; a write would redirect.
        assert response.status_code >= 400
    assert fingerprint(recs_db) == before


def test_even_datasette_write_api_is_refused(recs_db):
    before = fingerprint(recs_db)
    db = Datasette([str(recs_db)]).get_database("recs")
    with pytest.raises(sqlite3.OperationalError, match="readonly|query_only"):
        asyncio.run(db.execute_write("DELETE FROM recommendations"))
    assert fingerprint(recs_db) == before


def test_other_databases_are_left_alone(recs_db, tmp_path):
    other = tmp_path / "other.db"
    sqlite_utils.Database(other)["runs"].insert({"id": 1, "note": "a runs table alone is not recgen"})
    alone = Datasette([str(other)])
    assert fetch_json(alone, "/-/metadata.json") == {}
    assert fetch_json(alone, "/other.json")["queries"] == []

    both = Datasette([str(recs_db), str(other)])
    assert set(fetch_json(both, "/-/metadata.json")["databases"]) == {"recs"}
    assert fetch_json(both, "/other.json")["queries"] == []
    asyncio.run(both.get_database("other").execute_write("INSERT INTO runs (id, note) VALUES (2, 'writable')"))
    assert sqlite_utils.Database(other)["runs"].count == 2


def test_a_database_that_becomes_recgen_is_noticed(tmp_path):
    path = tmp_path / "recs.db"
    sqlite_utils.Database(path)["notes"].insert({"id": 1})
    ds = Datasette([str(path)])
    assert fetch_json(ds, "/-/metadata.json") == {}
    migrate(get_engine(path))  # e.g. the first run-batch while Datasette is already serving the file
    assert fetch_json(ds, "/-/metadata.json")["databases"]["recs"]["tables"]["runs"]["sort_desc"] == "id"
    assert "run_history" in {q["name"] for q in fetch_json(ds, "/recs.json")["queries"]}


def _get_json(url: str, deadline: float):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_datasette_cli_serves_metadata_and_queries(recs_db, tmp_path):
    before = fingerprint(recs_db)
    with datasette_server(recs_db, tmp_path / "datasette.log") as base:
        metadata = _get_json(f"{base}/-/metadata.json", deadline=time.monotonic() + 20)
        assert metadata["databases"]["recs"]["tables"]["runs"]["description"] == schema.runs.comment
        rows = _get_json(f"{base}/recs/user_recommendations.json?user_id=8&_shape=array", time.monotonic() + 5)
        assert [r["video_id"] for r in rows] == [102, 101]
    assert fingerprint(recs_db) == before


# ---------------------------------------------------------------- on a real run: FTS, queries, pages, report

SEARCH_COLUMNS = fts.FTS_COLUMNS


@pytest.fixture(scope="module")
def refreshed(published, tmp_path_factory):
    """A copy of the published database after fts.refresh (FTS, ANALYZE) and write_report beside it."""
    db, _ = published
    path = backup_copy(db, tmp_path_factory.mktemp("refreshed") / "recs.db")
    engine = get_engine(path)
    fts.refresh(engine)
    write_report(engine, path.parent / "report")
    engine.dispose()
    return path


def like_matches(path, word: str) -> set[int]:
    conn = sqlite3.connect(path)
    where = " OR ".join(f"{c} LIKE ?" for c in SEARCH_COLUMNS)
    rows = conn.execute(f"SELECT video_id FROM videos WHERE {where}", [f"%{word}%"] * len(SEARCH_COLUMNS))
    found = {r[0] for r in rows}
    conn.close()
    return found


def test_segmenting_and_query_escaping():
    assert fts.segment("今天做饭 cooking!") == "今 天 做 饭 cooking!"
    assert fts.segment(None) is None
    assert fts.fts_query("做饭 Cooking") == '"做 饭" "Cooking"'
    assert fts.fts_query('a "b c" OR NEAR(') == '"a" "b c" "OR" "NEAR("'
    assert fts.fts_query("") == '""'
    assert fts.escape_fts("美食 vlog") == '"美 食" "vlog"'


def search_video_ids(db, query: str, limit: int = 100) -> list[int]:
    """Video ids whose indexed text matches what a person typed, as the canned query searches them."""
    with sqlite3.connect(db) as conn:
        sql = f"SELECT rowid FROM {fts.FTS_TABLE} WHERE {fts.FTS_TABLE} MATCH ? ORDER BY rank, rowid LIMIT ?"
        return [row[0] for row in conn.execute(sql, (fts.fts_query(query), limit))]


def test_fts_finds_latin_and_chinese_words(refreshed):
    cooking = set(search_video_ids(refreshed, "cooking", limit=100_000))
    assert cooking and cooking <= like_matches(refreshed, "cooking")  # whole words only, any case
    food = set(search_video_ids(refreshed, "美食", limit=100_000))
    assert like_matches(refreshed, "美食") <= food  # every caption or category containing the two characters
    assert set(search_video_ids(refreshed, "COOKING", limit=100_000)) == cooking
    assert search_video_ids(refreshed, "zzzznotaword") == []


def test_refresh_rebuilds_only_when_the_text_changed(refreshed, tmp_path):
    path = backup_copy(refreshed, tmp_path / "recs.db")
    engine = get_engine(path)
    version = lambda: sqlite3.connect(path).execute("PRAGMA schema_version").fetchone()[0]  # noqa: E731
    before = version()
    fts.refresh(engine)  # unchanged videos: the index is kept
    assert version() == before
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE videos SET caption = 'xylophonequest' WHERE video_id = (SELECT min(video_id) FROM videos)"
        )
    fts.refresh(engine)
    assert version() > before
    assert len(search_video_ids(path, "xylophonequest")) == 1
    fts.refresh(get_engine("sqlite://"))  # not a file: nothing to do


def test_every_canned_query_returns_rows_and_writes_nothing(refreshed):
    before = fingerprint(refreshed)
    ds = Datasette([str(refreshed)])
    offered = {q["name"] for q in fetch_json(ds, "/recs.json")["queries"]}
    assert len(offered) >= 8
    assert offered == set(CANNED_QUERIES)
    params = {"who_gets_videos_about": {"q": "cooking"}}
    for name in sorted(offered - {"rejected_rows_by_reason"}):  # the tiny sample's files are clean
        rows = query_rows(ds, name, **params.get(name, {}))
        assert rows, name
    assert fingerprint(refreshed) == before


def test_query_answers_on_a_real_run(refreshed):
    ds = Datasette([str(refreshed)])
    conn = sqlite3.connect(refreshed)
    user = conn.execute("SELECT min(user_id) FROM latest_user_metrics").fetchone()[0]
    video = conn.execute(
        "SELECT video_id FROM latest_recommendations WHERE user_id = ? AND rank = 1", (user,)
    ).fetchone()[0]
    seen = conn.execute("SELECT video_id FROM train_interactions WHERE user_id = ? LIMIT 1", (user,)).fetchone()[0]
    conn.close()
    (row,) = query_rows(ds, "why_video_recommended", video_id=video, user_id=user)
    assert row["verdict_for_user"] == "recommended at rank 1" and row["n_users_recommended"] >= 1
    (row,) = query_rows(ds, "why_video_recommended", video_id=seen, user_id=user)
    assert row["verdict_for_user"].startswith("seen in training")
    mix = query_rows(ds, "category_mix")
    assert sum(r["recommended_share"] for r in mix) == pytest.approx(1, abs=0.01)
    assert sum(r["consumed_share"] for r in mix) == pytest.approx(1, abs=0.01)
    side = query_rows(ds, "user_recommendations_vs_history", user_id=user, history="top")
    ratios = [r["watch_ratio"] for r in side if r["watch_ratio"] is not None]
    assert ratios == sorted(ratios, reverse=True) and side[0]["recommended_video_id"] == video
    lists = {r["list"]: r for r in query_rows(ds, "fully_observed_top_k_vs_random")}
    assert lists["random k of the small matrix"]["pairs_per_user"] > 40  # k = 50 from a ~99%-dense matrix
    worst = query_rows(ds, "worst_served_users", limit=5)
    assert len(worst) == 5 and [r["ndcg"] for r in worst] == sorted(r["ndcg"] for r in worst)
    (about,) = query_rows(ds, "who_gets_videos_about", q="cooking", limit=1)
    assert "cooking" in " ".join(str(about[c]) for c in ("caption", "cover_text")).lower() or about["category"]


def test_search_box_on_videos_is_cjk_aware(refreshed):
    ds = Datasette([str(refreshed)])
    metadata = fetch_json(ds, "/-/metadata.json")["databases"]["recs"]["tables"]["videos"]
    assert metadata["fts_table"] == "videos_fts" and metadata["fts_pk"] == "video_id"
    rows = fetch_json(ds, "/recs/videos.json?" + urllib.parse.urlencode({"_search": "美食", "_shape": "array"}))
    assert rows and len(rows) >= min(len(like_matches(refreshed, "美食")), 100)


def assert_every_column_described(tables: dict, actual: dict[str, list[str]]) -> None:
    """Every table of the file (Alembic's own aside) and each of its columns has a description in metadata."""
    for name, columns in actual.items():
        if name == "alembic_version":
            continue
        assert tables[name]["description"], name
        for column in columns:
            assert tables[name]["columns"].get(column), f"{name}.{column} has no description"


def test_every_table_of_a_real_run_is_described(refreshed):
    tables = fetch_json(Datasette([str(refreshed)]), "/-/metadata.json")["databases"]["recs"]["tables"]
    actual = recgen_columns(refreshed)
    assert {"videos_fts", "videos_fts_content", "data_profile", "sqlite_stat1"} <= set(actual)
    assert_every_column_described(tables, actual)
    assert tables["videos_fts_content"]["hidden"] and tables["sqlite_stat1"]["hidden"]
    assert not tables["data_profile"].get("hidden")


def test_rejected_rows_are_grouped_by_file_and_reason(refreshed, tmp_path):
    path = backup_copy(refreshed, tmp_path / "recs.db")
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO rejected_rows (file, line, reason, file_sha256) VALUES (?, ?, ?, ?)",
        [("big_matrix.csv", 10, "bad watch_ratio", "0" * 64), ("big_matrix.csv", 12, "bad watch_ratio", "0" * 64)],
    )
    conn.commit()
    conn.close()
    rows = query_rows(Datasette([str(path)]), "rejected_rows_by_reason")
    assert rows == [
        {"file": "big_matrix.csv", "reason": "bad watch_ratio", "n_rows": 2, "first_line": 10, "last_line": 12}
    ]


def test_pages_render_with_charts(refreshed):
    ds = Datasette([str(refreshed)])
    conn = sqlite3.connect(refreshed)
    user = conn.execute("SELECT min(user_id) FROM latest_user_metrics").fetchone()[0]
    conn.close()
    dashboard, user_page, missing, report, image, links = fetch(
        ds,
        "/-/recgen/dashboard",
        f"/-/recgen/user/{user}",
        "/-/recgen/user/999999",
        "/-/recgen/report/",
        "/-/recgen/report/pca_videos.png",
        "/-/menu",
    )
    assert dashboard.status_code == 200
    assert dashboard.text.count("data:image/png;base64,") >= 4
    assert "Model vs baselines" in dashboard.text and "Coverage and popularity" in dashboard.text
    assert user_page.status_code == 200 and "Current recommendations" in user_page.text
    assert user_page.text.count("data:image/png;base64,") >= 1
    assert missing.status_code == 404 and "not in this database" in missing.text
    assert report.status_code == 200 and "Watch-ratio distribution" in report.text
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    index = fetch(ds, "/")[0].text
    assert "/-/recgen/dashboard" in index  # the navigation menu
    assert "-/recgen/dashboard?database=recs" in fetch(ds, "/recs")[0].text  # the database page


def test_pages_before_the_first_published_run(recs_db, tmp_path):
    empty = tmp_path / "empty" / "recs.db"
    migrate(get_engine(empty))
    ds = Datasette([str(empty)])
    dashboard, user_page, report = fetch(ds, "/-/recgen/dashboard", "/-/recgen/user/7", "/-/recgen/report/")
    assert dashboard.status_code == 200 and "No run has been published yet" in dashboard.text
    assert user_page.status_code == 404
    assert report.status_code == 404 and "recgen report" in report.text
    # A database with runs but none published (only the failed run 2 left): still a message, not a 500.
    conn = sqlite3.connect(recs_db)
    conn.execute("UPDATE runs SET status = 'failed'")
    conn.commit()
    conn.close()
    (dashboard,) = fetch(Datasette([str(recs_db)]), "/-/recgen/dashboard")
    assert dashboard.status_code == 200 and "No run has been published yet" in dashboard.text
