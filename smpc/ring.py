"""Z_2^64 kernels compiled with Numba.

Every public function mirrors :mod:`smpc.ring_reference` (same name, same
arguments, same result); the property tests compare the two. Kernels are
``@njit(cache=True, nogil=True)``, single-threaded, pure functions on uint64
arrays: no randomness and no runtime state. ``nogil`` lets the parties of an
in-process federation run their kernels on different cores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from smpc.errors import ShapeMismatchError
from smpc.ring_reference import Operand

U64 = np.uint64
_TOP = np.uint64(1 << 62)
_LOW63 = np.uint64((1 << 63) - 1)
_ONE = np.uint64(1)


def _readonly(a: Operand) -> np.ndarray:
    # Inputs are passed read-only so each kernel compiles one signature, and
    # tuples of shares are homogeneous whatever their owners' write flags.
    view = np.ascontiguousarray(a, dtype=U64).view()
    view.flags.writeable = False
    return view


_U64_DTYPE = np.dtype(U64)


def _flat(a: Operand) -> np.ndarray:
    if type(a) is np.ndarray and a.dtype is _U64_DTYPE and a.ndim == 1:
        flags = a.flags
        if not flags.writeable and flags.c_contiguous:  # already what kernels take
            return a
    # reshape makes a new view object even of a flat array, so the caller's stays writeable
    view = np.ascontiguousarray(a, dtype=U64).reshape(-1)
    view.flags.writeable = False
    return view


def _shares(arrays: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, ...]:
    """Flat read-only views of n share arrays, each checked to hold ``size`` elements."""
    views = tuple([_flat(a) for a in arrays])
    if not views or any([v.size != size for v in views]):
        raise ShapeMismatchError(
            f"expected {len(arrays)} share arrays of {size} elements, got sizes "
            f"{[v.size for v in views]}"
        )
    return views


@njit(cache=True, nogil=True)
def _from_float(values, scale, bound, out):
    # Returns the index of the first entry that is not finite or not below
    # ``bound`` in magnitude (out is then incomplete), or -1.
    for i in range(values.size):
        v = values[i]
        if not (abs(v) < bound):  # also true for NaN
            return i
        out[i] = np.uint64(np.int64(np.rint(v * scale)))
    return -1


def from_float(values: np.ndarray, scale: float, bound: float) -> tuple[np.ndarray, int]:
    """round(values * scale) as two's-complement ring elements, and the first bad index.

    An entry is bad when it is NaN, infinite or not below ``bound`` in
    magnitude; the index is -1 when every entry is good.
    """
    flat = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    out = np.empty(np.shape(values), dtype=U64)
    return out, int(_from_float(flat, float(scale), float(bound), out.reshape(-1)))


def _same(a: Operand, b: Operand) -> bool:
    return np.shape(a) == np.shape(b) and np.ndim(a) > 0


@njit(cache=True, nogil=True)
def _add(a, b, out):
    for i in range(a.size):
        out[i] = a[i] + b[i]


@njit(cache=True, nogil=True)
def _sub(a, b, out):
    for i in range(a.size):
        out[i] = a[i] - b[i]


@njit(cache=True, nogil=True)
def _neg(a, out):
    zero = np.uint64(0)
    for i in range(a.size):
        out[i] = zero - a[i]


@njit(cache=True, nogil=True)
def _mul(a, b, out):
    for i in range(a.size):
        out[i] = a[i] * b[i]


@njit(cache=True, nogil=True)
def _total(a):
    acc = np.uint64(0)
    for i in range(a.size):
        acc += a[i]
    return acc


@njit(cache=True, nogil=True)
def _sum_axis0(a, out):
    rows, cols = a.shape
    for j in range(cols):
        out[j] = np.uint64(0)
    for i in range(rows):
        for j in range(cols):
            out[j] += a[i, j]


@njit(cache=True, nogil=True)
def _sum_shares(shares, out):
    # One pass over the output; the shares are read side by side.
    for i in range(out.size):
        acc = np.uint64(0)
        for k in range(len(shares)):
            acc += shares[k][i]
        out[i] = acc


@njit(cache=True, nogil=True)
def _triple_correction(a, b, c_others, out):
    for i in range(out.size):
        sa = np.uint64(0)
        sb = np.uint64(0)
        for k in range(len(a)):
            sa += a[k][i]
            sb += b[k][i]
        z = sa * sb
        for k in range(len(c_others)):
            z -= c_others[k][i]
        out[i] = z


@njit(cache=True, nogil=True)
def _truncation_corrections(r, low_others, top_others, frac_bits, low, top):
    f = np.uint64(frac_bits)
    for i in range(low.size):
        sr = np.uint64(0)
        for k in range(len(r)):
            sr += r[k][i]
        lo = (sr & _LOW63) >> f
        hi = sr >> np.uint64(63)
        for k in range(len(low_others)):
            lo -= low_others[k][i]
            hi -= top_others[k][i]
        low[i] = lo
        top[i] = hi


@njit(cache=True, nogil=True)
def _matmul_into(a, b, out):
    # i-k-j order: the inner loop streams rows of b and out, which vectorises.
    m, k = a.shape
    n = b.shape[1]
    for i in range(m):
        for j in range(n):
            out[i, j] = np.uint64(0)
        for p in range(k):
            aip = a[i, p]
            for j in range(n):
                out[i, j] += aip * b[p, j]


@njit(cache=True, nogil=True)
def _beaver_masked(x, a, y, b, out):
    n = x.size
    for i in range(n):
        out[i] = x[i] - a[i]
        out[n + i] = y[i] - b[i]


@njit(cache=True, nogil=True)
def _beaver_product(masked, a, b, c, mask, first, out):
    n = a.size
    fused = mask.size > 0
    for i in range(n):
        d = np.uint64(0)
        e = np.uint64(0)
        for k in range(len(masked)):
            m = masked[k]
            d += m[i]
            e += m[n + i]
        z = c[i] + d * b[i] + e * a[i]
        if first:
            z += d * e
        if fused:
            z += mask[i]
            if first:
                z += _TOP
        out[i] = z


@njit(cache=True, nogil=True)
def _truncation_masked(z, r, first, out):
    offset = _TOP if first else np.uint64(0)
    for i in range(z.size):
        out[i] = z[i] + r[i] + offset


@njit(cache=True, nogil=True)
def _truncation_finish(masked, r_low, r_top, frac_bits, first, out):
    f = np.uint64(frac_bits)
    unit = _ONE << (np.uint64(63) - f)
    bias = _ONE << (np.uint64(62) - f)
    for i in range(r_low.size):
        c = np.uint64(0)
        for k in range(len(masked)):
            c += masked[k][i]
        c_top = c >> np.uint64(63)
        # v = c63 XOR r63 = c63 + r63 (1 - 2 c63), linear in the shared bit.
        v = r_top[i] * (_ONE - np.uint64(2) * c_top)
        if first:
            v += c_top
        share = v * unit - r_low[i]
        if first:
            share += ((c & _LOW63) >> f) - bias
        out[i] = share


def add(a: Operand, b: Operand) -> np.ndarray:
    """a + b mod 2^64."""
    if not _same(a, b):
        return np.add(a, b, dtype=U64)
    out = np.empty(np.shape(a), dtype=U64)
    _add(_flat(a), _flat(b), out.reshape(-1))
    return out


def sub(a: Operand, b: Operand) -> np.ndarray:
    """a - b mod 2^64."""
    if not _same(a, b):
        return np.subtract(a, b, dtype=U64)
    out = np.empty(np.shape(a), dtype=U64)
    _sub(_flat(a), _flat(b), out.reshape(-1))
    return out


def neg(a: np.ndarray) -> np.ndarray:
    """-a mod 2^64."""
    out = np.empty(np.shape(a), dtype=U64)
    _neg(_flat(a), out.reshape(-1))
    return out


def mul(a: Operand, b: Operand) -> np.ndarray:
    """a * b mod 2^64, elementwise."""
    if not _same(a, b):
        return np.multiply(a, b, dtype=U64)
    out = np.empty(np.shape(a), dtype=U64)
    _mul(_flat(a), _flat(b), out.reshape(-1))
    return out


def total(a: np.ndarray) -> np.uint64:
    """Sum of every element mod 2^64."""
    return U64(_total(_flat(a)))


def sum_axis0(a: np.ndarray) -> np.ndarray:
    """Column sums of a 2-D array mod 2^64."""
    a = _readonly(a)
    out = np.empty(a.shape[1], dtype=U64)
    _sum_axis0(a, out)
    return out


def sum_shares(shares: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of n same-shape share arrays: the opened value."""
    out = np.empty(np.shape(shares[0]), dtype=U64)
    _sum_shares(_shares(shares, out.size), out.reshape(-1))
    return out


def triple_correction(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray], c_others: Sequence[np.ndarray]
) -> np.ndarray:
    """The first party's c: (sum of a) * (sum of b) minus the other parties' c shares."""
    out = np.empty(np.shape(a[0]), dtype=U64)
    size = out.size
    _triple_correction(_shares(a, size), _shares(b, size), _shares(c_others, size), out.reshape(-1))
    return out


def truncation_corrections(
    r: Sequence[np.ndarray],
    low_others: Sequence[np.ndarray],
    top_others: Sequence[np.ndarray],
    frac_bits: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The first party's shares of (r mod 2^63) >> F and of r's top bit, r = sum of r."""
    if not 0 <= frac_bits <= 62:
        raise ValueError(f"frac_bits must be in 0..62, got {frac_bits}")
    low = np.empty(np.shape(r[0]), dtype=U64)
    top = np.empty(low.shape, dtype=U64)
    size = low.size
    _truncation_corrections(
        _shares(r, size),
        _shares(low_others, size),
        _shares(top_others, size),
        frac_bits,
        low.reshape(-1),
        top.reshape(-1),
    )
    return low, top


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matrix product of 2-D arrays mod 2^64."""
    a = _readonly(a)
    b = _readonly(b)
    out = np.empty((a.shape[0], b.shape[1]), dtype=U64)
    _matmul_into(a, b, out)
    return out


def beaver_masked(x: np.ndarray, a: np.ndarray, y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The flat message [x - a, y - b] a party sends for one Beaver product."""
    size = x.size if type(x) is np.ndarray else np.size(x)
    out = np.empty(2 * size, dtype=U64)
    _beaver_masked(*_shares([x, a, y, b], size), out)
    return out


def beaver_product(
    masked: Sequence[np.ndarray],
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    mask: np.ndarray,
    first: bool,
) -> np.ndarray:
    """One party's share of x*y (or of its truncation mask, fused); see the reference."""
    out = np.empty(a.shape, dtype=U64)
    size = out.size
    a_flat, b_flat, c_flat = _shares([a, b, c], size)
    mask_flat = _shares([mask], size)[0] if mask.size else _flat(mask)
    _beaver_product(
        _shares(masked, 2 * size), a_flat, b_flat, c_flat, mask_flat, first, out.reshape(-1)
    )
    return out


def truncation_masked(z: np.ndarray, r: np.ndarray, first: bool) -> np.ndarray:
    """The share of c = z + 2^62 + r a party opens for truncation."""
    out = np.empty(np.shape(z), dtype=U64)
    _truncation_masked(*_shares([z, r], np.size(z)), first, out.reshape(-1))
    return out


def truncation_finish(
    masked: Sequence[np.ndarray],
    r_low: np.ndarray,
    r_top: np.ndarray,
    frac_bits: int,
    first: bool,
) -> np.ndarray:
    """One party's share of z >> frac_bits; see the reference for the identity."""
    out = np.empty(r_low.shape, dtype=U64)
    size = out.size
    low_flat, top_flat = _shares([r_low, r_top], size)
    if not 0 <= frac_bits <= 62:
        raise ValueError(f"frac_bits must be in 0..62, got {frac_bits}")
    _truncation_finish(_shares(masked, size), low_flat, top_flat, frac_bits, first, out.reshape(-1))
    return out


# --- bitwise kernels for comparison (XOR shares packed 64 lanes per word) ------------------

_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_BIT63 = np.uint64(1 << 63)
_EVEN = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_M8 = np.uint64(0x00FF00FF00FF00FF)
_M16 = np.uint64(0x0000FFFF0000FFFF)
_M32 = np.uint64(0x00000000FFFFFFFF)


@njit(cache=True, nogil=True)
def _even_bits(x):
    # Bits 0, 2, ..., 62 of x moved to bits 0..31, in order (halving the gaps each step).
    x &= _EVEN
    x = (x | (x >> np.uint64(1))) & _M2
    x = (x | (x >> np.uint64(2))) & _M4
    x = (x | (x >> np.uint64(4))) & _M8
    x = (x | (x >> np.uint64(8))) & _M16
    return (x | (x >> np.uint64(16))) & _M32


@njit(cache=True, nogil=True)
def _halve(words, j, shift):
    # Every other bit (from bit `shift`) of words 2j and 2j+1 of a bit stream, as one word.
    lo = words[2 * j] >> shift
    hi = np.uint64(0)
    if 2 * j + 1 < words.size:
        hi = words[2 * j + 1] >> shift
    return _even_bits(lo) | (_even_bits(hi) << np.uint64(32))


@njit(cache=True, nogil=True)
def _xor_shares(shares, out):
    for i in range(out.size):
        acc = np.uint64(0)
        for k in range(len(shares)):
            acc ^= shares[k][i]
        out[i] = acc


@njit(cache=True, nogil=True)
def _comparison_leaves(r_bits, c, first, g, p):
    for i in range(c.size):
        r = r_bits[i]
        g[i] = r & (c[i] ^ _ALL) & _LOW63
        if first:
            p[i] = (r ^ c[i] ^ _ALL) | _BIT63
        else:
            p[i] = r & _LOW63


@njit(cache=True, nogil=True)
def _tree_masked(g, p, a, b, out, hi_g):
    half = hi_g.size
    gates = a.size
    both = gates == 2 * half
    one = np.uint64(1)
    zero = np.uint64(0)
    for j in range(half):
        hi_p = _halve(p, j, one)
        out[j] = hi_p ^ a[j]
        out[gates + j] = _halve(g, j, zero) ^ b[j]
        if both:
            out[half + j] = hi_p ^ a[half + j]
            out[gates + half + j] = _halve(p, j, zero) ^ b[half + j]
        hi_g[j] = _halve(g, j, one)


@njit(cache=True, nogil=True)
def _tree_combine(masked, a, b, c, hi_g, first, g, p):
    gates = a.size
    half = hi_g.size
    for t in range(gates):
        d = np.uint64(0)
        e = np.uint64(0)
        for k in range(len(masked)):
            d ^= masked[k][t]
            e ^= masked[k][gates + t]
        z = c[t] ^ (d & b[t]) ^ (e & a[t])
        if first:
            z ^= d & e
        if t < half:
            g[t] = hi_g[t] ^ z
        else:
            p[t - half] = z


@njit(cache=True, nogil=True)
def _comparison_bit(g, r_bits, c, s_bits, first, out):
    for w in range(out.size):
        out[w] = g[w] ^ s_bits[w]
    top = np.uint64(63)
    for i in range(r_bits.size):
        bit = r_bits[i] >> top
        if first:
            bit ^= c[i] >> top
        out[i >> 6] ^= bit << np.uint64(i & 63)
    tail = r_bits.size & 63
    if tail:
        out[out.size - 1] &= (_ONE << np.uint64(tail)) - _ONE


@njit(cache=True, nogil=True)
def _dabit_open(masked, out):
    size = out.size
    for w in range((size + 63) >> 6):
        word = np.uint64(0)
        for k in range(len(masked)):
            word ^= masked[k][w]
        for j in range(min(64, size - 64 * w)):
            out[64 * w + j] = (word >> np.uint64(j)) & _ONE


@njit(cache=True, nogil=True)
def _xor_public_bit(d, s, first, out):
    two = np.uint64(2)
    for i in range(out.size):
        z = s[i] - two * d[i] * s[i]
        if first:
            z += d[i]
        out[i] = z


@njit(cache=True, nogil=True)
def _dabit_product(d, y, sy, out):
    two = np.uint64(2)
    for i in range(out.size):
        out[i] = d[i] * y[i] + sy[i] - two * d[i] * sy[i]


@njit(cache=True, nogil=True)
def _binary_triple_correction(a, b, c_others, out):
    for i in range(out.size):
        sa = np.uint64(0)
        sb = np.uint64(0)
        for k in range(len(a)):
            sa ^= a[k][i]
            sb ^= b[k][i]
        z = sa & sb
        for k in range(len(c_others)):
            z ^= c_others[k][i]
        out[i] = z


@njit(cache=True, nogil=True)
def _comparison_corrections(r, s_bits, r_bits_others, s_others, r_bits, s):
    for i in range(r_bits.size):
        whole = np.uint64(0)
        for k in range(len(r)):
            whole += r[k][i]
        for k in range(len(r_bits_others)):
            whole ^= r_bits_others[k][i]
        r_bits[i] = whole
    for w in range(s_bits[0].size):
        word = np.uint64(0)
        for k in range(len(s_bits)):
            word ^= s_bits[k][w]
        for j in range(min(64, s.size - 64 * w)):
            i = 64 * w + j
            v = (word >> np.uint64(j)) & _ONE
            for k in range(len(s_others)):
                v -= s_others[k][i]
            s[i] = v


def packed_words(size: int) -> int:
    """Words that hold ``size`` bits, 64 per word."""
    return (int(size) + 63) // 64


def _halves(g: np.ndarray, p: np.ndarray, a: np.ndarray, b: np.ndarray) -> int:
    """Words per half of one tree level; checks the operands' sizes."""
    half = (np.size(g) + 1) // 2
    if np.size(p) != np.size(g) or np.size(a) != np.size(b) or np.size(a) not in (half, 2 * half):
        raise ShapeMismatchError(
            f"a tree level over {np.size(g)} words needs g and p of that size and a triple of "
            f"{half} or {2 * half} words, got {np.size(p)}, {np.size(a)} and {np.size(b)}"
        )
    return half


def xor_shares(shares: Sequence[np.ndarray]) -> np.ndarray:
    """XOR of n same-shape share arrays: the value behind XOR shares."""
    out = np.empty(np.shape(shares[0]), dtype=U64)
    _xor_shares(_shares(shares, out.size), out.reshape(-1))
    return out


def comparison_leaves(
    r_bits: np.ndarray, c: np.ndarray, first: bool
) -> tuple[np.ndarray, np.ndarray]:
    """XOR shares of the per-bit (generate, propagate) words of [c' < r']; see the reference."""
    size = np.size(c)
    g = np.empty(size, dtype=U64)
    p = np.empty(size, dtype=U64)
    r_flat, c_flat = _shares([r_bits, c], size)
    _comparison_leaves(r_flat, c_flat, first, g, p)
    return g, p


def tree_masked(
    g: np.ndarray, p: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The message [x ^ a, y ^ b] of one tree level, and the high halves' g; see the reference."""
    half = _halves(g, p, a, b)
    out = np.empty(2 * np.size(a), dtype=U64)
    hi_g = np.empty(half, dtype=U64)
    _tree_masked(_flat(g), _flat(p), _flat(a), _flat(b), out, hi_g)
    return out, hi_g


def tree_combine(
    masked: Sequence[np.ndarray],
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    hi_g: np.ndarray,
    first: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """This party's (g, p) after one tree level from every party's message; see the reference."""
    gates = np.size(a)
    half = np.size(hi_g)
    if gates not in (half, 2 * half):
        raise ShapeMismatchError(f"a triple of {gates} words does not fit {half} words of g")
    g = np.empty(half, dtype=U64)
    p = np.empty(gates - half, dtype=U64)
    a_flat, b_flat, c_flat = _shares([a, b, c], gates)
    _tree_combine(_shares(masked, 2 * gates), a_flat, b_flat, c_flat, _flat(hi_g), first, g, p)
    return g, p


def comparison_bit(
    g: np.ndarray, r_bits: np.ndarray, c: np.ndarray, s_bits: np.ndarray, first: bool
) -> np.ndarray:
    """The packed message b ^ s opened to convert the sign bit b; see the reference."""
    size = np.size(c)
    words = packed_words(size)
    out = np.empty(words, dtype=U64)
    g_flat, s_flat = _shares([g, s_bits], words)
    r_flat, c_flat = _shares([r_bits, c], size)
    _comparison_bit(g_flat, r_flat, c_flat, s_flat, first, out)
    return out


def dabit_open(masked: Sequence[np.ndarray], size: int) -> np.ndarray:
    """XOR of every party's packed message, unpacked to ``size`` public 0/1 ring elements."""
    out = np.empty(int(size), dtype=U64)
    _dabit_open(_shares(masked, packed_words(size)), out)
    return out


def xor_public_bit(d: np.ndarray, s: np.ndarray, first: bool) -> np.ndarray:
    """An additive share of d XOR s from public bits d and additive shares of bits s."""
    out = np.empty(np.shape(s), dtype=U64)
    _xor_public_bit(*_shares([d, s], out.size), first, out.reshape(-1))
    return out


def dabit_product(d: np.ndarray, y: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """An additive share of (d XOR s) * y from public d and shares of y and of s * y."""
    out = np.empty(np.shape(y), dtype=U64)
    _dabit_product(*_shares([d, y, sy], out.size), out.reshape(-1))
    return out


def binary_triple_correction(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray], c_others: Sequence[np.ndarray]
) -> np.ndarray:
    """The first party's c: (XOR of a) AND (XOR of b), XOR the other parties' c shares."""
    out = np.empty(np.shape(a[0]), dtype=U64)
    size = out.size
    _binary_triple_correction(
        _shares(a, size), _shares(b, size), _shares(c_others, size), out.reshape(-1)
    )
    return out


def comparison_corrections(
    r: Sequence[np.ndarray],
    s_bits: Sequence[np.ndarray],
    r_bits_others: Sequence[np.ndarray],
    s_others: Sequence[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Party 0's XOR share of r's bits and additive share of the daBit; see the reference."""
    r_bits = np.empty(np.shape(r[0]), dtype=U64)
    s = np.empty(r_bits.shape, dtype=U64)
    size = r_bits.size
    _comparison_corrections(
        _shares(r, size),
        _shares(s_bits, packed_words(size)),
        _shares(r_bits_others, size),
        _shares(s_others, size),
        r_bits.reshape(-1),
        s.reshape(-1),
    )
    return r_bits, s
