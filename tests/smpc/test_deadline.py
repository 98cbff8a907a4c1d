"""A deadline made once from the seconds left, read as time left on the monotonic clock."""

from __future__ import annotations

import time

from smpc.deadline import Deadline


def test_time_left_counts_down_and_stops_at_zero() -> None:
    deadline = Deadline.after(60.0)
    assert 59.0 < deadline.left() <= 60.0
    assert not deadline.passed
    assert Deadline.after(-1.0).left() == 0.0
    assert Deadline.after(0.0).passed


def test_it_is_an_instant_on_the_monotonic_clock() -> None:
    before = time.monotonic()
    deadline = Deadline.after(5.0)
    assert before + 5.0 <= deadline.at <= time.monotonic() + 5.0
