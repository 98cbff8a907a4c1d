"""Timing one operation at one size on one transport: repetitions inside the parties.

Every party runs :func:`repeat_operation`: it prepares the operands (untimed),
waits for every other party to be ready (one empty round), runs the operation
``warmup + repetitions`` times, timing each repetition
with ``perf_counter`` and reading its rounds and bytes from the transport's
counters, then reveals the last output (untimed). A repetition's latency is
the slowest party's time for it. Preprocessing is expanded in full before
the first round (``prefetch``), so the times are the online phase.

Repetitions are split over several jobs when one plan would hold too much
preprocessing (large sizes); each job uses fresh correlated randomness, as
every job must. Below ``MEDIUM_FROM`` elements a case takes
``SMALL_REPETITIONS`` timed repetitions, up to ``LARGE_FROM`` elements
``MEDIUM_REPETITIONS`` (each after a tenth as many warm-up ones), and from
``LARGE_FROM`` on it is the median of ``LARGE_REPETITIONS`` runs (the median
discards a slow first run, so there is no warm-up run at that size).
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np

from parties.bench import (
    LARGE_FROM,
    LARGE_REPETITIONS,
    MEDIUM_FROM,
    MEDIUM_REPETITIONS,
    SMALL_REPETITIONS,
)
from parties.bench.operations import FRAC_BITS, OPERATIONS, Operation, ResultMismatch
from parties.threads import THREAD_LIMITS
from smpc.runtime import Runtime

if TYPE_CHECKING:
    from parties.config import MemberConfig
    from parties.local.process_federation import ProcessFederation

JOB_BUDGET = 4_000_000
"""Elements times the operation's weight that one job may plan for: with a product's
preprocessing at 48 bytes per element and party, about 200 MB per party and job."""

MEMORY = "memory"
SOCKETS = "tls"
TRANSPORTS = (MEMORY, SOCKETS)
N_PARTIES = 3


@dataclass(frozen=True)
class Case:
    """What to measure: an operation at a size, on a transport, with or without transcripts."""

    operation: str
    size: int
    transport: str
    transcripts: bool = True

    @property
    def op(self) -> Operation:
        return OPERATIONS[self.operation]

    @property
    def label(self) -> str:
        return f"{self.operation} {self.op.shape(self.size)} on {self.transport}"


@dataclass(frozen=True)
class Result:
    """One measured case, as the table, the JSON and the targets read it; times in seconds."""

    operation: str
    size: str
    elements: int
    transport: str
    transcripts: str
    phase: str
    parties: int
    repetitions: int
    warmup: int
    jobs: int
    p50: float
    p99: float
    min: float
    max: float
    rounds: int
    documented_rounds: int
    bytes_per_party: int
    wire_bytes_per_party: int | None
    plaintext_seconds: float
    baseline: str
    samples: tuple[float, ...]

    @property
    def per_second(self) -> float:
        """Elements per second at the median time."""
        return self.elements / self.p50

    @property
    def ratio(self) -> float:
        """Median secure time over the plaintext time of the same computation."""
        return self.p50 / self.plaintext_seconds

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["samples"] = list(self.samples)
        record.update(
            p50_seconds=record.pop("p50"),
            p99_seconds=record.pop("p99"),
            min_seconds=record.pop("min"),
            max_seconds=record.pop("max"),
            per_second=self.per_second,
            ratio=self.ratio,
        )
        return record


def percentile(data: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of ``data``, interpolating linearly between order statistics."""
    ordered = sorted(data)
    if not ordered:
        raise ValueError("percentile of no data")
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def plaintext_seconds(
    fn: Callable[[], object], *, repeats: int = 101, min_block: float = 2e-4
) -> float:
    """Median seconds per call of ``fn``.

    Calls are timed in blocks long enough (``min_block``) for the clock to
    resolve a microsecond operation; the median is over ``repeats`` blocks.
    """
    fn()
    loops = 1
    while True:
        start = perf_counter()
        for _ in range(loops):
            fn()
        if perf_counter() - start >= min_block or loops >= 1 << 20:
            break
        loops *= 2
    samples = []
    for _ in range(repeats):
        start = perf_counter()
        for _ in range(loops):
            fn()
        samples.append((perf_counter() - start) / loops)
    return statistics.median(samples)


def schedule(case: Case, repetitions: int = SMALL_REPETITIONS) -> tuple[int, list[int]]:
    """Warm-up repetitions (all in the first job) and the timed repetitions of each job.

    ``repetitions`` is the count for small sizes; medium and large sizes take
    their tier's count, or ``repetitions`` if that is smaller.
    """
    if repetitions < 1:
        raise ValueError(f"repetitions must be at least 1, got {repetitions}")
    elements = case.op.elements(case.size)
    if elements >= LARGE_FROM:
        timed, warmup = min(LARGE_REPETITIONS, repetitions), 0
    else:
        timed = min(MEDIUM_REPETITIONS, repetitions) if elements >= MEDIUM_FROM else repetitions
        warmup = max(1, timed // 10)
    per_job = max(1, JOB_BUDGET // (elements * case.op.weight))
    jobs = []
    left = timed
    first = True
    while left > 0:
        room = per_job - (warmup if first else 0)
        take = min(left, max(1, room))
        jobs.append(take)
        left -= take
        first = False
    return warmup, jobs


def repeat_operation(rt: Runtime, spec: dict[str, Any]) -> dict[str, Any]:
    """At every party: prepare, run ``warmup + repetitions`` timed repetitions, reveal the last.

    Returns this party's times and per-repetition rounds, payload bytes and
    (between processes) frame bytes, with its part of the revealed output.
    """
    op = OPERATIONS[spec["operation"]]
    data = op.data(spec["size"])
    state = op.setup(rt, data)
    # One empty round so that every party starts the first repetition together:
    # otherwise a party done with its setup early would time its wait for the others.
    rt.exchange_all(np.zeros(1, dtype=np.uint64), "barrier")
    total = spec["warmup"] + spec["repetitions"]
    transport = rt.transport
    times = np.empty(total)
    rounds = np.empty(total, dtype=np.int64)
    sent = np.empty(total, dtype=np.int64)
    wire = np.empty(total, dtype=np.int64)
    out = None
    for i in range(total):
        r0, b0, w0 = transport.rounds, transport.bytes_sent, _wire(transport)
        start = perf_counter()
        out = op.run(rt, state)
        times[i] = perf_counter() - start
        rounds[i] = transport.rounds - r0
        sent[i] = transport.bytes_sent - b0
        wire[i] = _wire(transport) - w0
    keep = slice(spec["warmup"], None)
    return {
        "times": times[keep],
        "rounds": rounds[keep],
        "bytes": sent[keep],
        "wire": wire[keep] if hasattr(transport, "wire_bytes_sent") else None,
        "revealed": op.reveal(rt, out),
    }


def _wire(transport: object) -> int:
    return int(getattr(transport, "wire_bytes_sent", 0))


Runner = Callable[[Case, dict[str, Any]], list[dict[str, Any]]]
"""Runs :func:`repeat_operation` as one job at every party; returns each party's answer."""


def memory_runner(case: Case, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """One job among ``N_PARTIES`` threads over the in-memory transport."""
    from smpc.local import LocalFederation

    fed = LocalFederation(N_PARTIES, frac_bits=FRAC_BITS, transcripts=case.transcripts)
    job = fed.prepare(repeat_operation, [spec] * N_PARTIES, prefetch=True)
    return list(job.run().results)


class ProcessRunner:
    """Three hospital processes over mutual TLS 1.3 sockets on loopback, started on first use.

    The federation (CA, keys, certificates) is made in ``workdir``, which the
    caller creates and deletes; one set of processes per transcript setting.
    """

    HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
    JOB_TIMEOUT = 600.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._members: list[MemberConfig] | None = None
        self._running: dict[bool, ProcessFederation] = {}

    def __call__(self, case: Case, spec: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self._federation(case.transcripts).run(repeat_operation, [spec] * 3).results)

    def _federation(self, transcripts: bool) -> ProcessFederation:
        from parties.federation import init_federation
        from parties.local.process_federation import ProcessFederation

        if self._members is None:
            members = init_federation("bench", self.HOSPITALS, [], [], self.workdir, base_port=0)
            self._members = [m for m in members if m.role == "hospital"]
        if transcripts not in self._running:
            fed = ProcessFederation(
                self._members,
                frac_bits=FRAC_BITS,
                transcripts=transcripts,
                timeout=self.JOB_TIMEOUT,
                prefetch=True,
            )
            self._running[transcripts] = fed.start()
        return self._running[transcripts]

    def close(self) -> None:
        """Stop every party process this runner started."""
        for fed in self._running.values():
            fed.stop()
        self._running.clear()

    def __enter__(self) -> ProcessRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def measure(case: Case, runner: Runner, *, repetitions: int = SMALL_REPETITIONS) -> Result:
    """Time ``case`` with ``runner``, check its output against numpy, time numpy too."""
    op = case.op
    warmup, jobs = schedule(case, repetitions)
    times: list[float] = []
    rounds: set[int] = set()
    payload = 0
    wire: int | None = None
    answers: list[dict[str, Any]] = []
    for k, repetitions in enumerate(jobs):
        spec = {
            "operation": case.operation,
            "size": case.size,
            "warmup": warmup if k == 0 else 0,
            "repetitions": repetitions,
        }
        answers = runner(case, spec)
        times.extend(np.max([a["times"] for a in answers], axis=0).tolist())
        rounds.update(int(r) for a in answers for r in a["rounds"])
        payload = max(payload, *(int(a["bytes"].max()) for a in answers))
        if answers[0]["wire"] is not None:
            wire = max(wire or 0, *(int(a["wire"].max()) for a in answers))
    data = op.data(case.size)
    expected = op.plaintext(data)
    try:
        op.check(op.combine([a["revealed"] for a in answers]), expected, data)
    except ResultMismatch as exc:
        raise ResultMismatch(f"{case.label}: the secure result {exc}") from None
    if len(rounds) != 1:
        raise ResultMismatch(f"{case.label}: repetitions took different rounds {sorted(rounds)}")
    baseline = _plaintext_time(lambda: op.plaintext(data))
    return Result(
        operation=case.operation,
        size=op.shape(case.size),
        elements=op.elements(case.size),
        transport=case.transport,
        transcripts="on" if case.transcripts else "off",
        phase="online",
        parties=N_PARTIES,
        repetitions=len(times),
        warmup=warmup,
        jobs=len(jobs),
        p50=percentile(times, 50),
        p99=percentile(times, 99),
        min=min(times),
        max=max(times),
        rounds=rounds.pop(),
        documented_rounds=op.rounds,
        bytes_per_party=payload,
        wire_bytes_per_party=wire,
        plaintext_seconds=baseline,
        baseline=op.baseline,
        samples=tuple(times),
    )


def _plaintext_time(fn: Callable[[], object]) -> float:
    """The plaintext median, with fewer repeats for slow computations (about 0.3 s in all)."""
    start = perf_counter()
    fn()
    once = perf_counter() - start
    repeats = int(min(101, max(5, 0.3 / max(once, 1e-9))))
    return plaintext_seconds(fn, repeats=repeats)


def thread_settings() -> dict[str, str | None]:
    """The thread limits the numbers were taken with."""
    return {name: os.environ.get(name) for name in THREAD_LIMITS}
