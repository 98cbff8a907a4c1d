"""Items of correlated randomness as one party holds them; each may be used once."""

from __future__ import annotations

import numpy as np

from smpc.errors import ReuseError


class _UseOnce:
    """Hands out its arrays exactly once; a second use is a ReuseError."""

    __slots__ = ("_parts", "index")
    _names: tuple[str, ...] = ()

    def __init__(self, index: int, *parts: np.ndarray) -> None:
        self.index = index
        self._parts: tuple[np.ndarray, ...] | None = parts

    def consume(self) -> tuple[np.ndarray, ...]:
        """This party's shares, in the order of ``_names``; marks the item used."""
        if self._parts is None:
            raise ReuseError(
                f"{type(self).__name__} #{self.index} was already used; "
                "correlated randomness must never be reused"
            )
        parts, self._parts = self._parts, None
        return parts

    @property
    def used(self) -> bool:
        return self._parts is None

    def __repr__(self) -> str:  # never show the shares
        state = "used" if self.used else "fresh"
        return f"{type(self).__name__}(#{self.index}, {state})"


class Triple(_UseOnce):
    """Shares of a, b and c = a*b (elementwise) for one Beaver product."""

    _names = ("a", "b", "c")


class MatrixTriple(_UseOnce):
    """Shares of A (m x k), B (k x n) and C = A @ B for one Beaver matrix product."""

    _names = ("a", "b", "c")


class HeldTriple(_UseOnce):
    """A (m x k) in the clear at its holder, B (k x n) at its owner, shares of C = A @ B.

    Every other party's ``a`` or ``b`` is empty (0 rows); every party has a share of C.
    """

    _names = ("a", "b", "c")


class TruncationTuple(_UseOnce):
    """Shares of a mask r, of (r mod 2^63) >> F, and of r's top bit, for one truncation."""

    _names = ("r", "r_low", "r_top")


class BinaryTriple(_UseOnce):
    """XOR shares of words a, b and c = a AND b: 64 AND gates per word."""

    _names = ("a", "b", "c")


class ComparisonMask(_UseOnce):
    """Shares of a mask r for one comparison, of r's bits, and of a daBit s.

    ``r`` and ``s`` are additive shares (one ring element per value),
    ``r_bits`` XOR shares of r (one word per value holds its 64 bits), and
    ``s_bits`` XOR shares of the random bits s, packed 64 values per word.
    """

    _names = ("r", "s_bits", "r_bits", "s")
