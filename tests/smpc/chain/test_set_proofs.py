"""Membership and non-membership proofs over sorted leaves, one leaf per tree leaf.

Roots are computed here from RFC 6962's recursive definition (section 2.1) with
hashlib alone, so the proofs are checked against an independent tree.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpc.chain.merkle import Located, prove_set, verify_set


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH: split at the largest power of two smaller than n."""
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return sha(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


sets = st.lists(st.binary(min_size=4, max_size=4), max_size=30, unique=True).map(sorted)


@given(sets, st.binary(min_size=4, max_size=4))
def test_every_leaf_is_proven_in_or_out(leaves: list[bytes], probe: bytes) -> None:
    root = mth(leaves)
    for candidate in [*leaves, probe]:
        proof = prove_set(leaves, candidate)
        assert proof.member == (candidate in leaves)
        assert verify_set(proof, root) is None


def test_known_vectors_in_and_out() -> None:
    leaves = [b"b", b"d", b"f", b"h", b"j"]
    root = mth(leaves)
    assert root.hex() == mth(list(leaves)).hex()
    inside = prove_set(leaves, b"f")
    assert inside.member and [a.index for a in inside.located] == [2]
    # leaf 2 of 5: siblings are leaf 3, then node(0, 1), then leaf 4 (promoted)
    assert inside.located[0].path == (
        sha(b"\x00h"),
        sha(b"\x01" + sha(b"\x00b") + sha(b"\x00d")),
        sha(b"\x00j"),
    )
    between = prove_set(leaves, b"e")
    assert not between.member and [a.data for a in between.located] == [b"d", b"f"]
    first = prove_set(leaves, b"a")
    last = prove_set(leaves, b"z")
    assert [a.index for a in first.located] == [0] and [a.index for a in last.located] == [4]
    for proof in (inside, between, first, last):
        assert verify_set(proof, root) is None
        assert verify_set(proof, mth(leaves[:4])) is not None


def test_empty_tree_proves_absence_only() -> None:
    proof = prove_set([], b"x")
    assert not proof.member and verify_set(proof, sha(b"")) is None
    assert verify_set(replace(proof, member=True), sha(b"")) is not None


def test_forged_proofs_are_refused() -> None:
    leaves = [b"b", b"d", b"f", b"h"]
    root = mth(leaves)
    inside = prove_set(leaves, b"d")
    # claiming absence of a member with its non-adjacent neighbours
    low, high = prove_set(leaves, b"b").located[0], prove_set(leaves, b"f").located[0]
    fake = replace(inside, member=False, located=(low, high))
    assert verify_set(fake, root) == "the two leaves shown are not adjacent around the leaf"
    # a wrong size, a wrong leaf, a swapped sibling
    assert verify_set(replace(inside, size=5), root) is not None
    assert verify_set(replace(inside, leaf=b"c"), root) is not None
    at = inside.located[0]
    bad = Located(at.index, at.data, (at.path[1], at.path[0]))
    assert verify_set(replace(inside, located=(bad,)), root) is not None
    # the first leaf shown as if it were the last
    first = prove_set(leaves, b"a")
    assert verify_set(replace(first, leaf=b"z"), root) is not None


def test_unsorted_leaves_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        prove_set([b"b", b"a"], b"c")
    with pytest.raises(ValueError, match="repeats"):
        prove_set([b"a", b"a"], b"c")
