"""The speed targets the project set, in one place, and how a result is checked against them.

Both ``smpc bench --check-targets`` and the pytest-benchmark table
(``benchmarks/report.py``) read :data:`TARGETS`. A target applies to every
result whose attributes equal its ``where`` (``operation``, ``elements``,
``transport``, ``transcripts``, ``phase``, ``size``); a missing
``transport`` means in memory. ``smpc bench`` measures the online phase
only; targets on other phases are checked from the pytest suites.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Measured(Protocol):
    """What a target reads of a result (benchmarks/report.py's rows and smpc bench's results)."""

    p50: float

    @property
    def per_second(self) -> float | None: ...

    @property
    def ratio(self) -> float | None: ...


@dataclass(frozen=True)
class Target:
    """A goal: ``metric`` of the results matching ``where`` at most ``limit``.

    ``metric`` is ``ratio`` (secure over plaintext), ``p50_ms``, or
    ``per_second`` (a lower bound).
    """

    goal: str
    where: dict[str, Any]
    metric: str
    limit: float

    def applies(self, result: object) -> bool:
        where = {"transport": "memory", **self.where}
        return all(getattr(result, key, None) == value for key, value in where.items())

    def value(self, result: Measured) -> float | None:
        if self.metric == "ratio":
            return result.ratio
        if self.metric == "p50_ms":
            return result.p50 * 1e3
        if self.metric == "per_second":
            return result.per_second
        raise ValueError(f"unknown metric {self.metric!r}")

    def met(self, value: float) -> bool:
        return value >= self.limit if self.metric == "per_second" else value <= self.limit

    def shown(self, value: float) -> str:
        if self.metric == "ratio":
            return f"{value:.1f}x"
        if self.metric == "p50_ms":
            return f"{value:.2f} ms"
        return f"{value / 1e6:.2f} M/s"


TARGETS = (
    Target(
        "10^6 fixed-point mul, online, transcripts off: within 30x of np.multiply",
        {"operation": "mul", "elements": 10**6, "transcripts": "off", "phase": "online"},
        "ratio",
        30.0,
    ),
    Target(
        "10^6 fixed-point mul, online+preprocessing, transcripts off: within 120x",
        {
            "operation": "mul",
            "elements": 10**6,
            "transcripts": "off",
            "phase": "online+preprocessing",
        },
        "ratio",
        120.0,
    ),
    Target(
        "256x256 fixed-point matmul, online, transcripts off: under 20 ms",
        {"operation": "matmul", "elements": 256 * 256, "transcripts": "off", "phase": "online"},
        "p50_ms",
        20.0,
    ),
    Target(
        "fixed-point mul of 1 element, 3 processes, mTLS sockets, transcripts on: p50 <= 1.2 ms",
        {"operation": "mul", "elements": 1, "transport": "tls", "transcripts": "on"},
        "p50_ms",
        1.2,
    ),
    Target(
        "10^6 fixed-point mul, 3 processes, mTLS sockets, transcripts on: >= 2.6 million/s",
        {"operation": "mul", "elements": 10**6, "transport": "tls", "transcripts": "on"},
        "per_second",
        2.6e6,
    ),
    Target(
        "10^6 comparisons (ltz), 3 parties in memory: under 0.5 s",
        {"operation": "ltz", "elements": 10**6},
        "p50_ms",
        500.0,
    ),
    Target(
        "10^6 sigmoids, 3 parties in memory: under 1.5 s",
        {"operation": "sigmoid", "elements": 10**6},
        "p50_ms",
        1500.0,
    ),
    Target(
        "mean and variance of 3 x 10^6 rows in memory, whole job: under 50 ms",
        {"operation": "stats-variance", "elements": 3 * 10**6},
        "p50_ms",
        50.0,
    ),
    Target(
        "LR inference 569 x 30, processes, submit to result: under 20 ms",
        {
            "operation": "lr inference",
            "size": "569x30",
            "transport": "grpc",
            "phase": "submit-to-result",
        },
        "p50_ms",
        20.0,
    ),
    Target(
        "LR inference 10^5 x 30, processes, submit to result: under 1 s",
        {
            "operation": "lr inference",
            "size": "1e5x30",
            "transport": "grpc",
            "phase": "submit-to-result",
        },
        "p50_ms",
        1000.0,
    ),
    Target(
        "pooled count, 3 hospital processes, submit to result: under 10 ms",
        {"operation": "pooled count", "transport": "grpc", "phase": "submit-to-result"},
        "p50_ms",
        10.0,
    ),
)


@dataclass(frozen=True)
class Verdict:
    """One target against one result (or against none, when nothing matched)."""

    target: Target
    value: float | None
    detail: str = ""

    @property
    def measured(self) -> bool:
        return self.value is not None

    @property
    def met(self) -> bool:
        return self.value is not None and self.target.met(self.value)

    def line(self) -> str:
        suffix = f" [{self.detail}]" if self.detail else ""
        if self.value is None:
            return f"  not measured  {self.target.goal}{suffix}"
        verdict = "met   " if self.met else "MISSED"
        return f"  {verdict} {self.target.shown(self.value):>9}  {self.target.goal}{suffix}"


def check(results: Sequence[object], *, detail: str = "phase") -> list[Verdict]:
    """Every target against every result it applies to; 'not measured' where none does."""
    verdicts = []
    for target in TARGETS:
        matching = [r for r in results if target.applies(r)]
        if not matching:
            verdicts.append(Verdict(target, None))
        for result in matching:
            value = target.value(result)  # type: ignore[arg-type]
            shown = str(getattr(result, detail, ""))
            verdicts.append(Verdict(target, value, shown if value is not None else "no baseline"))
    return verdicts
