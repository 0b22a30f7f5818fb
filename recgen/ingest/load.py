"""The ingest stage: the seven KuaiRec CSVs into the input tables, reloading only files whose bytes changed.

A file is reloaded when its SHA-256 differs from its `source_files` row (or with `force`). All reloads of
one call happen in one transaction, together with their `source_files` rows, so a bad file anywhere
leaves the previous load fully in place and readers never see a mix of old and new inputs.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Table, bindparam, delete, func, insert, inspect, select, text, update

from recgen.constants import (
    BIG_MATRIX,
    CAPTION_CATEGORY,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    KUAIREC_FILES,
    MAX_REJECTED,
    MODEL_INPUTS,
    SMALL_MATRIX,
    SOCIAL_NETWORK,
    USER_FEATURES,
)
from recgen.errors import ConfigError, DataError
from recgen.ingest.dedup import exact_duplicates, keep_rows
from recgen.ingest.readers import (
    REJECTED_COLUMNS,
    read_captions,
    read_daily,
    read_friendships,
    read_interactions,
    read_item_categories,
    read_users,
    rejections,
)
from recgen.ingest.source import DataSource, locate_data
from recgen.progress import Reporter, as_reporter
from recgen.runtime import available_cores
from recgen.store.bulk import insert_frame, replace_rows
from recgen.store.cache import INTERACTION_FIELDS, read_interaction_cache, write_interaction_cache
from recgen.store.engine import checkpoint, checkpoint_deferred, migrate, utc_now
from recgen.store.schema import (
    INPUT_TABLES,
    eval_interactions,
    friendships,
    rejected_rows,
    source_files,
    train_interactions,
    users,
    video_daily,
    video_tags,
    videos,
)

VIDEO_FILES = (CAPTION_CATEGORY, ITEM_CATEGORIES, ITEM_DAILY_FEATURES)
INTERACTION_FILES = (BIG_MATRIX, SMALL_MATRIX)
CATALOGUE_FILES = (USER_FEATURES, *VIDEO_FILES)
# A new evaluation matrix is checked against the training log (no pair in both) by reloading big_matrix.
CHECKED_AGAINST = {BIG_MATRIX: (SMALL_MATRIX,)}
_LATEST_DAILY = ["author_id", "upload_dt", "upload_type", "video_type", "music_id", "video_tag_id", "video_tag_name"]
# Videos whose daily rows never give a duration; their duration comes from the interaction logs instead.
# NOT EXISTS, not NOT IN: PostgreSQL runs NOT IN over a subquery larger than work_mem row by row.
_NO_DAILY_DURATION = (
    "SELECT video_id FROM videos AS v WHERE NOT EXISTS "
    "(SELECT 1 FROM video_daily AS d WHERE d.video_id = v.video_id AND d.video_duration IS NOT NULL)"
)


@dataclass
class IngestResult:
    source: str  # the folder or zip read
    loaded: list[str] = field(default_factory=list)  # file names (re)loaded this time
    skipped: list[str] = field(default_factory=list)  # unchanged files (same sha256) not reloaded
    rows: dict[str, int] = field(default_factory=dict)  # table name -> rows now in it
    fingerprint: str = ""  # sha256 hex over the sorted (name, sha256) of all 7 files
    model_fingerprint: str = ""  # the same over the files models are built from (MODEL_INPUTS)
    duplicates_dropped: int = 0  # exact duplicate big_matrix rows dropped this time
    rejected: dict[str, int] = field(default_factory=dict)  # file name -> rows set aside this time
    rejected_total: int = 0  # rows in rejected_rows now, for the files loaded now


def fingerprint(hashes: dict[str, str]) -> str:
    """One SHA-256 over the sorted (file name, file SHA-256) pairs: changes when any input file changes."""
    lines = "".join(f"{name}\t{sha}\n" for name, sha in sorted(hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def data_fingerprint(engine: Engine) -> str | None:
    """The fingerprint of the files loaded now (from `source_files`), or None if nothing was loaded."""
    if not inspect(engine).has_table(source_files.name):
        return None
    with engine.connect() as conn:
        hashes = dict(conn.execute(select(source_files.c.name, source_files.c.sha256)).all())
    return fingerprint(hashes) if hashes else None


def ingest(
    engine: Engine,
    source: Path | str,
    *,
    force: bool = False,
    max_rejected: float = MAX_REJECTED,
    progress: Reporter | Callable[[str], None] | None = None,
) -> IngestResult:
    """Load the KuaiRec CSVs of `source` (a folder in any KuaiRec layout, or KuaiRec.zip) into the database.

    Only files whose SHA-256 changed are reloaded (all of them with `force`), with the interaction files
    that are checked against them. Raises MissingInputError if a file is missing and DataError (one line
    naming file, column or line) if one cannot be used; in both cases the database keeps its previous
    contents. Policy for bad input (the README's table):

    - a file that is missing, empty, has a missing or renamed column, a line with too few or too many
      fields (truncated), bytes that are not UTF-8, or a bad value in a catalogue file (users, videos,
      categories, daily features, friends): the whole load is refused;
    - an interaction row (big_matrix, small_matrix) with a missing, unparsable or impossible value, an id
      absent from the catalogue, a (user, video) pair repeated in small_matrix, or a big_matrix pair that
      is in small_matrix (evaluation data leaking into training): the row is set aside in `rejected_rows`
      with its line and reason, the rest of the file loads, unless more than `max_rejected` of the file's
      rows are set aside, which refuses the load.
    """
    if not 0 <= max_rejected <= 1:
        raise ConfigError(f"--max-rejected must be a share between 0 and 1, not {max_rejected}")
    reporter = as_reporter(progress)
    say = reporter.log
    migrate(engine)
    data = locate_data(source)
    data.require_all()
    # Hashed by threads (hashlib releases the GIL), the largest first, so big_matrix has a thread to itself.
    # Not beside the load's parsing, which keeps both cores busy already.
    names = sorted(KUAIREC_FILES, key=data.size, reverse=True)
    with ThreadPoolExecutor(max_workers=available_cores()) as hashing:
        hashes = dict(zip(names, hashing.map(data.sha256, names), strict=True))
    with engine.connect() as conn:
        stored = dict(conn.execute(select(source_files.c.name, source_files.c.sha256)).all())
    changed = {name for name in KUAIREC_FILES if force or stored.get(name) != hashes[name]}
    changed |= {name for name, others in CHECKED_AGAINST.items() if changed & set(others)}
    changed = [name for name in KUAIREC_FILES if name in changed]
    result = IngestResult(
        source=str(data.root),
        loaded=changed,
        skipped=[name for name in KUAIREC_FILES if name not in changed],
        fingerprint=fingerprint(hashes),
        model_fingerprint=fingerprint({name: hashes[name] for name in MODEL_INPUTS}),
    )
    for name in result.skipped:
        say(f"{name}: unchanged (same sha256), skipped")
    if changed:
        with engine.connect() as conn:
            with checkpoint_deferred(conn), conn.begin():
                load = _Load(conn, data, hashes, say, reporter.progress("loading", len(changed), "files"), max_rejected)
                result.duplicates_dropped = load.run(changed)
                result.rejected = load.rejected
    with ThreadPoolExecutor(max_workers=1) as background:
        # What the load committed is copied from the log into the database file by a thread (mostly I/O) while
        # this one writes the cache and counts the rows.
        checkpointed = background.submit(checkpoint, engine)
        if changed:
            # The interaction frames are in memory now: the features stage reads them from this cache instead
            # of pulling 11.5M rows back out of SQLite. Written after the commit, keyed by the committed load.
            for table, frame in load.interactions.items():
                write_interaction_cache(engine, table, {name: frame[name].to_numpy() for name in INTERACTION_FIELDS})
            del load
        with engine.connect() as conn:
            result.rows = {
                name: conn.execute(select(func.count()).select_from(t)).scalar_one() for name, t in INPUT_TABLES.items()
            }
            result.rejected_total = conn.execute(select(func.count()).select_from(rejected_rows)).scalar_one()
        checkpointed.result()
    return result


class _Load:
    """The reload of the changed files, inside the caller's transaction."""

    def __init__(
        self,
        conn: Connection,
        data: DataSource,
        hashes: dict[str, str],
        say: Callable[[str], None],
        tick: Callable[[int], None],
        max_rejected: float,
    ):
        self.conn, self.data, self.hashes, self.say, self.tick = conn, data, hashes, say, tick
        self.max_rejected = max_rejected
        self.records: list[dict] = []
        self.rejected: dict[str, int] = {}
        # Reloaded logs, by table: the cached columns and video_duration (for `_fill_durations_from_interactions`).
        self.interactions: dict[str, pd.DataFrame] = {}

    def run(self, changed: list[str]) -> int:
        # A DELETE first: pysqlite opens its transaction at the first DML statement, and the index DDL of
        # the bulk loads below must run inside it to be rolled back if a later file fails.
        self.conn.execute(delete(source_files).where(source_files.c.name.in_(changed)))
        duplicates = 0
        if USER_FEATURES in changed:
            start = time.perf_counter()
            frame = read_users(self.data)
            self._simple(USER_FEATURES, users, frame, len(frame), start)
        if SOCIAL_NETWORK in changed:
            start = time.perf_counter()
            frame, rows_in_file = read_friendships(self.data)
            self._simple(SOCIAL_NETWORK, friendships, frame, rows_in_file, start)
        daily_summary = None
        if ITEM_DAILY_FEATURES in changed:
            daily_summary = self._daily()
        if set(VIDEO_FILES) & set(changed):
            self._videos(changed, daily_summary)
        # The catalogue is in place (in this transaction): the interaction rows are checked against it.
        if set(CATALOGUE_FILES) & set(changed):
            for name, table in ((SMALL_MATRIX, eval_interactions), (BIG_MATRIX, train_interactions)):
                if name not in changed and _has_unknown_ids(self.conn, table):
                    self.say(f"{name}: unchanged, but some rows refer to ids no longer in the catalogue: reloaded")
                    changed.append(name)
        if SMALL_MATRIX in changed:
            self._small()
        if BIG_MATRIX in changed:
            duplicates = self._big()
        if set(VIDEO_FILES + INTERACTION_FILES) & set(changed):
            _fill_durations_from_interactions(self.conn, self.interactions)
        self.conn.execute(insert(source_files), self.records)
        return duplicates

    def _record(self, name: str, table: Table, rows: int, rows_in_file: int) -> None:
        self.records.append(
            {
                "name": name,
                "path": self.data.path_of(name),
                "sha256": self.hashes[name],
                "size_bytes": self.data.size(name),
                "rows": rows,
                "rows_in_file": rows_in_file,
                "table_name": table.name,
                "loaded_at": utc_now(),
            }
        )
        self.tick(len(self.records))  # one record per file loaded

    def _simple(self, name: str, table: Table, frame: pd.DataFrame, rows_in_file: int, start: float) -> None:
        replace_rows(self.conn, table, frame)
        self._record(name, table, len(frame), rows_in_file)
        self.say(f"{name}: {rows_in_file:,} rows -> {len(frame):,} {table.name} rows, {_since(start)}")

    def _daily(self) -> pd.DataFrame:
        start = time.perf_counter()
        daily = read_daily(self.data)
        replace_rows(self.conn, video_daily, daily)
        self._record(ITEM_DAILY_FEATURES, video_daily, len(daily), len(daily))
        self.say(f"{ITEM_DAILY_FEATURES}: {len(daily):,} rows, {_since(start)}")
        return summarise_daily(daily)

    def _big(self) -> int:
        start = time.perf_counter()
        frame, rejected = read_interactions(self.data, BIG_MATRIX)
        rows_in_file = len(frame) + len(rejected)
        # The duplicates are found by a thread beside the checks (numpy and pandas release the GIL). The checks
        # set aside all the copies of a row or none (`_check`), so the duplicates found among all the rows,
        # less those set aside, are the duplicates among the rows kept.
        with ThreadPoolExecutor(max_workers=1) as background:
            repeated = background.submit(exact_duplicates, frame, ("user_id", "timestamp"))
            leaked = self._evaluated_pairs(frame["user_id"], frame["video_id"])
            leak = f"(user_id, video_id) pair is in {SMALL_MATRIX}, the evaluation matrix"
            aside = self._check(BIG_MATRIX, frame, rejected, rows_in_file, [(leaked, None, leak)])
            repeated = repeated.result()
        dropped = int(np.count_nonzero(repeated & ~aside))
        frame = keep_rows(frame, ~(aside | repeated))
        replace_rows(self.conn, train_interactions, frame)
        self.interactions[train_interactions.name] = frame[[*INTERACTION_FIELDS, "video_duration"]]
        self._record(BIG_MATRIX, train_interactions, len(frame), rows_in_file)
        self.say(f"{BIG_MATRIX}: {rows_in_file:,} rows, {dropped:,} duplicates dropped, {_since(start)}")
        return dropped

    def _small(self) -> None:
        start = time.perf_counter()
        frame, rejected = read_interactions(self.data, SMALL_MATRIX)
        rows_in_file = len(frame) + len(rejected)
        repeated = frame.duplicated(["user_id", "video_id"]).to_numpy()
        repeats = "(user_id, video_id) pair repeats an earlier line (the first is kept)"
        aside = self._check(SMALL_MATRIX, frame, rejected, rows_in_file, [(repeated, None, repeats)])
        frame = keep_rows(frame, ~aside)
        replace_rows(self.conn, eval_interactions, frame)
        self.interactions[eval_interactions.name] = frame[[*INTERACTION_FIELDS, "video_duration"]]
        self._record(SMALL_MATRIX, eval_interactions, len(frame), rows_in_file)
        without_time = int(frame["time"].isna().sum())
        self.say(f"{SMALL_MATRIX}: {len(frame):,} rows ({without_time:,} without time), {_since(start)}")

    def _check(
        self,
        name: str,
        frame: pd.DataFrame,
        rejected: pd.DataFrame,
        rows_in_file: int,
        problems: list[tuple[np.ndarray, str | None, str]],
    ) -> np.ndarray:
        """Set aside the rows of `frame` whose user or video is not in the catalogue (users, videos) loaded
        now, then those under each of `problems` (mask, column, reason), each for the first reason that
        applies, and record them with the file's rows already `rejected` (`_reject`); returns the mask of
        the rows of `frame` set aside.

        The id and leak checks look at a row's user and video alone, so rows with the same pair are set aside
        together or kept together: a repeat or a duplicate found among all the rows of `frame` is one among
        the rows kept."""
        unknown = []
        for column, table in (("user_id", users), ("video_id", videos)):
            known = np.array(self.conn.execute(select(table.c[column])).scalars().all(), dtype=np.int64)
            unknown.append((~np.isin(frame[column].to_numpy(), known), column, f"{column} is not in {table.name}"))
        aside = np.zeros(len(frame), dtype=bool)
        moved = [rejected]
        for mask, column, reason in [*unknown, *problems]:
            new = mask & ~aside
            if new.any():
                moved.append(rejections(frame, new, column, reason))
                aside |= new
        self._reject(name, pd.concat(moved, ignore_index=True)[REJECTED_COLUMNS], rows_in_file)
        return aside

    def _evaluated_pairs(self, user_ids, video_ids) -> np.ndarray:
        """Which rows' (user_id, video_id) pair is in the evaluation matrix.

        Only a row whose user and video are both in that matrix can be: two table lookups find those rows
        (`np.isin` over small integer ids), and the pairs are looked up for them alone, by hash (`np.isin`
        would sort both sides). When the training rows avoid the evaluated pairs, as in KuaiRec, few are."""
        evaluated = self._eval_pair_keys()
        users, videos = np.asarray(user_ids, dtype=np.int64), np.asarray(video_ids, dtype=np.int64)
        both = np.isin(users, evaluated >> 32) & np.isin(videos, evaluated & 0xFFFFFFFF)
        leaked = np.zeros(len(users), dtype=bool)
        if both.any():
            leaked[both] = pd.Series(_pair_keys(users[both], videos[both])).isin(evaluated).to_numpy()
        return leaked

    def _eval_pair_keys(self) -> np.ndarray:
        """`_pair_keys` of the evaluation matrix's (user_id, video_id): loaded now, or as stored."""
        if eval_interactions.name in self.interactions:
            frame = self.interactions[eval_interactions.name]
            return _pair_keys(frame["user_id"], frame["video_id"])
        # From its interaction cache when that matches the stored load, else packed by SQLite, one int per row
        # straight into numpy (no (user, video) tuples).
        cached = read_interaction_cache(self.conn.engine, eval_interactions.name)
        if cached is not None:
            return _pair_keys(cached["user_id"], cached["video_id"])
        if self.conn.dialect.name == "postgresql":  # unchanged by this transaction: read as committed, by COPY
            from recgen.store import postgres

            stored = postgres.read_columns(self.conn.engine, eval_interactions.name, ("user_id", "video_id"))
            return _pair_keys(stored["user_id"], stored["video_id"])
        cursor = self.conn.connection.dbapi_connection.cursor()
        cursor.execute(f"SELECT (user_id << 32) | video_id FROM {eval_interactions.name}")
        keys = np.fromiter(itertools.chain.from_iterable(cursor), dtype=np.int64)
        cursor.close()
        return keys

    def _reject(self, name: str, rejected: pd.DataFrame, rows_in_file: int) -> None:
        """Record the file's set-aside rows, or refuse the load if they are too large a share of it."""
        self.conn.execute(delete(rejected_rows).where(rejected_rows.c.file == name))
        if rejected.empty:
            return
        rejected = rejected.sort_values("line", kind="stable")
        share = len(rejected) / max(rows_in_file, 1)
        first = rejected.iloc[0]
        example = f"first: line {first['line']}, {first['reason']}" + (
            f" ({first['value']!r})" if first["value"] is not None else ""
        )
        if share > self.max_rejected:
            raise DataError(
                f"{name}: {len(rejected):,} of {rows_in_file:,} rows ({share:.2%}) have bad values, more than the "
                f"{self.max_rejected:.2%} allowed (--max-rejected); {example}"
            )
        rows = rejected.assign(file=name, file_sha256=self.hashes[name])
        insert_frame(self.conn, rejected_rows, rows[[c.name for c in rejected_rows.columns if c.name != "id"]])
        self.rejected[name] = len(rejected)
        self.say(f"{name}: {len(rejected):,} rows ({share:.3%}) set aside in {rejected_rows.name}; {example}")

    def _videos(self, changed: list[str], daily_summary: pd.DataFrame | None) -> None:
        start = time.perf_counter()
        captions = read_captions(self.data)
        tags, pairs = read_item_categories(self.data)
        if daily_summary is None:  # unchanged, but its latest rows still describe the videos
            daily_summary = summarise_daily(read_daily(self.data))
        frame = build_videos(captions, tags, daily_summary)
        replace_rows(self.conn, videos, frame)
        if CAPTION_CATEGORY in changed:
            self._record(CAPTION_CATEGORY, videos, len(captions), len(captions))
            self.say(f"{CAPTION_CATEGORY}: {len(captions):,} rows -> videos")
        if ITEM_CATEGORIES in changed:
            replace_rows(self.conn, video_tags, pairs)
            self._record(ITEM_CATEGORIES, video_tags, len(pairs), len(tags))
            self.say(f"{ITEM_CATEGORIES}: {len(tags):,} rows -> {len(pairs):,} video_tags rows")
        self.say(f"videos: {len(frame):,} rows rebuilt, {_since(start)}")


def summarise_daily(daily: pd.DataFrame) -> pd.DataFrame:
    """Per video: the static attributes of its latest daily row and the median of its known durations."""
    latest = daily.sort_values(["video_id", "date"]).drop_duplicates("video_id", keep="last").set_index("video_id")
    summary = latest[_LATEST_DAILY].copy()
    no_tag = summary["video_tag_id"] == 0
    summary["video_tag_id"] = summary["video_tag_id"].mask(no_tag)
    summary["video_tag_name"] = summary["video_tag_name"].mask(no_tag)
    summary["video_duration"] = daily.groupby("video_id")["video_duration"].median()
    return summary


def build_videos(captions: pd.DataFrame, tags: pd.DataFrame, daily_summary: pd.DataFrame) -> pd.DataFrame:
    """One row per video id found in any of the three files, in the column order of `videos`."""
    ids = np.union1d(np.union1d(captions["video_id"], tags["video_id"]), daily_summary.index.to_numpy())
    frame = (
        pd.DataFrame(index=pd.Index(ids, name="video_id"))
        .join(daily_summary)
        .join(tags.set_index("video_id"))
        .join(captions.set_index("video_id"))
    )
    frame["tags"] = frame["tags"].fillna("[]")
    return frame.reset_index()[[c.name for c in videos.columns]]


def _fill_durations_from_interactions(conn: Connection, in_memory: dict[str, pd.DataFrame]) -> None:
    """Videos without any daily duration get the median video_duration of their interaction rows.

    Interaction frames loaded by this call are read in memory (`in_memory`, by table name); the others
    through the DB-API cursor, by index. In SQLite the rows are then read in rowid order, not in the index's
    (sequential pages instead of random ones).
    """
    missing = [row[0] for row in conn.execute(text(_NO_DAILY_DURATION))]
    if not missing:
        return
    logged = []
    for table in (train_interactions, eval_interactions):
        if table.name in in_memory:
            frame = in_memory[table.name]
            logged.append(frame.loc[frame["video_id"].isin(missing), ["video_id", "video_duration"]])
        else:
            where = f"video_id IN ({_NO_DAILY_DURATION})"
            if conn.dialect.name == "sqlite":
                where = f"rowid IN (SELECT rowid FROM {table.name} WHERE {where})"
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.execute(f"SELECT video_id, video_duration FROM {table.name} WHERE {where}")
            logged.append(pd.DataFrame(cursor.fetchall(), columns=["video_id", "video_duration"]))
            cursor.close()
    durations = pd.concat(logged, ignore_index=True).astype("float64")
    medians = durations.groupby("video_id")["video_duration"].median().reindex(missing)
    statement = update(videos).where(videos.c.video_id == bindparam("vid")).values(video_duration=bindparam("duration"))
    conn.execute(
        statement,
        [{"vid": int(v), "duration": None if np.isnan(d) else float(d)} for v, d in medians.items()],
    )


def _has_unknown_ids(conn: Connection, table: Table) -> bool:
    """Whether any stored row of `table` names a user or video the catalogue no longer has."""
    sql = (
        f"SELECT EXISTS (SELECT 1 FROM {table.name} WHERE user_id NOT IN (SELECT user_id FROM {users.name}) "
        f"OR video_id NOT IN (SELECT video_id FROM {videos.name}))"
    )
    return bool(conn.execute(text(sql)).scalar())


def _pair_keys(user_ids, video_ids) -> np.ndarray:
    """One int64 per (user, video) pair (ids are far below 2**31)."""
    return np.asarray(user_ids, dtype=np.int64) << 32 | np.asarray(video_ids, dtype=np.int64)


def _since(start: float) -> str:
    return f"{time.perf_counter() - start:.1f} s"
