"""Approximations of nonlinear functions on secret-shared fixed-point tensors.

Implemented: :func:`sigmoid`. Each function is batched over the whole tensor,
takes a shared tensor of scale F and returns one of scale F, and states its
range, its error as measured by ``tests/smpc/test_approx.py`` on a dense
grid, and its round count (asserted there with ``dry_run``).

Method for sigmoid, and why. A single polynomial cannot saturate, so the
input is compared against public breakpoints -8, -2, 2 and 8, all in one
batched exact comparison (:mod:`smpc.compare`, 8 rounds), selecting among
five pieces: 0 below -8, degree-5 polynomials on [-8, -2), [-2, 2) and
[2, 8), and 1 from 8 on (1 - sigmoid(8) = 3.4e-4). The polynomials share one
set of powers of u = x / 4, computed *while the comparison runs*: every step
is a generator that yields its message for a round, and ``smpc.steps.lockstep``
merges the messages of independent steps into one ``exchange_all`` per round
(as compare.py already merges a Beaver opening into its round 2). The
powers take 3 products (rounds 1-6), the pieces are truncated in round 7 and
the product of the comparison's daBit s with them is opened in round 8, the
comparison's last round; so sigmoid takes the same 8 rounds as one
comparison. A uniform breakpoint grid with quadratic pieces would need 16
comparisons per element for 1e-3; exp followed by a Newton reciprocal
(CrypTen) needs 58 rounds. Cost per element: 4 comparisons with a product
(4 x 55.375 bytes to each peer) and 4 products of powers.

The selection telescopes exactly in the ring: with f_k the difference of
the pieces on either side of breakpoint b_k, the result is
1 - sum_k [x < b_k] f_k, so whatever a piece evaluates to far outside its
interval (powers of a huge x wrap around the ring) cancels exactly.

Sources: the batched comparison and its daBit product, :mod:`smpc.compare`;
Beaver products (CRYPTO 1991); truncation by any number of bits with the
MSB-aware ring truncation of Escudero et al. (CRYPTO 2020),
:mod:`smpc.truncation`. Piecewise polynomials selected by secure comparisons
are the approach of SecureML (Mohassel and Zhang, S&P 2017), here with more
pieces of higher degree. The coefficients are weighted least-squares
(near-minimax) fits to sigmoid on each interval, computed offline once.

Leaks nothing but the shapes, like every protocol it is built from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from smpc import compare
from smpc.shares import SharedTensor, concatenate
from smpc.steps import NO_MASK, Steps, drive, lockstep, products, truncations

if TYPE_CHECKING:
    from smpc.runtime import Runtime


SIGMOID_ROUNDS = 8
"""Rounds of :func:`sigmoid` for any tensor size (measured by dry_run in the tests)."""

SIGMOID_MAX_ERROR = {16: 3.4e-4, 20: 3.4e-4}
"""Documented maximum absolute error of :func:`sigmoid` by F, over all inputs."""

_EXTRA_BITS = 8
"""Extra fractional bits of the integer-encoded polynomial coefficients."""

_BREAKPOINTS = (-8.0, -2.0, 2.0, 8.0)
# Coefficients of u^0 .. u^5, u = x / 4; fitted offline (weighted least squares,
# 20001 points): the middle piece is 0.5 + an odd polynomial on [-2, 2] (error
# 1.9e-4), the right piece a full one on [2, 8] (error 6.7e-5); the left piece
# is its mirror, 1 - right(-u).
_MIDDLE = (0.5, 0.997160852, 0.0, -1.231897963, 0.0, 1.164691703)
_RIGHT = (0.424115543, 1.611532004, -1.878930566, 1.127396758, -0.344658499, 0.04261363)
_LEFT = tuple((1.0 - c) if k == 0 else c * (-1) ** (k + 1) for k, c in enumerate(_RIGHT))


def _ring_int(value: float, size: int) -> np.ndarray:
    """round(value) as a ring element (two's complement), repeated ``size`` times."""
    return np.full(size, round(value) % (1 << 64), dtype=np.uint64)


def _sigmoid_pieces(rt: Runtime, x: np.ndarray) -> Steps[list[np.ndarray]]:
    """The three polynomial pieces at every x (raw flat shares, scale F); 5 rounds."""
    ring = rt.ring
    f = rt.fxp.frac_bits
    # u = x / 4 at scale F: x * x >> (F + 4) = u^2, u^2 * x >> (F + 2) = u^3, ...
    (u2,) = yield from products(rt, [(x, x)], [f + 4])
    u3, u4 = yield from products(rt, [(u2, x), (u2, u2)], [f + 2, f])
    (u5,) = yield from products(rt, [(u4, x)], [f + 2])
    powers = [None, x, u2, u3, u4, u5]
    raw = []
    for coefficients in (_LEFT, _MIDDLE, _RIGHT):
        # Integer coefficients with F + E fractional bits: the sum carries 2F + E.
        acc = np.zeros(x.size, dtype=np.uint64)
        for k in range(1, len(coefficients)):
            if coefficients[k] != 0.0:
                scale = 1 << (f + _EXTRA_BITS - (2 if k == 1 else 0))  # x = 4u
                acc = ring.add(acc, ring.mul(powers[k], _ring_int(coefficients[k] * scale, x.size)))
        if rt.first:
            acc = ring.add(acc, _ring_int(coefficients[0] * (1 << (2 * f + _EXTRA_BITS)), x.size))
        raw.append(acc)
    return (yield from truncations(rt, raw, [f + _EXTRA_BITS] * 3))


def sigmoid(rt: Runtime, x: SharedTensor) -> SharedTensor:
    """1 / (1 + exp(-x)) elementwise; 8 rounds; scale F.

    Range: every fixed-point value. Measured maximum absolute error over a
    dense grid of [-12, 12] plus the extremes of the fixed-point range:
    3.354e-4 at F = 16 and at F = 20 (``SIGMOID_MAX_ERROR``), reached at the
    saturation step 1 - sigmoid(8); the pieces and fixed-point errors stay
    below that. The result saturates exactly: 0 for x < -8 and 1 for
    x >= 8, for any encodable x (compared exactly, no overflow).

    1. Compare x against the four breakpoints in one batch (rounds 1-8).
    2. Alongside, powers u^2 .. u^5 of u = x / 4 (rounds 1-6), the three
       pieces as integer-coefficient sums truncated by F + 8 bits (round 7),
       and the Beaver opening of s * f_k for the comparison daBit s (round 8).
    3. Locally, 1 - sum_k [x < b_k] f_k.
    """
    if not isinstance(x, SharedTensor):
        raise TypeError(f"expected a SharedTensor, got {type(x).__name__}")
    f = rt.fxp.frac_bits
    if x.scale != f:
        raise ValueError(f"sigmoid takes a fixed-point tensor of scale {f}; truncate it first")
    ring = rt.ring
    size = x.size
    flat = x.flatten()
    shifted = [flat - b for b in _BREAKPOINTS]
    s, compare_steps = compare.sign_bit_steps(rt, concatenate(shifted))

    def factor_steps() -> Steps[tuple[np.ndarray, np.ndarray]]:
        left, middle, right = yield from _sigmoid_pieces(rt, flat.share)
        one = np.full(size, 1 << f, dtype=np.uint64) if rt.first else np.zeros(size, np.uint64)
        factors = np.concatenate(
            [left, ring.sub(middle, left), ring.sub(right, middle), ring.sub(one, right)]
        )
        a, b, c = rt.prep.triple((factors.size,)).consume()
        opened = yield ring.beaver_masked(s, a, factors, b)
        return factors, ring.beaver_product(opened, a, b, c, NO_MASK, rt.first)

    d, (factors, sy) = drive(rt, lockstep(compare_steps, factor_steps()), "sigmoid")
    moves = ring.dabit_product(d, factors, sy)
    total = moves[:size]
    for k in range(1, len(_BREAKPOINTS)):
        total = ring.add(total, moves[k * size : (k + 1) * size])
    result = rt.shared(ring.neg(total).reshape(x.shape), f)
    return result + 1.0
