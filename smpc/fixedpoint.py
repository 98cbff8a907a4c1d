"""Encoding of real numbers as ring elements: x -> round(x * 2^F) mod 2^64.

Range and precision at ``frac_bits = F`` (default 16):

* resolution 2^-F (1.5e-5 at F = 16); encoding rounds to nearest, so the
  encoding error is at most 2^-(F+1);
* values that are only added may reach |x| < 2^(62-F) (2^46 at F = 16);
  :meth:`FixedPoint.encode` rejects anything outside that, and NaN or inf;
* operands of a product must satisfy |x*y| < 2^(62-2F) (2^30 at F = 16),
  since the product carries 2F fractional bits and truncation needs the
  shifted value below 2^63; truncation (``smpc.truncation``) is exact or one
  unit in the last place (2^-F) too large, never more.

Errors name the position (column and row) and the allowed range, never the
offending value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smpc import ring
from smpc.errors import FixedPointRangeError

RING_BITS = 64


@dataclass(frozen=True, slots=True)
class FixedPoint:
    """A fixed-point encoder with ``frac_bits`` fractional bits."""

    frac_bits: int = 16

    def __post_init__(self) -> None:
        if (
            not isinstance(self.frac_bits, int)
            or isinstance(self.frac_bits, bool)
            or not 0 <= self.frac_bits <= 30
        ):
            raise ValueError("frac_bits must be an integer from 0 to 30")

    @property
    def scale(self) -> float:
        """2^F: the factor between a real number and its encoding."""
        return float(1 << self.frac_bits)

    @property
    def max_abs(self) -> float:
        """Largest magnitude (exclusive) that may be encoded and added: 2^(62-F)."""
        return float(1 << (62 - self.frac_bits))

    @property
    def max_product(self) -> float:
        """Largest magnitude (exclusive) of a product x*y: 2^(62-2F)."""
        return float(1 << (62 - 2 * self.frac_bits))

    def encode(
        self,
        values: object,
        *,
        columns: Sequence[str] | None = None,
        limit: float | None = None,
    ) -> np.ndarray:
        """Encode reals as uint64 ring elements.

        ``limit`` tightens the allowed magnitude (e.g. to the square root of
        :attr:`max_product` for values that will be multiplied together);
        ``columns`` names the columns of a 2-D input for error messages.
        """
        array = _as_float(values)
        if limit is not None and not (math.isfinite(limit) and limit > 0):
            raise ValueError("limit must be a positive finite number")
        bound = self.max_abs if limit is None else min(limit, self.max_abs)
        return _encode(array, self.scale, bound, columns)

    def encode_int(self, values: object) -> np.ndarray:
        """Encode integers without fractional bits (counts, flags, indices)."""
        array = np.asarray(values)
        if array.dtype.kind not in "iub":
            raise TypeError(f"encode_int needs integers, got dtype {array.dtype}")
        if array.dtype.kind == "u":
            return array.astype(np.uint64)
        return array.astype(np.int64).view(np.uint64)

    def decode(self, ring_values: np.ndarray, frac_bits: int | None = None) -> np.ndarray:
        """Signed reals from ring elements carrying ``frac_bits`` (default F) fractional bits."""
        bits = self.frac_bits if frac_bits is None else frac_bits
        signed = np.asarray(ring_values, dtype=np.uint64).view(np.int64)
        return signed.astype(np.float64) / float(1 << bits)

    def scale_public(self, values: object, frac_bits: int) -> np.ndarray:
        """A public real encoded at ``frac_bits`` fractional bits (for operands of shares)."""
        return _encode(_as_float(values), float(1 << frac_bits), float(1 << (62 - frac_bits)))


def _as_float(values: object) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"expected real numbers, got dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


def _encode(
    array: np.ndarray, scale: float, bound: float, columns: Sequence[str] | None = None
) -> np.ndarray:
    encoded, bad = ring.from_float(array, scale, bound)
    if bad >= 0:
        check_range(array, bound, columns=columns)  # raises, naming the position
    return encoded


def check_range(array: np.ndarray, bound: float, *, columns: Sequence[str] | None = None) -> None:
    """Raise FixedPointRangeError at the first non-finite or out-of-range entry."""
    bad = ~np.isfinite(array)
    kind = "not a finite number"
    if not bad.any():
        bad = np.abs(array) >= bound
        kind = "out of range"
    if not bad.any():
        return
    flat = int(np.argmax(bad.ravel()))
    where = tuple(int(i) for i in np.unravel_index(flat, array.shape)) if array.ndim else ()
    raise FixedPointRangeError(
        f"{_position(where, columns)}: value is {kind}; allowed are finite values with "
        f"|x| < {bound:.6g}. Rescale the column or lower frac_bits."
    )


def _position(where: tuple[int, ...], columns: Sequence[str] | None) -> str:
    if not where:
        return "scalar input"
    if len(where) == 1:
        return f"element {where[0]}"
    row, col = where[0], where[1]
    name = f"'{columns[col]}'" if columns is not None and col < len(columns) else str(col)
    rest = f" index {tuple(int(i) for i in where)}" if len(where) > 2 else ""
    return f"column {name} row {row}{rest}"
