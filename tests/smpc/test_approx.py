"""Nonlinear approximations: measured error on dense grids, round counts, saturation, shapes."""

from __future__ import annotations

import numpy as np
import pytest

from smpc import approx
from smpc.local import LocalFederation, reconstruct
from smpc.runtime import dry_run

N_PARTIES = 3


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def _run(fed: LocalFederation, fn: object, x: np.ndarray) -> np.ndarray:
    result = fed.run(fn, fed.share(x))
    return fed.fxp.decode(reconstruct(result.results), result.results[0].scale)


@pytest.mark.parametrize("frac_bits", [16, 20])
def test_sigmoid_error_on_a_dense_grid_within_the_documented_bound(frac_bits: int) -> None:
    fed = LocalFederation(N_PARTIES, frac_bits=frac_bits, transcripts=False)
    x = np.linspace(-12.0, 12.0, 60_001)  # step 4e-4: covers every piece and both sides
    got = _run(fed, approx.sigmoid, x)
    error = np.abs(got - _sigmoid(x)).max()
    assert error <= approx.SIGMOID_MAX_ERROR[frac_bits]
    inside = np.abs(x) < 8  # the polynomial pieces alone
    assert np.abs(got - _sigmoid(x))[inside].max() <= 2.7e-4


@pytest.mark.parametrize("frac_bits", [16, 20])
def test_sigmoid_saturates_at_the_extremes_of_the_fixed_point_range(frac_bits: int) -> None:
    fed = LocalFederation(N_PARTIES, frac_bits=frac_bits, transcripts=False)
    top = 2.0 ** (62 - frac_bits) - 1.0
    x = np.array([-top, -(2.0**30), -1e6, -8.5, -8.0001, 8.0, 9.0, 1e6, 2.0**30, top])
    got = _run(fed, approx.sigmoid, x)
    np.testing.assert_array_equal(got[x < -8], 0.0)
    np.testing.assert_array_equal(got[x >= 8], 1.0)


def test_sigmoid_keeps_a_2d_shape_and_matches_elementwise() -> None:
    fed = LocalFederation(N_PARTIES, transcripts=False)
    x = np.random.default_rng(3).uniform(-10.0, 10.0, size=(37, 11))
    got = _run(fed, approx.sigmoid, x)
    assert got.shape == (37, 11)
    assert np.abs(got - _sigmoid(x)).max() <= approx.SIGMOID_MAX_ERROR[16]


@pytest.mark.parametrize("shape", [(1,), (64,), (1000, 3)])
def test_sigmoid_takes_the_documented_rounds_whatever_the_size(shape: tuple[int, ...]) -> None:
    fed = LocalFederation(N_PARTIES)
    x = fed.share(np.zeros(shape))[0]
    assert dry_run(approx.sigmoid, N_PARTIES, x).rounds == approx.SIGMOID_ROUNDS == 8


def test_sigmoid_rejects_a_product_and_a_public_array() -> None:
    fed = LocalFederation(N_PARTIES)
    x = fed.share(np.zeros(3))[0]
    with pytest.raises(TypeError):
        dry_run(approx.sigmoid, N_PARTIES, np.zeros(3))
    with pytest.raises(ValueError):
        dry_run(approx.sigmoid, N_PARTIES, x * 0.5)


@pytest.mark.parametrize("frac_bits", [16, 20])
def test_exp_error_inside_its_range_within_the_documented_bound(frac_bits: int) -> None:
    fed = LocalFederation(N_PARTIES, frac_bits=frac_bits, transcripts=False)
    lo, hi = approx.EXP_RANGE
    x = np.linspace(lo, hi, 60_001)[:-1]
    want = np.exp(fed.fxp.decode(fed.fxp.encode(x), frac_bits))  # e^ of the encoded input
    error = np.abs(_run(fed, approx.exp, x) - want)
    bound = 2 * 2.0**-frac_bits + approx.EXP_MAX_RELATIVE_ERROR * want
    assert np.all(error <= bound)


@pytest.mark.parametrize("frac_bits", [16, 20])
def test_exp_saturates_outside_its_range(frac_bits: int) -> None:
    fed = LocalFederation(N_PARTIES, frac_bits=frac_bits, transcripts=False)
    top = 2.0 ** (62 - frac_bits) - 1.0
    below = np.array([-top, -(2.0**30), -1e3, -16.5, -16.0001])
    above = np.array([12.0, 12.5, 1e3, 2.0**30, top])
    got = _run(fed, approx.exp, np.concatenate([below, above]))
    np.testing.assert_array_equal(got[: below.size], 0.0)
    np.testing.assert_allclose(got[below.size :], np.exp(12.0), atol=2.0**-frac_bits)


@pytest.mark.parametrize("shape", [(1,), (64,), (300, 2)])
def test_exp_takes_the_documented_rounds_and_keeps_the_shape(shape: tuple[int, ...]) -> None:
    fed = LocalFederation(N_PARTIES)
    x = fed.share(np.zeros(shape))[0]
    run = dry_run(approx.exp, N_PARTIES, x)
    assert run.rounds == approx.EXP_ROUNDS == 16
    assert run.result.shape == shape


def test_exp_rejects_a_product_and_a_public_array() -> None:
    fed = LocalFederation(N_PARTIES)
    x = fed.share(np.zeros(3))[0]
    with pytest.raises(TypeError):
        dry_run(approx.exp, N_PARTIES, np.zeros(3))
    with pytest.raises(ValueError, match="truncate it first"):
        dry_run(approx.exp, N_PARTIES, x * 0.5)
