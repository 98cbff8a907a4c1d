"""Where blocks and seals are kept: an abstract store, and an authority's seal log.

Both have an in-memory implementation here; the SQLite ones live in ``parties``.
A store appends only the next height and does no other checking: a chain read
from any store is trusted only after :func:`smpc.chain.verify.verify_chain`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from smpc.chain.block import Block, Seal
from smpc.chain.errors import ChainStoreError


@dataclass(frozen=True, slots=True)
class SealedBlock:
    """A block and the seals stored with it (at least a quorum once final)."""

    block: Block
    seals: tuple[Seal, ...]


class ChainStore(ABC):
    """An append-only sequence of sealed blocks, heights 1, 2, ..."""

    @abstractmethod
    def append(self, block: Block, seals: Sequence[Seal]) -> None:
        """Add ``block`` (the next height) with its ``seals``."""

    @abstractmethod
    def get(self, height: int) -> SealedBlock | None:
        """The block stored at ``height``, or None."""

    @abstractmethod
    def head(self) -> SealedBlock | None:
        """The highest stored block, or None for a chain holding only the genesis."""

    @abstractmethod
    def iterate(self) -> Iterator[SealedBlock]:
        """Every stored block, in stored order (lowest height first)."""

    @abstractmethod
    def replace_head_seals(self, seals: Sequence[Seal]) -> None:
        """Store another quorum of seals with the head block (no later block commits to it yet)."""


class MemoryStore(ChainStore):
    """A store in a Python list (tests, scripting, a node's cache)."""

    def __init__(self) -> None:
        self._blocks: list[SealedBlock] = []

    def append(self, block: Block, seals: Sequence[Seal]) -> None:
        expected = len(self._blocks) + 1
        if block.height != expected:
            raise ChainStoreError(f"the next block is height {expected}, not {block.height}")
        self._blocks.append(SealedBlock(block, tuple(seals)))

    def get(self, height: int) -> SealedBlock | None:
        return self._blocks[height - 1] if 1 <= height <= len(self._blocks) else None

    def head(self) -> SealedBlock | None:
        return self._blocks[-1] if self._blocks else None

    def iterate(self) -> Iterator[SealedBlock]:
        return iter(list(self._blocks))

    def replace_head_seals(self, seals: Sequence[Seal]) -> None:
        if not self._blocks:
            raise ChainStoreError("the chain holds no block whose seals could be replaced")
        self._blocks[-1] = SealedBlock(self._blocks[-1].block, tuple(seals))


class SealLog(ABC):
    """What one authority has sealed, one block hash per height.

    :meth:`remember` must be durable when it returns: the authority calls it
    before it releases a seal, so after a crash it still refuses to seal a
    different block at the same height.
    """

    @abstractmethod
    def sealed(self, height: int) -> bytes | None:
        """The hash of the block sealed at ``height``, or None."""

    @abstractmethod
    def remember(self, height: int, block_hash: bytes) -> None:
        """Record that the block ``block_hash`` is sealed at ``height``."""


class MemorySealLog(SealLog):
    """A seal log in a dict (tests; a real authority needs a durable one)."""

    def __init__(self) -> None:
        self._sealed: dict[int, bytes] = {}

    def sealed(self, height: int) -> bytes | None:
        return self._sealed.get(height)

    def remember(self, height: int, block_hash: bytes) -> None:
        if self._sealed.setdefault(height, block_hash) != block_hash:
            raise ChainStoreError(f"a different block is already sealed at height {height}")
