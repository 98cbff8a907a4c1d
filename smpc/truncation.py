"""One-round truncation of fixed-point values, exact up to one unit in the last place.

Follows the MSB-aware ring truncation of Escudero, Ghosh, Keller, Rachuri and
Scholl, "Improved Primitives for MPC over Mixed Arithmetic-Binary Circuits"
(CRYPTO 2020), as used for rings by MP-SPDZ:

1. The dealer provides shares of a uniform mask r, of (r mod 2^63) >> F and
   of r's top bit r63 (a ring element).
2. Every party opens its share of c = x + 2^62 + r (the shift puts any
   |x| < 2^62 into [0, 2^63)). One round; c is uniform, so nothing leaks.
3. With c63 public, the carry v = c63 XOR r63 = c63 + r63 (1 - 2 c63) is
   linear in the shared bit, and
   x >> F = (c mod 2^63) >> F - [(r mod 2^63) >> F] + 2^(63-F) v - 2^(62-F),
   exact or one unit too large (the difference of two floors may exceed the
   floor of the difference by one), and
   never wrong by more: there is no probabilistic large error.

Precondition: |x| < 2^62 as a signed ring value, i.e. |x*y| < 2^(62-2F)
for a product of two reals with F fractional bits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from smpc.shares import SharedTensor

if TYPE_CHECKING:
    from smpc.runtime import Runtime

ROUNDS = 1
"""Rounds of one truncation, for any tensor size."""


def truncate(rt: Runtime, x: SharedTensor) -> SharedTensor:
    """x with F fewer fractional bits (scale 2F -> F); one round."""
    f = rt.fxp.frac_bits
    if x.scale < f:
        raise ValueError(f"nothing to truncate: the tensor carries {x.scale} fractional bits")
    tup = rt.prep.truncation(x.shape, f)
    r, r_low, r_top = tup.consume()
    masked = rt.ring.truncation_masked(x.share, r, rt.first)
    return finish(rt, masked, r_low, r_top, x.scale - f)


def finish(
    rt: Runtime, masked: np.ndarray, r_low: np.ndarray, r_top: np.ndarray, scale: int
) -> SharedTensor:
    """Open the masked value (step 2) and form this party's share of the result (step 3)."""
    opened = rt.exchange_all(masked.reshape(-1), "truncation")
    share = rt.ring.truncation_finish(opened, r_low, r_top, rt.fxp.frac_bits, rt.first)
    return rt.shared(share, scale)
