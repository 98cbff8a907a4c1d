"""Engine operations between 3 real party processes over mutual TLS 1.3 sockets on loopback.

Scenario: three hospital processes (``ProcessFederation``), each bound to its
own loopback address (127.0.0.1-3), every message over the data plane's
mutual TLS sockets, per-channel transcripts on; semi-honest parties, the
coordinator playing the seed-based dealer. Command::

    make bench-suites # or: .venv/bin/python -m pytest benchmarks --benchmark-enable \\
                      #        --benchmark-only -k grpc --benchmark-json=bench-results/grpc.json

One round and one chained product alone (a minute)::

    .venv/bin/python -m pytest benchmarks/test_grpc_processes.py --benchmark-enable \\
        --benchmark-only -k "round or chained"

Each timed job runs many operations; the parties time every operation
themselves, and the table's p50/p99 are over those per-operation samples.
"""

from __future__ import annotations

import numpy as np
import pytest

from parties.federation import init_federation
from parties.local.process_federation import ProcessFederation
from protocols.operations import big_product, chained_products, exchange_rounds
from smpc.local import LocalFederation

HOSPITALS = ["hospital-a", "hospital-b", "hospital-c"]
LATENCY_OPS = 250  # per job; the first 50 are warm-up
ROUND_OPS = 1000  # per job; the first tenth are warm-up
THROUGHPUT_SIZE = 10**6


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory):
    members = init_federation(
        "benchfed", HOSPITALS, [], [], tmp_path_factory.mktemp("grpc") / "fed", base_port=0
    )
    with ProcessFederation([m for m in members if m.role == "hospital"]) as fed:
        yield fed


def test_grpc_round_latency(benchmark, processes: ProcessFederation) -> None:
    """One bare round: every party sends one ring element to every peer, then waits."""
    samples: list[float] = []

    def job() -> None:
        res = processes.run(exchange_rounds, [{"count": ROUND_OPS}] * 3)
        samples.extend(res.results[0][ROUND_OPS // 10 :].tolist())
        benchmark.extra_info.update(
            rounds=res.reports[0].rounds,
            bytes_per_party=max(r.bytes_sent for r in res.reports),
            wire_bytes_per_party=max(r.wire_bytes_sent for r in res.reports),
        )

    benchmark.pedantic(job, rounds=2, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        operation="round",
        size="1",
        elements=1,
        transport="tls",
        transcripts=True,
        phase="online",
        per_op_samples=samples[-(ROUND_OPS - ROUND_OPS // 10) :],
    )


def test_grpc_chained_mul_latency(benchmark, processes: ProcessFederation) -> None:
    """One fixed-point product (Beaver round + truncation round) at a time, chained."""
    samples: list[float] = []

    def job() -> None:
        res = processes.run(chained_products, [{"count": LATENCY_OPS}] * 3)
        times, value = res.results[0]
        assert abs(value[0] - (1.0001 * 0.9999**LATENCY_OPS)) < 1e-2
        samples.extend(times[50:].tolist())
        benchmark.extra_info.update(
            rounds=res.reports[0].rounds,
            bytes_per_party=max(r.bytes_sent for r in res.reports),
            wire_bytes_per_party=max(r.wire_bytes_sent for r in res.reports),
        )

    benchmark.pedantic(job, rounds=2, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        operation="mul",  # one element at a time, chained
        size="1",
        elements=1,
        transport="tls",
        transcripts=True,
        phase="online",
        per_op_samples=samples[-(LATENCY_OPS - 50) :],
    )


def test_grpc_mul_throughput(benchmark, processes: ProcessFederation) -> None:
    """10^6 fixed-point products in one operation; the in-memory transport as the baseline."""
    samples: list[float] = []

    def job() -> None:
        res = processes.run(big_product, [{"size": THROUGHPUT_SIZE}] * 3)
        samples.append(max(r.result[0] for r in res.reports))  # warm-up included; trimmed below
        report = max(res.reports, key=lambda r: r.bytes_sent)
        benchmark.extra_info.update(
            bytes_per_party=report.bytes_sent, wire_bytes_per_party=report.wire_bytes_sent
        )

    benchmark.pedantic(job, rounds=5, iterations=1, warmup_rounds=1)
    local = LocalFederation(3)
    memory = [
        max(r[0] for r in local.run(big_product, [{"size": THROUGHPUT_SIZE}] * 3).results)
        for _ in range(5)
    ]
    benchmark.extra_info.update(
        operation="mul",
        size="1e6",
        elements=THROUGHPUT_SIZE,
        transport="tls",
        transcripts=True,
        phase="online",
        rounds=2,
        per_op_samples=samples[-5:],
        plaintext_seconds=float(np.median(memory)),
        baseline="in-memory",
    )
