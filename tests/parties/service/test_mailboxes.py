"""Mailboxes' expiry by the clock: unopened jobs' messages and closed jobs' ids, each after
UNOPENED_SECONDS (the module docstring), checked on a clock the test moves."""

from __future__ import annotations

from parties.service.frames import DATA, Frame
from parties.service.mailboxes import UNOPENED_SECONDS, Mailboxes


class _Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def _boxes() -> tuple[Mailboxes, _Clock]:
    boxes = Mailboxes("b", 1 << 20)
    boxes.clock = clock = _Clock()
    return boxes, clock


def _frame(job: str) -> Frame:
    return Frame(DATA, job, "x", payload=b"abc", length=3)


def test_a_closed_jobs_late_frames_are_dropped_until_its_id_expires() -> None:
    boxes, clock = _boxes()
    boxes.open_job("old")
    boxes.close_job("old")
    clock.now += UNOPENED_SECONDS - 1
    assert not boxes.file("a", _frame("old"))  # still remembered as closed
    clock.now += 2
    assert boxes.file("a", _frame("old"))  # forgotten: held as a job not opened here


def test_an_unopened_jobs_messages_expire_and_later_ones_are_kept() -> None:
    boxes, clock = _boxes()
    assert boxes.file("a", _frame("early"))
    clock.now += UNOPENED_SECONDS / 2
    assert boxes.file("a", _frame("later"))
    assert len(boxes) == 2
    clock.now += UNOPENED_SECONDS / 2 + 1  # "early" is past its time, "later" is not
    assert boxes.file("a", _frame("third"))
    assert len(boxes) == 2
    assert boxes.take("early", "a") is None
    assert boxes.take("later", "a") == _frame("later")
    clock.now += UNOPENED_SECONDS + 1  # now "later" and "third" are past theirs too
    boxes.open_job("fresh")
    assert boxes.file("a", _frame("fresh"))
    assert boxes.take("third", "a") is None


def test_a_job_closed_while_nothing_else_can_expire_still_expires() -> None:
    boxes, clock = _boxes()
    boxes.open_job("live")
    assert boxes.file("a", _frame("live"))  # nothing held that could expire
    boxes.open_job("short")
    boxes.close_job("short")
    clock.now += UNOPENED_SECONDS - 1
    assert not boxes.file("a", _frame("short"))
    clock.now += 2
    assert boxes.file("a", _frame("short"))
