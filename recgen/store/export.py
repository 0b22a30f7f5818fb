"""A SQLite file of a database's latest published run, for Datasette (which has no PostgreSQL backend).

The file is migrated with the same Alembic revisions as any recgen database, so the plugin's metadata, pages
and canned queries find what they expect: the inputs (the tables the queries join: users, videos and their
tags, the daily statistics, both interaction logs, friendships, source files, rejected rows, the data
profile), every `runs` and `models` row and every run's `run_metrics` (the run history), and the latest
published run's `recommendations` and `user_metrics`. The SQLite publishing extras (full-text index,
planner statistics) are built on it. It is written under a temporary name and renamed once complete.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, Table, select

from recgen.constants import REPORT_SUBDIR
from recgen.errors import MissingInputError, OutputError
from recgen.store import fts
from recgen.store.bulk import replace_rows
from recgen.store.engine import checkpoint, existing_engine, get_engine, migrate, output_folder
from recgen.store.runs import latest_published_run
from recgen.store.schema import (
    INPUT_TABLES,
    data_profile,
    models,
    recommendations,
    rejected_rows,
    run_metrics,
    runs,
    source_files,
    user_metrics,
)

# Copied whole, parents before the tables whose foreign keys point at them.
WHOLE_TABLES = (*INPUT_TABLES.values(), source_files, rejected_rows, data_profile, models, runs, run_metrics)
LATEST_RUN_TABLES = (recommendations, user_metrics)


@dataclass
class Export:
    path: Path
    run_id: int
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows written


def export_sqlite(db: str, out: Path, log: Callable[[str], None]) -> Export:
    """Write `out`, a SQLite copy of `db`'s latest published run and its inputs (see the module's docstring)."""
    source = existing_engine(db)
    run_id = latest_published_run(source)
    if run_id is None:
        raise MissingInputError(f"{db} has no published run to export")
    out = Path(out)
    partial = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    _remove(partial)
    target = get_engine(partial)
    export = Export(out, run_id)
    try:
        migrate(target)
        with target.begin() as conn:
            for table in (*WHOLE_TABLES, *LATEST_RUN_TABLES):
                frame = _read(source, table, run_id if table in LATEST_RUN_TABLES else None)
                export.rows[table.name] = replace_rows(conn, table, frame)
                log(f"{table.name}: {len(frame):,} rows")
        fts.refresh(target)
        checkpoint(target, truncate=True)
        target.dispose()
        os.replace(partial, out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc}") from exc
    finally:
        target.dispose()
        _remove(partial)
    _copy_report(output_folder(db) / REPORT_SUBDIR, out.parent / REPORT_SUBDIR, log)
    return export


def _read(source: Engine, table: Table, run_id: int | None) -> pd.DataFrame:
    """A table's rows (of one run, with `run_id`), the columns in the table's order."""
    if source.dialect.name == "postgresql":  # binary COPY into Arrow: the training log is millions of rows
        from recgen.store import postgres

        return postgres.read_frame(source, table, "" if run_id is None else f"WHERE run_id = {int(run_id)}")
    query = select(table) if run_id is None else select(table).where(table.c.run_id == run_id)
    with source.connect() as conn:
        return pd.read_sql_query(query, conn)


def _copy_report(folder: Path, target: Path, log: Callable[[str], None]) -> None:
    """The data-analysis report the job wrote here, beside the export, where the plugin serves it from."""
    if not folder.is_dir() or folder.resolve() == target.resolve():
        return
    shutil.copytree(folder, target, dirs_exist_ok=True)
    log(f"copied the data-analysis report to {target}")


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
