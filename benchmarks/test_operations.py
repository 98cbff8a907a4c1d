"""Every operation of ``smpc bench``'s table as a pytest-benchmark case, in memory and over TLS.

Scenario: 3 computing parties, semi-honest, seed-based dealer colluding
with none of them; fixed point with F = 16; transcripts on. ``memory``: the
parties are threads of one process over in-memory queues. ``tls``: three
hospital processes on 127.0.0.1-3, every message over mutual TLS 1.3
sockets. The online phase: each job's preprocessing is expanded before
its first round; the parties time every repetition themselves
(``parties.bench.measure``), so the table's p50/p99 are over those samples.

Sizes: 1, 10^3 and 10^6 in memory, 1, 10^3 and 10^4 over TLS sockets, with the
default caps, minimum sizes and transports of ``smpc bench``. The
operations, their data, their round counts and plaintext baselines come
from ``parties.bench.operations``; add an operation there and it appears
here. Command::

    .venv/bin/python -m pytest benchmarks/test_operations.py --benchmark-enable \\
        --benchmark-only --benchmark-json=bench-results/operations.json
    .venv/bin/python -m benchmarks.report --json bench-results/operations.json

``smpc bench`` (``make bench``) runs the same cases with a progress line,
a table, JSON and a plot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from parties.bench.measure import Case, ProcessRunner, Result, measure, memory_runner
from parties.bench.operations import OPERATIONS

SIZES = {"memory": (1, 10**3, 10**6), "tls": (1, 10**3, 10**4)}


def _cases() -> list[object]:
    params = []
    for transport, sizes in SIZES.items():
        for name, op in OPERATIONS.items():
            if transport not in op.default_transports:
                continue
            capped = sorted({max(op.min_size, min(s, op.default_max or s)) for s in sizes})
            marks = [pytest.mark.process] if transport == "tls" else []
            for size in capped:
                case = Case(name, size, transport)
                params.append(pytest.param(case, id=f"{name}-{size}-{transport}", marks=marks))
    return params


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessRunner]:
    with ProcessRunner(Path(tmp_path_factory.mktemp("bench")) / "federation") as runner:
        yield runner


@pytest.mark.parametrize("case", _cases())
def test_operation(benchmark, case: Case, request: pytest.FixtureRequest) -> None:
    runner = request.getfixturevalue("processes") if case.transport == "tls" else memory_runner
    done: list[Result] = []
    benchmark.pedantic(lambda: done.append(measure(case, runner)), rounds=1, iterations=1)
    result = done[-1]
    assert result.rounds == OPERATIONS[case.operation].rounds
    benchmark.extra_info.update(
        operation=result.operation,
        size=result.size,
        elements=result.elements,
        transport=result.transport,
        transcripts=True,
        phase=result.phase,
        rounds=result.rounds,
        bytes_per_party=result.bytes_per_party,
        wire_bytes_per_party=result.wire_bytes_per_party,
        plaintext_seconds=result.plaintext_seconds,
        baseline=result.baseline,
        per_op_samples=list(result.samples),
    )
