"""The plan cache: a kept plan is reused, the least recently used goes first, misuse is refused."""

from __future__ import annotations

import pytest

from smpc.plans import PlanCache
from smpc.preprocessing import Plan
from smpc.preprocessing.plan import Request


def _plan(size: int) -> Plan:
    return Plan((Request("triple", (size,)),))


def test_a_kept_plan_is_returned_without_planning_again() -> None:
    cache = PlanCache(4)
    made: list[str] = []

    def make(key: str, size: int):
        def planner() -> Plan:
            made.append(key)
            return _plan(size)

        return planner

    assert cache.plan("a", make("a", 3)) == _plan(3)
    assert cache.plan("a", make("a", 99)) == _plan(3)
    assert cache.plan("b", make("b", 5)) == _plan(5)
    assert made == ["a", "b"]
    assert (cache.hits, cache.misses, len(cache)) == (1, 2, 2)


def test_the_least_recently_used_plan_is_dropped_beyond_the_size() -> None:
    cache = PlanCache(2)
    made: list[str] = []

    def planner(key: str):
        return lambda: made.append(key) or _plan(len(made))

    cache.plan("a", planner("a"))
    cache.plan("b", planner("b"))
    cache.plan("a", planner("a"))  # a is now the most recently used
    cache.plan("c", planner("c"))  # drops b
    assert len(cache) == 2
    cache.plan("a", planner("a"))
    cache.plan("b", planner("b"))
    assert made == ["a", "b", "c", "b"]


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PlanCache(0)
    with pytest.raises(TypeError, match="must return a Plan"):
        PlanCache().plan("a", lambda: "not a plan")  # type: ignore[arg-type,return-value]
