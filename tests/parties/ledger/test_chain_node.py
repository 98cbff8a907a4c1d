"""Chain nodes with real stores, clocks and threads, linked in process (no gRPC here)."""

from __future__ import annotations

import threading

import pytest

from parties.federation import init_federation
from parties.ledger.chain_node import ChainNode
from parties.ledger.genesis import load_genesis
from smpc.chain.keys import load_private_key
from smpc.chain.messages import Gossip, encode_batch, encode_message
from smpc.chain.records import ConsentRecord, record_id
from smpc.chain.verify import verify_chain

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")


class Wires:
    """Delivers each sent message to the named node on a thread of its own; nodes can be cut."""

    def __init__(self) -> None:
        self.nodes: dict[str, ChainNode] = {}
        self.down: set[str] = set()

    def sender(self, name: str):
        def send(peer: str, data: bytes) -> None:
            if name in self.down or peer in self.down or peer not in self.nodes:
                raise ConnectionError(f"{peer} is unreachable")
            target = self.nodes[peer]
            threading.Thread(target=target.deliver, args=(name, data), daemon=True).start()

        return send


@pytest.fixture
def federation(tmp_path):
    members = init_federation("chainfed", HOSPITALS, ("analyst",), (), tmp_path, base_port=0)
    hospitals = {m.name: m for m in members if m.role == "hospital"}
    return hospitals, load_genesis(next(iter(hospitals.values())).genesis)


def _start(hospitals, genesis, wires: Wires, name: str, round_ms: int = 300) -> ChainNode:
    node = ChainNode(hospitals[name], genesis, HOSPITALS, wires.sender(name), round_ms=round_ms)
    wires.nodes[name] = node
    return node.start()


def _record(hospitals, i: int) -> bytes:
    """A consent grant at hospital-a, signed by its chain key."""
    key = load_private_key(hospitals["hospital-a"].chain_key.read_bytes())
    record = ConsentRecord(
        "grant", "hospital-a", bytes([i]) * 32, "statistics", 1_800_000_000_000 + i
    )
    return record.signed_by(key).encode()


def test_a_record_becomes_final_at_every_node_and_every_store_verifies(federation) -> None:
    hospitals, genesis = federation
    wires = Wires()
    nodes = [_start(hospitals, genesis, wires, h) for h in HOSPITALS]
    try:
        rid = nodes[0].submit(_record(hospitals, 1))
        heights = [n.wait_final(rid, timeout=10) for n in nodes]
        assert heights == [1, 1, 1]
    finally:
        for n in nodes:
            n.stop()
    for n in nodes:
        with type(n.store)(n.store.path, readonly=True) as store:
            verify_chain(store, genesis, 2**62)


def test_a_node_down_during_a_block_catches_up_when_it_starts_again(federation) -> None:
    hospitals, genesis = federation
    wires = Wires()
    nodes = {h: _start(hospitals, genesis, wires, h) for h in HOSPITALS}
    try:
        wires.down.add("hospital-b")  # the proposer of height 1, round 0
        nodes["hospital-b"].stop()
        rid = nodes["hospital-a"].submit(_record(hospitals, 2))
        assert nodes["hospital-c"].wait_final(rid, timeout=15) == 1  # after a round change
        wires.down.discard("hospital-b")
        nodes["hospital-b"] = _start(hospitals, genesis, wires, "hospital-b")
        assert nodes["hospital-b"].wait_final(rid, timeout=10) == 1
    finally:
        for n in nodes.values():
            n.stop()


def test_malformed_bytes_from_a_peer_are_refused_and_the_node_keeps_going(federation) -> None:
    hospitals, genesis = federation
    wires = Wires()
    nodes = [_start(hospitals, genesis, wires, h) for h in HOSPITALS]
    try:
        nodes[0].deliver("hospital-b", b"\x00not a chain message")
        rid = nodes[1].submit(_record(hospitals, 3))
        assert nodes[0].wait_final(rid, timeout=10) == 1
    finally:
        for n in nodes:
            n.stop()


def test_a_batch_is_handled_message_by_message_and_a_forged_record_in_it_refused(
    federation,
) -> None:
    hospitals, genesis = federation
    wires = Wires()
    nodes = {h: _start(hospitals, genesis, wires, h) for h in HOSPITALS}
    try:
        good = _record(hospitals, 4)
        forged = bytearray(_record(hospitals, 5))
        forged[-1] ^= 1  # the last byte of hospital-a's signature
        batch = encode_batch([encode_message(Gossip(bytes(forged))), encode_message(Gossip(good))])
        node = nodes["hospital-b"]  # the proposer of height 1, round 0
        node.deliver("hospital-a", batch)
        assert any("not signed by hospital-a" in r for r in node.replica.rejected)
        assert node.wait_final(record_id(good), timeout=10) == 1
        assert node.wait_final(record_id(bytes(forged)), timeout=0.5) is None
    finally:
        for n in nodes.values():
            n.stop()
