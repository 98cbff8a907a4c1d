"""A signed checkpoint of a chain's head, to keep or publish outside the federation.

The checkpoint names the federation, the genesis hash, the head's height,
hash and time, the authority set that sealed it and their seals. Anyone
holding it can check, without the chain, that a quorum of those authorities
sealed exactly that block; with the genesis they also see whether the set is
still the genesis set. Publishing checkpoints (e.g. in a hospital's annual
report) bounds what a colluding quorum could later rewrite: a different block
at a published height would contradict seals its own members signed.
"""

from __future__ import annotations

from typing import Any

from smpc.chain.block import Seal, quorum, seal_valid
from smpc.chain.errors import ChainError
from smpc.chain.genesis import AuthorityKey, Genesis
from smpc.chain.verify import ChainState

CHECKPOINT_FORMAT = "smpc-checkpoint-1"


class CheckpointError(ChainError, ValueError):
    """A checkpoint is malformed or its seals do not make a quorum."""


def make_checkpoint(
    state: ChainState, height: int | None = None, timestamp_ms: int | None = None
) -> dict[str, Any]:
    """The checkpoint of the head of a verified chain ``state`` (a JSON-ready dict).

    With ``height``, of that earlier block instead, with the seals it was
    verified with; its ``timestamp_ms`` (from the block) is then required.
    """
    if state.height == 0:
        raise CheckpointError("the chain holds only its genesis: nothing to checkpoint")
    if height is None or height == state.height:
        height, block, seals = state.height, state.head_hash, state.head_seals
        timestamp_ms = state.head_timestamp_ms
    elif not 1 <= height <= state.height or height not in state.hashes_by_height:
        raise CheckpointError(f"height {height} is not a block of this chain (1 to {state.height})")
    elif timestamp_ms is None:
        raise CheckpointError(f"a checkpoint of block {height} needs the block's timestamp")
    else:
        block, seals = state.hashes_by_height[height]
    members = state.sets_by_height[height]
    return {
        "format": CHECKPOINT_FORMAT,
        "federation": state.genesis.federation,
        "genesis": state.genesis.hash().hex(),
        "height": height,
        "block": block.hex(),
        "timestamp_ms": timestamp_ms,
        "authorities": [{"name": a.name, "public_key": a.public_key.hex()} for a in members],
        "seals": [{"authority": s.authority, "signature": s.signature.hex()} for s in seals],
    }


def check_checkpoint(checkpoint: dict[str, Any], genesis: Genesis | None = None) -> str:
    """Check the seals of a checkpoint; returns a one-line verdict or raises CheckpointError.

    With ``genesis``, the checkpoint must name it, and the verdict says
    whether the sealing set is the genesis set.
    """
    try:
        if checkpoint["format"] != CHECKPOINT_FORMAT:
            raise CheckpointError(f"format {checkpoint['format']!r} is not {CHECKPOINT_FORMAT}")
        block = bytes.fromhex(checkpoint["block"])
        members = tuple(
            AuthorityKey(a["name"], bytes.fromhex(a["public_key"]))
            for a in checkpoint["authorities"]
        )
        seals = [
            Seal(int(s["authority"]), bytes.fromhex(s["signature"])) for s in checkpoint["seals"]
        ]
        height = int(checkpoint["height"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"malformed checkpoint: {exc}") from None
    if genesis is not None and checkpoint.get("genesis") != genesis.hash().hex():
        raise CheckpointError("the checkpoint is of another genesis")
    signers = set()
    for seal in seals:
        if seal.authority >= len(members) or not seal_valid(
            seal, members[seal.authority].public_key, block
        ):
            raise CheckpointError(f"the seal of authority {seal.authority} does not verify")
        signers.add(seal.authority)
    need = quorum(len(members))
    if len(signers) < need:
        raise CheckpointError(f"{len(signers)} seals, below the quorum of {need} of {len(members)}")
    names = ", ".join(members[i].name for i in sorted(signers))
    verdict = f"block {height} ({checkpoint['block'][:12]}) sealed by {names}"
    if genesis is not None:
        same = members == tuple(genesis.authorities)
        verdict += (
            "; the genesis authority set"
            if same
            else ("; the authority set changed since the genesis: verify the chain to trust it")
        )
    return verdict
