"""The engine's Transport over a party process's data plane (mutual TLS 1.3 sockets).

One instance per job. Party indices are positions in the job's sorted list
of computing parties. Payloads travel as raw little-endian bytes in frames of
at most 1 MiB; round and payload-byte counts come from the engine's base
class, and this class adds the frame bytes it sent and received (headers
included, before TLS). A payload is assembled as its chunks arrive, never
allocated ahead from the length a peer announces. Every other party must send
its first message within the join timeout (the member's
``policy.join_timeout_seconds``) of this transport's start, or the job fails
naming it: a job that some party never received does not hold this one until
its deadline.

A sent payload is referenced, not copied, until its frames are written: like
the in-memory transport's, it must not be changed after ``exchange`` returns.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Sequence
from typing import NoReturn

import numpy as np

from parties.service.dataplane import DataPlane
from parties.service.frames import (
    DATA,
    HEADER_BYTES,
    LAST,
    VERSION,
    Frame,
    pack_header,
    text_fields,
)
from parties.service.mailboxes import Rejection
from parties.service.mesh import CHUNK_BYTES
from smpc.errors import MalformedMessageError, PeerTimeoutError, ProtocolAbort, UnknownPartyError
from smpc.transcript import Envelope
from smpc.transport import Expect, Transport

UNREACHABLE_GRACE = 3.0  # seconds a peer's connection may be down before its jobs abort
_DTYPES = {np.dtype(t).str: np.dtype(t) for t in ("<u8", "<i8", "|u1", "|b1", "<u4", "<i4")}
"""The dtypes rounds usually carry, by their wire string (others are parsed per message)."""


class SocketTransport(Transport):
    """Messages of one job between the processes named in ``parties``."""

    def __init__(
        self,
        plane: DataPlane,
        job: str,
        parties: Sequence[str],
        *,
        join_timeout: float | None = None,
        **kwargs: object,
    ) -> None:
        names = sorted(parties)
        if len(set(names)) != len(names):
            raise ValueError("a job names each computing party once")
        if plane.name not in names:
            raise UnknownPartyError(f"{plane.name} is not a computing party of job {job}")
        super().__init__(job, names.index(plane.name), len(names), names=names, **kwargs)  # type: ignore[arg-type]
        self.plane = plane
        self.join_timeout = (
            plane.member.policy.join_timeout_seconds if join_timeout is None else join_timeout
        )
        self._started = time.monotonic()
        self._join_by = self._started + self.join_timeout
        self._joined: set[int] = set()
        plane.open_job(job)
        for name in names:
            if name != plane.name:
                plane.need(name)
        self.wire_bytes_sent = 0
        self.wire_bytes_received = 0
        self._heads: dict[tuple[str, np.dtype], tuple[bytes, int, int, int, int]] = {}
        """Per (purpose, dtype): the frame text (job, purpose, dtype, padding), its three
        lengths and the header's body size before the payload; a round packs only the rest."""

    def _send(self, env: Envelope, payload: np.ndarray) -> None:
        dtype = payload.dtype
        if dtype.byteorder == ">":
            payload = payload.astype(dtype.newbyteorder("<"))
            dtype = payload.dtype
        if not payload.flags.c_contiguous:
            payload = np.ascontiguousarray(payload)
        total = payload.nbytes
        peer = self.names[env.receiver]
        if total <= CHUNK_BYTES:  # the common case: one frame, its header packed here
            head = self._heads.get((env.purpose, dtype)) or self._head(env.purpose, dtype)
            text, n_job, n_purpose, n_dtype, body = head
            header = pack_header(
                body + total,
                VERSION,
                DATA,
                LAST,
                n_job,
                n_purpose,
                n_dtype,
                env.round,
                env.seq,
                total,
                0,
            )
            data = b"".join((header, text, payload))  # type: ignore[arg-type]  # buffer: see stubs
            self.wire_bytes_sent += self.plane.write(peer, data)
            return
        raw = payload.data.cast("B")
        count = -(-total // CHUNK_BYTES)
        for chunk in range(count):
            frame = Frame(
                DATA,
                env.job,
                env.purpose,
                env.round,
                env.seq,
                chunk,
                chunk == count - 1,
                dtype.str,
                total,
                raw[chunk * CHUNK_BYTES : (chunk + 1) * CHUNK_BYTES],
            )
            self.wire_bytes_sent += self.plane.send(peer, frame)

    def _head(self, purpose: str, dtype: np.dtype) -> tuple[bytes, int, int, int, int]:
        """The cached part of a one-frame message's header (see ``_heads``)."""
        text, n_job, n_purpose, n_dtype = text_fields(self.job, purpose, dtype.str)
        head = text, n_job, n_purpose, n_dtype, HEADER_BYTES - 4 + len(text)
        self._heads[(purpose, dtype)] = head
        return head

    def _receive(
        self, peer: int, expect: Expect, purpose: str, timeout: float | None
    ) -> tuple[Envelope, np.ndarray]:
        deadline = None if timeout is None else time.monotonic() + timeout
        first = self._next_frame(peer, deadline)
        data: bytes | bytearray | memoryview | np.ndarray
        if first.last and first.chunk == 0:
            data = first.payload
            size = len(data)
        else:
            data = self._assemble(peer, first, deadline)
            size = data.nbytes
        if size != first.length:
            self._malformed(peer, f"{size} payload bytes where {first.length} were announced")
        dtype = _DTYPES.get(first.dtype)
        if dtype is None:
            try:
                dtype = np.dtype(first.dtype)
            except TypeError:
                self._malformed(peer, f"unknown dtype {first.dtype!r}")
        if dtype.kind not in "uib" or size % dtype.itemsize:
            self._malformed(peer, f"payload of dtype {first.dtype!r} cannot be read")
        env = Envelope(self.job, first.round, first.seq, peer, self.party, first.purpose)
        return env, np.frombuffer(data, dtype=dtype)

    def _assemble(self, peer: int, first: Frame, deadline: float | None) -> np.ndarray:
        if first.length > self.plane.max_job_bytes:
            self._malformed(peer, "announced payload exceeds the job's byte limit")
        chunks: list[bytes | bytearray | memoryview] = []  # as they arrive; never more
        received, frame, expected = 0, first, 0
        while True:
            if frame.chunk != expected or (frame.round, frame.seq) != (first.round, first.seq):
                self._malformed(peer, "chunks out of order")
            received += len(frame.payload)
            if received > first.length:
                self._malformed(peer, "chunks exceed the announced payload length")
            chunks.append(frame.payload)
            if frame.last:
                return np.frombuffer(b"".join(chunks), dtype=np.uint8)
            expected += 1
            frame = self._next_frame(peer, deadline)

    def _next_frame(self, peer: int, deadline: float | None) -> Frame:
        name = self.names[peer]
        joining = peer not in self._joined
        limit = deadline
        if joining and (limit is None or self._join_by < limit):
            limit = self._join_by
        while True:  # wake now and then to notice a peer whose connection is gone
            timeout = 0.5 if limit is None else min(0.5, max(0.0, limit - time.monotonic()))
            try:
                item = self.plane.receive(self.job, name, timeout)
                break
            except queue.Empty:
                # a peer down since before this job started still gets the whole grace
                down = min(self.plane.unreachable_for(name), time.monotonic() - self._started)
                if down > UNREACHABLE_GRACE:
                    raise ProtocolAbort(
                        self.job, name, "party unreachable", "no connection to it"
                    ) from None
                if limit is not None and time.monotonic() >= limit:
                    if limit != deadline:
                        raise PeerTimeoutError(
                            self.job,
                            name,
                            "peer did not join",
                            f"no message from it within {self.join_timeout:g} s of the job's"
                            " start here",
                        ) from None
                    raise self.timeout_error(peer) from None
        self._joined.add(peer)
        if isinstance(item, Rejection):
            if item.kind == "malformed message":
                self._malformed(peer, item.reason)
            raise ProtocolAbort(self.job, self.names[peer], item.kind, item.reason)
        self.wire_bytes_received += item.size or item.wire_bytes
        return item

    def _malformed(self, peer: int, reason: str) -> NoReturn:
        raise MalformedMessageError(self.job, self.names[peer], "malformed message", reason)

    def close(self) -> None:
        """Release the job's mailboxes in the data plane."""
        self.plane.close_job(self.job)
