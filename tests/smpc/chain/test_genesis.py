"""The genesis pins the federation CA (version 2); a version 1 genesis still loads unchanged."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization

from smpc.chain.encoding import encode
from smpc.chain.genesis import Genesis, GenesisError
from smpc.chain.keys import public_bytes


def genesis_dict(kit: SimpleNamespace, version: int, ca: bytes | None) -> dict[str, object]:
    """A one-hospital genesis of ``version``, with ``federation_ca`` unless ``ca`` is None."""
    data: dict[str, object] = {
        "version": version,
        "federation": "fed",
        "consent_mode": "opt-in",
        "created_ms": 5,
        "hospitals": [{"name": "x", "chain_public_key": public_bytes(kit.key("x")).hex()}],
    }
    if ca is not None:
        data["federation_ca"] = ca.hex()
    return data


def der(cert: object) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)  # type: ignore[attr-defined]


def test_a_version_2_genesis_pins_the_ca_and_its_hash_covers_it(kit: SimpleNamespace) -> None:
    ca = der(kit.federation_ca().cert)
    other = der(kit.certify("other CA", None, None).cert)
    genesis = Genesis.from_dict(genesis_dict(kit, 2, ca))
    assert genesis.federation_ca == ca
    assert genesis.hash() != Genesis.from_dict(genesis_dict(kit, 2, other)).hash()


def test_a_version_1_genesis_loads_without_a_ca_and_keeps_its_hash(kit: SimpleNamespace) -> None:
    genesis = Genesis.from_dict(genesis_dict(kit, 1, None))
    assert genesis.federation_ca == b""
    old = {
        "kind": "genesis",
        "version": 1,
        "federation": "fed",
        "consent_mode": "opt-in",
        "created_ms": 5,
        "authorities": [["x", public_bytes(kit.key("x"))]],
    }
    assert genesis.hash() == hashlib.sha256(encode(old)).digest()


@pytest.mark.parametrize(
    ("version", "ca", "reason"),
    [
        (2, None, "exactly the fields"),
        (2, "junk", "DER certificate"),
        (1, "good", "exactly the fields"),
        (3, "good", "version 3"),
    ],
)
def test_a_genesis_with_a_missing_or_bad_ca_is_refused(
    kit: SimpleNamespace, version: int, ca: str | None, reason: str
) -> None:
    cas = {None: None, "junk": b"not a certificate", "good": der(kit.federation_ca().cert)}
    with pytest.raises(GenesisError, match=reason):
        Genesis.from_dict(genesis_dict(kit, version, cas[ca]))
