"""Exact comparison (smpc.compare) on in-process federations of 2..5 parties.

Every result is checked exactly, in the ring, against numpy on the encoded
plaintext; rounds and bytes are measured by dry runs and by real runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpc import compare
from smpc.errors import ReuseError, ShapeMismatchError
from smpc.fixedpoint import FixedPoint
from smpc.local import LocalFederation
from smpc.preprocessing import Plan, Request
from smpc.runtime import dry_run

FXP = FixedPoint(16)
LIMIT = FXP.max_abs  # 2^46: encodable reals are strictly inside (-LIMIT, LIMIT)
EDGE = LIMIT - 2.0**-6  # the largest float below the limit (float64 spacing there is 2^-6)
parties = st.integers(min_value=2, max_value=5)

special = st.sampled_from(
    [0.0, -0.0, 2.0**-16, -(2.0**-16), 1.0, -1.0, 0.5, -0.5, EDGE, -EDGE, EDGE - 1, 1 - EDGE]
)
reals = st.one_of(
    special,
    st.floats(-EDGE, EDGE, allow_nan=False),
    st.integers(-(2**40), 2**40).map(float),
    st.floats(-1.0, 1.0, allow_nan=False),
)
vectors = st.lists(reals, min_size=1, max_size=40).map(np.array)


def signed(ring_values: np.ndarray) -> np.ndarray:
    return np.asarray(ring_values, dtype=np.uint64).view(np.int64)


def encoded(values: np.ndarray | float) -> np.ndarray:
    """The ring integers the plaintext becomes, as int64."""
    return signed(FXP.encode(np.asarray(values, dtype=np.float64)))


def zeros(rt, size: int, scale: int = 16):
    """A shared tensor without an input round, for counting rounds and bytes."""
    return rt.shared(np.zeros(size, dtype=np.uint64), scale)


# --- exact results -----------------------------------------------------------------------------


@given(n=parties, data=st.data())
def test_every_function_agrees_exactly_with_numpy(n: int, data: st.DataObject) -> None:
    x = data.draw(vectors, label="x")
    y = data.draw(st.lists(reals, min_size=x.size, max_size=x.size).map(np.array), label="y")
    lo, hi = sorted(data.draw(st.lists(reals, min_size=2, max_size=2), label="bounds"))

    def fn(rt, _):
        sx = rt.input(x if rt.party == 0 else None, 0, x.shape)
        sy = rt.input(y if rt.party == n - 1 else None, n - 1, y.shape)
        results = [
            compare.ltz(rt, sx),
            compare.sign(rt, sx),
            compare.relu(rt, sx),
            compare.maximum(rt, sx, sy),
            compare.minimum(rt, sx, sy),
            compare.clip(rt, sx, lo, hi),
        ]
        return [signed(rt.open_ring(r)) for r in results]

    res = LocalFederation(n).run(fn, inputs=[None] * n)
    ex, ey = encoded(x), encoded(y)
    want = [
        (ex < 0).astype(np.int64),
        np.where(ex < 0, -1, 1),
        np.maximum(ex, 0),
        np.maximum(ex, ey),
        np.minimum(ex, ey),
        np.clip(ex, encoded(lo), encoded(hi)),
    ]
    for party_results in res.results:
        for got, expected in zip(party_results, want, strict=True):
            np.testing.assert_array_equal(got, expected)


@given(
    n=parties,
    values=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=70).map(
        lambda v: np.array(v, dtype=np.int64)
    ),
)
def test_ltz_is_exact_for_every_ring_value(n: int, values: np.ndarray) -> None:
    """Integers (scale 0) over the whole signed 64-bit range, including -2^63 and 2^63 - 1."""

    def fn(rt, _):
        x = rt.input(values if rt.party == 1 else None, 1, values.shape, integer=True)
        bit, s = compare.ltz(rt, x), compare.sign(rt, x)
        assert bit.scale == 0 and s.scale == 0
        return rt.open(bit), rt.open(s)

    bit, s = LocalFederation(n).run(fn, inputs=[None] * n).results[0]
    np.testing.assert_array_equal(bit, (values < 0).astype(np.int64))
    np.testing.assert_array_equal(s, np.where(values < 0, -1, 1))


def test_edges_of_the_fixed_point_range_and_of_the_ring() -> None:
    x = np.array([0.0, EDGE, -EDGE, 2.0**-16, -(2.0**-16), 2.0**45, -(2.0**45), 7.0, -7.0])
    extremes = np.array([-(2**63), 2**63 - 1, -1, 0, 1, 2**62, -(2**62)], dtype=np.int64)

    def fn(rt, _):
        sx = rt.input(x if rt.party == 0 else None, 0, x.shape)
        sy = rt.input(-x if rt.party == 1 else None, 1, x.shape)
        si = rt.input(extremes if rt.party == 2 else None, 2, extremes.shape, integer=True)
        return (
            rt.open(compare.ltz(rt, sx)),
            signed(rt.open_ring(compare.maximum(rt, sx, sy))),
            signed(rt.open_ring(compare.clip(rt, sx, -(2.0**45), 2.0**-16))),
            rt.open(compare.ltz(rt, si)),
        )

    bit, biggest, clipped, ring_bit = LocalFederation(3).run(fn, inputs=[None] * 3).results[2]
    ex = encoded(x)
    np.testing.assert_array_equal(bit, (ex < 0).astype(np.int64))
    np.testing.assert_array_equal(biggest, np.abs(ex))
    np.testing.assert_array_equal(clipped, np.clip(ex, encoded(-(2.0**45)), 1))
    np.testing.assert_array_equal(ring_bit, (extremes < 0).astype(np.int64))


def test_shapes_are_kept_and_clip_takes_array_bounds() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(-10, 10, (3, 4))
    lo = rng.uniform(-5, 0, (4,))
    hi = lo + rng.uniform(0, 5, (3, 4))

    def fn(rt, _):
        sx = rt.input(x if rt.party == 0 else None, 0, x.shape)
        out = [compare.ltz(rt, sx), compare.relu(rt, sx), compare.clip(rt, sx, lo, hi)]
        assert [t.shape for t in out] == [(3, 4)] * 3
        assert [t.scale for t in out] == [0, 16, 16]
        return [signed(rt.open_ring(t)) for t in out]

    bit, pos, clipped = LocalFederation(2).run(fn, inputs=[None] * 2).results[0]
    ex = encoded(x)
    np.testing.assert_array_equal(bit, (ex < 0).astype(np.int64))
    np.testing.assert_array_equal(pos, np.maximum(ex, 0))
    np.testing.assert_array_equal(clipped, np.clip(ex, encoded(lo), encoded(hi)))


def test_bad_arguments_are_refused() -> None:
    fed = LocalFederation(2)

    def fn(rt, _):
        x = zeros(rt, 3)
        with pytest.raises(TypeError, match="SharedTensor"):
            compare.ltz(rt, np.zeros(3))  # type: ignore[arg-type]
        with pytest.raises(ShapeMismatchError):
            compare.maximum(rt, x, zeros(rt, 4))
        with pytest.raises(ValueError, match="lo <= hi"):
            compare.clip(rt, x, 1.0, -1.0)
        return True

    assert fed.run(fn, inputs=[None] * 2).results == [True, True]


# --- rounds, bytes, plan -----------------------------------------------------------------------

FUNCTIONS: dict[str, Callable] = {
    "ltz": lambda rt, x: compare.ltz(rt, x),
    "sign": lambda rt, x: compare.sign(rt, x),
    "relu": lambda rt, x: compare.relu(rt, x),
    "maximum": lambda rt, x: compare.maximum(rt, x, x * 2),
    "minimum": lambda rt, x: compare.minimum(rt, x, x * 2),
    "clip": lambda rt, x: compare.clip(rt, x, -1.0, 1.0),
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("size", [1, 63, 64, 1000, 4096])
def test_round_count_is_the_documented_eight(name: str, size: int) -> None:
    run = dry_run(lambda rt: FUNCTIONS[name](rt, zeros(rt, size)), 3)
    assert run.rounds == compare.ROUNDS == 8


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_bytes_per_element_are_the_documented_ones(n: int, name: str) -> None:
    size = 64 * 50
    run = dry_run(lambda rt: FUNCTIONS[name](rt, zeros(rt, size)), n)
    assert run.bytes_sent == compare.BYTES_PER_ELEMENT[name] * size * (n - 1)


def _expected_plan(size: int, product: bool) -> list[Request]:
    requests = [Request("comparison_mask", (size,))]
    if product:
        requests.append(Request("triple", (size,)))
    words = size
    for level in range(6):
        words = (words + 1) // 2
        requests.append(Request("binary_triple", (words if level == 5 else 2 * words,)))
    return requests


@pytest.mark.parametrize("size", [1, 5, 64, 100])
def test_the_plan_is_one_mask_and_six_binary_triples(size: int) -> None:
    assert dry_run(lambda rt: compare.ltz(rt, zeros(rt, size)), 2).plan == Plan(
        tuple(_expected_plan(size, product=False))
    )
    assert dry_run(lambda rt: compare.relu(rt, zeros(rt, size)), 2).plan == Plan(
        tuple(_expected_plan(size, product=True))
    )


@pytest.mark.parametrize("n", [2, 4])
def test_the_dry_run_matches_the_real_run(n: int) -> None:
    """Same plan (every item consumed in order), same rounds and bytes at every party."""
    rng = np.random.default_rng(n)
    x = rng.uniform(-100, 100, 130)

    def fn(rt, value):
        sx = rt.input(value if rt.party == 0 else None, 0, (130,))
        sy = rt.input(value if rt.party == 1 else None, 1, (130,))
        compare.ltz(rt, sx)
        compare.maximum(rt, sx, sy)
        compare.clip(rt, sy, -1.0, 1.0)
        plan = rt.prep.plan
        return rt.prep.position, plan

    res = LocalFederation(n).run(fn, inputs=[x] * n)
    for i in range(n):
        planned = dry_run(fn, n, x, party=i)  # input owners send seeds, so bytes vary by party
        position, plan = res.results[i]
        assert plan == planned.plan and position == len(planned.plan)
        assert res.rounds[i] == planned.rounds == 2 + 3 * compare.ROUNDS
        assert res.bytes_sent[i] == planned.bytes_sent


# --- use-once preprocessing --------------------------------------------------------------------


def test_comparison_items_are_use_once() -> None:
    def fn(rt, _):
        for item in (rt.prep.comparison_mask((5,)), rt.prep.binary_triple((3,))):
            assert len(item.consume()) in (3, 4)
            with pytest.raises(ReuseError):
                item.consume()
        return True

    assert LocalFederation(3).run(fn, inputs=[None] * 3).results == [True] * 3


def test_rough_timing() -> None:
    """Prints a rough throughput; asserts nothing about time."""
    size = 100_000
    x = np.random.default_rng(0).uniform(-1000, 1000, size)

    def fn(rt, _):
        sx = rt.input(x if rt.party == 0 else None, 0, (size,))
        start = time.perf_counter()
        bit = compare.ltz(rt, sx)
        return time.perf_counter() - start, signed(rt.open_ring(bit))

    seconds, bit = LocalFederation(3, transcripts=False).run(fn, inputs=[None] * 3).results[0]
    np.testing.assert_array_equal(bit, (encoded(x) < 0).astype(np.int64))
    print(f"\nltz of {size} elements, 3 parties in one process: {seconds:.3f} s")


@settings(max_examples=5)
@given(n=parties)
def test_empty_tensors_compare_to_empty_tensors(n: int) -> None:
    def fn(rt, _):
        x = zeros(rt, 0)
        return [t.shape for t in (compare.ltz(rt, x), compare.relu(rt, x))]

    assert LocalFederation(n).run(fn, inputs=[None] * n).results[0] == [(0,), (0,)]
