"""Matrix products at chosen scales and the Newton-Schulz inverse of a shared SPD matrix.

Everything here works on raw flat or 2-D shares whose number of fractional
bits the caller tracks (as ``smpc.steps`` does), so a caller can keep a
matrix at more than F bits where precision matters. Each function is a step
(``smpc.steps``): it yields its messages, so independent work can run in the
same rounds with ``lockstep``.

Newton-Schulz (Schulz, "Iterative Berechnung der reziproken Matrix", ZAMM
13, 1933; Pan and Schreiber, "An improved Newton iteration for the
generalized inverse of a matrix", SIAM J. Sci. Stat. Comput. 12(5), 1991):
for a symmetric positive definite A whose eigenvalues lie in (0, 1],

    X_0 = I,  X_{k+1} = X_k (2I - A X_k),  I - A X_k = (I - A)^(2^k),

so each step squares the residual and no division is needed; the caller
scales A into (0, 1] by a public bound on its trace. After K steps the
residual of an eigenvalue lambda is (1 - lambda)^(2^K) <= exp(-lambda 2^K).
X_1 = 2I - A is local, so K steps cost K - 1 pairs of products (4 rounds
each). Range: at ``bits`` fractional bits the products need
|X| 2^(2 bits) < 2^62, i.e. every eigenvalue of A at least 2^(2 bits - 62)
(2^-18 at 22 bits); :data:`INVERSE_BOUND_BITS` is the documented limit.

:func:`refine` is one more step in residual form, X + X (I - A X), with the
residual kept at more bits than X: it removes most of the rounding that
truncating every product at ``bits`` leaves in X (about |X|^2 2^-bits).

Leaks nothing but the shapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from smpc.approx import public_constant
from smpc.steps import Steps, truncations

if TYPE_CHECKING:
    from smpc.runtime import Runtime

MATMUL_ROUNDS = 1
"""Rounds of :func:`matmul_steps` (no truncation)."""

NEWTON_SCHULZ_STEP_ROUNDS = 4
"""Rounds of each Newton-Schulz step after the first: two products, each truncated."""

INVERSE_BOUND_BITS = 15
"""A's smallest eigenvalue must be at least 2^-15 (so |A^-1| <= 2^15), for the ring's range."""


def matmul_steps(rt: Runtime, x: np.ndarray, y: np.ndarray) -> Steps[np.ndarray]:
    """Raw shares of x @ y for raw 2-D shares, untruncated (scales add); one round.

    Beaver's method with a matrix triple: open X - A and Y - B, then
    Z = C + D (B [+ E at party 0]) + A E.
    """
    ring = rt.ring
    (m, k), n = x.shape, y.shape[1]
    if y.shape[0] != k:
        raise ValueError(f"cannot multiply matrices of shapes {x.shape} and {y.shape}")
    a, b, c = rt.prep.matrix_triple(m, k, n).consume()
    message = np.concatenate([ring.sub(x, a).reshape(-1), ring.sub(y, b).reshape(-1)])
    opened = ring.sum_shares((yield message))
    d = opened[: m * k].reshape(m, k)
    e = opened[m * k :].reshape(k, n)
    right = ring.add(b, e) if rt.first else b
    return ring.add(c, ring.add(ring.matmul(d, right), ring.matmul(a, e)))


def scaled_identity(rt: Runtime, value: float, n: int, bits: int) -> np.ndarray:
    """Raw shares of value * I (n x n) at ``bits`` fractional bits: party 0 holds it."""
    diagonal = public_constant(rt, value, bits, n)
    out = np.zeros((n, n), dtype=np.uint64)
    out[np.arange(n), np.arange(n)] = diagonal
    return out


def newton_schulz(rt: Runtime, a: np.ndarray, steps: int, bits: int) -> Steps[np.ndarray]:
    """Raw shares of X_steps ~ A^-1 for a shared SPD n x n matrix A, both at ``bits`` bits.

    A's eigenvalues must lie in (0, 1] (scale it by a public bound on its
    trace) and be at least 2^-INVERSE_BOUND_BITS. 4 (steps - 1) rounds.
    """
    if steps < 1:
        raise ValueError("Newton-Schulz needs at least one step")
    n = a.shape[0]
    two = scaled_identity(rt, 2.0, n, bits)
    x = rt.ring.sub(two, a)  # X_1 = X_0 (2I - A X_0) with X_0 = I
    for _ in range(steps - 1):
        t = yield from matmul_steps(rt, a, x)
        (t,) = yield from truncations(rt, [t.reshape(-1)], [bits])
        z = yield from matmul_steps(rt, x, rt.ring.sub(two, t.reshape(n, n)))
        (x,) = yield from truncations(rt, [z.reshape(-1)], [bits])
        x = x.reshape(n, n)
    return x


def residual(
    rt: Runtime, a: np.ndarray, x: np.ndarray, a_bits: int, x_bits: int
) -> Steps[np.ndarray]:
    """Raw shares of I - A X at a_bits + x_bits fractional bits (untruncated); one round.

    A may carry more bits than the X that Newton-Schulz made from a coarser
    copy of it: the residual then measures X against the precise A.
    """
    t = yield from matmul_steps(rt, a, x)
    return rt.ring.sub(scaled_identity(rt, 1.0, a.shape[0], a_bits + x_bits), t)


def refine(
    rt: Runtime, x: np.ndarray, r: np.ndarray, bits: int, r_bits: int, residual_bits: int
) -> Steps[np.ndarray]:
    """X + X R at ``bits`` bits from R = I - A X at ``r_bits`` bits; 3 rounds.

    R is truncated to ``residual_bits`` (more than ``bits``), so the
    correction keeps the residual's precision. Needs |X R| 2^(bits +
    residual_bits) < 2^62: use it once X is already close (|R| small).
    """
    n = x.shape[0]
    (r,) = yield from truncations(rt, [r.reshape(-1)], [r_bits - residual_bits])
    xr = yield from matmul_steps(rt, x, r.reshape(n, n))
    (xr,) = yield from truncations(rt, [xr.reshape(-1)], [residual_bits])
    return rt.ring.add(x, xr.reshape(n, n))
