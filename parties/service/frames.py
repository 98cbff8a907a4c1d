"""Length-prefixed frames of the data plane: {job, channel, seq, payload} and a few fields more.

A frame is a fixed little-endian header, then the job id, the purpose
(channel), the payload's numpy dtype string, and the payload's raw bytes::

    u32 body length (every byte after this field)
    u8  version, u8 kind, u8 flags (bit 0: the message's last chunk)
    u8  job length, u8 purpose length, u8 dtype length
    u64 round, u64 seq, u64 length (the whole message's payload bytes)
    u32 chunk

then zero bytes up to a multiple of 8 from the job id's start, so that the
payload (read into a buffer of its own) is aligned for any dtype. A message
larger than :data:`CHUNK_BYTES` travels as several frames (chunks). The
receiver refuses a body longer than :data:`MAX_FRAME_BYTES` before reading
it, so what one frame makes it allocate is bounded; a payload is never
allocated from the length a peer announces.
"""

from __future__ import annotations

import ssl
import struct
from dataclasses import dataclass

from parties.service.mesh import CHUNK_BYTES, MAX_FRAME_BYTES

VERSION = 1
DATA, ABORT, HELLO = 1, 2, 3
"""Frame kinds: a job message, a job's abort (its failure kind only), the acceptor's greeting."""
KINDS = frozenset({DATA, ABORT, HELLO})
LAST = 1

_HEAD = struct.Struct("<IBBBBBBQQQI")
HEADER_BYTES = _HEAD.size
_FIELD_MAX = 255


class FrameError(Exception):
    """A peer sent bytes that are not a frame of this protocol; the connection is closed."""


class PeerClosed(Exception):
    """The peer closed the connection."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: a message chunk, an abort or a greeting."""

    kind: int
    job: str
    purpose: str = ""
    round: int = 0
    seq: int = 0
    chunk: int = 0
    last: bool = True
    dtype: str = "|u1"
    length: int = 0
    payload: bytes | bytearray | memoryview = b""

    @property
    def wire_bytes(self) -> int:
        """Bytes this frame takes on the connection (before TLS)."""
        fields = len(self.job.encode()) + len(self.purpose.encode()) + len(self.dtype.encode())
        return HEADER_BYTES + _aligned(fields) + len(self.payload)


def encode(frame: Frame) -> bytes:
    """The frame's bytes, header and payload joined (one write, one TLS record when small)."""
    job, purpose, dtype = frame.job.encode(), frame.purpose.encode(), frame.dtype.encode()
    if max(len(job), len(purpose), len(dtype)) > _FIELD_MAX:
        raise ValueError("job, purpose and dtype are at most 255 bytes each")
    if len(frame.payload) > CHUNK_BYTES:
        raise ValueError(f"a frame carries at most {CHUNK_BYTES} payload bytes")
    fields = len(job) + len(purpose) + len(dtype)
    pad = bytes(-fields % 8)
    body = HEADER_BYTES - 4 + fields + len(pad) + len(frame.payload)
    head = _HEAD.pack(
        body,
        VERSION,
        frame.kind,
        LAST if frame.last else 0,
        len(job),
        len(purpose),
        len(dtype),
        frame.round,
        frame.seq,
        frame.length,
        frame.chunk,
    )
    return b"".join((head, job, purpose, dtype, pad, frame.payload))


class FrameReader:
    """Reads frames from a non-blocking TLS socket, one header and one body at a time."""

    def __init__(self) -> None:
        self._head = bytearray(HEADER_BYTES)
        self._fields: tuple[int, ...] | None = None
        self._body: bytearray | None = None
        self._got = 0

    def read(self, sock: ssl.SSLSocket, limit: int | None = None) -> list[Frame]:
        """Every frame complete after reading what a non-blocking socket has now.

        With ``limit``, stops after that many frames (on a blocking socket:
        waits for them, within its timeout). Raises PeerClosed at the end of
        the stream and FrameError on bytes that are not a frame (the caller
        closes the connection).
        """
        frames: list[Frame] = []
        while limit is None or len(frames) < limit:
            target = self._head if self._body is None else self._body
            try:
                n = sock.recv_into(memoryview(target)[self._got :])
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return frames
            if n == 0:
                raise PeerClosed("the peer closed the connection")
            self._got += n
            if self._got < len(target):
                continue
            self._got = 0
            if self._body is None:
                self._start_body()
                if self._body is not None and len(self._body) > 0:
                    continue
            frames.append(self._finish())
        return frames

    def _start_body(self) -> None:
        fields = _HEAD.unpack(self._head)
        body, version, kind = fields[0], fields[1], fields[2]
        if version != VERSION or kind not in KINDS:
            raise FrameError(f"not a frame of this protocol (version {version}, kind {kind})")
        if body > MAX_FRAME_BYTES:
            raise FrameError(f"a frame of {body} bytes exceeds the limit of {MAX_FRAME_BYTES}")
        rest = body - (HEADER_BYTES - 4)
        if rest < _aligned(fields[4] + fields[5] + fields[6]):
            raise FrameError("a frame shorter than its own fields")
        self._fields = fields
        self._body = bytearray(rest)

    def _finish(self) -> Frame:
        fields, body = self._fields, self._body
        assert fields is not None and body is not None
        self._fields, self._body = None, None
        _, _, kind, flags, n_job, n_purpose, n_dtype, round_, seq, length, chunk = fields
        view = memoryview(body)
        a, b, c = n_job, n_job + n_purpose, n_job + n_purpose + n_dtype
        try:
            job, purpose, dtype = (bytes(view[s:e]).decode() for s, e in ((0, a), (a, b), (b, c)))
        except UnicodeDecodeError:
            raise FrameError("a frame's job, purpose or dtype is not UTF-8") from None
        payload = view[_aligned(c) :]
        return Frame(
            kind, job, purpose, round_, seq, chunk, bool(flags & LAST), dtype, length, payload
        )


def _aligned(n: int) -> int:
    return n + -n % 8
