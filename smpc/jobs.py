"""The job ids one process has admitted: the single guard against a replayed job.

A job id is the SHA-256 of the signed job, which carries a fresh nonce, so a
repeated id is always a replay. Every process that admits jobs (a party, the
dealer, the in-process federations) keeps one :class:`SeenJobs` and refuses a
repeat with :class:`~smpc.errors.JobReplayError`.

The set lives in memory: a restarted process forgets, so a durable record
must back it across restarts. An id admitted with ``until_ms`` may be
forgotten once that time has passed (a job past its deadline is refused on
that ground anyway), which bounds the memory of a long-running service.
"""

from __future__ import annotations

import threading

from smpc.errors import JobReplayError


class SeenJobs:
    """Job ids admitted so far; a repeat raises JobReplayError. Safe to share between threads."""

    def __init__(self) -> None:
        self._until: dict[str, int | None] = {}
        self._lock = threading.Lock()

    def admit(self, job: str, *, until_ms: int | None = None) -> None:
        """Record ``job`` (kept until ``until_ms`` if given), or raise JobReplayError."""
        with self._lock:
            if job in self._until:
                raise JobReplayError(f"job id {job} was already used; every job needs a fresh id")
            self._until[job] = until_ms

    def forget_expired(self, now_ms: int) -> None:
        """Forget the ids whose ``until_ms`` is at or before ``now_ms``."""
        with self._lock:
            gone = [j for j, until in self._until.items() if until is not None and until <= now_ms]
            for job in gone:
                del self._until[job]

    def __contains__(self, job: object) -> bool:
        with self._lock:
            return job in self._until

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)
