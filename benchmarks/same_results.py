"""Do two versions of recgen give the same results? Runs `recgen run-batch` with each on the same seeded
samples and compares what users get: `recommendations`, `user_metrics` and `run_metrics`, row for row.

The other version is a git revision, checked out into a temporary worktree and run from there (its own
`recgen` package first on PYTHONPATH), beside this checkout's. The samples are generated once, by the other
version, and the files this checkout's generator writes from the same seed are compared with them byte for
byte.

    python benchmarks/same_results.py --before origin/main             # tiny and small, seed 42
    python benchmarks/same_results.py --before HEAD~3 --scales tiny --seed 7

Exits 1 if anything differs. Run by hand; not part of the test suite.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TABLES = {
    "recommendations": ["run_id", "user_id", "rank"],
    "user_metrics": ["run_id", "user_id"],
    "run_metrics": ["run_id", "model_name", "metric"],
}


def recgen(tree: Path, *args: str) -> None:
    """`python -m recgen ARGS` with the recgen package of `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree), "RECGEN_QUIET": "1"}
    subprocess.run([sys.executable, "-m", "recgen", *args], cwd=tree, env=env, check=True)


def table(db: Path, name: str, key: list[str]) -> pd.DataFrame:
    with sqlite3.connect(db) as conn:
        frame = pd.read_sql_query(f"SELECT * FROM {name}", conn)
    return frame.sort_values(key, ignore_index=True)


def compare(before: Path, after: Path) -> bool:
    same = True
    for name, key in TABLES.items():
        old, new = table(before, name, key), table(after, name, key)
        equal = old.equals(new)
        detail = ""
        if not equal and old.shape == new.shape and list(old.columns) == list(new.columns):
            numeric = old.select_dtypes("number").columns
            gap = (old[numeric] - new[numeric]).abs().max().max()
            rows = int((old != new).any(axis=1).sum())
            detail = f" ({rows:,} rows differ, largest numeric gap {gap:.3g})"
        elif not equal:
            detail = f" (shapes {old.shape} and {new.shape})"
        print(f"  {name}: {len(old):,} rows, {'identical' if equal else 'DIFFERENT'}{detail}")
        same &= equal
    return same


def same_files(left: Path, right: Path) -> bool:
    names = sorted(p.relative_to(left) for p in left.rglob("*.csv"))
    if names != sorted(p.relative_to(right) for p in right.rglob("*.csv")):
        return False
    return all(filecmp.cmp(left / name, right / name, shallow=False) for name in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare this checkout with")
    parser.add_argument("--scales", nargs="+", default=["tiny", "small"], choices=["tiny", "small", "full"])
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    same = True
    with tempfile.TemporaryDirectory(prefix="recgen-same-") as work:
        work = Path(work)
        before = work / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True)
        try:
            for scale in args.scales:
                sample, mine = work / f"{scale}-sample", work / f"{scale}-sample-after"
                recgen(before, "sample", str(sample), "--scale", scale, "--seed", str(args.seed))
                recgen(ROOT, "sample", str(mine), "--scale", scale, "--seed", str(args.seed))
                files_same = same_files(sample, mine)
                print(f"{scale} sample, seed {args.seed}: files {'identical' if files_same else 'DIFFERENT'}")
                same &= files_same
                dbs = {}
                for label, tree in (("before", before), ("after", ROOT)):
                    dbs[label] = work / label / scale / "recs.db"
                    started = time.perf_counter()
                    recgen(tree, "run-batch", "--data-dir", str(sample), "--db", str(dbs[label]))
                    print(
                        f"  run-batch {label} ({args.before if label == 'before' else 'this checkout'}): "
                        f"{time.perf_counter() - started:.0f} s"
                    )
                same &= compare(dbs["before"], dbs["after"])
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=True)
    print("same results" if same else "RESULTS DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
