"""Length-prefixed frames of the data plane: {job, channel, seq, payload} and a few fields more.

A frame is a fixed little-endian header, then the job id, the purpose
(channel), the payload's numpy dtype string, and the payload's raw bytes::

    u32 body length (every byte after this field)
    u8  version, u8 kind, u8 flags (bit 0: the message's last chunk)
    u8  job length, u8 purpose length, u8 dtype length
    u64 round, u64 seq, u64 length (the whole message's payload bytes)
    u32 chunk

then zero bytes up to a multiple of 8 from the job id's start, so that the
payload (copied out of the reader's buffer, or read into a buffer of its own
when the frame is larger) is aligned for any dtype. A message
larger than :data:`CHUNK_BYTES` travels as several frames (chunks). The
receiver refuses a body longer than :data:`MAX_FRAME_BYTES` before reading
its body, so what one frame makes it allocate is bounded; a payload is never
allocated from the length a peer announces.
"""

from __future__ import annotations

import functools
import ssl
import struct
from typing import NamedTuple

from parties.service.mesh import CHUNK_BYTES, MAX_FRAME_BYTES

VERSION = 1
DATA, ABORT, HELLO = 1, 2, 3
"""Frame kinds: a job message, a job's abort (its failure kind only), the acceptor's greeting."""
KINDS = frozenset({DATA, ABORT, HELLO})
LAST = 1

_HEAD = struct.Struct("<IBBBBBBQQQI")
HEADER_BYTES = _HEAD.size
pack_header = _HEAD.pack
"""Packs a header's fields in :data:`_HEAD`'s order (for senders that cache the rest)."""
_FIELD_MAX = 255
READ_BUFFER_BYTES = 64 << 10
"""A reader's reusable buffer; larger frames get a body buffer of their own."""


class FrameError(Exception):
    """A peer sent bytes that are not a frame of this protocol; the connection is closed."""


class PeerClosed(Exception):
    """The peer closed the connection."""


class Frame(NamedTuple):
    """One frame: a message chunk, an abort or a greeting.

    Immutable; a named tuple because one is built per message on each side.
    """

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
    size: int = 0
    """Bytes the frame took on the connection, set by the reader (0: not read)."""

    @property
    def wire_bytes(self) -> int:
        """Bytes this frame takes on the connection (before TLS)."""
        if self.size:
            return self.size
        return (
            HEADER_BYTES
            + len(text_fields(self.job, self.purpose, self.dtype)[0])
            + len(self.payload)
        )


@functools.lru_cache(maxsize=1024)
def text_fields(job: str, purpose: str, dtype: str) -> tuple[bytes, int, int, int]:
    """The encoded job, purpose and dtype with their padding, and each one's length.

    Cached: the frames of one job repeat a handful of these.
    """
    parts = job.encode(), purpose.encode(), dtype.encode()
    n_job, n_purpose, n_dtype = (len(part) for part in parts)
    if max(n_job, n_purpose, n_dtype) > _FIELD_MAX:
        raise ValueError("job, purpose and dtype are at most 255 bytes each")
    text = b"".join(parts)
    return text + bytes(-len(text) % 8), n_job, n_purpose, n_dtype


def encode(frame: Frame) -> bytes:
    """The frame's bytes, header and payload joined (one write, one TLS record when small)."""
    text, n_job, n_purpose, n_dtype = text_fields(frame.job, frame.purpose, frame.dtype)
    size = len(frame.payload)
    if size > CHUNK_BYTES:
        raise ValueError(f"a frame carries at most {CHUNK_BYTES} payload bytes")
    head = _HEAD.pack(
        HEADER_BYTES - 4 + len(text) + size,
        VERSION,
        frame.kind,
        LAST if frame.last else 0,
        n_job,
        n_purpose,
        n_dtype,
        frame.round,
        frame.seq,
        frame.length,
        frame.chunk,
    )
    return b"".join((head, text, frame.payload))


class FrameReader:
    """Reads frames from a non-blocking TLS socket through one reusable buffer.

    Small frames are parsed out of the buffer, as many as one read brought
    (a round's frame usually takes one read); a frame larger than the buffer
    has its body read into a buffer of its own, sized from its checked header.
    """

    def __init__(self) -> None:
        self._buf = bytearray(READ_BUFFER_BYTES)
        self._view = memoryview(self._buf)
        self._start = 0  # first byte not yet parsed
        self._end = 0  # end of the bytes read
        self._fields: tuple[int, ...] | None = None  # header of a large frame being read
        self._body: memoryview | None = None
        self._got = 0

    def read(
        self, sock: ssl.SSLSocket, limit: int | None = None, *, drain: bool = True
    ) -> list[Frame]:
        """Every frame complete after reading what a non-blocking socket has now.

        With ``limit``, stops after that many frames and reads no byte beyond
        them (on a blocking socket: waits for them, within its timeout).
        Without ``drain``, stops at the first frame boundary where neither
        this reader nor TLS holds a byte more, sparing the read that would
        only say "would block"; the kernel may hold more, so the caller must
        read again before it waits on the socket. Raises PeerClosed at the end
        of the stream and FrameError on bytes that are not a frame (the
        caller closes the connection).
        """
        frames: list[Frame] = []
        # CPython's TLS object under the SSLSocket: its read and pending skip the socket's
        # Python wrappers (three calls per read); None for other sockets or a closed one
        tls = getattr(sock, "_sslobj", None)
        while limit is None or len(frames) < limit:
            if self._body is None:
                if self._end - self._start >= HEADER_BYTES:
                    frame = self._parse()
                    if frame is not None:
                        frames.append(frame)
                        continue
                if (
                    not drain
                    and frames
                    and self._start == self._end
                    and not (tls.pending() if tls is not None else sock.pending())
                ):
                    return frames
            if self._body is None:
                if self._start == self._end and limit is None:  # all parsed: the whole buffer
                    self._start = self._end = 0
                    target = self._view
                else:
                    target = self._space(limit is not None)
            else:  # a large frame's body, possibly just begun by _parse
                target = self._body[self._got :]
            try:
                if tls is not None and target.nbytes:
                    n = tls.read(target.nbytes, target)
                else:
                    n = sock.recv_into(target)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return frames
            except ssl.SSLEOFError:  # a ragged end: as SSLSocket (suppress_ragged_eofs) says
                n = 0
            if n == 0:
                raise PeerClosed("the peer closed the connection")
            if self._body is None:
                self._end += n
                continue
            self._got += n
            if self._got == len(self._body):
                fields, body = self._fields, self._body
                self._fields, self._body = None, None
                assert fields is not None
                frames.append(_frame(fields, body))
        return frames

    def _parse(self) -> Frame | None:
        """The next frame if the buffer holds all of it; a large one's body moves out."""
        start, avail = self._start, self._end - self._start
        if avail < HEADER_BYTES:
            return None
        fields = _checked(self._buf, start)
        total = 4 + fields[0]
        if avail >= total:
            self._start = start + total
            body = self._view[start + HEADER_BYTES : start + total]
            return _frame(fields, body, copy=True)
        if total > len(self._buf):
            body = memoryview(bytearray(total - HEADER_BYTES))
            have = avail - HEADER_BYTES
            body[:have] = self._view[start + HEADER_BYTES : self._end]
            self._fields, self._body, self._got = fields, body, have
            self._start = self._end = 0
        return None

    def _space(self, exact: bool) -> memoryview:
        """Where the next read goes: the buffer's free end, after moving unparsed bytes down.

        ``exact`` limits it to the bytes the next header or frame still needs.
        """
        start, end = self._start, self._end
        if start == end:  # all parsed: start over at the front
            self._start = self._end = 0
        elif start:
            self._buf[: end - start] = self._view[start:end]
            self._start, self._end = 0, end - start
        if not exact:
            return self._view[self._end :]
        avail = self._end
        need = HEADER_BYTES if avail < HEADER_BYTES else 4 + _HEAD.unpack_from(self._buf)[0]
        return self._view[self._end : need]


def _checked(buf: bytearray, offset: int) -> tuple[int, ...]:
    """The header at ``offset``, refused unless it is one of this protocol within the limits."""
    fields = _HEAD.unpack_from(buf, offset)
    body, version, kind = fields[0], fields[1], fields[2]
    if version != VERSION or kind not in KINDS:
        raise FrameError(f"not a frame of this protocol (version {version}, kind {kind})")
    if body > MAX_FRAME_BYTES:
        raise FrameError(f"a frame of {body} bytes exceeds the limit of {MAX_FRAME_BYTES}")
    text = fields[4] + fields[5] + fields[6]
    if body - (HEADER_BYTES - 4) < text + -text % 8:  # the fields and their padding
        raise FrameError("a frame shorter than its own fields")
    return fields


@functools.lru_cache(maxsize=1024)
def _texts(text: bytes, n_job: int, n_purpose: int) -> tuple[str, str, str]:
    """The job, purpose and dtype of a frame's text (cached: a job's frames repeat a few)."""
    b = n_job + n_purpose
    try:
        return text[:n_job].decode(), text[n_job:b].decode(), text[b:].decode()
    except UnicodeDecodeError:
        raise FrameError("a frame's job, purpose or dtype is not UTF-8") from None


def _frame(fields: tuple[int, ...], body: memoryview, copy: bool = False) -> Frame:
    """The frame of a checked header and its body (the payload copied out with ``copy``)."""
    size, _, kind, flags, n_job, n_purpose, n_dtype, round_, seq, length, chunk = fields
    c = n_job + n_purpose + n_dtype
    job, purpose, dtype = _texts(bytes(body[:c]), n_job, n_purpose)
    payload: bytes | memoryview = body[c + -c % 8 :]
    if copy:
        payload = bytes(payload)
    return Frame(
        kind, job, purpose, round_, seq, chunk, bool(flags & LAST), dtype, length, payload, size + 4
    )
