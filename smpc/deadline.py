"""A deadline as one value: a point on this process's monotonic clock.

A job carries its deadline as wall-clock milliseconds, the form parties
agree on and sign. Inside a process the time left is measured on the
monotonic clock, which does not jump when the wall clock is set: a
:class:`Deadline` is made once from the seconds left and answers every later
"how long may this still wait".
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
    """The instant ``at`` (``time.monotonic()`` seconds) past which waiting is an error."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now (already passed if ``seconds <= 0``)."""
        return cls(time.monotonic() + seconds)

    def left(self) -> float:
        """Seconds until the deadline; 0 once it has passed."""
        return max(0.0, self.at - time.monotonic())

    @property
    def passed(self) -> bool:
        """True once the deadline has been reached."""
        return self.left() <= 0.0
