"""What the benchmarks share: the machine they ran on, child processes measured on their own, samples, runs."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

STAGES = ("ingest", "features", "train", "recommend", "evaluate")


def machine() -> str:
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        ram_gb = int(handle.readline().split()[1]) / 1024**2
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("tensorflow", "keras", "numpy", "pandas", "pyarrow", "SQLAlchemy")
    )
    return (
        f"machine: {cpu}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {ram_gb:.1f} GB RAM, "
        f"{platform.system()} {platform.release()}\n"
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {versions}\n"
        f"load average before: {load_average()}"
    )


def _version(name: str) -> str:
    for distribution in (name, f"{name}-cpu"):  # TensorFlow for CPU is packaged as tensorflow-cpu
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    return "not installed"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def child(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run `command`; its wall seconds, its own peak RSS in GB (wait4 rusage) and its output."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"failed ({process.returncode}): {' '.join(command)}\n{output[-3000:]}")
    return seconds, usage.ru_maxrss / 1024**2, output  # ru_maxrss is in KiB on Linux


def ensure_sample(sample: Path, scale: str, seed: int) -> None:
    """Generate `recgen sample` once; a sample already there is reused."""
    if (sample / "KuaiRec 2.0" / "data" / "big_matrix.csv").is_file():
        print(f"{scale}: reusing the sample in {sample}", flush=True)
        return
    print(f"{scale}: generating the sample in {sample}", flush=True)
    subprocess.run(["recgen", "sample", str(sample), "--scale", scale, "--seed", str(seed)], check=True)


def stage_seconds(db: Path) -> dict[str, float]:
    """The stage timings of the last run recorded in `db`."""
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            f"SELECT {', '.join(f'{s}_seconds' for s in STAGES)} FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return {stage: float(value or 0.0) for stage, value in zip(STAGES, row, strict=True)}


def last_run_trained(db: Path) -> bool:
    with sqlite3.connect(db) as conn:
        return bool(conn.execute("SELECT trained FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0])
