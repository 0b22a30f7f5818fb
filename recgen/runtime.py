"""The cores this process may use, and the thread pools of TensorFlow, BLAS and recgen sized to them.

TensorFlow and OpenBLAS size their pools to the machine's cores, not to the ones a process may use (its CPU
affinity, a container's CPU quota). With more threads than usable cores, the threads of one parallel step
wait for each other while some of them are not running, and a job sharing its host slows down far more
than its share of the cores explains. Variables already set in the environment are left as they are.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota if there is one."""
    cores = len(os.sched_getaffinity(0))
    quota = _cgroup_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def _cgroup_quota() -> float | None:
    """A cgroup's CPU quota in cores (cgroup v2 `cpu.max`, else v1's cfs files); None without a quota."""
    try:
        if _CGROUP_V2.is_file():
            quota, period = _CGROUP_V2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota_file, period_file = _CGROUP_V1
        if quota_file.is_file() and period_file.is_file():
            quota = int(quota_file.read_text())
            return None if quota <= 0 else quota / int(period_file.read_text())
    except (OSError, ValueError):
        return None
    return None


def size_thread_pools() -> int:
    """Size every pool to `available_cores()` (unless the environment already says); returns the count.

    The variables are read when OpenBLAS and TensorFlow start; if numpy was imported first, its BLAS pool is
    resized in place (threadpoolctl)."""
    cores = available_cores()
    given = {name for name in THREAD_VARIABLES if name in os.environ}
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(cores))
    if "numpy" in sys.modules and "OPENBLAS_NUM_THREADS" not in given:
        from threadpoolctl import threadpool_limits

        threadpool_limits(cores, user_api="blas")
    return cores
