"""The genesis: the federation's first authority set, read from ``genesis.json``.

``parties.federation`` writes the genesis as canonical JSON; callers parse the
file and pass the dict here (``smpc`` opens no files). The authorities are the
hospitals' raw Ed25519 chain keys, in the order listed. Block 1's parent is
:meth:`Genesis.hash`, and its timestamp may not precede ``created_ms``.

Version 2 also pins the federation CA (``federation_ca``, the DER certificate
in hex), so anyone holding the chain and its genesis can check the analyst's
signature on every job record. A version 1 genesis still loads, with an empty
``federation_ca``, and keeps its hash; a job record cannot be verified against
it (see :mod:`smpc.chain.verify`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from cryptography import x509

from smpc.chain.encoding import Value, encode
from smpc.chain.errors import ChainError
from smpc.chain.keys import PUBLIC_KEY_SIZE

GENESIS_VERSION = 2
"""The version written by ``smpc federation init``; version 1 (no federation CA) still loads."""
GENESIS_VERSIONS: tuple[int, ...] = (1, 2)
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
    """The federation's name, consent mode, creation time, first authority set and CA.

    ``federation_ca`` is the DER certificate of the federation CA (empty only in
    a version 1 genesis).
    """

    federation: str
    consent_mode: str
    created_ms: int
    authorities: tuple[AuthorityKey, ...]
    federation_ca: bytes = b""
    version: int = GENESIS_VERSION

    def __post_init__(self) -> None:
        if self.version not in GENESIS_VERSIONS:
            raise GenesisError(f"genesis version {self.version!r} is not one of {GENESIS_VERSIONS}")
        if self.version == 1 and self.federation_ca:
            raise GenesisError("a version 1 genesis has no federation_ca; version 2 has one")
        if self.version >= 2:
            try:
                x509.load_der_x509_certificate(self.federation_ca)
            except (TypeError, ValueError):
                raise GenesisError(
                    "federation_ca must be the federation CA's DER certificate in hex"
                ) from None
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
        if isinstance(data, Mapping) and data.get("version") != 1:
            fields.add("federation_ca")
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
        ca_hex = data.get("federation_ca", "")
        if not isinstance(ca_hex, str) or ca_hex != ca_hex.lower():
            raise GenesisError("federation_ca must be lowercase hex")
        try:
            ca = bytes.fromhex(ca_hex)
        except ValueError:
            raise GenesisError("federation_ca is not hex") from None
        return cls(
            federation=cast(str, data["federation"]),
            consent_mode=cast(str, data["consent_mode"]),
            created_ms=cast(int, data["created_ms"]),
            authorities=tuple(authorities),
            federation_ca=ca,
            version=cast(int, data["version"]),
        )

    def hash(self) -> bytes:
        """SHA-256 of the genesis' canonical encoding: the parent of block 1."""
        value: dict[str, Value] = {
            "kind": "genesis",
            "version": self.version,
            "federation": self.federation,
            "consent_mode": self.consent_mode,
            "created_ms": self.created_ms,
            "authorities": [[a.name, a.public_key] for a in self.authorities],
        }
        if self.version >= 2:  # a version 1 genesis keeps the hash its chain was built on
            value["federation_ca"] = self.federation_ca
        return hashlib.sha256(encode(value)).digest()
