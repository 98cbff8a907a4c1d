"""Merkle tree hash of a block's records, with inclusion proofs (RFC 6962, section 2.1).

Leaves and interior nodes are hashed under different one-byte prefixes, so a
leaf can never pass for a node (RFC 6962 section 2.1, second-preimage defence):

    leaf = SHA-256(0x00 || data)        node = SHA-256(0x01 || left || right)

The tree is built level by level; a level with an odd number of nodes promotes
its last node unchanged to the level above (it is not paired with itself, the
mistake that lets two different lists share a root). This gives the same tree
as RFC 6962's recursive split at the largest power of two below n. The empty
tree hashes to SHA-256(b""). Proofs and their check follow RFC 6962 section
2.1.1 and the verification algorithm of RFC 9162 section 2.1.3.2.

Over sorted leaves, :func:`prove_set` also proves that a leaf is absent: the
two adjacent leaves around where it would sit are shown with their paths.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _next_level(level: list[bytes]) -> list[bytes]:
    paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of ``leaves`` in order (SHA-256(b"") for none)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [leaf_hash(bytes(data)) for data in leaves]
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index``: sibling hashes from the leaf up to the root."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} is outside a tree of {len(leaves)} leaves")
    level = [leaf_hash(bytes(data)) for data in leaves]
    path: list[bytes] = []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = _next_level(level)
        index //= 2
    return path


def verify_inclusion(
    data: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``data`` is leaf ``index`` of a tree of ``size`` leaves whose hash is ``root``.

    Walks the path with the leaf's position ``fn`` and the last position ``sn``
    (RFC 9162 section 2.1.3.2): at each level the sibling is on the left when
    ``fn`` is odd or is the promoted last node, on the right otherwise. Promoted
    levels, where the node has no sibling, are skipped by shifting both.
    """
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    current = leaf_hash(data)
    for sibling in proof:
        if len(sibling) != HASH_SIZE or sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            current = node_hash(sibling, current)
            while fn % 2 == 0 and fn != 0:
                fn //= 2
                sn //= 2
        else:
            current = node_hash(current, sibling)
        fn //= 2
        sn //= 2
    return sn == 0 and current == root


# -- sorted leaves: membership and non-membership ---------------------------------


@dataclass(frozen=True, slots=True)
class Located:
    """One leaf of a tree, where it sits and its audit path (sibling hashes only)."""

    index: int
    data: bytes
    path: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class SetProof:
    """Whether ``leaf`` is in a sorted, repeat-free list of ``size`` leaves, with proof.

    A member is shown by its own audit path. A non-member by the leaves around
    the gap it would fill: the two adjacent leaves below and above it, or only
    the first (it is smaller than all) or the last (larger than all), or none
    for an empty tree. The proof holds sibling hashes and at most two other
    leaves, nothing more of the tree.
    """

    leaf: bytes
    size: int
    member: bool
    located: tuple[Located, ...]


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    levels = [[leaf_hash(bytes(data)) for data in leaves]]
    while len(levels[-1]) > 1:
        levels.append(_next_level(levels[-1]))
    return levels


def _path(levels: list[list[bytes]], index: int) -> tuple[bytes, ...]:
    path = []
    for level in levels[:-1]:
        if index ^ 1 < len(level):
            path.append(level[index ^ 1])
        index //= 2
    return tuple(path)


class SortedTree:
    """The Merkle tree of a sorted, repeat-free list of leaves, built once for many proofs.

    Raises ValueError if the leaves are not strictly increasing, since then no
    gap between neighbours proves anything.
    """

    def __init__(self, sorted_leaves: Sequence[bytes]) -> None:
        size = len(sorted_leaves)
        if any(sorted_leaves[i] >= sorted_leaves[i + 1] for i in range(size - 1)):
            raise ValueError("leaves must be sorted in increasing order without repeats")
        self.leaves = sorted_leaves
        self._levels = _levels(sorted_leaves) if size else []

    @property
    def root(self) -> bytes:
        """The tree's hash, as :func:`merkle_root` gives it."""
        return self._levels[-1][0] if self._levels else hashlib.sha256(b"").digest()

    def prove(self, leaf: bytes) -> SetProof:
        """A :class:`SetProof` that ``leaf`` is, or is not, among the leaves."""
        leaves, size = self.leaves, len(self.leaves)
        if size == 0:
            return SetProof(bytes(leaf), 0, False, ())
        hi = bisect.bisect_left(leaves, leaf)
        member = hi < size and leaves[hi] == leaf
        indices = [hi] if member else [i for i in (hi - 1, hi) if 0 <= i < size]
        located = tuple(Located(i, bytes(leaves[i]), _path(self._levels, i)) for i in indices)
        return SetProof(bytes(leaf), size, member, located)


def prove_set(sorted_leaves: Sequence[bytes], leaf: bytes) -> SetProof:
    """A :class:`SetProof` of ``leaf`` against ``sorted_leaves`` (see :class:`SortedTree`)."""
    return SortedTree(sorted_leaves).prove(leaf)


def verify_set(proof: SetProof, root: bytes) -> str | None:
    """None if ``proof`` holds against ``root``; otherwise what is wrong, in words."""
    size, leaf, located = proof.size, proof.leaf, proof.located
    if size < 0:
        return "the tree size is negative"
    if size == 0:
        if proof.member or located:
            return "an empty tree has no leaves to show"
        return None if root == hashlib.sha256(b"").digest() else "the root is not an empty tree"
    for at in located:
        if not verify_inclusion(at.data, at.index, size, at.path, root):
            return f"the audit path of leaf {at.index} does not lead to the root"
    if proof.member:
        if len(located) != 1 or located[0].data != leaf:
            return "a member is shown by exactly its own leaf"
        return None
    if len(located) == 2:
        low, high = located
        if high.index != low.index + 1 or not low.data < leaf < high.data:
            return "the two leaves shown are not adjacent around the leaf"
        return None
    if len(located) == 1:
        at = located[0]
        if (at.index == 0 and leaf < at.data) or (at.index == size - 1 and leaf > at.data):
            return None
        return "the one leaf shown is not the first above or the last below the leaf"
    return "a non-member is shown by its neighbours, and none are given"
