"""A bounded memory of results by digest, so the same bytes are not checked twice.

A chain node checks one record when it takes it in, again when it proposes,
when a proposal holding it arrives, when it seals that block and when the
block becomes final; it checks a seal when the vote arrives and again with
the final block. Each of those checks is a pure function of the bytes checked
and the keys they are checked against, so what one check found holds for the
next: a :class:`Memo` keeps it under a key naming exactly those inputs (a
SHA-256 digest of the bytes, the keys). Only passed checks and decoded values
are kept, never a failure (its error is made afresh), and the oldest entries
are forgotten first once the memo is full.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Memo(Generic[V]):
    """At most ``limit`` values by key, the oldest forgotten first; safe across threads."""

    def __init__(self, limit: int = 4096) -> None:
        if limit < 1:
            raise ValueError(f"a memo holds at least one entry, not {limit}")
        self._limit = limit
        self._values: dict[Hashable, V] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """The value kept under ``key``, or None."""
        with self._lock:
            return self._values.get(key)

    def put(self, key: Hashable, value: V) -> None:
        """Keep ``value`` under ``key``; forgets the oldest entry when full."""
        with self._lock:
            self._values[key] = value
            if len(self._values) > self._limit:
                del self._values[next(iter(self._values))]

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)
