"""Plain numpy definitions of the Z_2^64 kernels in :mod:`smpc.ring`.

This module is the living definition: every function here has a twin of the
same name and signature in ``smpc.ring``, and the property tests say they
agree. numpy's uint64 arithmetic wraps modulo 2^64, which is the ring.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

U64 = np.uint64
TOP_OFFSET = U64(1 << 62)  # shift of a signed value into [0, 2^63) before truncation
LOW63 = U64((1 << 63) - 1)


def from_float(values: np.ndarray, scale: float, bound: float) -> tuple[np.ndarray, int]:
    """round(values * scale) as two's-complement ring elements, and the first bad index.

    An entry is bad when it is NaN, infinite or not below ``bound`` in
    magnitude; the index is -1 when every entry is good (the ring values are
    then meaningful, otherwise only those before the bad index are).
    """
    array = np.asarray(values, dtype=np.float64)
    bad = ~(np.abs(array) < bound)
    first = int(np.argmax(bad.ravel())) if bad.any() else -1
    safe = np.where(bad, 0.0, array)
    return np.rint(safe * scale).astype(np.int64).view(U64), first


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b mod 2^64."""
    return np.add(a, b, dtype=U64)


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b mod 2^64."""
    return np.subtract(a, b, dtype=U64)


def neg(a: np.ndarray) -> np.ndarray:
    """-a mod 2^64."""
    return np.subtract(U64(0), a, dtype=U64)


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b mod 2^64, elementwise."""
    return np.multiply(a, b, dtype=U64)


def total(a: np.ndarray) -> np.uint64:
    """Sum of every element mod 2^64."""
    return U64(np.sum(a, dtype=U64))


def sum_axis0(a: np.ndarray) -> np.ndarray:
    """Column sums of a 2-D array mod 2^64."""
    return np.sum(a, axis=0, dtype=U64)


def sum_shares(shares: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of n same-shape share arrays: the opened value."""
    out = shares[0].copy()
    for s in shares[1:]:
        out += s
    return out


def triple_correction(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray], c_others: Sequence[np.ndarray]
) -> np.ndarray:
    """The first party's c: (sum of a) * (sum of b) minus the other parties' c shares."""
    return sub(mul(sum_shares(a), sum_shares(b)), sum_shares(c_others))


def truncation_corrections(
    r: Sequence[np.ndarray],
    low_others: Sequence[np.ndarray],
    top_others: Sequence[np.ndarray],
    frac_bits: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The first party's shares of (r mod 2^63) >> F and of r's top bit, r = sum of r."""
    whole = sum_shares(r)
    low = (whole & LOW63) >> U64(frac_bits)
    top = whole >> U64(63)
    return sub(low, sum_shares(low_others)), sub(top, sum_shares(top_others))


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matrix product of 2-D arrays mod 2^64."""
    a64 = a.astype(object)
    b64 = b.astype(object)
    return (np.asarray(a64.dot(b64)) % (1 << 64)).astype(U64)


def beaver_masked(x: np.ndarray, a: np.ndarray, y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The flat message [x - a, y - b] a party sends for one Beaver product."""
    return np.concatenate([sub(x, a).ravel(), sub(y, b).ravel()])


def beaver_product(
    masked: Sequence[np.ndarray],
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    mask: np.ndarray,
    first: bool,
) -> np.ndarray:
    """One party's share of x*y from every party's ``beaver_masked`` message.

    With d = x - a and e = y - b opened, x*y = c + d*b + e*a + d*e; the public
    term d*e is added by the first party only. If ``mask`` is non-empty, the
    result is instead ``truncation_masked`` of the product, fused.
    """
    opened = sum_shares(masked)
    n = a.size
    d = opened[:n].reshape(a.shape)
    e = opened[n:].reshape(a.shape)
    z = add(c, add(mul(d, b), mul(e, a)))
    if first:
        z = add(z, mul(d, e))
    if mask.size:
        return truncation_masked(z, mask, first)
    return z


def truncation_masked(z: np.ndarray, r: np.ndarray, first: bool) -> np.ndarray:
    """The share of c = z + 2^62 + r a party opens for truncation."""
    out = add(z, r)
    if first:
        out = add(out, TOP_OFFSET)
    return out


def truncation_finish(
    masked: Sequence[np.ndarray],
    r_low: np.ndarray,
    r_top: np.ndarray,
    frac_bits: int,
    first: bool,
) -> np.ndarray:
    """One party's share of z >> frac_bits from every party's masked share.

    c = z + 2^62 + r is public; with c63 its top bit and v = c63 XOR r63
    (linear in the shared bit r63), z >> F equals
    (c mod 2^63) >> F - [(r mod 2^63) >> F] + 2^(63-F) v - 2^(62-F),
    exact or one unit too large.
    """
    c = sum_shares(masked)
    f = U64(frac_bits)
    c_top = c >> U64(63)
    c_low = c & LOW63
    # v = c63 + r63 - 2 c63 r63; the public c63 enters at the first party only.
    v = mul(r_top, sub(U64(1), mul(U64(2), c_top)))
    if first:
        v = add(v, c_top)
    out = sub(mul(v, U64(1) << (U64(63) - f)), r_low)
    if first:
        out = add(out, sub(c_low >> f, U64(1) << (U64(62) - f)))
    return out.reshape(r_low.shape)
