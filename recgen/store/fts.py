"""SQLite-only publishing extras: full-text search over videos, and fresh planner statistics.

`refresh(engine)` runs after ingest and publish. It keeps `videos_fts` (an FTS5 index over each video's
caption, cover text, topic tags and category names; rowid = video_id) in step with `videos`, then runs
`PRAGMA optimize`. Datasette shows a search box on `videos` through the plugin's metadata
(`fts_table: videos_fts`, `fts_pk: video_id`), and the canned query `who_gets_videos_about` searches it.

Why not sqlite-utils' `enable_fts` as is: it indexes the raw text, and SQLite's `unicode61` tokenizer sees
a run of Chinese characters as one word, so `美食` would never match the caption `今天的美食分享`. KuaiRec's
text is Chinese. recgen therefore stores each CJK character as its own token (`今 天 的 美 食 分 享`) in a
contentful FTS5 table and turns a query's Chinese words into phrases (`"美 食"`), which match the
characters in sequence; Latin words are indexed and matched as usual (case- and accent-insensitive). The
index is rebuilt only when the videos' text changed: the comparison reads 10,728 rows and takes
milliseconds, the rebuild well under a second.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from recgen.store.engine import sqlite_file

if TYPE_CHECKING:
    import sqlite_utils

FTS_TABLE = "videos_fts"
FTS_SOURCE = "videos"
FTS_PK = "video_id"
FTS_COLUMNS = (
    "caption",
    "manual_cover_text",
    "topic_tag",
    "first_level_category_name",
    "second_level_category_name",
    "third_level_category_name",
)
FTS_TOKENIZER = "unicode61 remove_diacritics 2"
ANALYSIS_LIMIT = 1000
QUERY_FUNCTION = "recgen_fts_query"  # the SQL function canned queries use to build a MATCH expression

# Scripts written without spaces between words: Han ideographs (with extensions and compatibility forms),
# kana, Hangul syllables. Each character becomes a token of its own.
_CJK = re.compile("([\u2e80-\u2fdf\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])")
_SPACES = re.compile(r"\s+")
_PHRASE = re.compile(r'"([^"]*)"')
_TERM = re.compile(r'"[^"]*"|[^\s"]+')


def segment(value: str | None) -> str | None:
    """Text as indexed: every CJK character separated by spaces, so it is one token (None stays None)."""
    if value is None:
        return None
    return _SPACES.sub(" ", _CJK.sub(r" \1 ", str(value))).strip()


def fts_query(query: str | None) -> str:
    """A safe FTS5 MATCH expression for what a person typed: every word must occur (AND).

    Each word or "quoted phrase" becomes a quoted phrase, so FTS5 operators and punctuation are taken
    literally; Chinese words become phrases of their characters. An empty query matches nothing.
    """
    terms = [t.strip('"') for t in _TERM.findall(query or "")]
    phrases = [segment(t.replace('"', "")) for t in terms]
    return " ".join(f'"{p}"' for p in phrases if p) or '""'


def escape_fts(query: str | None) -> str:
    """Datasette's table search box, CJK-aware: Datasette's own escaping, each phrase segmented."""
    from datasette.utils import escape_fts as datasette_escape_fts

    escaped = datasette_escape_fts(query or "")
    return _PHRASE.sub(lambda m: '"' + (segment(m.group(1)) or "") + '"', escaped)


def register_functions(conn) -> None:
    """Register the search helpers on a sqlite3 connection (the plugin does this for Datasette's)."""
    conn.create_function(QUERY_FUNCTION, 1, fts_query, deterministic=True)
    conn.create_function("escape_fts", 1, escape_fts, deterministic=True)


def refresh(engine: Engine) -> None:
    """Bring `videos_fts` up to date with `videos` (rebuilt only if the text changed), then `PRAGMA optimize`.

    A no-op for databases other than SQLite files, and for a database without a `videos` table yet.
    """
    if sqlite_file(engine) is None:
        return
    import sqlite_utils  # SQLite's publishing extras only: the plugin's use of this module needs none of it

    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        db = sqlite_utils.Database(raw)
        if db[FTS_SOURCE].exists():
            expected = _expected_rows(db)
            if not db[FTS_TABLE].exists() or _indexed_rows(db) != expected:
                _rebuild(db, expected)
        # Approximate statistics (at most ANALYSIS_LIMIT rows read per index) keep ANALYZE short on any size.
        raw.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
        raw.execute("ANALYZE")
        raw.execute("PRAGMA optimize")
        raw.commit()


def _expected_rows(db: sqlite_utils.Database) -> list[tuple]:
    columns = ", ".join(FTS_COLUMNS)
    rows = db.execute(f"SELECT {FTS_PK}, {columns} FROM {FTS_SOURCE} ORDER BY {FTS_PK}").fetchall()
    return [(row[0], *(segment(v) for v in row[1:])) for row in rows]


def _indexed_rows(db: sqlite_utils.Database) -> list[tuple]:
    columns = ", ".join(FTS_COLUMNS)
    try:
        return db.execute(f"SELECT rowid, {columns} FROM {FTS_TABLE} ORDER BY rowid").fetchall()
    except Exception:  # an index of another shape (e.g. made by hand): rebuild it
        return []


def _rebuild(db: sqlite_utils.Database, rows: list[tuple]) -> None:
    columns = ", ".join(FTS_COLUMNS)
    marks = ", ".join("?" * (len(FTS_COLUMNS) + 1))
    conn = db.conn
    if conn.in_transaction:
        conn.commit()
    conn.execute("BEGIN IMMEDIATE")  # one transaction: readers see the old index or the new one
    try:
        conn.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
        conn.execute(f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5({columns}, tokenize = '{FTS_TOKENIZER}')")
        conn.executemany(f"INSERT INTO {FTS_TABLE} (rowid, {columns}) VALUES ({marks})", rows)
        conn.execute(f"INSERT INTO {FTS_TABLE} ({FTS_TABLE}) VALUES ('optimize')")
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
