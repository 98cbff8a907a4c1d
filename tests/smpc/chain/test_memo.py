"""The memo of passed checks, and the remembered Ed25519 verifications in smpc.chain.keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from smpc.chain import keys
from smpc.chain.keys import public_bytes, signature_valid
from smpc.chain.memo import Memo


def test_a_memo_returns_what_was_put_and_none_for_the_rest() -> None:
    memo: Memo[str] = Memo(limit=4)
    memo.put(b"a", "first")
    assert memo.get(b"a") == "first"
    assert memo.get(b"b") is None


def test_a_full_memo_forgets_the_oldest_entry() -> None:
    memo: Memo[int] = Memo(limit=3)
    for i in range(5):
        memo.put(i, i * 10)
    assert len(memo) == 3
    assert [memo.get(i) for i in range(5)] == [None, None, 20, 30, 40]


def test_a_memo_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Memo(limit=0)


class _CountingKey:
    """Stands in for Ed25519PublicKey, counting how often a key is made to verify."""

    made = 0

    @classmethod
    def from_public_bytes(cls, data: bytes) -> object:
        cls.made += 1
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        return Ed25519PublicKey.from_public_bytes(data)


def test_a_verified_signature_is_not_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "Ed25519PublicKey", _CountingKey)
    key = Ed25519PrivateKey.generate()
    message = b"remembered once " + public_bytes(key)
    signature = key.sign(message)
    before = _CountingKey.made
    assert signature_valid(public_bytes(key), signature, message)
    assert signature_valid(public_bytes(key), signature, message)
    assert _CountingKey.made == before + 1


def test_a_remembered_signature_does_not_make_another_pass() -> None:
    """After a valid triple is remembered, a changed message, signature or key still fails."""
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    message = b"only this message " + public_bytes(key)
    signature = key.sign(message)
    assert signature_valid(public_bytes(key), signature, message)
    bad = bytearray(signature)
    bad[0] ^= 1
    assert not signature_valid(public_bytes(key), signature, message + b"!")
    assert not signature_valid(public_bytes(key), bytes(bad), message)
    assert not signature_valid(public_bytes(other), signature, message)


def test_a_failed_verification_is_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "Ed25519PublicKey", _CountingKey)
    key = Ed25519PrivateKey.generate()
    message = b"never valid " + public_bytes(key)
    forged = bytes(64)
    before = _CountingKey.made
    assert not signature_valid(public_bytes(key), forged, message)
    assert not signature_valid(public_bytes(key), forged, message)
    assert _CountingKey.made == before + 2
