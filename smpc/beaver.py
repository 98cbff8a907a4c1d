"""Products of secret-shared tensors with Beaver triples (elementwise and matrix).

Beaver, "Efficient Multiparty Protocols Using Circuit Randomization"
(CRYPTO 1991). With a triple (a, b, c = a*b) from the dealer:

1. Every party opens its shares of d = x - a and e = y - b, both in one
   message per peer (one round). d and e are uniform: nothing leaks.
2. Locally, x*y = c + d*b + e*a + d*e, the public d*e added by party 0.

For two fixed-point operands the product carries 2F fractional bits and is
truncated (``smpc.truncation``, one more round); the truncation mask is
added inside the same kernel that forms the product share, so a fixed-point
product is two rounds and two passes over memory per party. Matrix products
use a matrix triple (A, B, C = A @ B) the same way, with one opening of
(D, E) of sizes m*k + k*n.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from smpc import truncation
from smpc.errors import ShapeMismatchError
from smpc.shares import SharedTensor

if TYPE_CHECKING:
    from smpc.runtime import Runtime

_NO_MASK = np.empty(0, dtype=np.uint64)

ROUNDS = 1
"""Rounds of a product of integer tensors; a fixed-point product adds ``truncation.ROUNDS``."""


def _product_scale(rt: Runtime, x: SharedTensor, y: SharedTensor) -> int:
    if not isinstance(x, SharedTensor) or not isinstance(y, SharedTensor):
        raise TypeError("rt.mul and rt.matmul take two SharedTensors; use * or @ for public values")
    f = rt.fxp.frac_bits
    if x.scale > f or y.scale > f:
        raise ValueError("an operand carries 2F fractional bits; truncate it first")
    return x.scale + y.scale


def mul(rt: Runtime, x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Elementwise x*y; one round for integers, two for fixed point."""
    scale = _product_scale(rt, x, y)
    if x.shape != y.shape:
        raise ShapeMismatchError(f"elementwise product of shapes {x.shape} and {y.shape}")
    a, b, c = rt.prep.triple(x.shape).consume()
    opened = rt.exchange_all(rt.ring.beaver_masked(x.share, a, y.share, b), "beaver")
    f = rt.fxp.frac_bits
    if scale <= f:
        return rt.shared(rt.ring.beaver_product(opened, a, b, c, _NO_MASK, rt.first), scale)
    r, r_low, r_top = rt.prep.truncation(x.shape, f).consume()
    masked = rt.ring.beaver_product(opened, a, b, c, r, rt.first)
    return truncation.finish(rt, masked, r_low, r_top, scale - f)


def matmul(rt: Runtime, x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Matrix product x @ y of 2-D shared tensors; one round, two for fixed point."""
    scale = _product_scale(rt, x, y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[0]:
        raise ShapeMismatchError(f"matrix product of shapes {x.shape} and {y.shape}")
    (m, k), n = x.shape, y.shape[1]
    a, b, c = rt.prep.matrix_triple(m, k, n).consume()
    message = np.concatenate(
        [rt.ring.sub(x.share, a).reshape(-1), rt.ring.sub(y.share, b).reshape(-1)]
    )
    opened = rt.ring.sum_shares(rt.exchange_all(message, "beaver"))
    d = opened[: m * k].reshape(m, k)
    e = opened[m * k :].reshape(k, n)
    # Z = C + D @ B_i + A_i @ E (+ D @ E at party 0) = C + D @ (B_i [+ E]) + A_i @ E
    right = rt.ring.add(b, e) if rt.first else b
    z = rt.ring.add(c, rt.ring.add(rt.ring.matmul(d, right), rt.ring.matmul(a, e)))
    product = rt.shared(z, scale)
    return truncation.truncate(rt, product) if scale > rt.fxp.frac_bits else product
