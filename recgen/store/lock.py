"""One job at a time per database: an exclusive lock that is released on any exit, kill -9 included.

A SQLite file's lock is a kernel flock on a file beside it; a PostgreSQL database's is a session advisory
lock on its server (`postgres.advisory_lock`), which holds across hosts.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recgen.constants import LOCK_FILE
from recgen.errors import LockedError
from recgen.store.engine import get_engine, is_postgres_url, output_folder


class HeldLock:
    """A held job lock. A kernel flock cannot be lost while the process lives; `verify` is overridden where a
    lock can be lost while the job runs (a PostgreSQL session that the server ended)."""

    def verify(self) -> None:
        """Raise if the lock is no longer held: a job must not publish without it."""


def lock_path(db: str | Path) -> Path:
    """The lock file of the database `db` (a path or URL): beside a SQLite file, else under ./output."""
    return output_folder(db) / LOCK_FILE


@contextmanager
def job_lock(db: str | Path) -> Iterator[HeldLock]:
    """Hold `db`'s job lock (released even on kill -9); LockedError if another job holds it."""
    if is_postgres_url(db):
        from recgen.store import postgres

        with postgres.advisory_lock(get_engine(db)) as held:
            yield held
        return
    path = lock_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"another recgen job is running (lock held on {path})") from None
        try:
            yield HeldLock()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
