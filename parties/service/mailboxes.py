"""Per-(job, peer) mailboxes of a party process, with every bound on what a peer can make it hold.

Inbound frames are sorted into one mailbox per (job, peer), from which the
job's transport (or its record exchange) reads. A job is *opened* here once
a reader asks for it; until then a peer may send it only what an honest peer
sends before this party joins (its hello, an abort, its record view), at most
:data:`UNOPENED_JOB_BYTES`, for at most :data:`UNOPENED_SECONDS`, and for at
most :data:`UNOPENED_JOBS` jobs at once (the oldest go first). An opened job's
inbound bytes are capped at ``max_job_bytes``. A closed job's late frames are
dropped. A refused frame never reaches a mailbox: the job sees a
:class:`Rejection` naming the authenticated peer and the reason instead.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from parties.service.frames import ABORT, Frame

log = logging.getLogger(__name__)

UNOPENED_SECONDS = 60.0
"""How long messages for a job not opened here are kept (a peer gives up far sooner)."""
UNOPENED_JOB_BYTES = 64 << 10
"""What a job not opened here may hold: a hello, an abort and a record view fit many times."""
UNOPENED_JOBS = 1024
"""Jobs not opened here that may hold messages at once; beyond, the oldest are dropped."""
CLOSED_JOBS = 4096
"""Closed jobs remembered (each for UNOPENED_SECONDS) so that their late messages are dropped."""


_NO_BOXES: dict[str, deque[Frame | Rejection]] = {}


@dataclass(frozen=True)
class Rejection:
    """Stands in a mailbox for a message that was refused or never came: who, why, what kind."""

    peer: str
    reason: str
    kind: str = "malformed message"


class Mailboxes:
    """Every job's inbound frames at one party, bounded as the module says."""

    def __init__(self, name: str, max_job_bytes: int) -> None:
        self.name = name
        self.max_job_bytes = max_job_bytes
        self.clock: Callable[[], float] = time.monotonic
        """The clock expiry reads (monotonic seconds)."""
        self._boxes: dict[str, dict[str, deque[Frame | Rejection]]] = {}  # job -> peer -> box
        self._job_bytes: dict[str, int] = {}
        self._opened: set[str] = set()  # jobs a reader here asked for
        self._active: set[str] = set()  # jobs running here: told at once when a peer drops
        self._unopened: OrderedDict[str, float] = OrderedDict()  # job -> its first message
        self._closed: OrderedDict[str, float] = OrderedDict()  # job -> when it was closed
        self._evicted = 0
        self._expire_at = math.inf
        """No entry of ``_unopened`` or ``_closed`` expires before (a bound: may be early)."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Jobs holding mailboxes here."""
        return len(self._boxes)

    def take(self, job: str, peer: str) -> Frame | Rejection | None:
        """The oldest item from ``peer`` for ``job``, or None; asking opens the job."""
        if job in self._opened:  # no lock needed: these reads and popleft are atomic
            box = self._boxes.get(job, _NO_BOXES).get(peer)
            if not box:
                return None
            try:
                return box.popleft()
            except IndexError:  # taken since (a job has one reader per peer: not expected)
                return None
        with self._lock:
            if job not in self._opened:
                self._open(job)
            box = self._box(job, peer)
            return box.popleft() if box else None

    def open_job(self, job: str, *, active: bool = True) -> None:
        """Open a job here; an active one hears at once when a peer's connection drops."""
        with self._lock:
            self._open(job)
            if active:
                self._active.add(job)

    def close_job(self, job: str) -> None:
        """Forget a job's mailboxes and byte count; its late messages are dropped."""
        with self._lock:
            self._forget(job)
            self._closed[job] = now = self.clock()
            self._closed.move_to_end(job)
            self._expire_at = min(self._expire_at, now + UNOPENED_SECONDS)
            while len(self._closed) > CLOSED_JOBS:
                self._closed.popitem(last=False)

    def peer_lost(self, peer: str, rejection: Rejection) -> None:
        """Tell every job running here that ``peer`` is gone."""
        with self._lock:
            for job in self._active:
                self._box(job, peer).append(rejection)

    def file(self, peer: str, frame: Frame, reason: str | None = None) -> bool:
        """File a frame from the authenticated ``peer`` (or its refusal); True if a box got it."""
        return self.admit(peer, frame, reason, True) is not None

    def accept(
        self, peer: str, frame: Frame, reason: str | None = None
    ) -> Frame | Rejection | None:
        """Count and check a frame as :meth:`file` does, but return it (or its refusal).

        For the reader of an opened job that waits for this very peer and
        whose box is empty, so the frame need not pass through the box.
        None if the frame is dropped (its job closed, or already over its limit).
        """
        return self.admit(peer, frame, reason, False)

    def admit(
        self, peer: str, frame: Frame, reason: str | None, keep: bool
    ) -> Frame | Rejection | None:
        """:meth:`file` (``keep``: the item goes in its box) or :meth:`accept`, in one call."""
        job = frame.job
        item: Frame | Rejection = frame
        if frame.kind == ABORT:  # the failure's kind only
            kind = bytes(frame.payload).decode(errors="replace")
            item = Rejection(peer, f"it aborted the job: {kind}", "party aborted")
        with self._lock:
            if self.clock() >= self._expire_at:
                self._expire()
            if job in self._closed:
                return None  # the job ended here; a late message has no reader
            opened = job in self._opened
            limit = self.max_job_bytes if opened else min(UNOPENED_JOB_BYTES, self.max_job_bytes)
            before = self._job_bytes.get(job, 0)
            if before > limit:
                return None  # already refused for its size; the job fails on that
            self._job_bytes[job] = total = before + (frame.size or frame.wire_bytes)
            if reason is None and total > limit:
                reason = f"job exceeded its limit of {limit} inbound bytes"
                if not opened:
                    reason += " before it started here"
            if not opened:
                self._hold_unopened(job)
            if reason is not None:
                item = Rejection(peer, reason)
            if keep:
                self._box(job, peer).append(item)
        if reason is not None:
            log.warning(
                "%s: rejected a message from %s for job %s: %s", self.name, peer, job, reason
            )
        return item

    # Helpers below run under self._lock.
    def _box(self, job: str, peer: str) -> deque[Frame | Rejection]:
        boxes = self._boxes.setdefault(job, {})
        box = boxes.get(peer)
        if box is None:
            box = boxes[peer] = deque()
        return box

    def _open(self, job: str) -> None:
        if job in self._opened:
            return
        self._opened.add(job)
        self._unopened.pop(job, None)
        self._closed.pop(job, None)

    def _forget(self, job: str) -> None:
        self._active.discard(job)
        self._opened.discard(job)
        self._unopened.pop(job, None)
        self._boxes.pop(job, None)
        self._job_bytes.pop(job, None)

    def _expire(self) -> None:
        """Drop unopened jobs' messages and closed jobs' ids older than UNOPENED_SECONDS."""
        horizon = self.clock() - UNOPENED_SECONDS
        self._expire_at = math.inf
        for entries in (self._unopened, self._closed):
            while entries and next(iter(entries.values())) < horizon:
                job, _ = entries.popitem(last=False)
                if entries is self._unopened:
                    self._forget(job)
            if entries:
                oldest = next(iter(entries.values()))
                self._expire_at = min(self._expire_at, oldest + UNOPENED_SECONDS)

    def _hold_unopened(self, job: str) -> None:
        """Count a job that is not opened here, dropping the oldest beyond UNOPENED_JOBS."""
        if job in self._unopened:
            return
        while len(self._unopened) >= UNOPENED_JOBS:
            oldest, _ = self._unopened.popitem(last=False)
            self._forget(oldest)
            self._evicted += 1
            if self._evicted % 100 == 1:
                log.warning(
                    "%s: messages for %d jobs never opened here were dropped (limit %d jobs)",
                    self.name,
                    self._evicted,
                    UNOPENED_JOBS,
                )
        self._unopened[job] = now = self.clock()
        self._expire_at = min(self._expire_at, now + UNOPENED_SECONDS)
