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

Operand = np.ndarray | np.uint64
"""An operand of the elementwise kernels: a uint64 array, or one uint64 broadcast against it."""


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


def add(a: Operand, b: Operand) -> np.ndarray:
    """a + b mod 2^64."""
    return np.add(a, b, dtype=U64)


def sub(a: Operand, b: Operand) -> np.ndarray:
    """a - b mod 2^64."""
    return np.subtract(a, b, dtype=U64)


def neg(a: np.ndarray) -> np.ndarray:
    """-a mod 2^64."""
    return np.subtract(U64(0), a, dtype=U64)


def mul(a: Operand, b: Operand) -> np.ndarray:
    """a * b mod 2^64, elementwise."""
    return np.multiply(a, b, dtype=U64)


def total(a: np.ndarray) -> np.uint64:
    """Sum of every element mod 2^64."""
    return U64(np.sum(a, dtype=U64))


def sum_axis0(a: np.ndarray) -> np.ndarray:
    """Column sums of a 2-D array mod 2^64."""
    return np.asarray(np.sum(a, axis=0, dtype=U64))


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


# --- bitwise kernels for comparison (XOR shares packed 64 lanes per word) ------------------
#
# A packed bit stream is a uint64 array read least significant bit first: bit j of word w is
# stream bit 64 w + j. The helpers below convert between words and explicit 0/1 arrays, so
# these definitions never rely on bit tricks.

BIT63 = U64(1 << 63)


def packed_words(size: int) -> int:
    """Words that hold ``size`` bits, 64 per word."""
    return (int(size) + 63) // 64


def _bits(words: np.ndarray) -> np.ndarray:
    """The bit stream of a word array as 0/1 uint8, least significant bit of word 0 first."""
    raw = np.ascontiguousarray(words, dtype=U64).reshape(-1).astype("<u8").view(np.uint8)
    return np.unpackbits(raw, bitorder="little")


def _words(bits: np.ndarray, count: int) -> np.ndarray:
    """``count`` words holding a 0/1 stream (padded with zeros, or cut)."""
    padded = np.zeros(64 * count, dtype=np.uint8)
    used = min(bits.size, padded.size)
    padded[:used] = bits[:used]
    return np.packbits(padded, bitorder="little").view("<u8").astype(U64)


def _xor_all(shares: Sequence[np.ndarray]) -> np.ndarray:
    out = np.array(shares[0], dtype=U64).reshape(-1)
    for s in shares[1:]:
        if np.size(s) != out.size:
            raise ValueError(f"share sizes differ: {out.size} and {np.size(s)}")
        out = out ^ np.asarray(s, dtype=U64).reshape(-1)
    return out


def xor_shares(shares: Sequence[np.ndarray]) -> np.ndarray:
    """XOR of n same-shape share arrays: the value behind XOR shares."""
    return _xor_all(shares).reshape(np.shape(shares[0]))


def comparison_leaves(
    r_bits: np.ndarray, c: np.ndarray, first: bool
) -> tuple[np.ndarray, np.ndarray]:
    """XOR shares of the per-bit (generate, propagate) words of [c' < r'].

    For bit i < 63 of the public c and the XOR-shared r: g_i = r_i AND NOT c_i
    (r is larger here), p_i = NOT (r_i XOR c_i) (equal here), both linear in
    the shares; the constant enters at the first party. Bit 63 is made
    neutral (g = 0, p = 1), so the words compare c mod 2^63 with r mod 2^63.
    """
    r = np.asarray(r_bits, dtype=U64).reshape(-1)
    cw = np.asarray(c, dtype=U64).reshape(-1)
    if r.size != cw.size:
        raise ValueError(f"r_bits has {r.size} words for {cw.size} values")
    g = r & ~cw & LOW63
    p = ((r ^ ~cw) | BIT63) if first else (r & LOW63)
    return g, p


def tree_masked(
    g: np.ndarray, p: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The message of one level of the comparison tree, and the high halves' g.

    The state is a packed stream of (g, p) bit pairs per group; a level merges
    groups 2k (low) and 2k+1 (high): g' = g_hi XOR (p_hi AND g_lo) and
    p' = p_hi AND p_lo. The AND gates are x AND y with x = [p_hi, p_hi] and
    y = [g_lo, p_lo] (only p_hi and g_lo when ``a`` covers one half: the last
    level needs no p). The message is [x XOR a, y XOR b] for a binary Beaver
    triple (a, b, c).
    """
    half = (np.size(g) + 1) // 2
    if np.size(p) != np.size(g) or np.size(a) != np.size(b) or np.size(a) not in (half, 2 * half):
        raise ValueError("tree level operands do not fit together")
    gb, pb = _bits(g), _bits(p)
    hi_p, lo_g = _words(pb[1::2], half), _words(gb[0::2], half)
    if np.size(a) == half:
        x, y = hi_p, lo_g
    else:
        x = np.concatenate([hi_p, hi_p])
        y = np.concatenate([lo_g, _words(pb[0::2], half)])
    aw, bw = np.asarray(a, dtype=U64).reshape(-1), np.asarray(b, dtype=U64).reshape(-1)
    return np.concatenate([x ^ aw, y ^ bw]), _words(gb[1::2], half)


def tree_combine(
    masked: Sequence[np.ndarray],
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    hi_g: np.ndarray,
    first: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """This party's (g, p) after one tree level from every party's ``tree_masked`` message.

    With d = x XOR a and e = y XOR b opened, x AND y = c XOR (d AND b) XOR
    (e AND a) XOR (d AND e), the public d AND e at the first party only. The
    new g is hi_g XOR the first half of the gates; the new p is the rest
    (empty at the last level).
    """
    gates = np.size(a)
    opened = _xor_all(masked)
    if opened.size != 2 * gates or gates not in (np.size(hi_g), 2 * np.size(hi_g)):
        raise ValueError("tree level messages do not fit the triple")
    d, e = opened[:gates], opened[gates:]
    aw, bw, cw = (np.asarray(v, dtype=U64).reshape(-1) for v in (a, b, c))
    z = cw ^ (d & bw) ^ (e & aw)
    if first:
        z = z ^ (d & e)
    half = np.size(hi_g)
    return np.asarray(hi_g, dtype=U64).reshape(-1) ^ z[:half], z[half:]


def comparison_bit(
    g: np.ndarray, r_bits: np.ndarray, c: np.ndarray, s_bits: np.ndarray, first: bool
) -> np.ndarray:
    """The packed message b XOR s that converts the sign bit b to an additive share.

    b = c63 XOR r63 XOR g with g the borrow [c' < r'] from the tree (one bit
    per value), c63 added at the first party; s is the daBit's XOR share. Bits
    past the last value are cleared.
    """
    size = np.size(c)
    top = (np.asarray(r_bits, dtype=U64).reshape(-1) >> U64(63)).astype(np.uint8)
    if first:
        top ^= (np.asarray(c, dtype=U64).reshape(-1) >> U64(63)).astype(np.uint8)
    words = packed_words(size)
    if np.size(g) != words or np.size(s_bits) != words or top.size != size:
        raise ValueError("comparison bit operands do not fit together")
    bits = _bits(g)[:size] ^ _bits(s_bits)[:size] ^ top
    return _words(bits, words)


def dabit_open(masked: Sequence[np.ndarray], size: int) -> np.ndarray:
    """XOR of every party's packed message, unpacked to ``size`` public 0/1 ring elements."""
    opened = _xor_all(masked)
    if opened.size != packed_words(size):
        raise ValueError(f"{opened.size} words do not hold {size} bits")
    return _bits(opened)[: int(size)].astype(U64)


def xor_public_bit(d: np.ndarray, s: np.ndarray, first: bool) -> np.ndarray:
    """An additive share of d XOR s = d + s - 2 d s from public bits d and shares of bits s."""
    dw = np.asarray(d, dtype=U64).reshape(np.shape(s))
    out = sub(s, mul(U64(2), mul(dw, s)))
    return add(out, dw) if first else out


def dabit_product(d: np.ndarray, y: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """An additive share of (d XOR s) * y = d y + (1 - 2 d) s y from public d, shares of y, s y."""
    dw = np.asarray(d, dtype=U64).reshape(np.shape(y))
    return add(mul(dw, y), sub(sy, mul(U64(2), mul(dw, sy))))


def binary_triple_correction(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray], c_others: Sequence[np.ndarray]
) -> np.ndarray:
    """The first party's c: (XOR of a) AND (XOR of b), XOR the other parties' c shares."""
    return (xor_shares(a) & xor_shares(b)) ^ xor_shares(c_others)


def comparison_corrections(
    r: Sequence[np.ndarray],
    s_bits: Sequence[np.ndarray],
    r_bits_others: Sequence[np.ndarray],
    s_others: Sequence[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The first party's XOR share of r's bits and its additive share of the daBit s.

    r = sum of the r shares; its bits are r XOR the others' bit shares. The
    daBit's bit i is bit i of the XOR of the packed s_bits shares; the first
    party's additive share is that bit minus the others' shares.
    """
    whole = sum_shares(r)
    shape = np.shape(whole)
    size = np.size(whole)
    if any(np.size(s) != packed_words(size) for s in s_bits):
        raise ValueError(f"packed daBit shares must have {packed_words(size)} words")
    r_bits = whole ^ xor_shares(r_bits_others).reshape(shape)
    s = _bits(xor_shares(s_bits))[:size].astype(U64).reshape(shape)
    return r_bits, sub(s, sum_shares(s_others).reshape(shape))
