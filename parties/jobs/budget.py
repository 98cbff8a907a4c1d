"""Each analyst's query budget at one member: how many jobs it may have admitted per window.

Disclosure control checks one job at a time, so it cannot see a differencing
attack: ``sum where id <= 60`` minus ``sum where id <= 60 and id != 1`` is
patient 1's value, though each job passes every check. Two defences exist.
An overlap check compares a new job's rows with those of earlier jobs; but
its refusal depends on the data, so it is itself an oracle (a filter that
adds patient 1 only when a condition holds makes "refused" answer the
condition), and trackers (Denning et al., "The tracker: a threat to
statistical database security", 1979) defeat it with queries that overlap
widely. A budget depends only on the count of jobs, so its refusal reveals
nothing; it bounds how many attacks an analyst can run, and every admitted
job is on the chain for audit, as in the DataSHIELD family (disclosure
settings plus audit).

Counts persist in ``<member>/budget.db`` (SQLite), so a restart does not
reset them. The file is in WAL mode with ``synchronous = NORMAL``: a charge
costs no fsync on the job's path, and a crash of the process loses none; a
power loss may lose the last few charges, giving the analyst back at most
those few queries (the jobs themselves are in the hospitals' records).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

BUDGET_DB_FILE = "budget.db"


class QueryBudget:
    """At most ``limit`` admitted jobs per analyst in any ``window_ms``; 0 means no limit."""

    def __init__(self, path: Path, limit: int, window_ms: int) -> None:
        if limit < 0 or window_ms <= 0:
            raise ValueError("a query budget needs limit >= 0 and a positive window")
        self.limit = limit
        self.window_ms = window_ms
        self._lock = threading.Lock()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS admitted"
            " (job TEXT PRIMARY KEY, analyst TEXT NOT NULL, at_ms INTEGER NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS by_analyst ON admitted (analyst, at_ms)")

    def charge(self, analyst: str, job: str, now_ms: int) -> bool:
        """Count ``job`` against ``analyst``; False, counting nothing, once the budget is used."""
        if self.limit == 0:
            return True
        since = now_ms - self.window_ms
        with self._lock:
            self._db.execute("DELETE FROM admitted WHERE at_ms <= ?", (since,))
            (used,) = self._db.execute(
                "SELECT COUNT(*) FROM admitted WHERE analyst = ?", (analyst,)
            ).fetchone()
            if used >= self.limit:
                return False
            self._db.execute(
                "INSERT OR IGNORE INTO admitted (job, analyst, at_ms) VALUES (?, ?, ?)",
                (job, analyst, now_ms),
            )
            return True

    def used(self, analyst: str, now_ms: int) -> int:
        """How many of ``analyst``'s jobs count against its budget at ``now_ms``."""
        with self._lock:
            (used,) = self._db.execute(
                "SELECT COUNT(*) FROM admitted WHERE analyst = ? AND at_ms > ?",
                (analyst, now_ms - self.window_ms),
            ).fetchone()
        return int(used)

    def close(self) -> None:
        with self._lock:
            self._db.close()
