"""Exact secure comparison: ltz, and from it relu, maximum, minimum, clip and sign.

Every function is batched over all elements of its tensors and takes
**8 rounds** whatever the size (measured by ``dry_run`` in the tests).
Leaks nothing but the shapes (and clip's public bounds): c, every tree
message and d below are uniformly masked by fresh dealer randomness
(semi-honest parties; a dealer that colludes with none of them).

``ltz(rt, x)`` returns shares of the integer 1 where the signed ring value of
x is negative and 0 elsewhere (scale 0). It is exact for every ring value.
With x = c - r for c = x + r, the sign bit of x is
c63 XOR r63 XOR [c mod 2^63 < r mod 2^63] (the borrow out of the low 63 bits).

1. The dealer's comparison mask holds additive shares of a uniform r, XOR
   shares of r's 64 bits (one word per value), and a daBit s: a random bit
   shared both additively and by XOR (packed 64 values per word). Every
   party opens its share of c = x + r (round 1; c is uniform).
2. With c public, each bit position i < 63 gives a generate bit
   g_i = r_i AND NOT c_i and a propagate bit p_i = NOT (r_i XOR c_i), both
   local on the XOR shares. Six levels of a carry tree merge adjacent groups,
   (g, p) = (g_hi XOR (p_hi AND g_lo), p_hi AND p_lo), halving 64 bits to the
   one borrow bit (rounds 2-7). Only the final carry is formed, not every
   prefix. Each level's AND gates, for every value at once and packed 64 per
   word, are one binary Beaver product: open x XOR a and y XOR b, then
   x AND y = c XOR (d AND b) XOR (e AND a) XOR (d AND e).
3. The XOR-shared sign bit b is converted once: open d = b XOR s (round 8,
   one bit per value), then b = d + s - 2 d s on the additive shares of s.

relu, maximum, minimum and clip need b * y for a shared y. Since
b * y = d y + (1 - 2 d) s y, the product s * y is made with an ordinary
Beaver triple whose opening rides in round 2's message, so they also take
8 rounds. sign(x) = 1 - 2 ltz(x), with sign(0) = +1.

Bytes each party sends to each peer, per compared element (tensor sizes a
multiple of 64; otherwise each level rounds up to whole words): 8 (c) +
16 + 8 + 4 + 2 + 1 + 1/4 (the six tree levels: two bits per AND gate) +
1/8 (d) = 39.375 for ltz and sign; 16 more (the Beaver opening of s * y)
= 55.375 for relu, maximum and minimum; clip compares twice: 110.75. A
party sends (n - 1) times that.

Preprocessing per element (what each party expands from its seed): the
mask, 3 words + 1/64 (r, r's bits, the daBit both ways); 125 AND gates
(64 + 32 + 16 + 8 + 4 + 1), i.e. binary triples of 3 x 125/64 = 5.86 words;
with a product, a Beaver triple of 3 words. Party 0 receives as corrections
2 words (r's bits, the daBit's additive share) + 125/64 words, + 1 with a
product.

Range: maximum, minimum and clip compare differences, exact while
|x - y| < 2^63 as ring values, which holds for any two encodable values
(|x| < 2^62 each, i.e. |x| < 2^(62-F) in fixed point).

Sources:
- reduction of the sign to a comparison of the public c with the secret
  bits of the mask, as in Damgard, Fitzi, Kiltz, Nielsen and Toft,
  "Unconditionally Secure Constant-Rounds Multi-party Computation for
  Equality, Comparison, Bits and Exponentiation" (TCC 2006), and Nishide and
  Ohta, "Multiparty Computation for Interval, Equality, and Comparison
  Without Bit-Decomposition Protocol" (PKC 2007);
- the log-depth tree computing only the carry out of (generate, propagate)
  pairs: Catrina and de Hoogh, "Improved Primitives for Secure Multiparty
  Integer Computation" (SCN 2010);
- AND gates with binary Beaver triples: Beaver (CRYPTO 1991);
- the conversion with a daBit: Rotaru and Wood, "MArBled Circuits: Mixing
  Arithmetic and Boolean Circuits with Active Security" (INDOCRYPT 2019).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import numpy as np

from smpc.errors import ShapeMismatchError
from smpc.shares import SharedTensor, concatenate
from smpc.steps import NO_MASK, drive, lockstep, products

if TYPE_CHECKING:
    from smpc.runtime import Runtime

ROUNDS = 8
"""Rounds of every function here, for any tensor size."""

TREE_LEVELS = 6
"""Levels of the carry tree: 64 bit positions halve to one in six steps."""

BYTES_PER_ELEMENT = {
    "ltz": 39.375,
    "sign": 39.375,
    "relu": 55.375,
    "maximum": 55.375,
    "minimum": 55.375,
    "clip": 110.75,
}
"""Bytes a party sends to each peer per element of the input (sizes a multiple of 64)."""


def _check(x: object) -> SharedTensor:
    if not isinstance(x, SharedTensor):
        raise TypeError(f"expected a SharedTensor, got {type(x).__name__}")
    return x


def _sign_bit(
    rt: Runtime, x: SharedTensor, factor: SharedTensor | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1-3 for every element of x; 8 rounds.

    Returns the opened d = b XOR s (public 0/1 ring elements), this party's
    additive shares of the daBit s, and its shares of s * factor (empty
    without a factor), all flat. The Beaver opening for s * factor rides in
    the comparison's first round.
    """
    s, bit = sign_bit_steps(rt, x)
    if factor is None:
        return drive(rt, bit, "compare"), s, NO_MASK
    product = products(rt, [(s, factor.share.reshape(-1))], [0])
    d, (sy,) = drive(rt, lockstep(bit, product), "compare")
    return d, s, sy


def _negative_times(rt: Runtime, x: SharedTensor, factor: SharedTensor) -> SharedTensor:
    """Shares of [x < 0] * factor (factor of x's shape, any scale); 8 rounds."""
    d, _, sy = _sign_bit(rt, x, factor)
    product = rt.ring.dabit_product(d, factor.share.reshape(-1), sy)
    return rt.shared(product.reshape(factor.shape), factor.scale)


def ltz(rt: Runtime, x: SharedTensor) -> SharedTensor:
    """Shares of 1 where x < 0 (as a signed ring value), else 0; integers, scale 0; 8 rounds."""
    x = _check(x)
    d, s, _ = _sign_bit(rt, x, None)
    return rt.shared(rt.ring.xor_public_bit(d, s, rt.first).reshape(x.shape), 0)


def sign(rt: Runtime, x: SharedTensor) -> SharedTensor:
    """Shares of -1 where x < 0, else +1 (sign(0) = +1); integers, scale 0; 8 rounds."""
    return ltz(rt, x) * -2 + 1


def relu(rt: Runtime, x: SharedTensor) -> SharedTensor:
    """max(x, 0) elementwise, exactly, in x's scale; 8 rounds."""
    x = _check(x)
    return x - _negative_times(rt, x, x)


def _difference(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    if _check(x).shape != _check(y).shape:
        raise ShapeMismatchError(f"cannot compare shapes {x.shape} and {y.shape}")
    return x - y


def maximum(rt: Runtime, x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Elementwise maximum of two shared tensors of one shape and scale, exactly; 8 rounds."""
    delta = _difference(x, y)
    return x - _negative_times(rt, delta, delta)  # subtracts x - y where x < y


def minimum(rt: Runtime, x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Elementwise minimum of two shared tensors of one shape and scale, exactly; 8 rounds."""
    delta = _difference(x, y)
    return y + _negative_times(rt, delta, delta)


def clip(rt: Runtime, x: SharedTensor, lo: object, hi: object) -> SharedTensor:
    """x limited to the public bounds [lo, hi] (scalars or arrays fitting x), exactly; 8 rounds.

    The bounds are encoded in x's scale (reals with F fractional bits for
    fixed point). Both comparisons, x < lo and x > hi, run in one batch.
    """
    x = _check(x)
    if np.any(np.asarray(lo) > np.asarray(hi)):
        raise ValueError("clip needs lo <= hi everywhere")
    below = (x - lo).flatten()  # negative where x < lo
    above = (hi - x).flatten()  # negative where x > hi
    moves = _negative_times(rt, concatenate([below, above]), concatenate([-below, above]))
    size = x.size
    return x + moves[:size].reshape(x.shape) + moves[size:].reshape(x.shape)


def sign_bit_steps(
    rt: Runtime, x: SharedTensor
) -> tuple[np.ndarray, Generator[np.ndarray, list[np.ndarray], np.ndarray]]:
    """Steps 1-3 for every element of x as a generator, so callers can merge rounds.

    Consumes the comparison mask at once and returns this party's additive
    shares of the daBit s (flat) and a generator that yields each of its 8
    messages, receives every party's message of that round (in index order),
    and returns the opened d = b XOR s. The same protocol as :func:`ltz`;
    a caller runs it in lockstep with other steps, one ``exchange_all`` per
    round, and forms b * y = d y + (1 - 2 d) s y with ``ring.dabit_product``.
    """
    x = _check(x)
    ring = rt.ring
    size = x.size
    r, s_bits, r_bits, s = rt.prep.comparison_mask(x.shape).consume()
    r, r_bits, s = r.reshape(-1), r_bits.reshape(-1), s.reshape(-1)

    def steps() -> Generator[np.ndarray, list[np.ndarray], np.ndarray]:
        c = ring.sum_shares((yield ring.add(x.share.reshape(-1), r)))
        g, p = ring.comparison_leaves(r_bits, c, rt.first)
        for level in range(TREE_LEVELS):
            half = (g.size + 1) // 2
            gates = half if level == TREE_LEVELS - 1 else 2 * half
            a, b, cc = rt.prep.binary_triple((gates,)).consume()
            message, hi_g = ring.tree_masked(g, p, a, b)
            g, p = ring.tree_combine((yield message), a, b, cc, hi_g, rt.first)
        masked = ring.comparison_bit(g, r_bits, c, s_bits, rt.first)
        return ring.dabit_open((yield masked), size)

    return s, steps()
