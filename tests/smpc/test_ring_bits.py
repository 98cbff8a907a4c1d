"""The bitwise comparison kernels: Numba agrees with the reference, the reference with Python ints.

The protocol test at the end runs every party's kernels of one comparison
by hand (XOR shares, binary Beaver triples completed by the dealer's
correction kernel, the daBit conversion) and checks the sign bit against
Python integers.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpc import ring
from smpc import ring_reference as ref

MOD = 1 << 64
U64 = np.uint64
MODULES = [pytest.param(ref, id="reference"), pytest.param(ring, id="numba")]

sizes = st.integers(0, 140)
seeds = st.integers(0, 2**32 - 1)


def words(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, 2**64, size, dtype=U64)


def same(got: object, want: object) -> None:
    got_t = got if isinstance(got, tuple) else (got,)
    want_t = want if isinstance(want, tuple) else (want,)
    assert len(got_t) == len(want_t)
    for g, w in zip(got_t, want_t, strict=True):
        assert g.dtype == w.dtype == U64 and g.shape == w.shape
        assert np.array_equal(g, w)


def bit(values: np.ndarray, index: int) -> int:
    """Stream bit ``index`` of a packed word array."""
    return (int(values[index // 64]) >> (index % 64)) & 1


# --- numba agrees with the reference -----------------------------------------------------------


@given(n=st.integers(2, 6), size=sizes, seed=seeds)
def test_xor_shares_agrees_and_is_the_xor(n: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    shares = [words(rng, size) for _ in range(n)]
    got = ring.xor_shares(shares)
    same(got, ref.xor_shares(shares))
    for i in range(size):
        acc = 0
        for s in shares:
            acc ^= int(s[i])
        assert int(got[i]) == acc


@given(size=sizes, seed=seeds, first=st.booleans())
def test_comparison_leaves_agree(size: int, seed: int, first: bool) -> None:
    rng = np.random.default_rng(seed)
    r, c = words(rng, size), words(rng, size)
    same(ring.comparison_leaves(r, c, first), ref.comparison_leaves(r, c, first))


@given(size=sizes, seed=seeds, last=st.booleans(), first=st.booleans(), n=st.integers(2, 5))
def test_tree_level_kernels_agree(size: int, seed: int, last: bool, first: bool, n: int) -> None:
    rng = np.random.default_rng(seed)
    g, p = words(rng, size), words(rng, size)
    half = (size + 1) // 2
    gates = half if last else 2 * half
    a, b, c = words(rng, gates), words(rng, gates), words(rng, gates)
    message, hi_g = ring.tree_masked(g, p, a, b)
    same((message, hi_g), ref.tree_masked(g, p, a, b))
    masked = [message] + [words(rng, 2 * gates) for _ in range(n - 1)]
    same(
        ring.tree_combine(masked, a, b, c, hi_g, first),
        ref.tree_combine(masked, a, b, c, hi_g, first),
    )


@given(size=sizes, seed=seeds, first=st.booleans(), n=st.integers(2, 5))
def test_conversion_kernels_agree(size: int, seed: int, first: bool, n: int) -> None:
    rng = np.random.default_rng(seed)
    packed = ring.packed_words(size)
    g, s_bits, r_bits, c = (
        words(rng, packed),
        words(rng, packed),
        words(rng, size),
        words(rng, size),
    )
    masked = ring.comparison_bit(g, r_bits, c, s_bits, first)
    same(masked, ref.comparison_bit(g, r_bits, c, s_bits, first))
    messages = [masked] + [words(rng, packed) for _ in range(n - 1)]
    d = ring.dabit_open(messages, size)
    same(d, ref.dabit_open(messages, size))
    assert set(d.tolist()) <= {0, 1}
    s, y, sy = words(rng, size), words(rng, size), words(rng, size)
    same(ring.xor_public_bit(d, s, first), ref.xor_public_bit(d, s, first))
    same(ring.dabit_product(d, y, sy), ref.dabit_product(d, y, sy))


@given(n=st.integers(2, 7), size=sizes, seed=seeds)
def test_correction_kernels_agree_and_complete_their_items(n: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = [words(rng, size) for _ in range(n)]
    b = [words(rng, size) for _ in range(n)]
    c_others = [words(rng, size) for _ in range(n - 1)]
    c0 = ring.binary_triple_correction(a, b, c_others)
    same(c0, ref.binary_triple_correction(a, b, c_others))
    assert np.array_equal(ref.xor_shares([c0, *c_others]), ref.xor_shares(a) & ref.xor_shares(b))

    packed = ring.packed_words(size)
    r = [words(rng, size) for _ in range(n)]
    s_bits = [words(rng, packed) for _ in range(n)]
    r_bits_others = [words(rng, size) for _ in range(n - 1)]
    s_others = [words(rng, size) for _ in range(n - 1)]
    got = ring.comparison_corrections(r, s_bits, r_bits_others, s_others)
    same(got, ref.comparison_corrections(r, s_bits, r_bits_others, s_others))
    r_bits0, s0 = got
    whole = ref.sum_shares(r)
    assert np.array_equal(ref.xor_shares([r_bits0, *r_bits_others]), whole)
    s_whole = ref.sum_shares([s0, *s_others])
    s_xor = ref.xor_shares(s_bits)
    assert [int(v) for v in s_whole] == [bit(s_xor, i) for i in range(size)]


@pytest.mark.parametrize("mod", MODULES)
def test_bit_kernels_refuse_operands_that_do_not_fit(mod: ModuleType) -> None:
    four, three, two = (np.ones(k, dtype=U64) for k in (4, 3, 2))
    with pytest.raises(ValueError):
        mod.xor_shares([four, three])
    with pytest.raises(ValueError):
        mod.comparison_leaves(four, three, True)
    with pytest.raises(ValueError):
        mod.tree_masked(four, four, three, three)  # a triple of 2 or 4 words is needed
    with pytest.raises(ValueError):
        mod.tree_combine([four, three], two, two, two, two, True)
    with pytest.raises(ValueError):
        mod.comparison_bit(two, four, four, np.ones(1, dtype=U64), True)
    with pytest.raises(ValueError):
        mod.dabit_open([two, two], 64)
    with pytest.raises(ValueError):
        mod.comparison_corrections([four, four], [two, two], [four], [four])


# --- the reference against Python integers ----------------------------------------------------


@given(size=st.integers(1, 10), seed=seeds)
def test_reference_tree_level_merges_adjacent_bit_pairs(size: int, seed: int) -> None:
    """With one party (no masking), a level computes the carry merge on every bit pair."""
    rng = np.random.default_rng(seed)
    g, p = words(rng, size), words(rng, size)
    half = (size + 1) // 2
    zero = np.zeros(2 * half, dtype=U64)
    message, hi_g = ref.tree_masked(g, p, zero, zero)
    # A single party opening its own message: d = x, e = y; the AND is d AND e.
    new_g, new_p = ref.tree_combine([message], zero, zero, zero, hi_g, True)
    for k in range(32 * size):
        g_lo, g_hi = bit(g, 2 * k), bit(g, 2 * k + 1)
        p_lo, p_hi = bit(p, 2 * k), bit(p, 2 * k + 1)
        assert bit(new_g, k) == g_hi ^ (p_hi & g_lo)
        assert bit(new_p, k) == p_hi & p_lo


def pack(bits: np.ndarray, count: int) -> np.ndarray:
    """0/1 values packed 64 per word, least significant bit first (Python ints)."""
    out = [0] * count
    for i, v in enumerate(bits.tolist()):
        out[i // 64] |= int(v) << (i % 64)
    return np.array(out, dtype=U64)


def _xor_split(values: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    others = [words(rng, values.size) for _ in range(n - 1)]
    return [ref.xor_shares([values, *others]), *others]


def _add_split(values: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    others = [words(rng, values.size) for _ in range(n - 1)]
    return [ref.sub(values, ref.sum_shares(others)) if others else values, *others]


@pytest.mark.parametrize("mod", MODULES)
@settings(max_examples=25)
@given(n=st.integers(2, 5), size=st.integers(1, 150), seed=seeds)
def test_the_kernels_of_one_comparison_give_the_sign_bit(
    mod: ModuleType, n: int, size: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    r = words(rng, size)
    x = words(rng, size)
    x[: size // 3] >>= U64(rng.integers(1, 64))  # some small positive values
    c = ref.add(x, r)  # the opened value
    r_bits = _xor_split(r, n, rng)
    g_p = [mod.comparison_leaves(r_bits[i], c, i == 0) for i in range(n)]
    width = size
    for level in range(6):
        half = (width + 1) // 2
        gates = half if level == 5 else 2 * half
        a, b = _xor_split(words(rng, gates), n, rng), _xor_split(words(rng, gates), n, rng)
        c_shares = [words(rng, gates) for _ in range(n - 1)]
        c_shares.insert(0, mod.binary_triple_correction(a, b, c_shares))
        sent = [mod.tree_masked(*g_p[i], a[i], b[i]) for i in range(n)]
        messages = [m for m, _ in sent]
        g_p = [
            mod.tree_combine(messages, a[i], b[i], c_shares[i], sent[i][1], i == 0)
            for i in range(n)
        ]
        width = half
    borrow = ref.xor_shares([g for g, _ in g_p])
    low = (1 << 63) - 1
    for i in range(size):
        assert bit(borrow, i) == int((int(c[i]) & low) < (int(r[i]) & low))
    # The daBit conversion: s both ways, open b XOR s, then additive shares of b.
    s = rng.integers(0, 2, size, dtype=U64)
    s_packed = pack(s, ring.packed_words(size))
    s_bits, s_add = _xor_split(s_packed, n, rng), _add_split(s, n, rng)
    masked = [mod.comparison_bit(g_p[i][0], r_bits[i], c, s_bits[i], i == 0) for i in range(n)]
    d = mod.dabit_open(masked, size)
    sign = ref.sum_shares([mod.xor_public_bit(d, s_add[i], i == 0) for i in range(n)])
    assert [int(v) for v in sign] == [int(v) >> 63 for v in x]
    y = words(rng, size)
    y_add, sy_add = _add_split(y, n, rng), _add_split(ref.mul(s, y), n, rng)
    product = ref.sum_shares([mod.dabit_product(d, y_add[i], sy_add[i]) for i in range(n)])
    assert [int(v) for v in product] == [
        int(v) * (int(xi) >> 63) for v, xi in zip(y, x, strict=True)
    ]
