"""Blocks and seals: quorum sizes, proposer rotation, hashing without seals, encodings."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from types import SimpleNamespace

import pytest

from smpc.chain.block import (
    Block,
    Seal,
    decode_seals,
    encode_seals,
    make_seal,
    proposer_index,
    quorum,
    seal_valid,
)
from smpc.chain.encoding import encode
from smpc.chain.errors import ChainEncodingError
from smpc.chain.keys import load_private_key, public_bytes
from smpc.chain.merkle import merkle_root


@pytest.mark.parametrize("n", range(1, 11))
def test_quorum_is_ceil_two_thirds(n: int) -> None:
    assert quorum(n) == math.ceil(2 * n / 3)


def test_quorum_needs_an_authority() -> None:
    with pytest.raises(ValueError, match="at least one"):
        quorum(0)


def test_proposer_rotates_with_height_and_round() -> None:
    assert [proposer_index(h, 0, 4) for h in range(1, 6)] == [1, 2, 3, 0, 1]
    assert [proposer_index(5, r, 4) for r in range(4)] == [1, 2, 3, 0]


def _block(records: list[bytes]) -> Block:
    return Block.create(3, bytes(32), (), 1_000, 1, 2, records)


def test_hash_covers_the_header_and_not_the_seals(kit: SimpleNamespace) -> None:
    block = _block([b"r1", b"r2"])
    assert block.merkle_root == merkle_root([b"r1", b"r2"])
    header = encode(
        {
            "version": 1,
            "height": 3,
            "parent": bytes(32),
            "parent_seals": [],
            "timestamp_ms": 1_000,
            "proposer": 1,
            "round": 2,
            "merkle_root": block.merkle_root,
        }
    )
    assert block.hash() == hashlib.sha256(header).digest()
    seal = make_seal(kit.key("k"), 0, block.hash())
    with_parent_seal = dataclasses.replace(block, parent_seals=(seal,))
    assert with_parent_seal.hash() != block.hash()
    for field, value in [("height", 4), ("round", 3), ("timestamp_ms", 1_001), ("proposer", 0)]:
        assert dataclasses.replace(block, **{field: value}).hash() != block.hash()


def test_block_round_trip_and_strict_decoding(kit: SimpleNamespace) -> None:
    seal = make_seal(kit.key("k"), 2, bytes(32))
    block = dataclasses.replace(_block([b"x"]), parent_seals=(seal,))
    assert Block.decode(block.encode()) == block
    with pytest.raises(ChainEncodingError):
        Block.decode(block.encode() + b"\x00")
    with pytest.raises(ChainEncodingError, match="fields"):
        Block.decode(encode({"height": 1}))
    with pytest.raises(ChainEncodingError, match="hash"):
        dataclasses.replace(block, parent=b"short")
    with pytest.raises(ChainEncodingError, match="non-negative"):
        dataclasses.replace(block, round=-1)


def test_seals_verify_only_for_their_key_and_block(kit: SimpleNamespace) -> None:
    key, other = kit.key("a"), kit.key("b")
    block_hash = hashlib.sha256(b"block").digest()
    seal = make_seal(key, 0, block_hash)
    assert seal_valid(seal, public_bytes(key), block_hash)
    assert not seal_valid(seal, public_bytes(other), block_hash)
    assert not seal_valid(seal, public_bytes(key), hashlib.sha256(b"other").digest())
    # The seal signs a domain-tagged message, not the bare hash.
    bare = Seal(0, key.sign(block_hash))
    assert not seal_valid(bare, public_bytes(key), block_hash)
    assert decode_seals(encode_seals([seal, bare])) == (seal, bare)
    with pytest.raises(ChainEncodingError):
        Seal(0, b"short")


def test_pkcs8_pem_chain_keys_load(kit: SimpleNamespace) -> None:
    from cryptography.hazmat.primitives import serialization

    key = kit.key("pem")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert public_bytes(load_private_key(pem)) == public_bytes(key)


def test_a_header_decodes_to_the_block_without_its_records(kit: SimpleNamespace) -> None:
    seal = make_seal(kit.key("k"), 2, bytes(32))
    block = dataclasses.replace(_block([b"x", b"y"]), parent_seals=(seal,))
    header = encode(block.header_value())
    got = Block.decode_header(header)
    assert got == dataclasses.replace(block, records=())
    assert got.hash() == block.hash() and got.merkle_root == block.merkle_root
    with pytest.raises(ChainEncodingError, match="fields"):
        Block.decode_header(block.encode())  # a whole block is not a header
    with pytest.raises(ChainEncodingError):
        Block.decode_header(header + b"\x00")


def test_a_block_hashes_its_header_once_and_a_changed_copy_anew(kit: SimpleNamespace) -> None:
    """The remembered hash is the header's SHA-256, and a copy with another field has its own."""
    c = kit.ChainKit(3)
    block = c.add_block([kit.consent(7)])
    expected = hashlib.sha256(encode(block.header_value())).digest()
    assert block.hash() == expected and block.hash() == expected
    moved = dataclasses.replace(block, timestamp_ms=block.timestamp_ms + 1)
    assert moved.hash() == hashlib.sha256(encode(moved.header_value())).digest() != expected
    assert moved != block
