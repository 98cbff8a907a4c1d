"""Chain replication benchmark: from a record's submission to its finality at every node.

Scenario: 3 and 5 hospitals, each a chain authority (quorum 2 and 4), each a
``PartyNode`` with its gRPC server on 127.0.0.1 over mutual TLS, all in this
one process (threads); blocks and seals go to SQLite stores with full sync.
Each repetition submits one consent record at one hospital (taking turns) and
waits until every node holds it in a final block: gossip to the proposer, the
proposal, the seals, the commit. Rounds of 2 s never expire here.

Trust model: crash faults among the authorities; a colluding quorum could
rewrite history (see the README's chain section).

Run::

    .venv/bin/python -m pytest benchmarks/test_chain_replication.py \\
        --benchmark-enable --benchmark-only -q
"""

from __future__ import annotations

import itertools

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from parties.federation import init_federation
from parties.service.node import PartyNode
from smpc.chain.keys import load_private_key
from smpc.chain.records import ConsentRecord

WAIT_S = 30.0


@pytest.fixture(params=[3, 5], ids=["3-authorities", "5-authorities"])
def nodes(request, tmp_path_factory):
    n = request.param
    hospitals = [f"hospital-{chr(97 + i)}" for i in range(n)]
    members = init_federation(
        "bench", hospitals, ("analyst",), (), tmp_path_factory.mktemp(f"chain{n}"), base_port=0
    )
    started = [PartyNode(m).start() for m in members if m.role == "hospital"]
    try:
        yield started
    finally:
        for node in started:
            node.stop()


def test_record_to_finality(benchmark: BenchmarkFixture, nodes: list[PartyNode]) -> None:
    counter = itertools.count()
    keys = {n.member.name: load_private_key(n.member.chain_key.read_bytes()) for n in nodes}

    def one() -> None:
        i = next(counter)
        node = nodes[i % len(nodes)]
        patient = i.to_bytes(32, "big")
        record = ConsentRecord(
            "grant", node.member.name, patient, "statistics", 1_800_000_000_000 + i
        ).signed_by(keys[node.member.name])  # a consent record is signed by its hospital
        rid = node.chain.submit(record.encode())
        for other in nodes:
            assert other.chain.wait_final(rid, WAIT_S) is not None, "the record never became final"

    benchmark.group = f"chain record to finality, {len(nodes)} authorities"
    benchmark.pedantic(one, rounds=200, warmup_rounds=5, iterations=1)
    stats = benchmark.stats.stats if benchmark.stats is not None else None
    benchmark.extra_info.update(
        operation="chain-finality",
        authorities=len(nodes),
        transport="grpc-mtls",
        p99_seconds=None
        if stats is None
        else sorted(stats.data)[int(0.99 * (len(stats.data) - 1))],
    )
    heights = {node.chain.height for node in nodes}
    assert len(heights) == 1
