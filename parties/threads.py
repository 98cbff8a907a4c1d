"""Single-threaded kernels in every process that computes (ARCHITECTURE.md, "Arithmetic").

Threaded Numba and OpenBLAS kernels measured 10-24x slower on 2 cores, so
each computing process runs them on one thread. The limits take effect only
if they are in the environment before numpy and numba are first imported:
:mod:`parties.cli` sets them as it loads (the ``smpc`` command and
``python -m parties.cli``), and a launcher of party processes sets them for
its children. A value already in the environment is kept.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

THREAD_LIMITS: dict[str, str] = {"NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
"""Environment variables that bound the threads of the numeric kernels, and their values."""


def limit_threads(env: MutableMapping[str, str] = os.environ) -> None:
    """Set each of :data:`THREAD_LIMITS` in ``env`` unless it is already set."""
    for name, value in THREAD_LIMITS.items():
        env.setdefault(name, value)
