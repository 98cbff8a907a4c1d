"""Approximations of nonlinear functions on secret-shared fixed-point tensors.

Implemented: :func:`sigmoid` and :func:`exp` (reciprocal and square roots are
in :mod:`smpc.inverse`). Each function is batched over the whole tensor,
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

EXP_RANGE = (-16.0, 12.0)
"""exp's input range; below it exp returns 0, from its top on exp(12)."""

EXP_ROUNDS = 16
"""Rounds of :func:`exp` for any tensor size (measured by dry_run in the tests)."""

EXP_MAX_RELATIVE_ERROR = 1e-6
"""Documented bound on |exp(x) - e^x| / e^x inside the range, beside two units of 2^-F."""

_EXP_SQUARINGS = 4
_EXP_DEGREE = 8
_INTERNAL_BITS = 28
"""Fractional bits of intermediate values in [-4, 4]: their products stay below 2^62."""

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


def _exp_coefficients() -> np.ndarray:
    """e^u on [-1, 0.75] by Chebyshev interpolation: relative error 7.3e-9."""
    lo, hi = (bound / 2**_EXP_SQUARINGS for bound in EXP_RANGE)
    chebyshev = np.polynomial.Chebyshev.interpolate(np.exp, _EXP_DEGREE, domain=[lo, hi])
    return chebyshev.convert(kind=np.polynomial.Polynomial).coef


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


def _selected(
    rt: Runtime,
    flat: SharedTensor,
    breakpoints: tuple[float, ...],
    pieces: Steps[list[np.ndarray]],
    purpose: str,
) -> np.ndarray:
    """The piece of each element's interval, selected exactly; raw flat shares.

    ``pieces`` returns K + 1 raw flat arrays of one scale: p_0 for
    x < b_1, p_k on [b_k, b_k+1) and p_K from b_K on. The result is
    p_K - sum_k [x < b_k] (p_k - p_k-1), which telescopes to the piece of
    x's interval whatever the other pieces hold (they may have wrapped). The
    K comparisons run in one batch alongside ``pieces``; the products of
    their daBits with the differences take one round after both.
    """
    ring = rt.ring
    size = flat.size
    shifted = [flat - b for b in breakpoints]
    s, compare_steps = compare.sign_bit_steps(rt, concatenate(shifted))

    def factor_steps() -> Steps[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        values = yield from pieces
        factors = np.concatenate(
            [ring.sub(values[k], values[k - 1]) for k in range(1, len(values))]
        )
        a, b, c = rt.prep.triple((factors.size,)).consume()
        opened = yield ring.beaver_masked(s, a, factors, b)
        return values[-1], factors, ring.beaver_product(opened, a, b, c, NO_MASK, rt.first)

    d, (last, factors, sy) = drive(rt, lockstep(compare_steps, factor_steps()), purpose)
    moves = ring.dabit_product(d, factors, sy)
    total = last
    for k in range(len(breakpoints)):
        total = ring.sub(total, moves[k * size : (k + 1) * size])
    return total


def public_constant(rt: Runtime, value: float, scale: int, size: int) -> np.ndarray:
    """Raw flat shares of a public constant with ``scale`` fractional bits: party 0 holds it."""
    if rt.first:
        return _ring_int(value * 2.0**scale, size)
    return np.zeros(size, dtype=np.uint64)


def check_fixed_point(rt: Runtime, x: object, name: str) -> SharedTensor:
    """``x`` if it is a shared tensor of scale F; TypeError or ValueError naming ``name``."""
    if not isinstance(x, SharedTensor):
        raise TypeError(f"expected a SharedTensor, got {type(x).__name__}")
    f = rt.fxp.frac_bits
    if x.scale != f:
        raise ValueError(f"{name} takes a fixed-point tensor of scale {f}; truncate it first")
    return x


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
    x = check_fixed_point(rt, x, "sigmoid")
    f = rt.fxp.frac_bits
    flat = x.flatten()

    def pieces() -> Steps[list[np.ndarray]]:
        left, middle, right = yield from _sigmoid_pieces(rt, flat.share)
        zero = np.zeros(flat.size, dtype=np.uint64)
        return [zero, left, middle, right, public_constant(rt, 1.0, f, flat.size)]

    raw = _selected(rt, flat, _BREAKPOINTS, pieces(), "sigmoid")
    return rt.shared(raw.reshape(x.shape), f)


def _exp_power_steps(rt: Runtime, x: np.ndarray) -> Steps[np.ndarray]:
    """e^x for x in the range, by e^(x/16) squared four times; raw flat, scale F; 15 rounds.

    u = x / 16 is exact at scale G = 28 (a local shift). Its powers take 6
    rounds, the degree-8 polynomial one truncation, and each squaring 2.
    Each square gets the most fractional bits that keep the next product
    below 2^62, given the largest value it can hold, e^(12 / 2^k).
    """
    ring = rt.ring
    f, g = rt.fxp.frac_bits, _INTERNAL_BITS
    u = ring.mul(x, _ring_int(2.0 ** (g - f - _EXP_SQUARINGS), 1))
    (u2,) = yield from products(rt, [(u, u)], [g])
    u3, u4 = yield from products(rt, [(u2, u), (u2, u2)], [g, g])
    u5, u6, u7, u8 = yield from products(rt, [(u4, u), (u4, u2), (u4, u3), (u4, u4)], [g] * 4)
    powers = [None, u, u2, u3, u4, u5, u6, u7, u8]
    coefficients = _exp_coefficients()
    acc = public_constant(rt, coefficients[0], 2 * g, x.size)
    for k in range(1, len(coefficients)):
        acc = ring.add(acc, ring.mul(powers[k], _ring_int(coefficients[k] * 2.0**g, 1)))
    (y,) = yield from truncations(rt, [acc], [g])
    scale = g
    for k in range(1, _EXP_SQUARINGS + 1):
        if k == _EXP_SQUARINGS:
            following = f
        else:  # the square at step k is at most e^(top / 2^(4 - k)); its square must fit
            top_bits = np.log2(np.e) * EXP_RANGE[1] / 2 ** (_EXP_SQUARINGS - k)
            following = min(g, int((61 - 2 * top_bits) // 2))
        (y,) = yield from products(rt, [(y, y)], [2 * scale - following])
        scale = following
    return y


def exp(rt: Runtime, x: SharedTensor) -> SharedTensor:
    """e^x elementwise; 16 rounds; scale F.

    Range [-16, 12] (``EXP_RANGE``): inside, the measured error is below
    ``EXP_MAX_RELATIVE_ERROR`` relative plus two units of 2^-F absolute
    (measured: 8e-8 at F = 16, 2.2e-7 at F = 20, beside 1.6 units). Outside, exactly 0 below
    -16 (e^-16 < 2^-16) and exp(12) = 162754.79 from 12 on, for any
    encodable x. The top of the range keeps every square's product below
    2^62 up to F = 20.

    Method, and why: e^x = (e^(x/16))^16, with e^(x/16) a degree-8
    polynomial on [-1, 0.75] (Chebyshev interpolation, relative error
    7.3e-9, which the four squarings multiply by 16) evaluated at 28
    fractional bits, so the squares keep their precision (15 rounds). The
    two range checks are one batched comparison that runs alongside, and
    the selection of 0, the squares or exp(12) one more round
    (:func:`_selected`). CrypTen's limit approximation (1 + x/2^8)^(2^8)
    takes the same number of products in sequence but errs by far more
    (its first-order base loses e^(-x^2/512)); a comparison-based range
    reduction to 2^frac would need a comparison per integer of the range.
    """
    x = check_fixed_point(rt, x, "exp")
    f = rt.fxp.frac_bits
    flat = x.flatten()

    def pieces() -> Steps[list[np.ndarray]]:
        inside = yield from _exp_power_steps(rt, flat.share)
        zero = np.zeros(flat.size, dtype=np.uint64)
        return [zero, inside, public_constant(rt, float(np.exp(EXP_RANGE[1])), f, flat.size)]

    raw = _selected(rt, flat, EXP_RANGE, pieces(), "exp")
    return rt.shared(raw.reshape(x.shape), f)
