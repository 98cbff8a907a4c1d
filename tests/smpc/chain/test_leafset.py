"""The bucketed tree of sorted 16-byte leaves: sorting, roots and set proofs.

Roots are computed here from RFC 6962's recursive definition (section 2.1)
with hashlib alone over runs of 128 leaves, and sorting is checked against
Python's ``sorted(set(...))``, so neither is checked against itself.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpc.chain import leafset
from smpc.chain.leafset import Bucket, LeafSet, sort_unique, verify


def mth(items: list[bytes]) -> bytes:
    """RFC 6962 MTH: split at the largest power of two smaller than n."""
    if not items:
        return hashlib.sha256(b"").digest()
    if len(items) == 1:
        return hashlib.sha256(b"\x00" + items[0]).digest()
    k = 1
    while k * 2 < len(items):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(items[:k]) + mth(items[k:])).digest()


def bucket_root(leaves: list[bytes]) -> bytes:
    """The MTH of the sorted leaves cut into runs of 128."""
    return mth([b"".join(leaves[i : i + 128]) for i in range(0, len(leaves), 128)])


def random_leaves(n: int) -> list[bytes]:
    return sorted({os.urandom(16) for _ in range(n)})


leaf16 = st.binary(min_size=16, max_size=16)


def test_the_bucket_is_128_leaves() -> None:
    assert leafset.BUCKET == 128 and leafset.LEAF_SIZE == 16


@given(st.lists(leaf16, max_size=300))
def test_sort_unique_is_sorted_set(leaves: list[bytes]) -> None:
    # small sets, skewed prefixes and repeats: every branch of the counting sort
    doubled = leaves + leaves[: len(leaves) // 3]
    got = sort_unique(b"".join(doubled)).tobytes()
    assert got == b"".join(sorted(set(doubled)))


@settings(max_examples=20)
@given(st.integers(0, 2**16 - 1), st.integers(1, 400))
def test_leaves_sharing_their_top_bits_still_sort(prefix: int, n: int) -> None:
    leaves = [prefix.to_bytes(2, "big") + os.urandom(14) for _ in range(n)]
    assert sort_unique(b"".join(leaves)).tobytes() == b"".join(sorted(set(leaves)))


def test_a_large_random_set_sorts_like_python() -> None:
    data = os.urandom(16 * 50_000)
    expected = sorted({data[i : i + 16] for i in range(0, len(data), 16)})
    assert sort_unique(data).tobytes() == b"".join(expected)


@pytest.mark.parametrize("n", [0, 1, 2, 127, 128, 129, 256, 300, 1000])
def test_root_matches_rfc6962_over_buckets(n: int) -> None:
    leaves = random_leaves(n)
    packed = b"".join(leaves)
    assert leafset.root(packed) == bucket_root(leaves)
    assert LeafSet(packed).root == bucket_root(leaves)


@pytest.mark.parametrize("n", [1, 2, 127, 128, 129, 300, 1000])
def test_every_member_and_gaps_around_them_are_proven(n: int) -> None:
    leaves = random_leaves(n)
    tree = LeafSet(b"".join(leaves))
    root = bucket_root(leaves)
    members = leaves if n < 200 else leaves[::37] + leaves[120:140] + leaves[-3:]
    for leaf in members:
        proof = tree.prove(leaf)
        assert proof.member and verify(proof, root) is None
        assert len(proof.buckets) == 1 and leaf in _split(proof.buckets[0].leaves)
    # absent: below all, above all, in every gap near a bucket's edge
    probes = [bytes(16), b"\xff" * 16]
    for i in [0, 126, 127, 128, 129, n - 2]:
        if 0 <= i < n - 1:
            probes.append(_between(leaves[i], leaves[i + 1]))
    for probe in probes:
        if probe in leaves:
            continue
        proof = tree.prove(probe)
        assert not proof.member and verify(proof, root) is None, probe.hex()
        assert 1 <= len(proof.buckets) <= 2


def _split(data: bytes) -> list[bytes]:
    return [data[i : i + 16] for i in range(0, len(data), 16)]


def _between(low: bytes, high: bytes) -> bytes:
    """A 16-byte value strictly between two (the midpoint), or ``low`` if there is none."""
    a, b = int.from_bytes(low, "big"), int.from_bytes(high, "big")
    return ((a + b) // 2).to_bytes(16, "big")


def test_a_gap_across_two_buckets_shows_both() -> None:
    leaves = random_leaves(300)
    tree = LeafSet(b"".join(leaves))
    probe = _between(leaves[127], leaves[128])
    proof = tree.prove(probe)
    assert [b.index for b in proof.buckets] == [0, 1]
    assert verify(proof, bucket_root(leaves)) is None


def test_the_empty_set_proves_every_absence() -> None:
    proof = LeafSet(b"").prove(bytes(16))
    assert not proof.member and verify(proof, hashlib.sha256(b"").digest()) is None
    assert verify(replace(proof, member=True), hashlib.sha256(b"").digest()) is not None


def test_forged_proofs_fail_naming_why() -> None:
    leaves = random_leaves(400)
    tree = LeafSet(b"".join(leaves))
    root = bucket_root(leaves)
    member = tree.prove(leaves[200])
    absent = tree.prove(_between(leaves[10], leaves[11]))
    across = tree.prove(_between(leaves[127], leaves[128]))
    bucket = member.buckets[0]
    cases = {
        "claim absence of a member": (replace(member, member=False), "among the leaves shown"),
        "claim a member absent": (replace(absent, member=True), "one bucket that holds it"),
        "other root": (member, "does not lead to the root"),
        # (a count within the same number of buckets is bound by the commitment over it)
        "wrong count": (replace(member, count=600), "does not lead to the root"),
        "wrong count, last bucket": (replace(tree.prove(leaves[-1]), count=399), "holds"),
        "bucket outside": (
            replace(member, buckets=(replace(bucket, index=9),)),
            "outside the 4 buckets",
        ),
        "leaf dropped from the bucket": (
            replace(member, buckets=(replace(bucket, leaves=bucket.leaves[16:]),)),
            "holds",
        ),
        "a leaf changed in the bucket": (
            replace(member, buckets=(replace(bucket, leaves=bytes(16) + bucket.leaves[16:]),)),
            "does not lead to the root",
        ),
        "a far bucket for a gap": (
            replace(absent, buckets=(tree.prove(leaves[300]).buckets[0],)),
            "does not surround the leaf",
        ),
        "buckets out of order": (
            replace(across, buckets=across.buckets[::-1]),
            "not sorted",
        ),
        "no bucket": (replace(absent, buckets=()), "one bucket or two"),
    }
    for name, (proof, words) in cases.items():
        problem = verify(proof, root if name != "other root" else bytes(32))
        assert problem is not None and words in problem, (name, problem)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="16 bytes each"):
        sort_unique(b"\x00" * 15)
    with pytest.raises(ValueError, match="sorted in increasing order"):
        LeafSet(b"\x02" * 16 + b"\x01" * 16)
    with pytest.raises(ValueError, match="16 bytes each"):
        LeafSet(b"\x00" * 17)
    with pytest.raises(ValueError, match="a leaf is 16 bytes"):
        LeafSet(b"\x00" * 16).prove(b"\x00")
    assert isinstance(Bucket(0, b"", ()), Bucket)
