"""Computing processes default to single-threaded kernels, set before numba loads."""

from __future__ import annotations

import os
import subprocess
import sys

from parties.threads import THREAD_LIMITS, limit_threads


def test_limits_default_to_one_and_keep_what_is_set() -> None:
    env = {"NUMBA_NUM_THREADS": "2"}
    limit_threads(env)
    assert env == {**THREAD_LIMITS, "NUMBA_NUM_THREADS": "2"}


def test_the_smpc_command_loads_numba_single_threaded() -> None:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_LIMITS}
    probe = "import parties.cli.main, numba; print(numba.config.NUMBA_NUM_THREADS)"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1"
