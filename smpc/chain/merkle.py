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

Set proofs over a job's sorted patient leaves (membership and absence) are
built on these in :mod:`smpc.chain.leafset`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

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
