"""PostgreSQL next to SQLite at full scale, measured in one invocation: the store's bulk paths.

Run by hand (not part of the test suite); about 15 minutes on a 2-core machine, the sample's generation
included the first time:

    python benchmarks/pg.py                                         # sample under /tmp/recgen-bench
    python benchmarks/pg.py --sample /tmp/full/s42 --postgres postgresql://me@/postgres?host=/run/postgresql

For each store, on an empty database (a SQLite file; a new database on the server), it times:

- `ingest()` of the full-scale sample's seven files (`recgen sample DIR --scale full --seed 42`, generated
  once): big_matrix's rows in the file over the whole load's seconds, parsing and checks included;
- big_matrix's de-duplicated rows written again by `bulk.replace_rows` into train_interactions, indexes
  rebuilt, in one transaction, commit included (SQLite: ADBC staging files; PostgreSQL: TRUNCATE + COPY);
- one run's recommendations (every user x 50) written by `bulk.insert_frame` in one transaction
  (SQLite: executemany; PostgreSQL: COPY into the run's partition);
- the training log read back as the features stage reads it without its cache (SQLite: a DB-API cursor;
  PostgreSQL: binary COPY into Arrow through ADBC).

Without --postgres it starts a throwaway server (tests/pg_server.py: Unix socket, fsync off, so a durable
server writes slower). It prints the machine, the load average at each step, the command, and a Markdown
table. The machine may be shared: compare the two columns, measured minutes apart.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from recgen import features  # noqa: E402
from recgen.constants import BIG_MATRIX, TOP_K  # noqa: E402
from recgen.ingest import ingest  # noqa: E402
from recgen.ingest.dedup import exact_duplicates, keep_rows  # noqa: E402
from recgen.ingest.readers import read_interactions  # noqa: E402
from recgen.ingest.source import locate_data  # noqa: E402
from recgen.store.bulk import insert_frame, replace_rows  # noqa: E402
from recgen.store.cache import INTERACTION_FIELDS  # noqa: E402
from recgen.store.engine import database_url, get_engine  # noqa: E402
from recgen.store.runs import RunRecord  # noqa: E402
from recgen.store.schema import recommendations, train_interactions  # noqa: E402

BENCH_DIR = Path("/tmp/recgen-bench")
BENCH_DATABASE = "recgen_bench"


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def full_sample(folder: Path) -> Path:
    if not (folder / "KuaiRec 2.0" / "data" / BIG_MATRIX).is_file():
        print(f"generating the full-scale sample in {folder} (a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "recgen", "sample", str(folder), "--scale", "full"], check=True)
    return folder


def big_matrix_rows(sample: Path) -> tuple[pd.DataFrame, int]:
    """The rows ingest writes for big_matrix (de-duplicated as it does), and the rows of the file."""
    frame, rejected = read_interactions(locate_data(sample), BIG_MATRIX)
    kept = keep_rows(frame, ~exact_duplicates(frame, ("user_id", "timestamp")))
    return kept, len(frame) + len(rejected)


def recommendation_rows(user_ids: np.ndarray, video_ids: np.ndarray, run_id: int) -> pd.DataFrame:
    rng = np.random.default_rng(42)
    n = len(user_ids) * TOP_K
    return pd.DataFrame(
        {
            "run_id": run_id,
            "user_id": np.repeat(user_ids, TOP_K),
            "rank": np.tile(np.arange(1, TOP_K + 1), len(user_ids)),
            "video_id": rng.choice(video_ids, n),
            "score": np.sort(rng.random(n).astype(np.float32))[::-1].astype(float),
            "source": "model",
        }
    )


def timed(label: str, work) -> float:
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    print(f"  {label}: {seconds:.1f} s (load {load()})", flush=True)
    return seconds


def measure(db: str, sample: Path, big: pd.DataFrame) -> dict[str, float]:
    engine = get_engine(db)
    seconds = {"ingest": timed("ingest (seven files)", lambda: ingest(engine, sample))}

    def rewrite() -> None:
        with engine.connect() as conn, conn.begin():
            replace_rows(conn, train_interactions, big)

    seconds["replace"] = timed(f"big_matrix rows rewritten ({len(big):,})", rewrite)
    catalog = features.load_catalog(engine)
    run = RunRecord(engine, lambda _message: None)
    rows = recommendation_rows(catalog.user_ids, catalog.video_ids, run.id)

    def write() -> None:
        with engine.begin() as conn:
            insert_frame(conn, recommendations, rows)

    seconds["recommendations"] = timed(f"recommendations written ({len(rows):,})", write)
    seconds["recommendation_rows"] = len(rows)
    seconds["read"] = timed(
        "training log read back", lambda: features._read_columns(engine, train_interactions.name, INTERACTION_FIELDS)
    )
    engine.dispose()
    return seconds


@contextlib.contextmanager
def postgres_database(url: str | None):
    """A new, empty database on the given server, else on a throwaway one; yields its URL."""
    with contextlib.ExitStack() as stack:
        if url is None:
            from pg_server import throwaway_server

            url = stack.enter_context(throwaway_server())
        admin = create_engine(database_url(url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {BENCH_DATABASE}"))
            version = conn.execute(text("SHOW server_version")).scalar()
        print(f"PostgreSQL {version}", flush=True)
        yield make_url(url).set(database=BENCH_DATABASE).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"))
        admin.dispose()


def rate(rows: float, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s ({seconds:.1f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=BENCH_DIR / "full", help="full-scale sample folder")
    parser.add_argument("--postgres", help="a server's URL (default: a throwaway server)")
    args = parser.parse_args()
    import sqlite3

    print(f"{dt.date.today()}  python benchmarks/pg.py {' '.join(sys.argv[1:])}")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"SQLite {sqlite3.sqlite_version}, load {load()}", flush=True)
    sample = full_sample(args.sample)
    big, file_rows = big_matrix_rows(sample)
    results = {}
    sqlite_dir = BENCH_DIR / "pg-vs-sqlite"
    shutil.rmtree(sqlite_dir, ignore_errors=True)
    print("SQLite", flush=True)
    results["SQLite"] = measure(str(sqlite_dir / "recs.db"), sample, big)
    shutil.rmtree(sqlite_dir, ignore_errors=True)
    with postgres_database(args.postgres) as url:
        print("PostgreSQL", flush=True)
        results["PostgreSQL"] = measure(url, sample, big)

    stores = list(results)
    print(f"\n| measure | {' | '.join(stores)} |\n|---|{'---:|' * len(stores)}")
    lines = {
        f"ingest, big_matrix rows in the file ({file_rows:,}) over the whole load": lambda r: rate(
            file_rows, r["ingest"]
        ),
        f"big_matrix rows written by replace_rows ({len(big):,}, indexes, commit)": lambda r: rate(
            len(big), r["replace"]
        ),
        "one run's recommendations written by insert_frame": lambda r: rate(
            r["recommendation_rows"], r["recommendations"]
        ),
        "training log read back (features, no cache)": lambda r: rate(len(big), r["read"]),
    }
    for label, cell in lines.items():
        print(f"| {label} | {' | '.join(cell(results[s]) for s in stores)} |")


if __name__ == "__main__":
    main()
