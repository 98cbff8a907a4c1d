"""reciprocal, inv_sqrt and sqrt: measured error on dense grids, saturation, rounds, misuse."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from smpc import inverse
from smpc.local import LocalFederation, reconstruct
from smpc.runtime import dry_run

N_PARTIES = 3
UNITS = 3  # absolute slack of the documented bound, in units of 2^-F


def _run(fed: LocalFederation, fn: Callable, x: np.ndarray, **kwargs: object) -> np.ndarray:
    result = fed.run(lambda rt, s: fn(rt, s, **kwargs), fed.share(x))
    return fed.fxp.decode(reconstruct(result.results), result.results[0].scale)


def _grid(lo: float, hi: float, frac_bits: int, count: int = 20_000) -> np.ndarray:
    """Fixed-point values spread evenly in log scale over [lo, hi)."""
    x = np.round(np.geomspace(lo, hi, count, endpoint=False) * 2.0**frac_bits) / 2.0**frac_bits
    return np.unique(x[(x >= lo) & (x < hi)])


CASES = {
    "reciprocal": (inverse.reciprocal, lambda x: 1.0 / x, lambda f: (-8, f)),
    "inv_sqrt": (inverse.inv_sqrt, lambda x: 1.0 / np.sqrt(x), lambda f: (-8, min(2 * f, 57 - f))),
    "sqrt": (inverse.sqrt, np.sqrt, lambda f: (-f, 62 - 2 * f)),
}


@pytest.mark.parametrize("frac_bits", [16, 20])
@pytest.mark.parametrize("name", sorted(CASES))
def test_error_over_the_default_range_within_the_documented_bound(
    name: str, frac_bits: int
) -> None:
    fn, oracle, octaves = CASES[name]
    lo, hi = octaves(frac_bits)
    fed = LocalFederation(N_PARTIES, frac_bits=frac_bits, transcripts=False)
    x = _grid(2.0**lo, 2.0**hi, frac_bits)
    want = oracle(x)
    error = np.abs(_run(fed, fn, x) - want)
    bound = UNITS * 2.0**-frac_bits + inverse.MAX_RELATIVE_ERROR * want
    worst = np.argmax(error - bound)
    assert np.all(error <= bound), f"x = {x[worst]}: error {error[worst]:.3g}"


def test_reciprocal_saturates_outside_its_range() -> None:
    f = 16
    fed = LocalFederation(N_PARTIES, frac_bits=f, transcripts=False)
    small = np.array([-(2.0**40), -3.0, -(2.0**-f), 0.0, 2.0**-f, 2.0**-9, 0.0039])
    large = np.array([2.0**f, 1e6, 2.0**40])
    got = _run(fed, inverse.reciprocal, np.concatenate([small, large]))
    np.testing.assert_allclose(got[: small.size], 256.0, atol=UNITS * 2.0**-f)
    np.testing.assert_array_equal(got[small.size :], 0.0)


def test_inv_sqrt_and_sqrt_saturate_outside_their_ranges() -> None:
    f = 16
    fed = LocalFederation(N_PARTIES, frac_bits=f, transcripts=False)
    below = np.array([-7.0, 0.0, 2.0**-10])
    got = _run(fed, inverse.inv_sqrt, np.concatenate([below, [2.0**32, 2.0**40]]))
    np.testing.assert_allclose(got[:3], 16.0, atol=UNITS * 2.0**-f)
    np.testing.assert_array_equal(got[3:], 0.0)
    got = _run(fed, inverse.sqrt, np.array([-(2.0**40), -1.0, 0.0, 2.0**30, 2.0**40]))
    np.testing.assert_array_equal(got[:3], 0.0)
    np.testing.assert_allclose(got[3:], 2.0**15, rtol=inverse.MAX_RELATIVE_ERROR)


def test_a_narrower_range_is_as_accurate_and_sends_fewer_bytes() -> None:
    f = 16
    fed = LocalFederation(N_PARTIES, frac_bits=f, transcripts=False)
    x = _grid(1.0, 2.0**10, f, 5_000)
    got = _run(fed, inverse.reciprocal, x, octaves=(0, 10))
    bound = UNITS * 2.0**-f + inverse.MAX_RELATIVE_ERROR / x
    assert np.all(np.abs(got - 1.0 / x) <= bound)
    shared = fed.share(np.ones(64))[0]
    narrow = dry_run(lambda rt, s: inverse.reciprocal(rt, s, octaves=(0, 10)), N_PARTIES, shared)
    wide = dry_run(inverse.reciprocal, N_PARTIES, shared)
    assert narrow.bytes_sent < wide.bytes_sent
    assert narrow.rounds == wide.rounds == inverse.RECIPROCAL_ROUNDS


@pytest.mark.parametrize("octaves", [None, (-1, 7), (0, 1), (-8, 3)])
@pytest.mark.parametrize("shape", [(1,), (64,), (100, 3)])
def test_each_takes_its_documented_rounds_whatever_the_size_and_range(
    shape: tuple[int, ...], octaves: tuple[int, int] | None
) -> None:
    fed = LocalFederation(N_PARTIES)
    x = fed.share(np.ones(shape))[0]
    for fn, rounds in (
        (inverse.reciprocal, inverse.RECIPROCAL_ROUNDS),
        (inverse.inv_sqrt, inverse.INV_SQRT_ROUNDS),
        (inverse.sqrt, inverse.SQRT_ROUNDS),
    ):
        run = dry_run(lambda rt, s, fn=fn: fn(rt, s, octaves=octaves), N_PARTIES, x)
        assert run.rounds == rounds


def test_shapes_are_kept() -> None:
    fed = LocalFederation(N_PARTIES, transcripts=False)
    x = np.random.default_rng(5).uniform(0.5, 300.0, size=(17, 4))
    got = _run(fed, inverse.sqrt, x)
    assert got.shape == (17, 4)
    np.testing.assert_allclose(got, np.sqrt(x), atol=UNITS * 2.0**-16, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_misuse_is_refused_with_a_clear_error(name: str) -> None:
    fn = CASES[name][0]
    fed = LocalFederation(N_PARTIES)
    x = fed.share(np.ones(3))[0]
    with pytest.raises(TypeError, match="SharedTensor"):
        dry_run(fn, N_PARTIES, np.ones(3))
    with pytest.raises(ValueError, match="truncate it first"):
        dry_run(fn, N_PARTIES, x * 0.5)
    with pytest.raises(ValueError, match="octaves"):
        dry_run(lambda rt, s: fn(rt, s, octaves=(5, 5)), N_PARTIES, x)
    with pytest.raises(ValueError, match="octaves"):
        dry_run(lambda rt, s: fn(rt, s, octaves=(-17, 3)), N_PARTIES, x)
    wide = LocalFederation(N_PARTIES, frac_bits=24)
    with pytest.raises(ValueError, match="at most 20 fractional bits"):
        dry_run(fn, N_PARTIES, wide.share(np.ones(3))[0], fxp=wide.fxp)
