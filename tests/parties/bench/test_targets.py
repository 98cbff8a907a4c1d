"""Targets: which results they apply to, and met or missed."""

from __future__ import annotations

from dataclasses import dataclass

from parties.bench.targets import TARGETS, Target, check


@dataclass
class Row:
    operation: str
    elements: int
    p50: float
    plaintext: float
    transport: str = "memory"
    transcripts: str = "on"
    phase: str = "online"

    @property
    def per_second(self) -> float:
        return self.elements / self.p50

    @property
    def ratio(self) -> float:
        return self.p50 / self.plaintext


def test_a_target_applies_to_matching_rows_only_and_defaults_to_memory() -> None:
    target = Target("ltz", {"operation": "ltz", "elements": 10**6}, "p50_ms", 500.0)
    assert target.applies(Row("ltz", 10**6, 0.1, 1e-3))
    assert not target.applies(Row("ltz", 10**6, 0.1, 1e-3, transport="tls"))
    assert not target.applies(Row("ltz", 1000, 0.1, 1e-3))


def test_met_and_missed_by_metric() -> None:
    lat = Target("l", {}, "p50_ms", 20.0)
    assert lat.met(lat.value(Row("x", 1, 0.019, 1.0)))
    assert not lat.met(lat.value(Row("x", 1, 0.021, 1.0)))
    rate = Target("r", {}, "per_second", 2e6)
    assert rate.met(rate.value(Row("x", 10**6, 0.4, 1.0)))
    assert not rate.met(rate.value(Row("x", 10**6, 0.6, 1.0)))
    ratio = Target("q", {}, "ratio", 30.0)
    assert ratio.met(ratio.value(Row("x", 1, 0.029, 0.001)))
    assert not ratio.met(ratio.value(Row("x", 1, 0.031, 0.001)))


def test_check_reports_every_target_once_when_nothing_matches() -> None:
    verdicts = check([])
    assert len(verdicts) == len(TARGETS)
    assert not any(v.measured for v in verdicts)
    assert all("not measured" in v.line() for v in verdicts)


def test_check_marks_a_slow_comparison_missed() -> None:
    slow = Row("ltz", 10**6, 0.9, 1e-3)
    verdicts = [v for v in check([slow]) if v.measured]
    assert len(verdicts) == 1
    assert not verdicts[0].met and "MISSED" in verdicts[0].line()
