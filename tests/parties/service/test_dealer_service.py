"""The dealer service and a party's link to it: limits, reconnection, and a dealer that dies."""

from __future__ import annotations

import dataclasses
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest

from parties.config import MemberConfig
from parties.federation import init_federation
from parties.jobs.spec import JobSpec, SignedJob, now_ms, sign_job
from parties.service import dealer_service, tls, wire_pb2_grpc
from parties.service.dealer_service import DealerLink, DealerService
from parties.service.mesh import CHUNK_BYTES
from parties.service.node import public_failure
from smpc.errors import PeerTimeoutError, SMPCError
from smpc.preprocessing import Dealer, Plan, SeededSource
from smpc.preprocessing.plan import AHEAD_WORDS, Request

PARTIES = ("hospital-a", "hospital-b")


@pytest.fixture
def members(tmp_path: Path) -> dict[str, MemberConfig]:
    fed = init_federation("dealfed", PARTIES, ["analyst"], [], tmp_path / "fed", base_port=0)
    return {m.name: m for m in fed}


@pytest.fixture
def dealer(members) -> Iterator[tuple[MemberConfig, DealerService, grpc.Server]]:
    """The dealer service in this process, on the dealer's address, with mutual TLS."""
    member = next(m for m in members.values() if m.role == "dealer")
    service = DealerService(member)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    wire_pb2_grpc.add_DealerServicer_to_server(service, server)
    server.add_secure_port(member.address, tls.server_credentials(member))
    server.start()
    yield member, service, server
    server.stop(0)


def _signed(members, lifetime_ms: int = 30_000) -> tuple[JobSpec, bytes]:
    created = now_ms()
    spec = JobSpec(
        federation="dealfed",
        protocol="pooled-count",
        protocol_version="1",
        analyst="analyst",
        parties=PARTIES,
        inputs={},
        outputs={"count": ("analyst",)},
        created_ms=created,
        deadline_ms=created + lifetime_ms,
    )
    analyst = members["analyst"]
    return spec, sign_job(spec, analyst.tls.key, analyst.tls.cert).to_json().encode()


def test_a_job_longer_lived_than_the_dealers_policy_is_refused(members, dealer) -> None:
    spec, signed = _signed(members, lifetime_ms=3 * 365 * 24 * 3600 * 1000)
    link = DealerLink(members["hospital-a"])
    try:
        with pytest.raises(SMPCError, match="lifetime-too-long"):
            link.provision(spec.job_id, signed, Plan(), timeout=10)
    finally:
        link.close()
    assert not dealer[1]._jobs


def test_a_caller_the_dealer_does_not_know_is_refused(members, dealer, tmp_path) -> None:
    from parties.federation import add_member

    newcomer = add_member(tmp_path / "fed", "hospital-0", "hospital")  # the dealer predates it
    spec, signed = _signed(members)
    link = DealerLink(newcomer)
    try:
        with pytest.raises(SMPCError, match="not a configured peer"):
            link.provision(spec.job_id, signed, Plan(), timeout=10)
    finally:
        link.close()
    assert not dealer[1]._jobs


def test_the_dealer_holds_a_bounded_number_of_waiting_jobs(members, dealer, monkeypatch) -> None:
    monkeypatch.setattr(dealer_service, "PENDING_JOBS", 2)
    link = DealerLink(members["hospital-b"])  # hospital-a never comes: every job waits
    try:
        for _ in range(2):
            spec, signed = _signed(members)
            link.provision(spec.job_id, signed, Plan(), timeout=10).close()
        spec, signed = _signed(members)
        with pytest.raises(SMPCError, match="2 jobs already wait"):
            link.provision(spec.job_id, signed, Plan(), timeout=10)
    finally:
        link.close()
    assert len(dealer[1]._jobs) == 2


def test_a_job_is_verified_once_and_other_bytes_for_it_on_their_own(
    members, dealer, monkeypatch
) -> None:
    checked: list[str] = []
    real = dealer_service.verify_job

    def counting(signed, member):
        checked.append(signed.job_id)
        return real(signed, member)

    monkeypatch.setattr(dealer_service, "verify_job", counting)
    spec, signed = _signed(members)
    parsed = SignedJob.from_json(signed)
    wrong = bytes([parsed.signature[0] ^ 1]) + parsed.signature[1:]
    forged = dataclasses.replace(parsed, signature=wrong).to_json().encode()
    links = [DealerLink(members[p]) for p in PARTIES]
    try:
        links[0].provision(spec.job_id, signed, Plan(), timeout=10).close()
        assert checked == [spec.job_id]
        with pytest.raises(SMPCError, match="bad-signature"):
            links[1].provision(spec.job_id, forged, Plan(), timeout=10)
        assert checked == [spec.job_id] * 2  # other bytes: verified, and refused
        links[1].provision(spec.job_id, signed, Plan(), timeout=10).close()
        assert checked == [spec.job_id] * 2  # the same bytes: the first check stands
    finally:
        for link in links:
            link.close()


@pytest.mark.parametrize("flush_s", [dealer_service.FLUSH_S, 0.0], ids=["packed", "flushed"])
def test_corrections_streamed_in_packed_chunks_complete_every_triple(
    members, dealer, monkeypatch, flush_s: float
) -> None:
    """Small items share a message (or, flushed, each has its own) and one item spans two:
    every Beaver triple still holds.

    The oracle is the triple relation itself, sum(a) * sum(b) == sum(c) mod 2^64,
    over both parties' shares (party 0's c comes from the dealer's stream).
    """
    monkeypatch.setattr(dealer_service, "FLUSH_S", flush_s)
    big = (CHUNK_BYTES // 8) + 5  # one correction longer than a message
    plan = Plan(
        (
            Request("triple", (3,)),
            Request("triple", (big,)),
            Request("truncation", (4,), 16),
            Request("triple", (2, 2)),
        )
    )
    spec, signed = _signed(members)
    links = [DealerLink(members[name]) for name in PARTIES]  # sorted: hospital-a is party 0
    try:
        conns = [link.provision(spec.job_id, signed, plan, timeout=30) for link in links]
        seeds = [conn.seed for conn in conns]
        sources = [
            SeededSource(i, conn.seed, plan, conn.feed() if i == 0 else None)
            for i, conn in enumerate(conns)
        ]
        for request in plan:
            if request.kind != "triple":
                for source in sources:
                    source.truncation(request.shape, request.frac_bits)
                continue
            parts = [source.triple(request.shape).consume() for source in sources]
            a, b, c = (sum(p[k] for p in parts) for k in range(3))  # uint64 wraps mod 2^64
            np.testing.assert_array_equal(a * b, c)
        # the seed stays the first message's, however far the stream was read
        assert [conn.seed for conn in conns] == seeds and all(len(s) == 32 for s in seeds)
        for conn in conns:
            conn.close()
    finally:
        for link in links:
            link.close()


@pytest.mark.parametrize("rows", [10, AHEAD_WORDS])
def test_a_large_plans_seed_goes_alone_before_any_correction_is_made(
    monkeypatch, rows: int
) -> None:
    """A small plan: one message with the seed and every correction. A large one: the seed
    alone first, then the corrections, in one numbered stream."""
    plan = Plan((Request("triple", (rows,)),))
    dealer = Dealer("fed", "job-1", 2, plan)
    made: list[int] = []
    corrections = dealer.corrections
    monkeypatch.setattr(dealer, "corrections", lambda i: made.append(i) or corrections(i))
    stream = dealer_service._correction_chunks(dealer, b"s" * 32)
    first = next(stream)
    assert first.seed == b"s" * 32 and first.chunk == 0
    assert made == ([0] if rows == 10 else [])  # a large plan's seed: before any correction
    rest = list(stream)
    if rows == 10:
        assert rest == [] and first.last and len(first.payload) == 8 * rows
    else:
        assert (first.payload, first.last) == (b"", False)
        assert [m.chunk for m in rest] == list(range(1, len(rest) + 1)) and rest[-1].last
        assert sum(len(m.payload) for m in rest) == 8 * rows
    assert made == [0]


def test_a_dealer_that_dies_mid_stream_is_blamed_as_dealer_unavailable(members, dealer) -> None:
    member, _, server = dealer
    # Party 0's corrections: 64 MiB, far more than the stream buffers ahead of the reader.
    plan = Plan(tuple(Request("triple", (1 << 20,)) for _ in range(8)))
    spec, signed = _signed(members)
    link = DealerLink(members["hospital-a"])
    try:
        conn = link.provision(spec.job_id, signed, plan, timeout=30)
        feed = conn.feed()
        feed.corrections(0)
        server.stop(0)  # the dealer process dies
        with pytest.raises(PeerTimeoutError) as broken:
            for index in range(1, len(plan)):
                feed.corrections(index)
        conn.close()
    finally:
        link.close()
    assert broken.value.party == member.name and broken.value.job == spec.job_id
    assert public_failure(broken.value)[0] == "dealer unavailable"


def test_a_party_retries_a_down_dealer_at_least_once_a_second(members) -> None:
    """A dealer that is down (here: a port that drops every connection) is retried often.

    gRPC's default backoff (1 s, growing 1.6-fold to 120 s) reached a restarted
    dealer only after tens of seconds; the link caps it at 1 s.
    """
    member = next(m for m in members.values() if m.role == "dealer")
    listener = socket.socket()
    listener.bind((member.address.rsplit(":", 1)[0], 0))
    listener.listen(64)
    listener.settimeout(0.2)
    attempts: list[float] = []
    stop = threading.Event()

    def drop_every_connection() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            attempts.append(time.monotonic())
            conn.close()

    thread = threading.Thread(target=drop_every_connection)
    thread.start()
    host, port = listener.getsockname()
    party = members["hospital-a"]
    peers = tuple(
        dataclasses.replace(p, address=f"{host}:{port}") if p.role == "dealer" else p
        for p in party.peers
    )
    link = DealerLink(dataclasses.replace(party, peers=peers))
    spec, signed = _signed(members)
    try:
        with pytest.raises(PeerTimeoutError, match="dealer unavailable"):
            link.provision(spec.job_id, signed, Plan(), timeout=4.0)
    finally:
        link.close()
        stop.set()
        thread.join()
        listener.close()
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(attempts) >= 5 and max(gaps) < 1.5, gaps
