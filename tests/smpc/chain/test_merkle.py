"""Merkle tree hash and inclusion proofs, checked against RFC 6962's recursive definition.

The oracle below is written from the RFC's text (section 2.1): MTH of n > 1
leaves splits at k, the largest power of two smaller than n, and PATH(m, D)
recurses into the half holding leaf m and appends the other half's hash.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpc.chain.merkle import inclusion_proof, merkle_root, verify_inclusion

leaf_lists = st.lists(st.binary(max_size=12), max_size=40)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split_point(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def reference_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return sha(b"\x00" + leaves[0])
    k = split_point(len(leaves))
    return sha(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:]))


def reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) <= 1:
        return []
    k = split_point(len(leaves))
    if m < k:
        return [*reference_path(m, leaves[:k]), reference_root(leaves[k:])]
    return [*reference_path(m - k, leaves[k:]), reference_root(leaves[:k])]


def test_small_trees_by_hand() -> None:
    a, b, c = b"a", b"b", b"c"
    la, lb, lc = sha(b"\x00a"), sha(b"\x00b"), sha(b"\x00c")
    assert merkle_root([]) == sha(b"")
    assert merkle_root([a]) == la
    assert merkle_root([a, b]) == sha(b"\x01" + la + lb)
    promoted = sha(b"\x01" + sha(b"\x01" + la + lb) + lc)
    duplicated = sha(b"\x01" + sha(b"\x01" + la + lb) + sha(b"\x01" + lc + lc))
    assert merkle_root([a, b, c]) == promoted != duplicated


def test_duplicating_the_last_leaf_changes_the_root() -> None:
    # The flaw of Bitcoin-style trees (CVE-2012-2459) does not arise here.
    leaves = [b"x", b"y", b"z"]
    assert merkle_root(leaves) != merkle_root([*leaves, leaves[-1]])


def test_a_leaf_cannot_pose_as_a_node() -> None:
    la, lb = sha(b"\x00a"), sha(b"\x00b")
    assert merkle_root([la + lb]) != merkle_root([b"a", b"b"])


@given(leaf_lists)
def test_root_matches_rfc6962(leaves: list[bytes]) -> None:
    assert merkle_root(leaves) == reference_root(leaves)


@given(leaf_lists.filter(bool), st.data())
def test_proofs_match_rfc6962_and_verify(leaves: list[bytes], data: st.DataObject) -> None:
    m = data.draw(st.integers(0, len(leaves) - 1))
    proof = inclusion_proof(leaves, m)
    assert proof == reference_path(m, leaves)
    root = reference_root(leaves)
    assert verify_inclusion(leaves[m], m, len(leaves), proof, root)


@given(st.lists(st.binary(max_size=12), min_size=2, max_size=40, unique=True), st.data())
def test_wrong_proofs_fail(leaves: list[bytes], data: st.DataObject) -> None:
    n = len(leaves)
    m = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(leaves, m)
    root = merkle_root(leaves)
    other = data.draw(st.integers(0, n - 1).filter(lambda i: i != m), label="other")
    assert not verify_inclusion(leaves[other], m, n, proof, root)
    assert not verify_inclusion(leaves[m] + b"!", m, n, proof, root)
    assert not verify_inclusion(leaves[m], m, n, proof, sha(root))
    assert not verify_inclusion(leaves[m], m, n, proof[:-1], root)
    assert not verify_inclusion(leaves[m], m, n, [*proof, root], root)
    assert not verify_inclusion(leaves[m], n, n, proof, root)
    flipped = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    assert not verify_inclusion(leaves[m], m, n, flipped, root)


def test_proof_index_out_of_range() -> None:
    with pytest.raises(IndexError):
        inclusion_proof([b"a"], 1)
    with pytest.raises(IndexError):
        inclusion_proof([], 0)
