"""The run record: one `runs` row per run-batch, its stage timings and warnings, publication and retention.

Everything a run writes carries its run id; the `latest_*` views show a run only once `RunRecord.publish`
marks it published in one transaction, so readers never see half a run and a failed night leaves the
previous results in place.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, func, select, update

from recgen.constants import STATUS_FAILED, STATUS_PUBLISHED, STATUS_RUNNING, USER_TABLES_SUFFIX
from recgen.store.engine import utc_now
from recgen.store.schema import models, recommendations, run_metrics, runs, user_metrics

Log = Callable[[str], None]
RUN_OUTPUTS = (recommendations, user_metrics, run_metrics)


class RunRecord:
    """A run's `runs` row: started on creation, then each stage timed and logged, warnings kept, and the
    row finished as published or failed."""

    def __init__(self, engine: Engine, log: Log, **values):
        self.engine, self.log = engine, log
        self.seconds: dict[str, float] = {}
        self.warnings: list[str] = []
        with engine.begin() as conn:
            inserted = conn.execute(runs.insert().values(started_at=utc_now(), status=STATUS_RUNNING, **values))
            self.id = int(inserted.inserted_primary_key[0])
            if conn.dialect.name == "postgresql":
                from recgen.store import postgres

                postgres.create_run_partitions(conn, self.id)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.log(f"warning: {message}")

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.log(f"{name}...")
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started
        self.log(f"{name} done in {self.seconds[name]:.1f} s")

    def publish(self, **values) -> None:
        """Mark the run published, with its counts: from this commit on, the `latest_*` views show it."""
        self.finish(STATUS_PUBLISHED, exit_code=0, **values)

    def fail(self, error: str, exit_code: int) -> None:
        self.finish(STATUS_FAILED, error=error, exit_code=exit_code)

    def finish(self, status: str, **values) -> None:
        """Write the row's status, end time, stage timings and warnings (and `values`) in one transaction."""
        timings = {f"{stage}_seconds": value for stage, value in self.seconds.items()}
        with self.engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == self.id)
                .values(
                    status=status,
                    finished_at=utc_now(),
                    warnings="\n".join(self.warnings) or None,
                    **timings,
                    **values,
                )
            )


def fail_abandoned_runs(engine: Engine) -> None:
    """Runs still 'running' while we hold the lock died without cleaning up (kill -9, power loss)."""
    with engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.status == STATUS_RUNNING)
            .values(status=STATUS_FAILED, finished_at=utc_now(), error="abandoned: the process died mid-run")
        )


def latest_published_run(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(func.max(runs.c.id)).where(runs.c.status == STATUS_PUBLISHED)).scalar()


def _remove(conn: Connection, stale: list[int]) -> str:
    """Remove the stale runs' outputs; says what went."""
    if conn.dialect.name == "postgresql":
        from recgen.store import postgres

        dropped = postgres.drop_run_partitions(conn, stale)
        removed = conn.execute(delete(run_metrics).where(run_metrics.c.run_id.in_(stale))).rowcount
        return f"{dropped} partitions and {removed:,} rows"
    removed = sum(conn.execute(delete(t).where(t.c.run_id.in_(stale))).rowcount for t in RUN_OUTPUTS)
    return f"{removed:,} rows"


def prune(engine: Engine, keep_runs: int, log: Log) -> None:
    """Retention: only the `keep_runs` newest published runs keep their recommendations and metrics.

    Failed runs' partial outputs go at once. The `runs` rows stay (with `pruned_at` set) as the job's
    history. Model files no kept run uses and that are not the newest of their family and settings are
    deleted too. SQLite reuses the freed pages for the next nights' rows, so the file stops growing; on
    PostgreSQL the runs' partitions of recommendations and user_metrics are dropped, their rows not deleted.
    """
    with engine.begin() as conn:
        kept = select(runs.c.id).where(runs.c.status == STATUS_PUBLISHED).order_by(runs.c.id.desc()).limit(keep_runs)
        kept_ids = set(conn.execute(kept).scalars())
        stale = [
            row.id
            for row in conn.execute(select(runs.c.id, runs.c.status).where(runs.c.pruned_at.is_(None)))
            if row.id not in kept_ids and row.status != STATUS_RUNNING
        ]
        if stale:
            conn.execute(update(runs).where(runs.c.id.in_(stale)).values(pruned_at=utc_now()))
            removed = _remove(conn, stale)
            log(f"retention: kept the last {keep_runs} published run(s); removed {removed} of {len(stale)} more")
        newest = select(func.max(models.c.id)).group_by(models.c.name, models.c.settings_key)
        used = select(runs.c.model_id).where(runs.c.id.in_(kept_ids))
        retired = conn.execute(
            select(models.c.id, models.c.path).where(models.c.id.not_in(newest), models.c.id.not_in(used))
        ).all()
    deleted = [Path(row.path) for row in retired if Path(row.path).is_file()]
    for path in deleted:
        path.unlink(missing_ok=True)
    for row in retired:  # and the per-user tables kept beside a model file, if it had any
        shutil.rmtree(Path(row.path).with_suffix(USER_TABLES_SUFFIX), ignore_errors=True)
    if deleted:
        log(f"retention: deleted {len(deleted)} model file(s) no kept run uses")
