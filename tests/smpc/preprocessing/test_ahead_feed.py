"""AheadFeed hands out a feed's corrections in order and passes its failures on."""

from __future__ import annotations

import numpy as np
import pytest

from smpc.errors import PreprocessingExhausted
from smpc.preprocessing import AheadFeed, CorrectionFeed


class _Counting(CorrectionFeed):
    def __init__(self, fail_at: int | None = None) -> None:
        self.asked: list[int] = []
        self.fail_at = fail_at

    def corrections(self, index: int) -> list[np.ndarray]:
        if index == self.fail_at:
            raise PreprocessingExhausted(f"no item {index}")
        self.asked.append(index)
        return [np.full(2, index, dtype=np.uint64)]


def test_corrections_arrive_in_plan_order_from_the_background() -> None:
    source = _Counting()
    feed = AheadFeed(source, 4)
    got = [int(feed.corrections(i)[0][0]) for i in range(4)]
    assert got == [0, 1, 2, 3]
    assert source.asked == [0, 1, 2, 3]


def test_a_failure_of_the_source_reaches_the_party_that_asks() -> None:
    feed = AheadFeed(_Counting(fail_at=1), 3)
    assert int(feed.corrections(0)[0][0]) == 0
    with pytest.raises(PreprocessingExhausted, match="no item 1"):
        feed.corrections(1)


def test_a_source_expanding_ahead_hands_out_valid_items_and_refuses_a_second_mode() -> None:
    from smpc import ring_reference as ref
    from smpc.preprocessing import Dealer, Plan, Request

    plan = Plan((Request("triple", (5,)), Request("truncation", (5,), 16)))
    sources = Dealer("fed", "job", 3, plan).local_sources()  # expands ahead by default
    triples = [s.triple((5,)).consume() for s in sources]
    a, b, c = (ref.sum_shares([t[k] for t in triples]) for k in range(3))
    assert (ref.mul(a, b) == c).all()
    with pytest.raises(RuntimeError, match="ahead"):
        sources[1].prefetch()
    with pytest.raises(RuntimeError, match="once"):
        sources[1].expand_ahead()
