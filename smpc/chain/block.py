"""Blocks, seals, quorum and proposer rules of the proof-of-authority chain.

A block's hash is SHA-256 of the canonical encoding of its header; the header
commits to the records through their Merkle root (:mod:`smpc.chain.merkle`),
and it does not contain the block's own seals. As in QBFT (Hyperledger Besu's
IBFT 2.0 successor), the seals that finalised block h are committed in block
h+1 (``parent_seals``), so once h+1 is final nobody can swap h's seal set.

A seal is an authority's Ed25519 signature of (:data:`SEAL_DOMAIN`, block hash).
With n authorities a block is final once ceil(2n/3) distinct authorities sealed
it (the QBFT commit quorum); the proposer of (height, round) is authority
(height + round) mod n, so a silent proposer is replaced by moving to the next
round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from smpc.chain.encoding import Value, decode, encode
from smpc.chain.errors import ChainEncodingError
from smpc.chain.keys import SIGNATURE_SIZE, signature_valid
from smpc.chain.merkle import HASH_SIZE, merkle_root

BLOCK_VERSION = 1
SEAL_DOMAIN = b"smpc/chain/seal/v1"
MAX_FUTURE_MS = 30_000
"""How far ahead of the verifier's clock a block's timestamp may be."""

_HEADER_FIELDS = (
    "version",
    "height",
    "parent",
    "parent_seals",
    "timestamp_ms",
    "proposer",
    "round",
    "merkle_root",
)


def quorum(n: int) -> int:
    """Seals needed for finality among ``n`` authorities: ceil(2n/3)."""
    if n < 1:
        raise ValueError(f"an authority set needs at least one member, got {n}")
    return (2 * n + 2) // 3


def proposer_index(height: int, round: int, n: int) -> int:
    """The authority that proposes at (height, round): (height + round) mod n."""
    return (height + round) % n


@dataclass(frozen=True, slots=True)
class Seal:
    """Authority number ``authority`` (its index in the set in force) sealed a block."""

    authority: int
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.authority, int) or not 0 <= self.authority < 2**63:
            raise ChainEncodingError(f"seal authority index {self.authority!r} is not an index")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise ChainEncodingError(f"a seal signature is {SIGNATURE_SIZE} bytes")

    def value(self) -> Value:
        return [self.authority, self.signature]

    @classmethod
    def from_value(cls, value: Value) -> Seal:
        if not isinstance(value, tuple) or len(value) != 2:
            raise ChainEncodingError("a seal is [authority index, signature]")
        return cls(cast(int, value[0]), cast(bytes, value[1]))


def seal_message(block_hash: bytes) -> bytes:
    """The bytes an authority signs to seal the block with hash ``block_hash``."""
    return SEAL_DOMAIN + block_hash


def make_seal(key: Ed25519PrivateKey, authority: int, block_hash: bytes) -> Seal:
    """A seal by ``key`` (authority number ``authority``); no checks, see ``Authority.seal``."""
    return Seal(authority, key.sign(seal_message(block_hash)))


def seal_valid(seal: Seal, public_key: bytes, block_hash: bytes) -> bool:
    """Whether ``seal`` is a valid signature of ``block_hash`` by ``public_key``."""
    return signature_valid(public_key, seal.signature, seal_message(block_hash))


def encode_seals(seals: Sequence[Seal]) -> bytes:
    """Canonical bytes of a seal set (for stores that keep seals beside the block)."""
    return encode([s.value() for s in seals])


def decode_seals(data: bytes) -> tuple[Seal, ...]:
    """Inverse of :func:`encode_seals`."""
    value = decode(data)
    if not isinstance(value, tuple):
        raise ChainEncodingError("a seal set is a list")
    return tuple(Seal.from_value(v) for v in value)


@dataclass(frozen=True, slots=True)
class Block:
    """One block: header fields and the encoded records (Merkle leaves, in order)."""

    version: int
    height: int
    parent: bytes
    parent_seals: tuple[Seal, ...]
    timestamp_ms: int
    proposer: int
    round: int
    merkle_root: bytes
    records: tuple[bytes, ...]
    _hash: bytes = field(default=b"", init=False, repr=False, compare=False)
    """The header's hash once computed: a node hashes each block about ten times."""

    def __post_init__(self) -> None:
        for name in ("version", "height", "timestamp_ms", "proposer", "round"):
            number = getattr(self, name)
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise ChainEncodingError(f"block {name} must be a non-negative integer")
        for name in ("parent", "merkle_root"):
            digest = getattr(self, name)
            if not isinstance(digest, bytes) or len(digest) != HASH_SIZE:
                raise ChainEncodingError(f"block {name} must be a {HASH_SIZE}-byte hash")
        if not all(isinstance(s, Seal) for s in self.parent_seals):
            raise ChainEncodingError("parent seals must be Seal objects")
        if not all(isinstance(r, bytes) for r in self.records):
            raise ChainEncodingError("records must be encoded bytes")

    @classmethod
    def create(
        cls,
        height: int,
        parent: bytes,
        parent_seals: Sequence[Seal],
        timestamp_ms: int,
        proposer: int,
        round: int,
        records: Sequence[bytes],
    ) -> Block:
        """A current-version block over ``records``, its Merkle root computed."""
        leaves = tuple(bytes(r) for r in records)
        return cls(
            BLOCK_VERSION,
            height,
            parent,
            tuple(parent_seals),
            timestamp_ms,
            proposer,
            round,
            merkle_root(leaves),
            leaves,
        )

    def header_value(self) -> dict[str, Value]:
        return {
            "version": self.version,
            "height": self.height,
            "parent": self.parent,
            "parent_seals": [s.value() for s in self.parent_seals],
            "timestamp_ms": self.timestamp_ms,
            "proposer": self.proposer,
            "round": self.round,
            "merkle_root": self.merkle_root,
        }

    def hash(self) -> bytes:
        """SHA-256 of the canonical header encoding (the block's own seals are not in it)."""
        if not self._hash:  # the block is frozen, so the hash never changes once computed
            object.__setattr__(self, "_hash", hashlib.sha256(encode(self.header_value())).digest())
        return self._hash

    def encode(self) -> bytes:
        """The whole block (header and records) for storage or transfer; seals travel apart."""
        return encode({**self.header_value(), "records": list(self.records)})

    @classmethod
    def decode(cls, data: bytes) -> Block:
        """The block whose canonical encoding is ``data``; raises ChainEncodingError."""
        f = cls._fields(data, ("records",))
        if not isinstance(f["records"], tuple):
            raise ChainEncodingError("records are a list")
        block = cls._from_fields(f, f["records"])
        if block.encode() != bytes(data):
            raise ChainEncodingError("block bytes are not canonical")
        return block

    @classmethod
    def decode_header(cls, data: bytes) -> Block:
        """A block without its records from its canonical header encoding (what it hashes).

        Enough to check a block's hash, parent and Merkle root, e.g. in a receipt;
        raises ChainEncodingError.
        """
        block = cls._from_fields(cls._fields(data, ()), ())
        if encode(block.header_value()) != bytes(data):
            raise ChainEncodingError("header bytes are not canonical")
        return block

    @staticmethod
    def _fields(data: bytes, extra: tuple[str, ...]) -> dict[str, Any]:
        value = decode(data)
        if not isinstance(value, dict) or set(value) != {*_HEADER_FIELDS, *extra}:
            raise ChainEncodingError(
                f"a block is a map with fields {_HEADER_FIELDS}{' and records' if extra else ''}"
            )
        f = cast(dict[str, Any], value)
        if not isinstance(f["parent_seals"], tuple):
            raise ChainEncodingError("parent seals are a list")
        return f

    @classmethod
    def _from_fields(cls, f: dict[str, Any], records: tuple[bytes, ...]) -> Block:
        return cls(
            f["version"],
            f["height"],
            f["parent"],
            tuple(Seal.from_value(s) for s in f["parent_seals"]),
            f["timestamp_ms"],
            f["proposer"],
            f["round"],
            f["merkle_root"],
            records,
        )
