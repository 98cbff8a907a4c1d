"""Per-channel running hashes of everything a party sent and received.

For every directed channel (i -> j) each end keeps a SHA-256 over a canonical
encoding of the messages on it, in order. Party i's "sent to j" digest must
equal party j's "received from i" digest; the digests go into the job record
on the chain, where an auditor compares them. A digest reveals nothing about
the (uniformly masked) payloads it covers.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from smpc.errors import TranscriptMismatchError

_DOMAIN = b"smpc/transcript/v1"


class Envelope(NamedTuple):
    """The routing fields of one message; the payload travels beside it.

    Immutable; a named tuple because one is built per message and per side.
    """

    job: str
    round: int
    seq: int
    sender: int
    receiver: int
    purpose: str


_FIXED = struct.Struct(">QIHH")  # round, seq, sender, receiver
_NBYTES = struct.Struct(">Q")


@functools.lru_cache(maxsize=256)
def _text(purpose: str, dtype: str) -> bytes:
    """The length-prefixed purpose and dtype of a header (few distinct pairs per job)."""
    purpose_bytes, dtype_bytes = purpose.encode(), dtype.encode()
    return b"".join(
        (
            struct.pack(">H", len(purpose_bytes)),
            purpose_bytes,
            struct.pack(">B", len(dtype_bytes)),
            dtype_bytes,
        )
    )


def encode_header(env: Envelope, payload: np.ndarray) -> bytes:
    """Canonical bytes of a message's header: fixed-width integers and length-prefixed text.

    ``_FIXED`` (round, seq, sender, receiver), then the u16-prefixed purpose
    and u8-prefixed dtype string, then the payload's u64 byte count; all
    big-endian.
    """
    return (
        _FIXED.pack(env.round, env.seq, env.sender, env.receiver)
        + _text(env.purpose, payload.dtype.str)
        + _NBYTES.pack(payload.nbytes)
    )


@functools.lru_cache(maxsize=256)
def _header_packer(purpose: str, dtype: np.dtype) -> tuple[Callable[..., bytes], bytes]:
    """One struct packing all of :func:`encode_header`'s fields for a (purpose, dtype) pair,
    and the pair's text: big-endian structs have no padding, so the bytes are the same."""
    text = _text(purpose, dtype.str)
    return struct.Struct(f">QIHH{len(text)}sQ").pack, text


def _channel_hash(job: str, sender: int, receiver: int) -> hashlib._Hash:
    h = hashlib.sha256(_DOMAIN)
    h.update(struct.pack(">H", len(job.encode())) + job.encode())
    h.update(struct.pack(">HH", sender, receiver))
    return h


class Transcript:
    """One party's running hashes, one per channel it used, in each direction."""

    def __init__(self, job: str, party: int, n_parties: int) -> None:
        self.job = job
        self.party = party
        peers = [p for p in range(n_parties) if p != party]
        self._sent = {p: _channel_hash(job, party, p) for p in peers}
        self._received = {p: _channel_hash(job, p, party) for p in peers}

    def record(self, env: Envelope, payload: np.ndarray) -> None:
        """Hash a message this party sent or received."""
        if env.sender == self.party:
            h = self._sent[env.receiver]
        elif env.receiver == self.party:
            h = self._received[env.sender]
        else:
            raise ValueError("message neither sent nor received by this party")
        # encode_header's bytes in one pack (cached per purpose and dtype)
        pack, text = _header_packer(env.purpose, payload.dtype)
        h.update(pack(env.round, env.seq, env.sender, env.receiver, text, payload.nbytes))
        # the payload's raw bytes in C order: hashlib reads a C-contiguous array's buffer
        # directly, and refuses any other, which is then copied
        try:
            h.update(payload)  # type: ignore[arg-type]  # numpy's stubs omit its buffer
        except (BufferError, ValueError):
            h.update(np.ascontiguousarray(payload).data)

    def sent_digest(self, peer: int) -> str:
        """Hex SHA-256 of everything sent to ``peer`` so far."""
        return self._sent[peer].hexdigest()

    def received_digest(self, peer: int) -> str:
        """Hex SHA-256 of everything received from ``peer`` so far."""
        return self._received[peer].hexdigest()

    def digests(self) -> dict[str, dict[int, str]]:
        """All digests: {"sent": {peer: hex}, "received": {peer: hex}}."""
        return {
            "sent": {p: h.hexdigest() for p, h in self._sent.items()},
            "received": {p: h.hexdigest() for p, h in self._received.items()},
        }


def check_channels(transcripts: list[Transcript]) -> None:
    """Raise TranscriptMismatchError unless every i->j digest pair agrees."""
    for t in transcripts:
        for other in transcripts:
            if other.party == t.party:
                continue
            if t.sent_digest(other.party) != other.received_digest(t.party):
                raise TranscriptMismatchError(
                    f"job {t.job}: party {t.party} hashed its messages to party {other.party} "
                    "differently from what that party hashed as received"
                )
