"""A throwaway PostgreSQL server for the tests: `initdb` into a folder, listening on a Unix socket only.

    python tests/pg_server.py start DIR    # prints the server's base URL (CI exports it)
    python tests/pg_server.py stop DIR

No durability (fsync off): the data is thrown away with the folder. PostgreSQL refuses to run as root, so
as root the server runs as the `postgres` user, which owns the folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER_OPTIONS = "-c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
SUPERUSER = "postgres"


def find_binaries() -> Path | None:
    """The folder of `initdb` and `pg_ctl`: on the PATH, else the newest Debian /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SUPERUSER, "--", *command] if os.geteuid() == 0 else command


def start(folder: Path) -> str:
    """Create and start a server in `folder` (created); returns its base URL, on the maintenance database."""
    binaries = find_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (no initdb found)")
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam(SUPERUSER)
        os.chown(folder, user.pw_uid, user.pw_gid)
    data = folder / "data"
    initdb = [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8"]
    subprocess.run(_as_server_user(initdb), check=True, capture_output=True)
    pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w"]
    started = subprocess.run(
        _as_server_user([*pg_ctl, "-o", f"-k {folder} {SERVER_OPTIONS}", "start"]), capture_output=True, text=True
    )
    if started.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start: {started.stdout}{started.stderr}")
    return f"postgresql://{SUPERUSER}@/postgres?host={folder}"


def stop(folder: Path) -> None:
    binaries = find_binaries()
    if binaries is not None and (folder / "data").is_dir():
        stop_command = [str(binaries / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "-w", "stop"]
        subprocess.run(_as_server_user(stop_command), capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def throwaway_server() -> Iterator[str]:
    """A server for the duration, in a short temporary folder (a socket path has at most ~100 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="recgen-pg-"))
    try:
        yield start(folder)
    finally:
        stop(folder)


if __name__ == "__main__":
    action, where = sys.argv[1], Path(sys.argv[2])
    if action == "start":
        print(start(where))
    else:
        stop(where)
