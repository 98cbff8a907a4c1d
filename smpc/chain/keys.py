"""Ed25519 chain keys: raw public bytes, PEM loading, and a yes/no signature check.

A hospital's chain key is stored as PKCS8 PEM (see ``parties.federation``); the
chain itself only ever carries the 32-byte raw public key and 64-byte signatures.
This module never reads a file: callers pass the PEM bytes.

A signature that verified is remembered by the SHA-256 of key, signature and
message (:mod:`smpc.chain.memo`): a chain node meets each seal and record
signature several times, and the same bytes verify the same way every time.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from smpc.chain.errors import ChainError
from smpc.chain.memo import Memo

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64

_VERIFIED: Memo[bool] = Memo()
"""Digests of (key, signature, message) triples that verified."""


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key of ``key``."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from unencrypted PKCS8 PEM bytes."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ChainError(f"chain keys are Ed25519; this PEM holds a {type(key).__name__}")
    return key


def signature_valid(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    # Key and signature have fixed sizes, so the concatenation names the triple.
    digest = hashlib.sha256(public_key + signature + message).digest()
    if _VERIFIED.get(digest):
        return True
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    _VERIFIED.put(digest, True)
    return True
