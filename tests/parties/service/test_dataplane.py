"""The data plane refuses what the architecture says it must, bounds what it holds, and recovers.

Planes run in this process on 127.0.0.x, port 0; a test playing a misbehaving
peer opens its own TLS socket with whatever certificate the case needs.
"""

from __future__ import annotations

import queue
import socket
import ssl
import struct
import time

import numpy as np
import pytest

from parties.federation import add_member
from parties.service import mailboxes, tls
from parties.service.dataplane import DataPlane
from parties.service.frames import (
    ABORT,
    DATA,
    HEADER_BYTES,
    HELLO,
    READ_BUFFER_BYTES,
    Frame,
    FrameError,
    FrameReader,
    PeerClosed,
    encode,
)
from parties.service.mailboxes import UNOPENED_JOB_BYTES, Rejection
from parties.service.mesh import CHUNK_BYTES, MAX_FRAME_BYTES
from parties.service.socket_transport import UNREACHABLE_GRACE, SocketTransport
from smpc.errors import MalformedMessageError, ProtocolAbort
from smpc.transport import Expect

A, B, C = "hospital-a", "hospital-b", "hospital-c"


@pytest.fixture
def members(make_federation):
    """hospital-a and hospital-c (and the dealer)."""
    return {m.name: m for m in make_federation([A, C], "dpfed")}


def _connect(plane: DataPlane, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    """A TLS connection to ``plane`` as the holder of ``ctx``'s certificate (if any)."""
    raw = socket.create_connection((plane.host, plane.port), timeout=5)
    return ctx.wrap_socket(raw)


def _as(member) -> ssl.SSLContext:
    return tls.socket_context(member, server=False)


def _greeted(make) -> bool:
    """Whether the plane greets the connection ``make()`` opens (an admitted peer)."""
    try:
        with make() as sock:
            return FrameReader().read(sock, limit=1)[0].kind == HELLO
    except (OSError, ssl.SSLError, PeerClosed, FrameError):
        return False


def _logged(caplog, *words: str, timeout: float = 5.0) -> str:
    """The first log message holding every word (refusals are logged on the plane's threads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in caplog.records:
            message = record.getMessage()
            if all(w in message for w in words):
                return message
        time.sleep(0.05)
    raise AssertionError(f"no log message with {words}")


def _wait(plane: DataPlane, job: str, peer: str) -> Frame | Rejection:
    return plane.receive(job, peer, timeout=10)


def test_frames_survive_any_split_and_a_bad_header_is_refused() -> None:
    frames = [
        Frame(DATA, "j", "open", 3, 1, 0, True, "<u8", 16, np.arange(2, dtype="<u8").tobytes()),
        Frame(ABORT, "job-2", payload=b"local-data", length=10),
    ]
    data = b"".join(encode(f) for f in frames)

    class Trickle:  # hands out 3 bytes per read, then says "would block"
        def __init__(self, data: bytes) -> None:
            self.data = data

        def recv_into(self, view) -> int:
            if not self.data:
                raise ssl.SSLWantReadError()
            n = min(3, len(view), len(self.data))
            view[:n], self.data = self.data[:n], self.data[n:]
            return n

    got = FrameReader().read(Trickle(data))  # type: ignore[arg-type]
    assert [(f.kind, f.job, bytes(f.payload)) for f in got] == [
        (f.kind, f.job, bytes(f.payload)) for f in frames
    ]
    assert np.frombuffer(got[0].payload, "<u8").tolist() == [0, 1]
    assert sum(f.wire_bytes for f in got) == len(data)
    oversized = struct.pack("<IBB", MAX_FRAME_BYTES + 1, 1, DATA) + bytes(40)
    with pytest.raises(FrameError, match="exceeds the limit"):
        FrameReader().read(Trickle(oversized))  # type: ignore[arg-type]
    with pytest.raises(FrameError, match="not a frame"):
        FrameReader().read(Trickle(b"GET / HTTP/1.1\r\n\r\n" + bytes(40)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most"):
        encode(Frame(DATA, "j", payload=bytes(CHUNK_BYTES + 1)))


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_frames_larger_than_the_read_buffer_and_many_per_read(step: int) -> None:
    big = np.arange(READ_BUFFER_BYTES // 8 + 3, dtype="<u8").tobytes()
    frames = [
        Frame(DATA, "j", "beaver", 1, 0, 0, True, "<u8", 8, bytes(8)),
        Frame(DATA, "j", "beaver", 1, 1, 0, False, "<u8", len(big) + 8, big),
        Frame(DATA, "j", "beaver", 1, 1, 1, True, "<u8", len(big) + 8, bytes(range(8))),
        Frame(ABORT, "j", payload=b"stalled", length=7),
    ]
    data = b"".join(encode(f) for f in frames)

    class Chunks:  # hands out ``step`` bytes per read, then says "would block"
        def __init__(self, data: bytes) -> None:
            self.data = data

        def recv_into(self, view) -> int:
            if not self.data:
                raise ssl.SSLWantReadError()
            n = min(step, len(view), len(self.data))
            view[:n], self.data = self.data[:n], self.data[n:]
            return n

    reader, sock = FrameReader(), Chunks(data)
    first = reader.read(sock, limit=1)  # type: ignore[arg-type]
    assert len(sock.data) == len(data) - frames[0].wire_bytes  # nothing read beyond it
    got = first + reader.read(sock)  # type: ignore[arg-type]
    assert [(f.kind, f.seq, f.chunk, f.last, bytes(f.payload)) for f in got] == [
        (f.kind, f.seq, f.chunk, f.last, bytes(f.payload)) for f in frames
    ]
    assert sum(f.wire_bytes for f in got) == len(data)


def test_a_reader_that_need_not_drain_stops_at_a_frame_boundary() -> None:
    frames = [Frame(DATA, "j", "open", 1, seq, 0, True, "<u8", 8, bytes(8)) for seq in range(3)]
    data = b"".join(encode(f) for f in frames)

    class Records:  # one frame per read, as TLS hands out one record at a time
        def __init__(self) -> None:
            self.records = [encode(f) for f in frames]

        def recv_into(self, view) -> int:
            if not self.records:
                raise ssl.SSLWantReadError()
            record = self.records.pop(0)
            view[: len(record)] = record
            return len(record)

        def pending(self) -> int:
            return 0

    reader, sock = FrameReader(), Records()
    got = [reader.read(sock, drain=False) for _ in range(4)]  # type: ignore[arg-type]
    assert [[f.seq for f in batch] for batch in got] == [[0], [1], [2], []]
    assert sum(f.wire_bytes for batch in got for f in batch) == len(data)


def test_planes_link_exchange_and_abort_with_the_kind_only(members, linked_planes) -> None:
    with linked_planes([members[A], members[C]]) as (a, c):
        assert a.wait_connected(10) and c.wait_connected(10)
        a.send(C, Frame(DATA, "j", "x", 1, payload=b"hello", length=5))
        got = _wait(c, "j", A)
        assert isinstance(got, Frame) and bytes(got.payload) == b"hello"
        c.abort_job("j", [A, C], "local-data")
        aborted = _wait(a, "j", C)
        assert isinstance(aborted, Rejection)
        assert (aborted.peer, aborted.kind) == (C, "party aborted")
        assert aborted.reason == "it aborted the job: local-data"


def test_foreign_ca_certless_tls12_and_plaintext_peers_are_refused(
    members, make_federation, linked_planes, caplog
) -> None:
    stranger = {m.name: m for m in make_federation([A, B], "otherfed")}
    with linked_planes([members[C]]) as (c,):
        foreign = _as(stranger[A])
        foreign.load_verify_locations(cafile=str(members[C].tls.ca_cert))  # trusts c, still foreign
        assert not _greeted(lambda: _connect(c, foreign))
        _logged(caplog, "refused a connection", "TLS handshake failed")
        certless = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        certless.check_hostname = False
        certless.load_verify_locations(cafile=str(members[C].tls.ca_cert))
        caplog.clear()
        assert not _greeted(lambda: _connect(c, certless))
        _logged(caplog, "refused a connection", "TLS handshake failed")
        old = _as(members[A])  # a member's own certificate, but TLS 1.2
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_2
        caplog.clear()
        assert not _greeted(lambda: _connect(c, old))
        _logged(caplog, "refused a connection", "TLS handshake failed")
        caplog.clear()
        with socket.create_connection((c.host, c.port), timeout=5) as plain:
            plain.sendall(encode(Frame(DATA, "j", payload=b"in the clear", length=12)))
        _logged(caplog, "refused a connection", "TLS handshake failed")
        with pytest.raises(queue.Empty):
            c.receive("j", A, timeout=0.2)
        assert _greeted(lambda: _connect(c, _as(members[A])))  # and it keeps serving


def test_unconfigured_non_computing_and_wrong_direction_peers_are_refused(
    members, tmp_path, linked_planes, caplog
) -> None:
    newcomer = add_member(tmp_path / "dpfed", "hospital-0", "hospital")  # c's config predates it
    with linked_planes([members[A]]) as (a,):
        assert not _greeted(lambda: _connect(a, _as(newcomer)))
        _logged(caplog, "refused a connection", "'hospital-0' is not a configured peer")
        assert not _greeted(lambda: _connect(a, _as(members["dealer"])))
        _logged(caplog, "refused a connection", "'dealer' is not a computing party")
        assert not _greeted(lambda: _connect(a, _as(members[C])))  # c sorts after a: a dials
        _logged(caplog, "refused a connection", "must wait for 'hospital-a' to dial")


def test_a_certificate_naming_another_member_than_the_one_dialled_is_refused(
    make_federation, caplog
) -> None:
    members = {m.name: m for m in make_federation([A, B, C], "threefed")}
    b = DataPlane(members[B]).start()
    # a is told that hospital-c listens where hospital-b does: b's certificate answers
    a = DataPlane(members[A], locate=lambda peer: (b.host, b.port)).start()
    try:
        _logged(caplog, "refused the connection to hospital-c", "names 'hospital-b'")
        assert not a.wait_connected(0.5)
        assert a.unreachable_for(C) > 0
    finally:
        a.stop()
        b.stop()


def test_a_frame_over_the_limit_closes_the_link_and_fails_its_jobs(
    members, linked_planes, caplog
) -> None:
    with linked_planes([members[C]]) as (c,):
        c.open_job("j")
        with _connect(c, _as(members[A])) as sock:
            assert FrameReader().read(sock, limit=1)[0].kind == HELLO
            sock.sendall(struct.pack("<IBB", MAX_FRAME_BYTES + 1, 1, DATA) + bytes(40))
            refused = _wait(c, "j", A)
        assert isinstance(refused, Rejection) and refused.kind == "malformed message"
        assert f"exceeds the limit of {MAX_FRAME_BYTES}" in refused.reason
        _logged(caplog, "connection to hospital-a closed", "exceeds the limit")
        assert _greeted(lambda: _connect(c, _as(members[A])))  # a fresh connection is served


def test_a_job_past_its_inbound_byte_limit_is_refused(members, linked_planes) -> None:
    with linked_planes([members[C]], max_job_bytes=200) as (c,):
        c.open_job("j")
        with _connect(c, _as(members[A])) as sock:
            FrameReader().read(sock, limit=1)
            for _ in range(2):
                sock.sendall(encode(Frame(DATA, "j", "x", payload=bytes(60), length=120)))
            first, second = _wait(c, "j", A), _wait(c, "j", A)
        assert isinstance(first, Frame)  # within the limit
        assert isinstance(second, Rejection) and "limit of 200" in second.reason


def test_frames_of_two_jobs_in_one_write_reach_their_own_readers_in_order(
    members, linked_planes
) -> None:
    # whichever thread reads, a job's frames come out in the order sent, never another job's
    with linked_planes([members[C]], max_job_bytes=400) as (c,):
        for job in ("j1", "j2"):
            c.open_job(job)
        with _connect(c, _as(members[A])) as sock:
            FrameReader().read(sock, limit=1)
            sent = [
                Frame(DATA, "j2", "x", 1, 0, payload=b"second job", length=10),
                Frame(DATA, "j1", "x", 1, 0, payload=b"first", length=5),
                Frame(DATA, "j1", "x", 2, 1, payload=b"then", length=4),
                Frame(DATA, "j1", "x", 3, 2, payload=bytes(300), length=300),  # over 400
            ]
            sock.sendall(b"".join(encode(f) for f in sent))
            got = [_wait(c, "j1", A) for _ in range(3)]
            other = _wait(c, "j2", A)
        assert [(f.seq, bytes(f.payload)) for f in got[:2] if isinstance(f, Frame)] == [
            (0, b"first"),
            (1, b"then"),
        ]
        assert isinstance(got[2], Rejection) and "limit of 400" in got[2].reason
        assert isinstance(other, Frame) and bytes(other.payload) == b"second job"


def test_a_chunk_over_1_mib_is_refused(members, linked_planes) -> None:
    with linked_planes([members[C]]) as (c,):
        c.open_job("big")
        with _connect(c, _as(members[A])) as sock:
            FrameReader().read(sock, limit=1)
            body = HEADER_BYTES - 4 + 8 + CHUNK_BYTES + 1  # within the frame limit, not a chunk
            header = struct.pack("<IBBBBBBQQQI", body, 1, DATA, 1, 3, 0, 0, 0, 0, 0, 0)
            sock.sendall(header + b"big" + bytes(5) + bytes(CHUNK_BYTES + 1))
            oversized = _wait(c, "big", A)
        assert isinstance(oversized, Rejection) and oversized.kind == "malformed message"
        assert f"exceeds {CHUNK_BYTES}" in oversized.reason


def _sync(a: DataPlane, c: DataPlane) -> None:
    """Return once c has filed everything a sent before (one ordered connection per pair)."""
    a.send(C, Frame(DATA, "probe"))
    assert isinstance(c.receive("probe", A, timeout=10), Frame)


def test_a_job_not_opened_here_may_hold_only_a_little(members, linked_planes) -> None:
    with linked_planes([members[A], members[C]]) as (a, c):
        assert a.wait_connected(10) and c.wait_connected(10)
        for _ in range(3):
            a.send(C, Frame(DATA, "early", payload=bytes(40_000), length=40_000))
        _sync(a, c)
        kept = c.receive("early", A, timeout=1)
        refused = c.receive("early", A, timeout=1)
        assert isinstance(kept, Frame)  # within the limit
        assert isinstance(refused, Rejection) and "before it started here" in refused.reason
        assert f"limit of {UNOPENED_JOB_BYTES}" in refused.reason
        with pytest.raises(queue.Empty):  # the third was dropped
            c.receive("early", A, timeout=0.2)


def test_only_the_newest_unopened_jobs_are_kept(members, linked_planes, monkeypatch) -> None:
    monkeypatch.setattr(mailboxes, "UNOPENED_JOBS", 4)
    with linked_planes([members[A], members[C]]) as (a, c):
        assert a.wait_connected(10) and c.wait_connected(10)
        for i in range(10):
            a.abort_job(f"j{i}", [C], "refused")
        _sync(a, c)
        assert set(c.boxes._boxes) == {"j6", "j7", "j8", "j9", "probe"}
        kept = c.receive("j9", A, timeout=1)
        assert isinstance(kept, Rejection) and kept.kind == "party aborted"


def test_a_restarted_peer_is_dialled_again_and_its_running_jobs_fail(members) -> None:
    where: dict[str, tuple[str, int]] = {}
    c = DataPlane(members[C]).start()
    where[C] = (c.host, c.port)
    a = DataPlane(members[A], locate=lambda peer: where[peer]).start()
    try:
        assert a.wait_connected(10)
        names = [A, C]
        running = SocketTransport(a, "running", names, deadline=time.monotonic() + 30)
        c.stop()  # the peer dies while a waits for its message
        x = np.arange(3, dtype=np.uint64)
        with pytest.raises(ProtocolAbort) as err:
            running.exchange({}, {1: Expect.like(x)}, "x")
        assert (err.value.party, err.value.kind) == (C, "party unreachable")
        running.close()
        c = DataPlane(members[C]).start()  # restarted, on another port
        where[C] = (c.host, c.port)
        assert a.wait_connected(10) and c.wait_connected(10)
        pair = [SocketTransport(p, "after", names, deadline=time.monotonic() + 30) for p in (a, c)]
        pair[1].plane.send(A, Frame(DATA, "after", "x", 1, 0, 0, True, "<u8", 24, x.tobytes()))
        got = pair[0].exchange({}, {1: Expect.like(x)}, "x")[1]
        assert np.array_equal(got, x)
        # a malformed message (wrong element count) fails the job naming the sender
        pair[1].plane.send(A, Frame(DATA, "after", "y", 2, 1, 0, True, "<u8", 8, x[:1].tobytes()))
        with pytest.raises(MalformedMessageError, match=C):
            pair[0].exchange({}, {1: Expect.like(x)}, "y")
        for t in pair:
            t.close()
    finally:
        a.stop()
        c.stop()


def test_a_peer_that_starts_late_joins_a_job_that_waits_for_it(members) -> None:
    # a has tried to dial c for longer than the unreachable grace, and its backoff has
    # grown to seconds, when c starts and a job needs it: the job runs.
    where: dict[str, tuple[str, int]] = {}
    a = DataPlane(members[A], locate=lambda peer: where[peer]).start()
    c = None
    try:
        time.sleep(UNREACHABLE_GRACE + 0.5)
        c = DataPlane(members[C]).start()
        where[C] = (c.host, c.port)
        names = [A, C]
        x = np.arange(3, dtype=np.uint64)
        waiting = SocketTransport(a, "late", names, deadline=time.monotonic() + 30)
        joining = SocketTransport(c, "late", names, deadline=time.monotonic() + 30)
        joining.plane.send(A, Frame(DATA, "late", "x", 1, 0, 0, True, "<u8", 24, x.tobytes()))
        assert np.array_equal(waiting.exchange({}, {1: Expect.like(x)}, "x")[1], x)
        for t in (waiting, joining):
            t.close()
    finally:
        a.stop()
        if c is not None:
            c.stop()
