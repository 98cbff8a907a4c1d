"""Matrix products at chosen scales and the Newton-Schulz inverse against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from smpc import linalg
from smpc.local import LocalFederation
from smpc.runtime import dry_run
from smpc.steps import drive

BITS = 22
FINE = 32


def _encoded(fed: LocalFederation, value: np.ndarray, bits: int) -> list[np.ndarray]:
    ring = np.rint(value * 2.0**bits).astype(np.int64).view(np.uint64)
    return [np.ascontiguousarray(s.share) for s in fed.share(ring, integer=True)]


def _spd(n: int, smallest: float, seed: int) -> np.ndarray:
    """A random SPD matrix with eigenvalues in [smallest, 1]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eigen = np.geomspace(smallest, 1.0, n)
    return (q * eigen) @ q.T


def _inverse(rt, shares, steps: int):
    coarse, fine = shares

    def run():
        x = yield from linalg.newton_schulz(rt, coarse, steps, BITS)
        r = yield from linalg.residual(rt, fine, x, FINE, BITS)
        refined = yield from linalg.refine(rt, x, r, BITS, FINE + BITS, 36)
        return x, refined

    x, refined = drive(rt, run(), "test")
    return [rt.open_ring(rt.shared(m, 0)).view(np.int64) / 2.0**BITS for m in (x, refined)]


@pytest.mark.parametrize(("n", "smallest"), [(4, 0.05), (11, 1e-3), (31, 2.0**-12)])
def test_newton_schulz_and_refinement_invert_an_spd_matrix(n: int, smallest: float) -> None:
    a = _spd(n, smallest, seed=n)
    fed = LocalFederation(3)
    shares = list(zip(_encoded(fed, a, BITS), _encoded(fed, a, FINE), strict=True))
    steps = 20
    x, refined = fed.run(lambda rt, s: _inverse(rt, s, steps), inputs=shares).results[0]
    # the oracle: numpy's inverse of the matrix as the fine shares encode it
    exact = np.linalg.inv(np.rint(a * 2.0**FINE) / 2.0**FINE)
    scale = np.abs(exact).max()
    assert np.abs(x - exact).max() / scale < 1e-3
    assert np.abs(refined - exact).max() / scale < 1e-6  # measured 3e-7 at 2^-12
    np.testing.assert_allclose(np.diag(refined), np.diag(exact), rtol=1e-5)


def test_too_few_steps_leave_a_visible_residual() -> None:
    a = _spd(6, 1e-3, seed=2)
    fed = LocalFederation(2)
    shares = list(zip(_encoded(fed, a, BITS), _encoded(fed, a, FINE), strict=True))
    x, _ = fed.run(lambda rt, s: _inverse(rt, s, 4), inputs=shares).results[0]
    residual = np.eye(6) - a @ x
    # (1 - lambda)^(2^4) for lambda = 1e-3 is still about 0.98
    assert np.trace(residual) > 0.5


def test_matmul_steps_is_an_untruncated_product() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.integers(-1000, 1000, (3, 5)), rng.integers(-1000, 1000, (5, 2))
    fed = LocalFederation(3)
    xs = [np.ascontiguousarray(s.share) for s in fed.share(x, integer=True)]
    ys = [np.ascontiguousarray(s.share) for s in fed.share(y, integer=True)]

    def fn(rt, pair):
        z = drive(rt, linalg.matmul_steps(rt, *pair), "test")
        return rt.open_ring(rt.shared(z, 0)).view(np.int64)

    got = fed.run(fn, inputs=list(zip(xs, ys, strict=True))).results[0]
    np.testing.assert_array_equal(got, x @ y)


def test_rounds_and_bad_arguments() -> None:
    def fn(rt, steps: int):
        a = np.zeros((5, 5), dtype=np.uint64)
        return drive(rt, linalg.newton_schulz(rt, a, steps, BITS), "test")

    for steps in (1, 2, 20):
        run = dry_run(fn, 3, steps)
        assert run.rounds == linalg.NEWTON_SCHULZ_STEP_ROUNDS * (steps - 1)
    with pytest.raises(ValueError, match="at least one step"):
        dry_run(fn, 3, 0)

    def bad(rt):
        a = np.zeros((2, 3), dtype=np.uint64)
        return drive(rt, linalg.matmul_steps(rt, a, a), "test")

    with pytest.raises(ValueError, match="cannot multiply"):
        dry_run(bad, 2)
