"""A started party has done its warm-up: links to the peers that are up, the dealer channel,
the first-use checks; the in-process job it runs on zeros counts what it was given; the
patient ledger's warm-up loads the kernels a consent job calls; what starting made is left
out of later full collections."""

from __future__ import annotations

import gc
import secrets
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from parties.config import MemberConfig
from parties.federation import init_federation
from parties.jobs import spec
from parties.ledger import keytable
from parties.ledger.patients import PatientKeys
from parties.service import warmup
from parties.service.dealer_service import serve
from parties.service.mesh import Mesh
from parties.service.node import PartyNode
from protocols.registry import installed
from smpc.chain import leafset, patients

A, B, C = "hospital-a", "hospital-b", "hospital-c"


@pytest.fixture
def members(tmp_path: Path) -> dict[str, MemberConfig]:
    fed = init_federation("warmfed", (A, B, C), ["analyst"], [], tmp_path / "fed", base_port=0)
    return {m.name: m for m in fed}


@pytest.fixture
def started(members) -> Iterator[list[PartyNode]]:
    """Nodes started by the test (stopped after it), and the dealer, serving."""
    dealer = serve(members["dealer"])
    nodes: list[PartyNode] = []
    yield nodes
    for node in nodes:
        node.stop(0)
    dealer.stop(0)


def _linked(node: PartyNode, peers: list[str]) -> bool:
    """Whether ``node``'s data-plane links to ``peers`` are up now (no waiting)."""
    return node.plane.wait_connected(0.0, peers)


def test_start_returns_linked_with_every_peer_already_serving(members, started) -> None:
    # hospital-a dials both others and c is dialled by both: each order of who dials and
    # who is dialled is met. Links come up on threads of their own; the warm-up is what
    # makes start wait for them, so the node just started must be linked at once.
    for name in (A, B, C):
        node = PartyNode(members[name]).start()
        before = [n.member.name for n in started]
        started.append(node)
        assert _linked(node, before), (name, before)
        for earlier in started[:-1]:  # the other end installs its side a moment later
            assert earlier.plane.wait_connected(5.0, [name]), (earlier.member.name, name)


def test_a_peers_health_call_makes_the_node_link_with_it_now(members, started, monkeypatch):
    # A peer that restarts while its dialler backs off is dialled at once, not after the
    # backoff: its warm-up's health call tells the dialler's data plane that it is up.
    node = PartyNode(members[A]).start()
    started.append(node)
    asked: list[str] = []
    monkeypatch.setattr(node.plane, "need", asked.append)
    caller = Mesh(members[B])
    try:
        caller.locate(A, 10.0)
    finally:
        caller.stop()
    analyst = Mesh(members["analyst"])
    try:
        analyst.locate(A, 10.0)  # an analyst's health check links nothing
    finally:
        analyst.stop()
    assert asked == [B]


def test_a_peer_that_is_down_is_not_waited_for(members, started) -> None:
    started.append(PartyNode(members[B]).start())
    node = started[0]
    begun = time.monotonic()
    missing = warmup.connect_peers(node.mesh, node.plane, timeout=30.0)
    assert missing == [A, C]
    assert time.monotonic() - begun < 15.0  # refused at once, never the 30 s bound


def test_start_opens_the_dealer_channel_and_runs_the_first_use_checks(members, started) -> None:
    installed.cache_clear()
    spec._federation_ca.cache_clear()
    started.append(PartyNode(members[A]).start())
    assert installed.cache_info().currsize == 1
    assert spec._federation_ca.cache_info().currsize == 1
    states: list[grpc.ChannelConnectivity] = []
    ready = threading.Event()

    def seen(state: grpc.ChannelConnectivity) -> None:
        states.append(state)
        if state == grpc.ChannelConnectivity.READY:
            ready.set()

    channel = started[0].dealer._channel
    channel.subscribe(seen, try_to_connect=False)  # told the state now, and each change
    try:
        assert ready.wait(10), states  # connected by the warm-up, never asked to here
    finally:
        channel.unsubscribe(seen)


@pytest.mark.parametrize("parties", [2, 3])
def test_warm_job_counts_every_row_of_zeros(parties: int) -> None:
    assert warmup.warm_job(parties, rows=7) == 7 * parties


def _loaded() -> dict[str, list[object]]:
    """The argument types each patient-ledger kernel has loaded (or compiled) so far."""
    kernels = {
        "fingerprints": keytable.fingerprints,
        "insert": keytable.insert,
        "find": keytable.find,
        "sort_unique": leafset._sort_unique,
    }
    return {name: list(k.signatures) for name, k in kernels.items()}


def test_warm_patients_loads_every_kernel_a_consent_job_calls() -> None:
    assert warmup.warm_patients() == 2  # two made-up identifiers, two leaves
    warmed = _loaded()
    assert all(warmed.values()), warmed
    # A job's own column: more and longer identifiers, read from a source as text.
    ids = np.array([f"patient-{i:06d}-of-a-long-registry" for i in range(500)])
    keys = PatientKeys().array(secrets.token_bytes(32), ids)
    assert len(patients.leaves(secrets.token_bytes(patients.KEY_SIZE), keys)) == 500 * 16
    assert _loaded() == warmed  # nothing new had to be loaded for the job


class _Cycle:
    """An object that refers to itself: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_settle_leaves_startup_objects_out_of_full_collections_and_still_collects() -> None:
    kept = [{"n": i} for i in range(10_000)]  # what a process holds once started
    try:
        warmup.settle()
        assert gc.get_freeze_count() >= len(kept)
        assert len(gc.get_objects(generation=2)) < len(kept)  # a full collection skips them
        cycle = _Cycle()
        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert gone() is None  # what is made after is collected as before
    finally:
        gc.unfreeze()
