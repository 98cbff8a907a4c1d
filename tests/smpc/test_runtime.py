"""Share, open, linear operations and products on in-process federations of 2..7 parties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpc.errors import (
    FixedPointRangeError,
    JobReplayError,
    PeerTimeoutError,
    ProtocolAbort,
    ReuseError,
    ShapeMismatchError,
    UnknownPartyError,
)
from smpc.fixedpoint import FixedPoint
from smpc.local import LocalFederation
from smpc.runtime import dry_run

FXP = FixedPoint(16)
parties = st.integers(min_value=2, max_value=7)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _floor_shift(values: np.ndarray, bits: int) -> np.ndarray:
    """Exact floor(v / 2^bits) of Python-int object arrays."""
    return np.vectorize(lambda v: v >> bits, otypes=[object])(values)


def _ints(ring_values: np.ndarray) -> np.ndarray:
    return ring_values.astype(np.uint64).view(np.int64).astype(object)


def _input_all(rt, value: np.ndarray, shape: tuple[int, ...], integer: bool = False):
    """Every party inputs one tensor of ``shape``; returns them in party order."""
    return [
        rt.input(value if rt.party == owner else None, owner, shape, integer=integer)
        for owner in range(rt.n_parties)
    ]


@given(n=parties, seed=seeds, size=st.integers(1, 40))
def test_share_open_round_trip_is_exact_in_the_ring(n: int, seed: int, size: int) -> None:
    values = np.random.default_rng(seed).integers(-(2**62), 2**62, size=(n, size))

    def fn(rt, mine):
        xs = _input_all(rt, mine, (size,), integer=True)
        return [rt.open(x) for x in xs]

    res = LocalFederation(n).run(fn, inputs=list(values))
    for opened in res.results:
        np.testing.assert_array_equal(np.stack(opened), values)


@given(n=parties, seed=seeds)
def test_add_sub_and_public_operations_agree_with_numpy(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.uniform(-1000, 1000, size=(n, 3, 4))
    public = rng.uniform(-10, 10, size=(3, 4))
    ints = rng.integers(-50, 50, size=(3, 4))

    def fn(rt, mine):
        xs = _input_all(rt, mine, (3, 4))
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        diff = xs[0] - xs[-1]
        return (
            rt.open(total),
            rt.open(diff),
            rt.open(total + public),
            rt.open(public - diff),
            rt.open(-total * ints),
            rt.open(total.sum()),
            rt.open(total.sum(axis=1)),
        )

    res = LocalFederation(n).run(fn, inputs=list(values))
    enc = FXP.decode(FXP.encode(values))  # the values as encoded
    pub = FXP.decode(FXP.encode(public))
    total, diff, plus, minus, scaled, grand, rows = res.results[-1]
    ulp = 2.0**-16
    np.testing.assert_allclose(total, enc.sum(axis=0), atol=n * ulp)
    np.testing.assert_allclose(diff, enc[0] - enc[-1], atol=ulp)
    np.testing.assert_allclose(plus, enc.sum(axis=0) + pub, atol=n * ulp)
    np.testing.assert_allclose(minus, pub - (enc[0] - enc[-1]), atol=ulp)
    np.testing.assert_allclose(scaled, -enc.sum(axis=0) * ints, atol=1e-6)
    np.testing.assert_allclose(grand, enc.sum(), atol=1e-6)
    np.testing.assert_allclose(rows, enc.sum(axis=0).sum(axis=1), atol=1e-6)


@given(n=parties, seed=seeds, size=st.integers(1, 30))
def test_fixed_point_mul_is_within_one_ulp_of_the_truncated_product(
    n: int, seed: int, size: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-(2**14), 2**14, size)
    y = rng.uniform(-(2**15), 2**15, size) / np.maximum(1.0, np.abs(x))

    def fn(rt, _):
        a = rt.input(x if rt.party == 0 else None, 0, (size,))
        b = rt.input(y if rt.party == n - 1 else None, n - 1, (size,))
        return rt.open_ring(rt.mul(a, b))

    got = _ints(LocalFederation(n).run(fn, inputs=[None] * n).results[0])
    exact = _floor_shift(_ints(FXP.encode(x)) * _ints(FXP.encode(y)), 16)
    assert all(d in (0, 1) for d in got - exact)


@given(n=parties, seed=seeds, size=st.integers(1, 30))
def test_integer_mul_is_exact_in_the_ring(n: int, seed: int, size: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**64, size, dtype=np.uint64).view(np.int64)
    y = rng.integers(0, 2**64, size, dtype=np.uint64).view(np.int64)

    def fn(rt, _):
        a = rt.input(x if rt.party == 0 else None, 0, (size,), integer=True)
        b = rt.input(y if rt.party == 1 else None, 1, (size,), integer=True)
        return rt.open_ring(rt.mul(a, b))

    got = LocalFederation(n).run(fn, inputs=[None] * n).results[1]
    np.testing.assert_array_equal(got, x.view(np.uint64) * y.view(np.uint64))


@given(n=parties, seed=seeds, m=st.integers(1, 6), k=st.integers(1, 6), p=st.integers(1, 6))
def test_fixed_point_matmul_is_within_one_ulp_of_the_truncated_product(
    n: int, seed: int, m: int, k: int, p: int
) -> None:
    rng = np.random.default_rng(seed)
    a = rng.uniform(-50, 50, (m, k))
    b = rng.uniform(-50, 50, (k, p))

    def fn(rt, _):
        sa = rt.input(a if rt.party == 0 else None, 0, (m, k))
        sb = rt.input(b if rt.party == 1 else None, 1, (k, p))
        return rt.open_ring(rt.matmul(sa, sb))

    got = _ints(LocalFederation(n).run(fn, inputs=[None] * n).results[0])
    exact = _floor_shift(_ints(FXP.encode(a)).dot(_ints(FXP.encode(b))), 16)
    assert all(d in (0, 1) for d in (got - exact).ravel())


def test_truncation_of_a_million_products_is_never_off_by_more_than_one_ulp() -> None:
    rng = np.random.default_rng(2024)
    size = 10**6
    # |x * y| < 2^30 as the fixed-point contract requires, spread over all magnitudes.
    x = rng.uniform(-1, 1, size) * 2.0 ** rng.uniform(-16, 15, size)
    y = rng.uniform(-1, 1, size) * 2.0**29.9 / np.maximum(np.abs(x), 2.0**-16) / 2**16
    y = np.clip(y, -(2.0**30), 2.0**30)
    assert np.all(np.abs(x * y) < 2.0**30)

    def fn(rt, _):
        a = rt.input(x if rt.party == 0 else None, 0, (size,))
        b = rt.input(y if rt.party == 1 else None, 1, (size,))
        return rt.open_ring(rt.mul(a, b))

    got = LocalFederation(3, transcripts=False).run(fn, inputs=[None] * 3).results[0]
    # floor((X*Y) / 2^16) exactly, with X*Y < 2^62 computed in 128-bit via Python ints in chunks.
    xe, ye = FXP.encode(x).view(np.int64), FXP.encode(y).view(np.int64)
    prod_hi = np.floor_divide(xe.astype(object) * ye.astype(object), 2**16)
    delta = got.view(np.int64).astype(object) - prod_hi
    assert set(np.unique(delta.astype(np.int64)).tolist()) <= {0, 1}


def test_opening_to_named_parties_reveals_to_them_only() -> None:
    value = np.arange(6.0).reshape(2, 3)

    def fn(rt, _):
        x = rt.input(value if rt.party == 2 else None, 2, (2, 3))
        return rt.open(x, to=[0, 3])

    res = LocalFederation(4).run(fn, inputs=[None] * 4)
    np.testing.assert_allclose(res.results[0], value)
    np.testing.assert_allclose(res.results[3], value)
    assert res.results[1] is None and res.results[2] is None


def test_a_partys_share_of_a_fixed_input_is_uniform_and_fresh() -> None:
    size = 200_000
    constant = np.full(size, 3.25)

    def fn(rt, _):
        return rt.input(constant if rt.party == 0 else None, 0, (size,)).share.copy()

    fed = LocalFederation(3)
    first = fed.run(fn, inputs=[None] * 3).results
    second = fed.run(fn, inputs=[None] * 3).results
    for share in (first[0], first[1], first[2]):
        for byte in (share >> np.uint64(56), share & np.uint64(0xFF)):
            counts = np.bincount(byte.astype(np.int64), minlength=256)
            expected = size / 256
            chi2 = float(((counts - expected) ** 2 / expected).sum())
            # df = 255: mean 255, sd sqrt(510) ~ 22.6; 8 sd is far in the tail.
            assert chi2 < 255 + 8 * np.sqrt(2 * 255)
    for party in range(3):
        assert np.mean(first[party] == second[party]) < 1e-3


def test_dry_run_plan_and_rounds_match_the_real_run() -> None:
    def fn(rt, _):
        a = rt.input(np.ones((4, 4)) if rt.party == 0 else None, 0, (4, 4))
        b = rt.mul(a, a)
        c = rt.matmul(b, a)
        return rt.open(rt.mul(c, b).sum())

    report = dry_run(fn, 3, None)
    kinds = [r.kind for r in report.plan.requests]
    assert kinds == ["triple", "truncation", "matrix_triple", "truncation", "triple", "truncation"]
    res = LocalFederation(3).run(fn, inputs=[None] * 3)
    assert res.rounds == [report.rounds] * 3
    assert res.bytes_sent[0] == report.bytes_sent
    np.testing.assert_allclose(res.results[0], (np.full((4, 4), 4.0) * 1.0).sum(), rtol=1e-4)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 2.0**47])
def test_bad_input_values_raise_a_range_error_and_abort_the_job(bad: float) -> None:
    value = np.zeros((3, 2))
    value[1, 1] = bad

    def fn(rt, _):
        x = rt.input(value if rt.party == 1 else None, 1, (3, 2), columns=["age", "sbp"])
        return rt.open(x)

    prepared = LocalFederation(3).prepare(fn, inputs=[None] * 3)
    with pytest.raises(FixedPointRangeError, match="column 'sbp' row 1") as err:
        prepared.run()
    assert str(bad) not in str(err.value)
    others = [prepared.errors[0], prepared.errors[2]]
    assert all(isinstance(e, ProtocolAbort) and "party 1" in str(e) for e in others)


def test_shape_mismatches_are_refused() -> None:
    def fn(rt, _):
        a = rt.input(np.ones(3) if rt.party == 0 else None, 0, (3,))
        b = rt.input(np.ones(4) if rt.party == 1 else None, 1, (4,))
        with pytest.raises(ShapeMismatchError):
            _ = a + b
        with pytest.raises(ShapeMismatchError):
            _ = a * np.ones(4)
        with pytest.raises(ShapeMismatchError):
            rt.mul(a, b)
        with pytest.raises(ShapeMismatchError):
            rt.matmul(a.reshape(3, 1), b.reshape(4, 1))
        return True

    assert LocalFederation(2).run(fn, inputs=[None] * 2).results == [True, True]


def test_declared_input_shape_must_match_the_owners_value() -> None:
    def fn(rt, _):
        return rt.input(np.ones(5) if rt.party == 0 else None, 0, (4,))

    with pytest.raises(ShapeMismatchError, match="declares"):
        LocalFederation(2).run(fn, inputs=[None] * 2)


def test_wrong_dtypes_are_refused() -> None:
    def fn(rt, _):
        return rt.input(np.array(["a", "b"]) if rt.party == 0 else None, 0, (2,))

    with pytest.raises(TypeError, match="dtype"):
        LocalFederation(2).run(fn, inputs=[None] * 2)
    fed = LocalFederation(2)
    with pytest.raises(TypeError, match="uint64"):
        type(fed.share(np.ones(2))[0])(np.ones(2), 0, FXP, 16)


def test_opening_to_an_unknown_party_is_refused() -> None:
    def fn(rt, _):
        x = rt.input(np.ones(2) if rt.party == 0 else None, 0, (2,))
        return rt.open(x, to=[5])

    with pytest.raises(UnknownPartyError, match="no party 5"):
        LocalFederation(3).run(fn, inputs=[None] * 3)


def test_a_consumed_triple_cannot_be_used_again() -> None:
    def fn(rt, _):
        triple = rt.prep.triple((2,))
        triple.consume()
        with pytest.raises(ReuseError):
            triple.consume()
        return True

    assert LocalFederation(2).run(fn, inputs=[None] * 2).results == [True, True]


def test_a_repeated_job_id_is_refused() -> None:
    fed = LocalFederation(2)
    fed.run(lambda rt: rt.party, job="job-1")
    with pytest.raises(JobReplayError, match="job-1"):
        fed.run(lambda rt: rt.party, job="job-1")


def test_a_silent_party_times_the_job_out_naming_it() -> None:
    def fn(rt, _):
        if rt.party == 1:
            return None  # never sends its share
        x = rt.input(np.ones(2) if rt.party == 0 else None, 0, (2,))
        return rt.open(x)

    prepared = LocalFederation(3, timeout=0.5).prepare(fn, inputs=[None] * 3)
    with pytest.raises(PeerTimeoutError, match="party 1") as err:
        prepared.run()
    assert prepared.job in str(err.value)


@given(n=parties, seed=seeds)
def test_input_all_shares_every_partys_tensor_in_one_round(n: int, seed: int) -> None:
    values = np.random.default_rng(seed).uniform(-100, 100, size=(n, 2, 3))

    def fn(rt, mine):
        before = rt.rounds
        xs = rt.input_all(mine, (2, 3))
        assert rt.rounds == before + 1
        return [rt.open(x) for x in xs]

    opened = LocalFederation(n).run(fn, inputs=list(values)).results[0]
    np.testing.assert_allclose(np.stack(opened), values, atol=2.0**-16)


@given(n=parties, seed=seeds)
def test_input_all_announcing_shares_and_publishes_in_one_round(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(-1000, 1000, size=(n, 4))
    words = rng.integers(0, 2**63, size=(n, 3), dtype=np.uint64)

    def fn(rt, mine):
        before = rt.rounds
        xs, heard = rt.input_all_announcing(mine, (4,), words[rt.party], integer=True)
        assert rt.rounds == before + 1
        return [rt.open_ring(x).view(np.int64) for x in xs], heard

    for opened, heard in LocalFederation(n).run(fn, inputs=list(values)).results:
        np.testing.assert_array_equal(np.stack(opened), values)
        np.testing.assert_array_equal(np.stack(heard), words)


def test_public_values_derived_from_an_opening_can_be_guarded_while_planning() -> None:
    def fn(rt, count):
        n = rt.open(rt.input_all(count, (1,), integer=True)[0])[0]
        inverse = 1.0 / np.sqrt(n) if not rt.planning else 0.0
        return rt.open(rt.input(np.array([inverse]) if rt.party == 0 else None, 0, (1,)))

    res = LocalFederation(2).run(fn, inputs=[np.array([4]), np.array([9])])
    np.testing.assert_allclose(res.results[1], [0.5], atol=2.0**-16)
    assert dry_run(fn, 2, np.array([4])).result[0] == 0.0


def test_input_each_shares_tensors_of_different_shapes_in_one_round() -> None:
    rows = [3, None, 5]
    data = [np.arange(r * 2, dtype=float).reshape(r, 2) if r else None for r in rows]

    def fn(rt, mine):
        before = rt.rounds
        shared = rt.input_each(mine, [(r, 2) if r else None for r in rows])
        assert rt.rounds == before + 1 and shared[1] is None
        return [rt.open(x) if x is not None else None for x in shared]

    opened = LocalFederation(3).run(fn, inputs=data).results[1]
    np.testing.assert_allclose(opened[0], data[0])
    np.testing.assert_allclose(opened[2], data[2])


def test_open_parts_reveals_each_block_of_rows_to_its_recipient_only() -> None:
    value = np.arange(12.0).reshape(6, 2)

    def fn(rt, _):
        x = rt.input(value if rt.party == 0 else None, 0, (6, 2))
        return rt.open_parts(x, recipients=[2, 0], sizes=[4, 2])

    res = LocalFederation(3).run(fn, inputs=[None] * 3).results
    np.testing.assert_allclose(res[2], value[:4])
    np.testing.assert_allclose(res[0], value[4:])
    assert res[1] is None
    with pytest.raises(ShapeMismatchError):
        LocalFederation(2).run(
            lambda rt: rt.open_parts(
                rt.input(value if rt.party == 0 else None, 0, (6, 2)), [0, 1], [1, 1]
            )
        )
