"""Thread pools follow the cores a process may use, not the machine's: checked in real child processes."""

import json
import os
import subprocess
import sys

from recgen.runtime import THREAD_VARIABLES, available_cores

REPORT = (
    "import json, os, sys\n"
    "{first}import recgen\n"
    "import numpy\n"
    "from threadpoolctl import threadpool_info\n"
    "blas = [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
    "print(json.dumps({{'env': {{k: os.environ.get(k) for k in {names}}}, 'blas': blas}}))\n"
)


def child_report(first: str = "", cores: set[int] | None = None, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    code = REPORT.format(first=first, names=list(THREAD_VARIABLES))
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
    )
    return json.loads(result.stdout.splitlines()[-1])


def test_pools_are_sized_to_the_cores_the_process_may_use():
    assert available_cores() == len(os.sched_getaffinity(0))
    pinned = child_report(cores={0})
    assert set(pinned["env"].values()) == {"1"}
    assert pinned["blas"] and set(pinned["blas"]) == {1}
    free = child_report()
    assert set(free["env"].values()) == {str(len(os.sched_getaffinity(0)))}


def test_a_pool_already_started_by_numpy_is_resized_and_the_environment_wins():
    assert set(child_report(first="import numpy\n", cores={0})["blas"]) == {1}
    chosen = child_report(cores={0}, TF_NUM_INTRAOP_THREADS="3")
    assert chosen["env"]["TF_NUM_INTRAOP_THREADS"] == "3" and chosen["env"]["TF_NUM_INTEROP_THREADS"] == "1"
