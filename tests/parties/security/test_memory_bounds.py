"""What a peer or an analyst can make a party or the dealer hold in memory stays bounded.

Each test repeats one event 1,000 times over real connections with mutual
TLS (the data plane's sockets, the dealer's gRPC; the services run in this
process, so that their structures can be measured) and checks that the
structures the event fills, and the memory they hold (tracemalloc, counting
only allocations made by the service's own module), stop growing: what the
400th event left is what the 1,000th leaves. A fake clock stands in for the
time that passes between batches of events.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest

from parties.config import MemberConfig
from parties.federation import init_federation
from parties.jobs.spec import JobSpec, now_ms, sign_job
from parties.service import dealer_service, job_record, mailboxes, tls, wire_pb2_grpc
from parties.service.dataplane import DataPlane
from parties.service.dealer_service import DealerLink, DealerService
from parties.service.frames import DATA, Frame
from parties.service.socket_transport import SocketTransport
from smpc.errors import MalformedMessageError
from smpc.preprocessing import Plan
from smpc.transport import Expect

EVENTS = 1000
BATCH = 100
STEP_S = 30.0
"""Fake seconds between batches: the services forget within a few batches."""
STEADY = 400
"""Events after which what the services hold has stopped growing (the first expiries are past)."""


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _held(module: object) -> int:
    """Bytes allocated by ``module``'s own lines that are still alive."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, str(Path(module.__file__)))]  # type: ignore[attr-defined]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


@pytest.fixture
def members(tmp_path: Path) -> dict[str, MemberConfig]:
    fed = init_federation(
        "memfed", ["hospital-a", "hospital-c"], ["analyst"], [], tmp_path / "fed", base_port=0
    )
    return {m.name: m for m in fed}


@pytest.fixture
def pair(
    members: dict[str, MemberConfig], linked_planes
) -> Iterator[tuple[DataPlane, DataPlane, FakeClock]]:
    """Two linked data planes (hospital-a dials hospital-c); mailboxes expire by a fake clock."""
    with linked_planes([members["hospital-a"], members["hospital-c"]]) as (a, c):
        assert a.wait_connected(10) and c.wait_connected(10)
        a.boxes.clock = c.boxes.clock = clock = FakeClock()
        yield a, c, clock


@pytest.fixture
def tracing() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def _sync(a: DataPlane, c: DataPlane) -> None:
    """Return once c has filed everything a sent before (one ordered connection per pair)."""
    a.send("hospital-c", Frame(DATA, "sync"))
    assert isinstance(c.receive("sync", "hospital-a", timeout=10), Frame)


def _batches(
    a: DataPlane, c: DataPlane, clock: FakeClock, event
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Run ``event(i)`` EVENTS times; (mailboxes, bytes) held after STEADY events and after all."""
    early = (0, 0)
    for start in range(0, EVENTS, BATCH):
        for i in range(start, start + BATCH):
            event(i)
        _sync(a, c)
        clock.now += STEP_S
        if start + BATCH == STEADY:
            early = (len(c.boxes), _held(mailboxes))
    return early, (len(c.boxes), _held(mailboxes))


def test_aborts_for_jobs_never_opened_leave_the_mailboxes_flat(pair, tracing) -> None:
    a, c, clock = pair
    both = ("hospital-a", "hospital-c")
    early, late = _batches(a, c, clock, lambda i: a.abort_job(f"never-{i}", both, "refused"))
    assert late[0] <= 3 * BATCH + 1  # the last batches and the sync job, not every abort
    assert late[1] - early[1] < 20_000, (early, late)


def test_record_messages_after_the_wait_timed_out_leave_the_mailboxes_flat(
    pair, members, tracing
) -> None:
    a, c, clock = pair
    parties = ("hospital-a", "hospital-c")
    roles = dict.fromkeys(parties, "hospital")
    view = job_record.JobView("hospital-c", bytes(32), {}, {}, b"", None)

    def late_record(i: int) -> None:
        spec = JobSpec(
            federation="memfed",
            protocol="pooled-count",
            protocol_version="1",
            analyst="analyst",
            parties=parties,
            inputs={},
            outputs={"count": ("analyst",)},
            deadline_ms=now_ms() + 60_000,
        )
        job_record.assemble(c, spec, b"{}", roles, view, None, {}, seconds=0.0)
        late = b"a view that came too late"
        box = job_record.mailbox(spec.job_id)
        a.send("hospital-c", Frame(DATA, box, job_record.PURPOSE, 1, payload=late))

    early, late = _batches(a, c, clock, late_record)
    assert late[0] <= 1  # the sync job: the late views were dropped
    assert late[1] - early[1] < 20_000, (early, late)


def test_an_announced_length_is_not_allocated_before_the_data_arrives(pair, tracing) -> None:
    a, c, _ = pair
    names = ["hospital-a", "hospital-c"]
    announced = c.max_job_bytes  # as much as a job may receive, from a peer that sends 32 bytes
    tracemalloc.reset_peak()
    for i in range(EVENTS):
        job = f"announce-{i}"
        transport = SocketTransport(c, job, names, deadline=None)
        for chunk, last in ((0, False), (1, True)):
            a.send(
                "hospital-c",
                Frame(DATA, job, "x", 1, 0, chunk, last, "<u8", announced, bytes(16)),
            )
        with pytest.raises(MalformedMessageError, match="were announced"):
            transport.exchange({}, {0: Expect(np.dtype("<u8"), announced // 8)}, "x")
        transport.close()
    assert tracemalloc.get_traced_memory()[1] < 64 << 20  # never near the 8 GiB announced
    assert len(c.boxes) == 0


def test_jobs_some_party_never_provisions_leave_the_dealer_flat(members, tracing) -> None:
    dealer = next(m for m in members.values() if m.role == "dealer")
    analyst = members["analyst"]
    service = DealerService(dealer)
    fake_ms = [now_ms()]
    service.clock_ms = lambda: fake_ms[0]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    wire_pb2_grpc.add_DealerServicer_to_server(service, server)
    server.add_secure_port(dealer.address, tls.server_credentials(dealer))
    server.start()
    links = {p: DealerLink(members[p]) for p in ("hospital-a", "hospital-c")}
    start, plan = fake_ms[0], Plan()
    try:
        early = (0, 0, 0)
        for i in range(EVENTS):
            fake_ms[0] = created = start + i * 1000  # a job a second, each to live 30 s
            spec = JobSpec(
                federation="memfed",
                protocol="pooled-count",
                protocol_version="1",
                analyst="analyst",
                parties=("hospital-a", "hospital-c"),
                inputs={},
                outputs={"count": ("analyst",)},
                created_ms=created,
                deadline_ms=created + 30_000,
            )
            signed = sign_job(spec, analyst.tls.key, analyst.tls.cert).to_json().encode()
            # hospital-c provisions every job; hospital-a only every other one
            for party in ("hospital-c", "hospital-a") if i % 2 else ("hospital-c",):
                conn = links[party].provision(spec.job_id, signed, plan, timeout=10)
                for _ in conn._stream:  # to the stream's end: the dealer is done with the party
                    pass
            if i == STEADY:
                early = (len(service._jobs), len(service._done), _held(dealer_service))
        late = (len(service._jobs), len(service._done), _held(dealer_service))
    finally:
        for link in links.values():
            link.close()
        server.stop(0)
    assert late[0] <= 16 and late[1] <= 16  # 30 s of jobs, half of them never provisioned
    assert late[2] - early[2] < 20_000, (early, late)
