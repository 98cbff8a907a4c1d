"""The ledger's front door: stores, genesis, verification, and the :class:`Authority`.

An authority proposes a block when (height + round) mod n points at it, and
seals a block only after checking it against the chain state exactly as a
verifier would. It never seals two different blocks at one height: it writes
the hash it is about to seal to its :class:`SealLog` before it signs, and
refuses any other block at that height afterwards (QBFT's rule that a
validator commits to at most one block per height, made crash-safe by
recording first).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from smpc.chain.block import Block, Seal, make_seal, proposer_index
from smpc.chain.errors import ChainError, EquivocationError
from smpc.chain.genesis import AuthorityKey, Genesis, GenesisError
from smpc.chain.keys import public_bytes
from smpc.chain.records import Record
from smpc.chain.store import ChainStore, MemorySealLog, MemoryStore, SealedBlock, SealLog
from smpc.chain.verify import ChainState, SignedJobCheck, SignedJobFacts, replay, verify_chain

__all__ = [
    "Authority",
    "AuthorityKey",
    "ChainState",
    "ChainStore",
    "Genesis",
    "GenesisError",
    "MemorySealLog",
    "MemoryStore",
    "SealLog",
    "SealedBlock",
    "SignedJobCheck",
    "SignedJobFacts",
    "replay",
    "verify_chain",
]


class Authority:
    """One hospital's chain key acting as an authority: proposes and seals blocks."""

    def __init__(self, key: Ed25519PrivateKey, log: SealLog | None = None) -> None:
        self._key = key
        self.public_key = public_bytes(key)
        self.log: SealLog = log if log is not None else MemorySealLog()

    def index(self, state: ChainState) -> int:
        """This authority's index in the set in force for the next block."""
        for i, member in enumerate(state.authorities):
            if member.public_key == self.public_key:
                return i
        raise ChainError("this chain key is not an authority for the next block")

    def propose(
        self,
        state: ChainState,
        records: Sequence[bytes | Record],
        timestamp_ms: int,
        round: int = 0,
    ) -> Block:
        """A block on top of ``state`` holding ``records``, if (height, round) is ours."""
        me = self.index(state)
        height = state.height + 1
        turn = proposer_index(height, round, len(state.authorities))
        if turn != me:
            raise ChainError(
                f"authority {me} cannot propose height {height} round {round}: "
                f"it is authority {turn}'s turn"
            )
        encoded = [r if isinstance(r, bytes) else r.encode() for r in records]
        return Block.create(
            height, state.head_hash, state.head_seals, timestamp_ms, me, round, encoded
        )

    def seal(self, block: Block, state: ChainState, now_ms: int) -> Seal:
        """Seal ``block`` as the next block of ``state``, after checking it.

        Raises ChainVerificationError for an invalid block and EquivocationError
        if a different block was already sealed at its height. Sealing the same
        block again returns the same seal (Ed25519 signatures are deterministic).
        """
        state.check_block(block, now_ms)
        me = self.index(state)
        block_hash = block.hash()
        earlier = self.log.sealed(block.height)
        if earlier is None:
            self.log.remember(block.height, block_hash)
        elif earlier != block_hash:
            raise EquivocationError(
                f"authority {me} already sealed a different block at height {block.height}; "
                "it will not seal a second one"
            )
        return make_seal(self._key, me, block_hash)
