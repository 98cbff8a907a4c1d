"""Protocols over real mutual TLS data planes on loopback (one process, several planes)."""

from __future__ import annotations

import ssl
import threading
import time

import numpy as np
import pytest

from parties.service.frames import DATA, Frame, FrameReader, encode
from parties.service.socket_transport import SocketTransport
from smpc.errors import PeerTimeoutError
from smpc.transcript import Envelope, check_channels
from smpc.transport import Expect


def _job(rt, mine):
    x = rt.input(mine if rt.party == 0 else None, 0, (40, 30))
    y = rt.input(mine if rt.party == 1 else None, 1, (40, 30))
    w = rt.input(
        mine[:30, :20] if rt.party == rt.n_parties - 1 else None, rt.n_parties - 1, (30, 20)
    )
    return rt.open(rt.mul(x, y)), rt.open(rt.matmul(x, w)), rt.open(x + y)


@pytest.mark.parametrize("n", [3, 5])
def test_mul_matmul_open_over_sockets_agree_with_numpy(
    make_federation, over_meshes, linked_planes, n: int
) -> None:
    members = make_federation([f"hospital-{c}" for c in "abcde"[:n]])
    computing = [m for m in members if m.role == "hospital"]
    assert len({m.address.rsplit(":", 1)[0] for m in computing}) == n  # distinct loopback hosts
    rng = np.random.default_rng(n)
    data = {m.name: rng.uniform(-30, 30, (40, 30)) for m in computing}
    names = sorted(data)
    with linked_planes(computing) as planes:
        assert all(plane.wait_connected(10) for plane in planes)
        by_plane = [data[p.name] for p in planes]
        results, transports = over_meshes(planes, _job, by_plane, job=f"job-{n}")
    x, y, w = data[names[0]], data[names[1]], data[names[-1]][:30, :20]
    for product, matrix, total in results:
        np.testing.assert_allclose(product, x * y, atol=2e-3)
        np.testing.assert_allclose(matrix, x @ w, atol=2e-2)
        np.testing.assert_allclose(total, x + y, atol=1e-4)
    check_channels([t.transcript for t in transports])
    assert all(t.wire_bytes_sent > t.bytes_sent for t in transports)
    assert len({t.rounds for t in transports}) == 1


def test_a_large_tensor_travels_in_1_mib_chunks(
    make_federation, over_meshes, linked_planes
) -> None:
    members = make_federation(["hospital-a", "hospital-b"])
    computing = [m for m in members if m.role == "hospital"]
    size = 400_000  # 3.2 MB per share

    def fn(rt, _):
        return rt.open(
            rt.input(np.arange(size, dtype=float) if rt.party == 0 else None, 0, (size,))
        )

    with linked_planes(computing) as planes:
        assert all(plane.wait_connected(10) for plane in planes)
        results, transports = over_meshes(planes, fn, [None, None], job="big")
    np.testing.assert_array_equal(results[0], np.arange(size, dtype=float))
    assert transports[0].wire_bytes_sent > size * 8


def test_a_party_that_never_joins_fails_the_job_within_the_join_timeout(
    make_federation, linked_planes
) -> None:
    members = {m.name: m for m in make_federation(["hospital-a", "hospital-c"])}
    names = ["hospital-a", "hospital-c"]
    with linked_planes([members["hospital-a"], members["hospital-c"]]) as (a, c):
        assert a.wait_connected(10) and c.wait_connected(10)
        hello = np.arange(4, dtype=np.uint64)
        alone = SocketTransport(
            a, "lonely", names, join_timeout=0.5, deadline=time.monotonic() + 30
        )
        start = time.monotonic()
        with pytest.raises(PeerTimeoutError) as err:
            alone.exchange({1: hello}, {1: Expect.like(hello)}, "hello")
        alone.close()
        assert 0.5 <= time.monotonic() - start < 3  # not the job's 30 s deadline
        assert (err.value.kind, err.value.party, err.value.job) == (
            "peer did not join",
            "hospital-c",
            "lonely",
        )

        # Once joined, a peer may take longer than the join timeout between rounds.
        pair = [SocketTransport(m, "joined", names, join_timeout=0.5) for m in (a, c)]
        got: list[object] = [None, None]

        def party(i: int) -> None:
            t = pair[i]
            t.exchange({1 - i: hello}, {1 - i: Expect.like(hello)}, "hello")
            if i == 1:
                time.sleep(1.0)
            got[i] = t.exchange({1 - i: hello + i}, {1 - i: Expect.like(hello)}, "next")[1 - i]

        threads = [threading.Thread(target=party, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        for t in pair:
            t.close()
        assert np.array_equal(got[0], hello + 1) and np.array_equal(got[1], hello)


class _RecordingPlane:
    """Only what SocketTransport asks of a data plane at start and on send."""

    name = "b"

    def __init__(self) -> None:
        self.written: list[tuple[str, bytes]] = []

    def open_job(self, job: str) -> None:
        pass

    def need(self, peer: str) -> None:
        pass

    def write(self, peer: str, data: bytes) -> int:
        self.written.append((peer, bytes(data)))
        return len(data)


def test_a_one_frame_message_is_written_as_encode_would_write_its_frame() -> None:
    plane = _RecordingPlane()
    t = SocketTransport(plane, "job-7", ["a", "b", "c"], join_timeout=1.0)  # type: ignore[arg-type]
    cases = [
        (Envelope("job-7", 3, 0, 1, 0, "open"), np.arange(5, dtype=np.uint64)),
        (Envelope("job-7", 4, 1, 1, 2, "open"), np.arange(7, dtype=np.uint64)),  # cached head
        (Envelope("job-7", 5, 2, 1, 0, "bits"), np.array([True, False, True])),
        (Envelope("job-7", 6, 3, 1, 2, "open"), np.arange(6, dtype=">i4")[::2]),
        (Envelope("job-7", 7, 4, 1, 0, "empty"), np.zeros(0, dtype=np.int64)),
    ]
    for env, payload in cases:
        t._send(env, payload)
    assert [peer for peer, _ in plane.written] == ["a", "c", "a", "c", "a"]
    reader_sock = _BytesSocket(b"".join(data for _, data in plane.written))
    got = FrameReader().read(reader_sock)  # type: ignore[arg-type]
    for (env, payload), (_, data), frame in zip(cases, plane.written, got, strict=True):
        little = payload.astype(payload.dtype.newbyteorder("<"))
        expected = Frame(
            DATA,
            "job-7",
            env.purpose,
            env.round,
            env.seq,
            0,
            True,
            little.dtype.str,
            little.nbytes,
            little.tobytes(),
        )
        assert data == encode(expected)
        assert frame._replace(size=0) == expected
    assert t.wire_bytes_sent == sum(len(data) for _, data in plane.written)


class _BytesSocket:
    """A socket that hands out fixed bytes, then says it would block."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def pending(self) -> int:
        return 0

    def recv_into(self, buf: memoryview) -> int:
        if not self.data:
            raise ssl.SSLWantReadError
        n = min(len(buf), len(self.data))
        buf[:n] = self.data[:n]
        self.data = self.data[n:]
        return n


class _ReplayPlane(_RecordingPlane):
    """Hands the transport the frames a real plane's reader makes of what was written."""

    max_job_bytes = 1 << 20

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []

    def receive(self, job: str, peer: str, timeout: float | None) -> Frame:
        return self.frames.pop(0)


@pytest.mark.parametrize(
    "payload",
    [
        np.arange(5, dtype=np.uint64),
        np.array([True, False, True]),
        np.arange(6, dtype=">i4")[::2],
        np.arange(4, dtype=np.uint8),
        np.zeros(0, dtype=np.int64),
    ],
    ids=["u8", "bool", "big-endian-strided", "u1", "empty"],
)
def test_a_received_one_frame_message_is_the_sent_array_read_only(payload: np.ndarray) -> None:
    sender, receiver = _RecordingPlane(), _ReplayPlane()
    sender.name = "a"
    a = SocketTransport(sender, "job-7", ["a", "b"], join_timeout=1.0)  # type: ignore[arg-type]
    b = SocketTransport(receiver, "job-7", ["a", "b"], join_timeout=1.0)  # type: ignore[arg-type]
    a.exchange({1: payload}, {}, "open")
    assert [peer for peer, _ in sender.written] == ["b"]
    receiver.frames = FrameReader().read(_BytesSocket(sender.written[0][1]))  # type: ignore[arg-type]
    got = b.exchange({}, {0: Expect(payload.dtype.newbyteorder("<"), payload.size)}, "open")[0]
    assert got.dtype == payload.dtype.newbyteorder("<") and np.array_equal(got, payload)
    with pytest.raises(ValueError, match="read-only"):
        got[...] = 0


@pytest.mark.parametrize(
    ("dtype", "length", "payload", "match"),
    [
        ("<u8", 16, bytes(8), "8 payload bytes where 16 were announced"),
        ("<u8", 12, bytes(12), "cannot be read"),
        ("<f8", 8, bytes(8), "cannot be read"),
        ("no-such-type", 8, bytes(8), "unknown dtype"),
    ],
)
def test_a_frame_whose_payload_does_not_fit_its_dtype_or_length_is_refused(
    dtype: str, length: int, payload: bytes, match: str
) -> None:
    from smpc.errors import MalformedMessageError

    plane = _ReplayPlane()
    plane.frames = [Frame(DATA, "job-7", "open", 1, 0, 0, True, dtype, length, payload)]
    t = SocketTransport(plane, "job-7", ["a", "b"], join_timeout=1.0)  # type: ignore[arg-type]
    with pytest.raises(MalformedMessageError, match=match):
        t.exchange({}, {0: Expect(np.dtype("<u8"), 1)}, "open")
