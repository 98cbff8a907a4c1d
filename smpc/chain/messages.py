"""What chain nodes say to each other, and its canonical bytes for the wire.

Each message is a small frozen dataclass; :func:`encode_message` gives the
canonical encoding (``smpc.chain.encoding``) of ``[kind, fields...]`` and
:func:`decode_message` refuses anything that is not exactly that, so a
malformed or oversized message is an error naming the cause, never a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from smpc.chain.block import Block, Seal
from smpc.chain.encoding import decode, encode
from smpc.chain.errors import ChainEncodingError

MAX_MESSAGE_BYTES = 64 << 20


@dataclass(frozen=True)
class Proposal:
    """A block offered for sealing at the next height."""

    block: Block


@dataclass(frozen=True)
class SealVote:
    """One authority's seal of the block with ``block_hash`` at ``height``."""

    height: int
    block_hash: bytes
    seal: Seal


@dataclass(frozen=True)
class Commit:
    """A final block with its quorum of seals."""

    block: Block
    seals: tuple[Seal, ...]


@dataclass(frozen=True)
class RoundChange:
    """The sender moved to ``round`` at ``height``; ``sealed`` is the block it sealed there."""

    height: int
    round: int
    sealed: Block | None


@dataclass(frozen=True)
class SyncRequest:
    """Send me the final blocks after height ``after``."""

    after: int


@dataclass(frozen=True)
class SyncReply:
    """Final blocks, consecutive, in order."""

    blocks: tuple[Commit, ...]


@dataclass(frozen=True)
class Gossip:
    """A pending record (job record, consent change, authority vote) for the proposer."""

    record: bytes


Message = Proposal | SealVote | Commit | RoundChange | SyncRequest | SyncReply | Gossip


@dataclass(frozen=True)
class Batch:
    """Messages to one peer from one event (e.g. a proposal and its proposer's seal), in order.

    One transfer instead of several; the receiver handles each as if it came
    alone. A batch holds at least two messages and no batch.
    """

    messages: tuple[Message, ...]


def encode_batch(encoded: Sequence[bytes]) -> bytes:
    """Canonical bytes of the :class:`Batch` of messages given as :func:`encode_message` bytes."""
    if len(encoded) < 2:
        raise ChainEncodingError("a batch holds at least two messages")
    return encode(["batch", list(encoded)])


def _commit_value(c: Commit) -> list:
    return [c.block.encode(), [s.value() for s in c.seals]]


def _commit(value: object) -> Commit:
    if not isinstance(value, tuple) or len(value) != 2 or not isinstance(value[1], tuple):
        raise ChainEncodingError("a commit is [block, seals]")
    return Commit(Block.decode(cast(bytes, value[0])), tuple(Seal.from_value(s) for s in value[1]))


def encode_message(message: Message) -> bytes:
    """Canonical bytes of ``message``."""
    if isinstance(message, Proposal):
        value: list = ["proposal", message.block.encode()]
    elif isinstance(message, SealVote):
        value = ["seal", message.height, message.block_hash, message.seal.value()]
    elif isinstance(message, Commit):
        value = ["commit", _commit_value(message)]
    elif isinstance(message, RoundChange):
        sealed = [] if message.sealed is None else [message.sealed.encode()]
        value = ["round-change", message.height, message.round, sealed]
    elif isinstance(message, SyncRequest):
        value = ["sync-request", message.after]
    elif isinstance(message, SyncReply):
        value = ["sync-reply", [_commit_value(c) for c in message.blocks]]
    elif isinstance(message, Gossip):
        value = ["gossip", message.record]
    else:
        raise ChainEncodingError(f"not a chain message: {type(message).__name__}")
    return encode(value)


def decode_message(data: bytes) -> Message | Batch:
    """The message or batch whose canonical bytes are ``data``; ChainEncodingError otherwise."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise ChainEncodingError(f"a chain message of {len(data)} bytes is over the limit")
    value = decode(data)
    if not isinstance(value, tuple) or not value or not isinstance(value[0], str):
        raise ChainEncodingError("a chain message is [kind, fields...]")
    if value[0] == "batch":
        return _batch(value[1:])
    return _message(value[0], value[1:])


def _batch(fields: tuple) -> Batch:
    if len(fields) != 1 or not isinstance(fields[0], tuple) or len(fields[0]) < 2:
        raise ChainEncodingError("a batch is [batch, [two or more messages]]")
    messages = []
    for item in fields[0]:
        message = decode_message(item) if isinstance(item, bytes) else None
        if message is None or isinstance(message, Batch):
            raise ChainEncodingError("a batch holds the bytes of messages, and no batch")
        messages.append(message)
    return Batch(tuple(messages))


def _message(kind: str, fields: tuple) -> Message:
    shapes = {
        "proposal": 1,
        "seal": 3,
        "commit": 1,
        "round-change": 3,
        "sync-request": 1,
        "sync-reply": 1,
        "gossip": 1,
    }
    if shapes.get(kind) != len(fields):
        raise ChainEncodingError(f"unknown chain message kind {kind!r} or wrong field count")
    f = fields
    if kind == "proposal":
        return Proposal(Block.decode(f[0]))
    if kind == "seal":
        return SealVote(f[0], f[1], Seal.from_value(f[2]))
    if kind == "commit":
        return _commit(f[0])
    if kind == "round-change":
        if not isinstance(f[2], tuple) or len(f[2]) > 1:
            raise ChainEncodingError("a round change carries at most one sealed block")
        return RoundChange(f[0], f[1], Block.decode(f[2][0]) if f[2] else None)
    if kind == "sync-request":
        return SyncRequest(f[0])
    if kind == "sync-reply":
        if not isinstance(f[0], tuple):
            raise ChainEncodingError("a sync reply is a list of commits")
        return SyncReply(tuple(_commit(c) for c in f[0]))
    if not isinstance(f[0], bytes):
        raise ChainEncodingError("gossip carries a record's bytes")
    return Gossip(f[0])
