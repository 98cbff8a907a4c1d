"""Selections a party made from a snapshot source, kept for the next job that asks the same.

A CSV source is read once when the party starts (a snapshot), so the same
columns, filter and kind of selection always give the same rows; parsing 30
columns anew for every job cost a 569-row inference job about 15 ms. A live
source (SQLite, PostgreSQL) may change between jobs and is asked every time.
Selections are read-only; the cache keeps the most recently used ones within
a byte budget and drops the rest.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from parties.data.base import DataSource
from parties.data.selection import Selection

SELECTION_BYTES = 64 << 20
"""Bytes of selected values a party keeps at most; a larger selection is not kept."""


class SelectionCache:
    """``source.select`` with the results of a snapshot source kept, least recently used
    dropped first. Safe to share between threads."""

    def __init__(self, source: DataSource, budget: int = SELECTION_BYTES) -> None:
        self.source = source
        self.budget = budget
        self._kept: OrderedDict[tuple[object, ...], Selection] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def select(
        self, columns: Sequence[str], where: str | None = None, *, numeric: bool = True
    ) -> Selection:
        """What ``source.select(columns, where, numeric=numeric)`` returns."""
        if not self.source.snapshot:
            return self.source.select(columns, where, numeric=numeric)
        key = (tuple(columns), where, numeric)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
                return kept
        made = self.source.select(columns, where, numeric=numeric)
        size = made.values.nbytes + made.row_ids.nbytes
        if size <= self.budget:
            with self._lock:
                if key not in self._kept:
                    self._kept[key] = made
                    self._bytes += size
                while self._bytes > self.budget:
                    _, old = self._kept.popitem(last=False)
                    self._bytes -= old.values.nbytes + old.row_ids.nbytes
        return made

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)
