"""Recently made preprocessing plans, so a repeated job shape skips its dry run.

A plan lists kinds and shapes of correlated randomness only (no job id, no
seed, no value), and a dry run sees shapes only, so two jobs whose public
description and input shapes agree have the same plan. The caller builds the
key from exactly those; :class:`PlanCache` keeps the most recently used
plans and drops the least recently used beyond its size.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from smpc.preprocessing import Plan

PLANS_KEPT = 128
"""Plans a party keeps by default: job shapes in use at once are far fewer."""


class PlanCache:
    """Plans by job-shape key, least recently used dropped first. Safe to share between threads."""

    def __init__(self, size: int = PLANS_KEPT) -> None:
        if size < 1:
            raise ValueError(f"a plan cache keeps at least 1 plan, got size {size}")
        self.size = size
        self.hits = 0
        self.misses = 0
        self._plans: OrderedDict[Hashable, Plan] = OrderedDict()
        self._lock = threading.Lock()

    def plan(self, key: Hashable, make: Callable[[], Plan]) -> Plan:
        """The plan kept for ``key``, or ``make()`` (kept for next time; not under the lock)."""
        with self._lock:
            kept = self._plans.get(key)
            if kept is not None:
                self._plans.move_to_end(key)
                self.hits += 1
                return kept
            self.misses += 1
        made = make()
        if not isinstance(made, Plan):
            raise TypeError(f"make() must return a Plan, got {type(made).__name__}")
        with self._lock:
            self._plans[key] = made
            self._plans.move_to_end(key)
            while len(self._plans) > self.size:
                self._plans.popitem(last=False)
        return made

    def __len__(self) -> int:
        with self._lock:
            return len(self._plans)
