"""The per-analyst query budget: a count of admitted jobs in a sliding window, kept on disk."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from parties.jobs.budget import QueryBudget

HOUR_MS = 3_600_000


def test_each_analyst_has_its_own_budget_per_window(tmp_path: Path) -> None:
    budget = QueryBudget(tmp_path / "budget.db", limit=2, window_ms=HOUR_MS)
    t = 10 * HOUR_MS
    assert budget.charge("ana", "j1", t) and budget.charge("ana", "j2", t + 1)
    assert not budget.charge("ana", "j3", t + 2)
    assert budget.used("ana", t + 2) == 2
    assert budget.charge("bob", "j4", t + 2)
    # the window slides: the first job stops counting one hour after it was admitted
    assert budget.charge("ana", "j5", t + HOUR_MS)
    assert not budget.charge("ana", "j6", t + HOUR_MS)
    assert budget.used("ana", t + HOUR_MS) == 2
    budget.close()


def test_counts_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "member" / "budget.db"
    budget = QueryBudget(path, limit=1, window_ms=HOUR_MS)
    assert budget.charge("ana", "j1", 5)
    budget.close()
    again = QueryBudget(path, limit=1, window_ms=HOUR_MS)
    assert not again.charge("ana", "j2", 6)
    again.close()


def test_no_limit_and_bad_settings(tmp_path: Path) -> None:
    unlimited = QueryBudget(tmp_path / "b.db", limit=0, window_ms=HOUR_MS)
    assert all(unlimited.charge("ana", f"j{i}", i) for i in range(50))
    unlimited.close()
    for limit, window in ((-1, HOUR_MS), (1, 0)):
        with pytest.raises(ValueError, match="query budget"):
            QueryBudget(tmp_path / "c.db", limit=limit, window_ms=window)


def test_a_charge_survives_a_crashed_process_without_an_fsync_per_charge(tmp_path: Path) -> None:
    path = tmp_path / "budget.db"
    crash = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from parties.jobs.budget import QueryBudget\n"
        "b = QueryBudget(Path(sys.argv[1]), limit=2, window_ms=3_600_000)\n"
        "assert b.charge('ana', 'j1', 5)\n"
        "os._exit(9)  # no close, no checkpoint\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run([sys.executable, "-c", crash, str(path)], env=env, check=False)
    assert done.returncode == 9
    again = QueryBudget(path, limit=2, window_ms=HOUR_MS)
    assert again.used("ana", 6) == 1
    assert again.charge("ana", "j2", 6) and not again.charge("ana", "j3", 7)
    again.close()
    with sqlite3.connect(path) as db:  # WAL with synchronous NORMAL: no fsync per commit
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
