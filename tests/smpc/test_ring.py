"""The Numba kernels in smpc.ring agree exactly with smpc.ring_reference.

The reference functions are in turn checked against Python integer
arithmetic mod 2^64 on small inputs, and the Beaver and truncation kernels
against the identities they implement, on secret-shared values built here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from smpc import ring
from smpc import ring_reference as ref

MOD = 1 << 64
U64 = np.uint64
MODULES = [pytest.param(ref, id="reference"), pytest.param(ring, id="numba")]

shapes = array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)
nonempty_shapes = array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6)


def u64_arrays(shape: tuple[int, ...] | st.SearchStrategy) -> st.SearchStrategy:
    """uint64 arrays over the whole ring, of a fixed shape or a shape strategy."""
    return arrays(U64, shape, elements=st.integers(0, MOD - 1))


def assert_same(got: object, want: object) -> None:
    """Equal values, shape and dtype (uint64); a 0-d array and a scalar count as equal."""
    got_a, want_a = np.asarray(got), np.asarray(want)
    assert got_a.dtype == U64, got_a.dtype
    assert want_a.dtype == U64, want_a.dtype
    assert got_a.shape == want_a.shape
    assert np.array_equal(got_a, want_a)


def py(a: np.ndarray) -> list[int]:
    """The elements of ``a`` (row-major) as Python ints."""
    return [int(v) for v in np.asarray(a).ravel()]


def unchanged(call: Callable[[], object], *inputs: np.ndarray | Sequence[np.ndarray]) -> object:
    """Run ``call`` and check it neither modified nor froze any input array."""
    flat: list[np.ndarray] = []
    for item in inputs:
        flat.extend(item if isinstance(item, list | tuple) else [item])
    before = [(a.copy(), a.flags.writeable) for a in flat]
    result = call()
    for a, (copy, writeable) in zip(flat, before, strict=True):
        assert np.array_equal(a, copy), "an input array was modified"
        assert a.flags.writeable == writeable, "an input array's write flag changed"
    return result


@st.composite
def same_shape(draw: st.DrawFn, count: int, shape_strategy: st.SearchStrategy = shapes) -> list:
    """``count`` uint64 arrays sharing one drawn shape."""
    shape = draw(shape_strategy)
    return [draw(u64_arrays(shape)) for _ in range(count)]


@st.composite
def share_lists(draw: st.DrawFn, min_parties: int = 2, max_parties: int = 7) -> list:
    """Between ``min_parties`` and ``max_parties`` same-shape share arrays."""
    n = draw(st.integers(min_parties, max_parties))
    return draw(same_shape(n))


# --- numba kernels agree with the reference ------------------------------------------------


@given(same_shape(2))
def test_add_agrees(pair: list[np.ndarray]) -> None:
    a, b = pair
    assert_same(unchanged(lambda: ring.add(a, b), a, b), ref.add(a, b))


@given(same_shape(2))
def test_sub_agrees(pair: list[np.ndarray]) -> None:
    a, b = pair
    assert_same(unchanged(lambda: ring.sub(a, b), a, b), ref.sub(a, b))


@given(u64_arrays(shapes))
def test_neg_agrees(a: np.ndarray) -> None:
    assert_same(unchanged(lambda: ring.neg(a), a), ref.neg(a))


@given(same_shape(2))
def test_mul_agrees(pair: list[np.ndarray]) -> None:
    a, b = pair
    assert_same(unchanged(lambda: ring.mul(a, b), a, b), ref.mul(a, b))


@given(u64_arrays(shapes))
def test_total_agrees(a: np.ndarray) -> None:
    got = unchanged(lambda: ring.total(a), a)
    assert isinstance(got, np.uint64)
    assert_same(got, ref.total(a))


@given(u64_arrays(array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=7)))
def test_sum_axis0_agrees(a: np.ndarray) -> None:
    assert_same(unchanged(lambda: ring.sum_axis0(a), a), ref.sum_axis0(a))


@given(share_lists())
def test_sum_shares_agrees(shares: list[np.ndarray]) -> None:
    assert_same(unchanged(lambda: ring.sum_shares(shares), shares), ref.sum_shares(shares))


@st.composite
def matmul_operands(draw: st.DrawFn, max_side: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """An (m x k) and a (k x n) uint64 matrix with small random sides (zero allowed)."""
    m, k, n = (draw(st.integers(0, max_side)) for _ in range(3))
    return draw(u64_arrays((m, k))), draw(u64_arrays((k, n)))


@given(matmul_operands())
def test_matmul_agrees(operands: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = operands
    assert_same(unchanged(lambda: ring.matmul(a, b), a, b), ref.matmul(a, b))


@given(same_shape(4))
def test_beaver_masked_agrees(arrays4: list[np.ndarray]) -> None:
    x, a, y, b = arrays4
    got = unchanged(lambda: ring.beaver_masked(x, a, y, b), x, a, y, b)
    assert_same(got, ref.beaver_masked(x, a, y, b))


@st.composite
def beaver_product_args(draw: st.DrawFn, with_mask: bool) -> tuple:
    """Random messages of 2..7 parties, triple shares, and a mask (or the empty array)."""
    shape = draw(nonempty_shapes)
    size = int(np.prod(shape))
    n = draw(st.integers(2, 7))
    masked = [draw(u64_arrays((2 * size,))) for _ in range(n)]
    a, b, c = (draw(u64_arrays(shape)) for _ in range(3))
    mask = draw(u64_arrays(shape)) if with_mask else np.empty(0, dtype=U64)
    return masked, a, b, c, mask


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("with_mask", [True, False])
@settings(max_examples=20)
@given(data=st.data())
def test_beaver_product_agrees(first: bool, with_mask: bool, data: st.DataObject) -> None:
    masked, a, b, c, mask = data.draw(beaver_product_args(with_mask))
    got = unchanged(
        lambda: ring.beaver_product(masked, a, b, c, mask, first), masked, a, b, c, mask
    )
    assert_same(got, ref.beaver_product(masked, a, b, c, mask, first))


@given(same_shape(2), st.booleans())
def test_truncation_masked_agrees(pair: list[np.ndarray], first: bool) -> None:
    z, r = pair
    got = unchanged(lambda: ring.truncation_masked(z, r, first), z, r)
    assert_same(got, ref.truncation_masked(z, r, first))


@st.composite
def truncation_finish_args(draw: st.DrawFn) -> tuple:
    """Random masked shares of 2..7 parties and random r_low / r_top shares."""
    shape = draw(nonempty_shapes)
    n = draw(st.integers(2, 7))
    masked = [draw(u64_arrays(shape)) for _ in range(n)]
    r_low, r_top = draw(u64_arrays(shape)), draw(u64_arrays(shape))
    return masked, r_low, r_top


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("frac_bits", [0, 1, 13, 16, 30, 62])
@settings(max_examples=10)
@given(args=truncation_finish_args())
def test_truncation_finish_agrees(first: bool, frac_bits: int, args: tuple) -> None:
    masked, r_low, r_top = args
    got = unchanged(
        lambda: ring.truncation_finish(masked, r_low, r_top, frac_bits, first),
        masked,
        r_low,
        r_top,
    )
    assert_same(got, ref.truncation_finish(masked, r_low, r_top, frac_bits, first))


@given(u64_arrays(array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6)))
def test_kernels_agree_on_non_contiguous_views(a: np.ndarray) -> None:
    """Transposed and strided views give the same results as their contiguous copies."""
    t = a.T
    s = a[:, ::2]
    assert_same(ring.add(t, t), ref.add(t, t))
    assert_same(ring.sub(s, s[::-1]), ref.sub(s, s[::-1]))
    assert_same(ring.mul(t, t), ref.mul(t, t))
    assert_same(ring.neg(s), ref.neg(s))
    assert_same(ring.total(s), ref.total(s))
    assert_same(ring.sum_axis0(t), ref.sum_axis0(t))
    assert_same(ring.sum_shares([t, t, t]), ref.sum_shares([t, t, t]))
    assert_same(ring.matmul(t, a), ref.matmul(t, a))


# --- the reference against Python integers ---------------------------------------------------


@pytest.mark.parametrize("mod", MODULES)
@given(pair=same_shape(2, array_shapes(min_dims=1, max_dims=1, min_side=0, max_side=8)))
def test_elementwise_match_python_ints(mod: ModuleType, pair: list[np.ndarray]) -> None:
    a, b = pair
    xs, ys = py(a), py(b)
    assert py(mod.add(a, b)) == [(x + y) % MOD for x, y in zip(xs, ys, strict=True)]
    assert py(mod.sub(a, b)) == [(x - y) % MOD for x, y in zip(xs, ys, strict=True)]
    assert py(mod.mul(a, b)) == [(x * y) % MOD for x, y in zip(xs, ys, strict=True)]
    assert py(mod.neg(a)) == [(-x) % MOD for x in xs]
    assert int(mod.total(a)) == sum(xs) % MOD


@pytest.mark.parametrize("mod", MODULES)
@given(a=u64_arrays(array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=5)))
def test_sum_axis0_matches_python_ints(mod: ModuleType, a: np.ndarray) -> None:
    rows = [[int(v) for v in row] for row in a]
    want = [sum(row[j] for row in rows) % MOD for j in range(a.shape[1])]
    assert py(mod.sum_axis0(a)) == want


@pytest.mark.parametrize("mod", MODULES)
@given(shares=share_lists())
def test_sum_shares_matches_python_ints(mod: ModuleType, shares: list[np.ndarray]) -> None:
    columns = zip(*(py(s) for s in shares), strict=True)
    assert py(mod.sum_shares(shares)) == [sum(col) % MOD for col in columns]


@pytest.mark.parametrize("mod", MODULES)
@given(operands=matmul_operands(max_side=4))
def test_matmul_matches_triple_loop(
    mod: ModuleType, operands: tuple[np.ndarray, np.ndarray]
) -> None:
    a, b = operands
    m, k = a.shape
    n = b.shape[1]
    want = [[0] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            acc = 0
            for p in range(k):
                acc += int(a[i, p]) * int(b[p, j])
            want[i][j] = acc % MOD
    got = mod.matmul(a, b)
    assert got.shape == (m, n)
    assert [[int(v) for v in row] for row in got] == want


@pytest.mark.parametrize("mod", MODULES)
@given(arrays4=same_shape(4, array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=5)))
def test_beaver_masked_matches_python_ints(mod: ModuleType, arrays4: list[np.ndarray]) -> None:
    x, a, y, b = (py(v) for v in arrays4)
    want = [(p - q) % MOD for p, q in zip(x, a, strict=True)]
    want += [(p - q) % MOD for p, q in zip(y, b, strict=True)]
    assert py(mod.beaver_masked(*arrays4)) == want


def random_ints(rng: np.random.Generator, size: int) -> list[int]:
    """``size`` uniform ring elements as Python ints (test randomness, not secrets)."""
    return [int(v) for v in rng.integers(0, MOD, size=size, dtype=U64, endpoint=False)]


def split(values: list[int], n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Additive shares mod 2^64 of Python ints: n-1 random arrays plus the remainder."""
    shares = [np.array(random_ints(rng, len(values)), dtype=U64) for _ in range(n - 1)]
    last = [(v - sum(int(s[i]) for s in shares)) % MOD for i, v in enumerate(values)]
    return [*shares, np.array(last, dtype=U64)]


@pytest.mark.parametrize("mod", MODULES)
@given(
    n=st.integers(2, 7),
    size=st.integers(1, 6),
    with_mask=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_beaver_protocol_reconstructs_product(
    mod: ModuleType, n: int, size: int, with_mask: bool, seed: int
) -> None:
    """Shares of x, y and a triple (c = a*b) give shares of x*y (+ r + 2^62 when masked)."""
    rng = np.random.default_rng(seed)
    x, y, a, b, r = (random_ints(rng, size) for _ in range(5))
    c = [(p * q) % MOD for p, q in zip(a, b, strict=True)]
    xs, ys, as_, bs, cs, rs = (split(v, n, rng) for v in (x, y, a, b, c, r))
    messages = [mod.beaver_masked(xs[i], as_[i], ys[i], bs[i]) for i in range(n)]
    empty = np.empty(0, dtype=U64)
    outputs = [
        mod.beaver_product(messages, as_[i], bs[i], cs[i], rs[i] if with_mask else empty, i == 0)
        for i in range(n)
    ]
    opened = [sum(int(o[j]) for o in outputs) % MOD for j in range(size)]
    offset = [(rj + (1 << 62)) if with_mask else 0 for rj in r]
    assert opened == [(p * q + o) % MOD for p, q, o in zip(x, y, offset, strict=True)]


@pytest.mark.parametrize("mod", MODULES)
@given(n=st.integers(2, 7), size=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_truncation_masked_opens_to_z_plus_r_plus_offset(
    mod: ModuleType, n: int, size: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    z, r = random_ints(rng, size), random_ints(rng, size)
    zs, rs = split(z, n, rng), split(r, n, rng)
    opened = mod.sum_shares([mod.truncation_masked(zs[i], rs[i], i == 0) for i in range(n)])
    assert py(opened) == [(p + q + (1 << 62)) % MOD for p, q in zip(z, r, strict=True)]


def truncate_shared(
    mod: ModuleType, n: int, z: list[int], frac_bits: int, rng: np.random.Generator
) -> list[int]:
    """Share z among n parties, run the truncation kernels, open: the signed results."""
    r = random_ints(rng, len(z))
    zs = split([v % MOD for v in z], n, rng)
    rs = split(r, n, rng)
    lows = split([(v % (1 << 63)) >> frac_bits for v in r], n, rng)
    tops = split([v >> 63 for v in r], n, rng)
    masked = [mod.truncation_masked(zs[i], rs[i], i == 0) for i in range(n)]
    outputs = [mod.truncation_finish(masked, lows[i], tops[i], frac_bits, i == 0) for i in range(n)]
    return [v - MOD if v >= 1 << 63 else v for v in py(mod.sum_shares(outputs))]


truncation_inputs = {
    "n": st.integers(2, 7),
    "z": st.lists(st.integers(-(2**62) + 1, 2**62 - 1), min_size=1, max_size=8),
    "frac_bits": st.sampled_from([0, 1, 8, 12, 16, 20, 32, 40, 62]),
    "seed": st.integers(0, 2**32 - 1),
}


@pytest.mark.parametrize("mod", MODULES)
@given(**truncation_inputs)
def test_truncation_finish_is_within_one_unit(
    mod: ModuleType, n: int, z: list[int], frac_bits: int, seed: int
) -> None:
    """The opened result is floor(z / 2^F) or ceil(z / 2^F), for signed |z| < 2^62."""
    got = truncate_shared(mod, n, z, frac_bits, np.random.default_rng(seed))
    for value, result in zip(z, got, strict=True):
        floor = value >> frac_bits  # Python's >> on ints is floor division by 2^F
        ceil = -((-value) >> frac_bits)
        assert result in (floor, ceil), (value, frac_bits, result)


@pytest.mark.parametrize("mod", MODULES)
@given(**truncation_inputs)
def test_truncation_finish_is_floor_or_one_more(
    mod: ModuleType, n: int, z: list[int], frac_bits: int, seed: int
) -> None:
    """The documented bound: floor(z / 2^F) or one more, never anything else."""
    got = truncate_shared(mod, n, z, frac_bits, np.random.default_rng(seed))
    for value, result in zip(z, got, strict=True):
        floor = value >> frac_bits
        assert result in (floor, floor + 1), (value, frac_bits, result)


@pytest.mark.parametrize("mod", MODULES)
@given(
    n=st.integers(2, 7),
    z=st.lists(st.integers(-(2**46) + 1, 2**46 - 1), min_size=1, max_size=8),
    seed=st.integers(0, 2**32 - 1),
)
def test_truncation_of_multiple_of_2f_is_exact(
    mod: ModuleType, n: int, z: list[int], seed: int
) -> None:
    """z = q * 2^F truncates to exactly q: the only error is a carry from z's low F bits."""
    frac_bits = 16
    got = truncate_shared(
        mod, n, [q << frac_bits for q in z], frac_bits, np.random.default_rng(seed)
    )
    assert got == z


@pytest.mark.parametrize("mod", MODULES)
def test_mismatched_share_sizes_raise(mod: ModuleType) -> None:
    """A share or message one element short is refused (ValueError), never read past its end."""
    full, short = np.ones(4, dtype=U64), np.ones(3, dtype=U64)
    empty = np.empty(0, dtype=U64)
    with pytest.raises(ValueError):
        mod.sum_shares([full, short])
    with pytest.raises(ValueError):
        mod.beaver_product(
            [np.ones(8, dtype=U64), np.ones(7, dtype=U64)], full, full, full, empty, True
        )
    with pytest.raises(ValueError):
        mod.truncation_finish([full, short], full, full, 16, True)


# --- the dealer's correction kernels ---------------------------------------------------------


@given(n=st.integers(2, 7), size=st.integers(1, 8), seed=st.integers(0, 2**32 - 1))
def test_triple_correction_agrees_and_completes_a_triple(n: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = [rng.integers(0, 2**64, size, dtype=U64) for _ in range(n)]
    b = [rng.integers(0, 2**64, size, dtype=U64) for _ in range(n)]
    c_others = [rng.integers(0, 2**64, size, dtype=U64) for _ in range(n - 1)]
    got = unchanged(lambda: ring.triple_correction(a, b, c_others), a, b, c_others)
    assert_same(got, ref.triple_correction(a, b, c_others))
    # With the correction as the first party's c, the c shares add up to a*b (Python ints).
    for i in range(size):
        sa = sum(int(s[i]) for s in a) % MOD
        sb = sum(int(s[i]) for s in b) % MOD
        assert (int(got[i]) + sum(int(s[i]) for s in c_others)) % MOD == sa * sb % MOD


@given(
    n=st.integers(2, 7),
    size=st.integers(1, 8),
    frac_bits=st.sampled_from([0, 1, 16, 20, 62]),
    seed=st.integers(0, 2**32 - 1),
)
def test_truncation_corrections_agree_and_complete_a_tuple(
    n: int, size: int, frac_bits: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    r = [rng.integers(0, 2**64, size, dtype=U64) for _ in range(n)]
    lows = [rng.integers(0, 2**64, size, dtype=U64) for _ in range(n - 1)]
    tops = [rng.integers(0, 2**64, size, dtype=U64) for _ in range(n - 1)]
    low, top = unchanged(lambda: ring.truncation_corrections(r, lows, tops, frac_bits), r, lows)
    want_low, want_top = ref.truncation_corrections(r, lows, tops, frac_bits)
    assert_same(low, want_low)
    assert_same(top, want_top)
    for i in range(size):
        whole = sum(int(s[i]) for s in r) % MOD
        assert (int(low[i]) + sum(int(s[i]) for s in lows)) % MOD == (
            whole % (1 << 63)
        ) >> frac_bits
        assert (int(top[i]) + sum(int(s[i]) for s in tops)) % MOD == whole >> 63


@pytest.mark.parametrize("mod", MODULES)
def test_correction_kernels_refuse_short_shares(mod: ModuleType) -> None:
    full, short = np.ones(4, dtype=U64), np.ones(3, dtype=U64)
    with pytest.raises(ValueError):
        mod.triple_correction([full, full], [full, short], [full])
    with pytest.raises(ValueError):
        mod.truncation_corrections([full, full], [short], [full], 16)


# --- encoding reals ------------------------------------------------------------------------


finite_or_not = st.one_of(
    st.floats(-(2.0**50), 2.0**50, allow_nan=False),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.5, -0.5, 1.5, -2.5]),
)


@given(values=arrays(np.float64, nonempty_shapes, elements=finite_or_not))
def test_from_float_agrees_on_values_and_on_the_first_bad_index(values: np.ndarray) -> None:
    scale, bound = 2.0**16, 2.0**46
    got, got_bad = ring.from_float(values, scale, bound)
    want, want_bad = ref.from_float(values, scale, bound)
    assert got_bad == want_bad
    # Python's round() is the independent oracle: half to even, like np.rint.
    good = values.ravel() if want_bad < 0 else values.ravel()[:want_bad]
    expected = [round(v * scale) % MOD for v in good.tolist()]
    assert py(got)[: len(good)] == expected
    assert py(want)[: len(good)] == expected
    bad_mask = ~(np.abs(values.ravel()) < bound)
    assert want_bad == (int(np.argmax(bad_mask)) if bad_mask.any() else -1)


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


@pytest.mark.parametrize("first", [True, False])
@settings(max_examples=20)
@given(data=st.data())
def test_product_kernels_agree_on_read_only_flat_inputs(first: bool, data: st.DataObject) -> None:
    """Read-only flat arrays go to the kernels as they are (no view per call): same results."""
    size = data.draw(st.integers(1, 40))
    n = data.draw(st.integers(2, 5))
    x, a, y, b, c, r, low, top = (_read_only(data.draw(u64_arrays((size,)))) for _ in range(8))
    messages = [_read_only(data.draw(u64_arrays((2 * size,)))) for _ in range(n)]
    masked = [_read_only(data.draw(u64_arrays((size,)))) for _ in range(n)]
    assert_same(ring.beaver_masked(x, a, y, b), ref.beaver_masked(x, a, y, b))
    assert_same(
        ring.beaver_product(messages, a, b, c, r, first),
        ref.beaver_product(messages, a, b, c, r, first),
    )
    assert_same(
        ring.truncation_finish(masked, low, top, 16, first),
        ref.truncation_finish(masked, low, top, 16, first),
    )


def test_a_share_of_the_wrong_size_is_refused_whatever_its_flags() -> None:
    from smpc.errors import ShapeMismatchError

    a = _read_only(np.arange(3, dtype=U64))
    short = _read_only(np.arange(2, dtype=U64))
    with pytest.raises(ShapeMismatchError):
        ring.beaver_product([np.zeros(6, dtype=U64)] * 2, a, short, a, a, True)
    with pytest.raises(ShapeMismatchError):
        ring.truncation_finish([a, a], a, short, 16, True)
