"""The genesis: the federation's first authority set, read from ``genesis.json``.

``parties.federation`` writes the genesis as canonical JSON; callers parse the
file and pass the dict here (``smpc`` opens no files). The authorities are the
hospitals' raw Ed25519 chain keys, in the order listed. Block 1's parent is
:meth:`Genesis.hash`, and its timestamp may not precede ``created_ms``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from smpc.chain.encoding import encode
from smpc.chain.errors import ChainError
from smpc.chain.keys import PUBLIC_KEY_SIZE

GENESIS_VERSION = 1
CONSENT_MODES: tuple[str, ...] = ("opt-in", "opt-out")


class GenesisError(ChainError, ValueError):
    """A genesis dict is missing a field or holds a malformed one."""


@dataclass(frozen=True, slots=True)
class AuthorityKey:
    """One authority: a hospital's name and its raw 32-byte Ed25519 chain public key."""

    name: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class Genesis:
    """The federation's name, consent mode, creation time and first authority set."""

    federation: str
    consent_mode: str
    created_ms: int
    authorities: tuple[AuthorityKey, ...]
    version: int = GENESIS_VERSION

    def __post_init__(self) -> None:
        if self.version != GENESIS_VERSION:
            raise GenesisError(f"genesis version {self.version!r} is not {GENESIS_VERSION}")
        if not isinstance(self.federation, str) or not self.federation:
            raise GenesisError("genesis federation must be a non-empty string")
        if self.consent_mode not in CONSENT_MODES:
            raise GenesisError(f"consent mode {self.consent_mode!r} is not one of {CONSENT_MODES}")
        created = self.created_ms
        if isinstance(created, bool) or not isinstance(created, int) or not 0 <= created < 2**63:
            raise GenesisError("created_ms must be milliseconds since 1970 (UTC)")
        if not self.authorities:
            raise GenesisError("the genesis lists no hospital: a chain needs an authority")
        names = [a.name for a in self.authorities]
        keys = [a.public_key for a in self.authorities]
        if len(set(names)) != len(names) or len(set(keys)) != len(keys):
            raise GenesisError("hospital names and chain keys in the genesis must be distinct")
        for a in self.authorities:
            if not isinstance(a.name, str) or not a.name:
                raise GenesisError("a hospital name must be a non-empty string")
            if not isinstance(a.public_key, bytes) or len(a.public_key) != PUBLIC_KEY_SIZE:
                raise GenesisError(f"{a.name}'s chain key must be {PUBLIC_KEY_SIZE} bytes")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Genesis:
        """Parse the dict stored in ``genesis.json``; unknown or missing fields are refused."""
        fields = {"version", "federation", "consent_mode", "created_ms", "hospitals"}
        if not isinstance(data, Mapping) or set(data) != fields:
            raise GenesisError(f"a genesis has exactly the fields {sorted(fields)}")
        hospitals = data["hospitals"]
        if not isinstance(hospitals, list):
            raise GenesisError("genesis hospitals must be a list")
        authorities = []
        for entry in hospitals:
            if not isinstance(entry, Mapping) or set(entry) != {"name", "chain_public_key"}:
                raise GenesisError("each genesis hospital has exactly name and chain_public_key")
            key_hex = entry["chain_public_key"]
            if not isinstance(key_hex, str) or key_hex != key_hex.lower():
                raise GenesisError("chain_public_key must be lowercase hex")
            try:
                key = bytes.fromhex(key_hex)
            except ValueError as exc:
                raise GenesisError(f"chain_public_key {key_hex!r} is not hex") from exc
            authorities.append(AuthorityKey(cast(str, entry["name"]), key))
        return cls(
            federation=cast(str, data["federation"]),
            consent_mode=cast(str, data["consent_mode"]),
            created_ms=cast(int, data["created_ms"]),
            authorities=tuple(authorities),
            version=cast(int, data["version"]),
        )

    def hash(self) -> bytes:
        """SHA-256 of the genesis' canonical encoding: the parent of block 1."""
        value = {
            "kind": "genesis",
            "version": self.version,
            "federation": self.federation,
            "consent_mode": self.consent_mode,
            "created_ms": self.created_ms,
            "authorities": [[a.name, a.public_key] for a in self.authorities],
        }
        return hashlib.sha256(encode(value)).digest()
