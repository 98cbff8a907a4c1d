"""Reciprocal, square root and inverse square root of shared fixed-point values.

Each function is batched over the whole tensor, takes a shared tensor of
scale F and returns one of scale F, and states its range, its error as
measured by ``tests/smpc/test_inverse.py`` on dense grids, and its round
count (asserted there with ``dry_run``). F may be at most 20. Leaks nothing
but the shapes and the public octave range.

Method: octave normalisation, then Newton's iteration, then the octave's
factor back.

1. One batched comparison of x against every power 2^i of a public range
   lo <= i <= hi (:mod:`smpc.compare`, 8 rounds) gives the bits
   [x < 2^i]; the product of each comparison's daBit with x rides in the
   comparison's first round, so the products [x < 2^i] x come with them.
   Any quantity affine in x on each octave [2^j, 2^(j+1)) is then a local
   linear combination of both that telescopes over the thresholds, exactly
   in the ring. So are x_n = x / 2^(j+1) in [0.5, 1) and Newton's starting
   value, truncated together to G = 28 fractional bits (round 9).
   Below 2^lo and from 2^hi on, x_n is set to 0.75, and the octave factor
   of step 3 makes the result saturate.
2. Three Newton steps on x_n at G bits, each squaring the relative error:
   y <- y (2 - x_n y) for 1/x_n from 4 sqrt(3) - 4 - 2 x_n (relative
   error 0.072, then 5.2e-3, 2.7e-5, 7e-10), and
   y <- 1.5 y - 0.5 x_n y^3 for 1/sqrt(x_n) from 1.74926 - 0.75 x_n
   (error 0.028, then 1.2e-3, 2.2e-6, 7e-12). Each start is the line of
   least maximum relative error among those whose slope has at most 3
   fractional bits, so that its slope times 2^-(j+1) is exact at hi + 3
   bits. Each step is two products (4 rounds).
3. The octave factor, a public constant per octave selected like x_n:
   2^-(j+1) for the reciprocal (folded into its last Newton step),
   2^-(j+1)/2 for 1/sqrt, and 2^(j+1)/2 times x_n for sqrt.

Why: Newton needs a start within a constant factor, which a polynomial or
exp-based guess (CrypTen's, for inputs within a range chosen in advance)
gives only with many more steps; normalising puts every input in [0.5, 1),
where three steps reach the precision of G bits. The price is bandwidth:
one comparison per octave of the range (about 55 bytes to each peer per
octave and element), which a caller that knows a narrower range saves with
``octaves=(lo, hi)``.

Sources: Newton-Raphson division from a linear start on [0.5, 1) (as in
hardware dividers); normalisation by secret octave as in Catrina and
Saxena, "Secure Computation With Fixed-Point Numbers" (FC 2010), here with
exact comparisons against every power of two instead of bit decomposition.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from smpc import compare
from smpc.approx import check_fixed_point, public_constant
from smpc.shares import SharedTensor, concatenate
from smpc.steps import Steps, drive, lockstep, products, truncations

if TYPE_CHECKING:
    from smpc.runtime import Runtime

RECIPROCAL_ROUNDS = 21
"""Rounds of :func:`reciprocal`: 8 comparison, 1 truncation, 3 Newton steps of 4."""

INV_SQRT_ROUNDS = 23
"""Rounds of :func:`inv_sqrt` and :func:`sqrt`: as the reciprocal, plus the factor (2)."""

SQRT_ROUNDS = 23

MAX_RELATIVE_ERROR = 2e-7
"""Documented bound on the relative error of all three inside their range,
beside two units of 2^-F absolute."""

MAX_FRAC_BITS = 20

_G = 28
"""Fractional bits of x_n and the Newton iterates (all below 2): products stay below 2^58."""

_SATURATED = 0.75
"""x_n outside the range: a point of [0.5, 1) where Newton converges as inside."""

_NEWTON_STEPS = 3
_START_BITS = 3
"""Fractional bits of the starting lines' slopes."""
_RECIPROCAL_START = (4 * math.sqrt(3) - 4, -2.0)
_INV_SQRT_START = (1.7492604, -0.75)
"""Fitted offline: least maximum relative error to 1/sqrt on [0.5, 1] with slope -3/4."""


def _check(rt: Runtime, x: object, name: str) -> SharedTensor:
    x = check_fixed_point(rt, x, name)
    f = rt.fxp.frac_bits
    if f > MAX_FRAC_BITS:
        raise ValueError(f"{name} supports at most {MAX_FRAC_BITS} fractional bits, not {f}")
    return x


def _octaves(
    rt: Runtime, name: str, given: tuple[int, int] | None, default: tuple[int, int], top: int
) -> tuple[int, int]:
    lo, hi = default if given is None else given
    f = rt.fxp.frac_bits
    if not -f <= lo < hi <= top:
        raise ValueError(
            f"{name}: octaves must satisfy {-f} <= lo < hi <= {top} at F = {f}, got ({lo}, {hi})"
        )
    return lo, hi


def _ring_ints(values: list[float], bits: int) -> np.ndarray:
    """round(v * 2^bits) for each v, as ring elements (two's complement)."""
    return np.array([round(v * 2.0**bits) % (1 << 64) for v in values], dtype=np.uint64)


def _scale_for(largest: float, other_bits: float) -> int:
    """Most fractional bits for a value up to ``largest`` whose products stay below 2^61."""
    return int(61 - other_bits - math.log2(largest))


class _Octaves:
    """The comparison bits of x against 2^lo .. 2^hi, and affine functions of x's octave."""

    def __init__(self, rt: Runtime, x: np.ndarray, lo: int, hi: int) -> None:
        self.rt, self.x, self.lo, self.hi = rt, x, lo, hi
        self.regions = range(lo - 1, hi + 1)  # lo - 1: below 2^lo; hi: from 2^hi on

    def steps(self, flat: SharedTensor) -> Steps[None]:
        """The batched comparison, with the daBit products [x < 2^i] x; 8 rounds."""
        ring = self.rt.ring
        count = self.hi - self.lo + 1
        shifted = concatenate([flat - 2.0**i for i in range(self.lo, self.hi + 1)])
        s, compare_steps = compare.sign_bit_steps(self.rt, shifted)
        tiled = np.tile(self.x, count)
        d, (sx,) = yield from lockstep(compare_steps, products(self.rt, [(s, tiled)], [0]))
        self.below = ring.xor_public_bit(d, s, self.rt.first).reshape(count, -1)
        self.below_x = ring.dabit_product(d, tiled, sx).reshape(count, -1)

    def affine(
        self, slope: Callable[[int], float], const: Callable[[int], float], bits: int
    ) -> np.ndarray:
        """Raw shares of slope(j) x + const(j) for x's octave j, at F + bits fractional bits.

        Octave lo - 1 stands for every x below 2^lo (zero and negatives too),
        octave hi for every x from 2^hi on. The sum telescopes: for x in
        octave j, exactly the thresholds above j have [x < 2^i] = 1.
        """
        ring, f = self.rt.ring, self.rt.fxp.frac_bits
        slopes = [slope(j) for j in self.regions]
        consts = [const(j) for j in self.regions]
        steps = range(len(self.regions) - 1)
        d_slope = _ring_ints([slopes[k] - slopes[k + 1] for k in steps], bits)
        d_const = _ring_ints([consts[k] - consts[k + 1] for k in steps], f + bits)
        acc = ring.matmul(d_slope[None, :], self.below_x).reshape(-1)
        acc = ring.add(acc, ring.matmul(d_const[None, :], self.below).reshape(-1))
        if slopes[-1]:
            acc = ring.add(acc, ring.mul(self.x, _ring_ints([slopes[-1]], bits)))
        return ring.add(acc, public_constant(self.rt, consts[-1], f + bits, self.x.size))

    def inside(self, j: int) -> bool:
        return self.lo <= j < self.hi

    def normalised(self, start: tuple[float, float]) -> Steps[tuple[np.ndarray, np.ndarray]]:
        """x_n = x / 2^(j+1), or 0.75 outside the range, and start[0] + start[1] x_n; 1 round."""
        f = self.rt.fxp.frac_bits
        # start[1] 2^-(j+1) exactly; at least one bit above G, so the round count is fixed
        bits = max(self.hi + 1 + _START_BITS, _G - f + 1)
        sigma = [2.0 ** -(j + 1) if self.inside(j) else 0.0 for j in self.regions]
        out = {j: 0.0 if self.inside(j) else _SATURATED for j in self.regions}
        c0, c1 = start
        x_n = self.affine(lambda j: sigma[j - self.lo + 1], out.__getitem__, bits)
        y0 = self.affine(
            lambda j: c1 * sigma[j - self.lo + 1],
            lambda j: c0 + c1 * out[j],
            bits,
        )
        x_n, y0 = yield from truncations(self.rt, [x_n, y0], [f + bits - _G] * 2)
        return x_n, y0


def _newton_reciprocal(rt: Runtime, x_n: np.ndarray, y: np.ndarray) -> Steps[np.ndarray]:
    """One step y (2 - x_n y) at G bits; 4 rounds."""
    two = public_constant(rt, 2.0, _G, x_n.size)
    (a,) = yield from products(rt, [(x_n, y)], [_G])
    (y,) = yield from products(rt, [(y, rt.ring.sub(two, a))], [_G])
    return y


def _newton_inv_sqrt(rt: Runtime, x_n: np.ndarray, y: np.ndarray) -> Steps[np.ndarray]:
    """One step 1.5 y - 0.5 x_n y^3 at G bits; 4 rounds (1.5 y is truncated alongside)."""
    ring = rt.ring
    three_y = ring.mul(y, np.full(1, 3, dtype=np.uint64))
    a, b, half_three_y = yield from products(rt, [(x_n, y), (y, y)], [_G, _G], [(three_y, 1)])
    (c,) = yield from products(rt, [(a, b)], [_G + 1])
    return ring.sub(half_three_y, c)


def reciprocal(
    rt: Runtime, x: SharedTensor, *, octaves: tuple[int, int] | None = None
) -> SharedTensor:
    """1 / x elementwise for positive x; 21 rounds; scale F.

    Range: 2^lo <= x < 2^hi with ``octaves=(lo, hi)``, by default
    (-8, F), i.e. 1/256 <= x < 2^F; lo >= -F, lo >= -8 for room, hi <= F.
    Inside, the measured error is below ``MAX_RELATIVE_ERROR`` relative
    plus two units of 2^-F. Outside: 2^-lo (256 by default) for every
    x < 2^lo, including zero and negative x; 0 for x >= 2^hi (at the
    default hi, 1/x <= 2^-F there, within one unit).

    Bytes to each peer per element: (hi - lo + 1) x 55.375 for the
    comparison with its daBit product, + 16 x 6 for the truncation and the
    six products of the Newton steps, + 8 for the first.
    """
    x = _check(rt, x, "reciprocal")
    f = rt.fxp.frac_bits
    lo, hi = _octaves(rt, "reciprocal", octaves, (-8, f), f)
    if lo < -8:
        raise ValueError(f"reciprocal: lo must be at least -8 (outputs up to 256), got {lo}")
    flat = x.flatten()
    octave = _Octaves(rt, flat.share, lo, hi)
    top = _SATURATED * 2.0**-lo  # x_n = 0.75 below the range: 1/x_n = 4/3, times this is 2^-lo
    weight_bits = min(f + 4, _scale_for(top, _G + 1))
    out_bits = weight_bits

    def steps() -> Steps[np.ndarray]:
        yield from octave.steps(flat)
        x_n, y = yield from octave.normalised(_RECIPROCAL_START)
        omega = octave.affine(
            lambda j: 0.0,
            lambda j: 2.0 ** -(j + 1) if octave.inside(j) else (top if j < lo else 0.0),
            weight_bits - f,
        )
        for _ in range(_NEWTON_STEPS - 1):
            y = yield from _newton_reciprocal(rt, x_n, y)
        # The last step with the factor: omega y (2 - x_n y), omega y formed alongside x_n y.
        w, a = yield from products(rt, [(omega, y), (x_n, y)], [weight_bits + _G - out_bits, _G])
        two = public_constant(rt, 2.0, _G, flat.size)
        (r,) = yield from products(rt, [(w, rt.ring.sub(two, a))], [out_bits + _G - f])
        return r

    raw = drive(rt, steps(), "reciprocal")
    return rt.shared(raw.reshape(x.shape), f)


def _inv_sqrt_steps(
    rt: Runtime, flat: SharedTensor, octave: _Octaves
) -> Steps[tuple[np.ndarray, np.ndarray]]:
    """x_n and 1/sqrt(x_n) after three Newton steps, both at G bits; 21 rounds."""
    yield from octave.steps(flat)
    x_n, y = yield from octave.normalised(_INV_SQRT_START)
    for _ in range(_NEWTON_STEPS):
        y = yield from _newton_inv_sqrt(rt, x_n, y)
    return x_n, y


def inv_sqrt(
    rt: Runtime, x: SharedTensor, *, octaves: tuple[int, int] | None = None
) -> SharedTensor:
    """1 / sqrt(x) elementwise for positive x; 23 rounds; scale F.

    Range: 2^lo <= x < 2^hi with ``octaves=(lo, hi)``, by default
    (-8, 2F), i.e. 1/256 <= x < 2^(2F); -F <= lo, hi <= 57 - F. Inside,
    the measured error is below ``MAX_RELATIVE_ERROR`` relative plus two
    units of 2^-F. Outside: 2^(-lo/2) (16 by default) for every x < 2^lo,
    including zero and negative x; 0 from 2^hi on (within one unit at the
    default hi). Bytes as :func:`reciprocal`'s, with 9 products instead of 6.
    """
    x = _check(rt, x, "inv_sqrt")
    f = rt.fxp.frac_bits
    lo, hi = _octaves(rt, "inv_sqrt", octaves, (-8, min(2 * f, 57 - f)), 57 - f)
    flat = x.flatten()
    octave = _Octaves(rt, flat.share, lo, hi)
    top = 2.0 ** (-lo / 2) * math.sqrt(_SATURATED)
    weight_bits = min(f + 8, _scale_for(top, _G + 1))

    def steps() -> Steps[np.ndarray]:
        _, y = yield from _inv_sqrt_steps(rt, flat, octave)
        omega = octave.affine(
            lambda j: 0.0,
            lambda j: 2.0 ** (-(j + 1) / 2) if octave.inside(j) else (top if j < lo else 0.0),
            weight_bits - f,
        )
        (r,) = yield from products(rt, [(omega, y)], [weight_bits + _G - f])
        return r

    raw = drive(rt, steps(), "inv_sqrt")
    return rt.shared(raw.reshape(x.shape), f)


def sqrt(rt: Runtime, x: SharedTensor, *, octaves: tuple[int, int] | None = None) -> SharedTensor:
    """sqrt(x) elementwise; 23 rounds; scale F.

    Range: 2^lo <= x < 2^hi with ``octaves=(lo, hi)``, by default
    (-F, 62 - 2F), i.e. every positive x below 2^30 at F = 16 (2^22 at
    F = 20); hi <= 62 - 2F keeps the products below 2^62. Inside, the
    measured error is below ``MAX_RELATIVE_ERROR`` relative plus two units
    of 2^-F. Outside: 0 for x <= 0 (and below 2^lo), 2^(hi/2) from 2^hi
    on. sqrt(x) = 2^((j+1)/2) x_n / sqrt(x_n): the factor times x_n is
    formed while the first Newton step runs, so it costs no extra round;
    the final product does.
    """
    x = _check(rt, x, "sqrt")
    f = rt.fxp.frac_bits
    lo, hi = _octaves(rt, "sqrt", octaves, (-f, 62 - 2 * f), 62 - 2 * f)
    flat = x.flatten()
    octave = _Octaves(rt, flat.share, lo, hi)
    # From 2^hi on x_n = 0.75: the factor times 0.75 / sqrt(0.75) must give 2^(hi/2).
    top = 2.0 ** (hi / 2) / math.sqrt(_SATURATED)
    weight_bits = _scale_for(top, _G)
    v_bits = min(weight_bits, _scale_for(top, _G + 1))

    def steps() -> Steps[np.ndarray]:
        yield from octave.steps(flat)
        x_n, y = yield from octave.normalised(_INV_SQRT_START)
        factor = octave.affine(
            lambda j: 0.0,
            lambda j: 2.0 ** ((j + 1) / 2) if octave.inside(j) else (top if j >= hi else 0.0),
            weight_bits - f,
        )
        scaled = products(rt, [(factor, x_n)], [weight_bits + _G - v_bits])
        y, (v,) = yield from lockstep(_newton_inv_sqrt(rt, x_n, y), scaled)
        for _ in range(_NEWTON_STEPS - 1):
            y = yield from _newton_inv_sqrt(rt, x_n, y)
        (r,) = yield from products(rt, [(v, y)], [v_bits + _G - f])
        return r

    raw = drive(rt, steps(), "sqrt")
    return rt.shared(raw.reshape(x.shape), f)
