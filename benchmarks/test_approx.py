"""Nonlinear function benchmarks: sigmoid and exact comparison, 3 in-memory parties.

Scenario: ``LocalFederation(3)``, three computing parties as threads of one
process over in-memory queues, real seed-based dealer in process, no gRPC or
TLS (as in ``test_engine_inmemory.py``: the engine's floor). Trust model:
semi-honest parties, a dealer colluding with none of them.

Operations on 10^3 and 10^6 fixed-point elements (F = 16) drawn from
[-10, 10], ``online`` phase (dry run, dealer, preprocessing and thread start
untimed), transcripts off and on:

- sigmoid: ``smpc.approx.sigmoid``, 8 rounds (4 breakpoint comparisons per
  element in one batch, polynomial pieces computed in the same rounds);
- ltz: ``smpc.compare.ltz``, 8 rounds;
- exp: ``smpc.approx.exp``, 16 rounds (2 range comparisons, a polynomial and
  four squarings), on [-10, 10];
- reciprocal: ``smpc.inverse.reciprocal``, 21 rounds, on [0.5, 100]: at 10^3
  with the default octave range (25 comparisons per element), at 10^6 with
  ``octaves=(-1, 7)``, the range a caller who knows its data passes (9
  comparisons per element; the default range at 10^6 needs about 12 GB).

Targets: sigmoid at 10^6 under 1.5 s, ltz at 10^6 under 0.5 s. Every
benchmark records rounds, payload bytes per party and the float64 numpy
baseline in ``extra_info``.

Run::

    .venv/bin/python -m pytest benchmarks/test_approx.py --benchmark-enable \\
        --benchmark-only --benchmark-json=bench-results/approx.json
    .venv/bin/python -m benchmarks.report --json bench-results/approx.json
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from smpc import approx, compare, inverse
from smpc.local import LocalFederation, reconstruct

if TYPE_CHECKING:
    from benchmarks.conftest import JobBench

N_PARTIES = 3

VECTORS = [
    pytest.param("1e3", 1_000, 40, id="1e3"),
    pytest.param("1e6", 1_000_000, 5, id="1e6"),
]
TRANSCRIPTS = [
    pytest.param(False, id="transcripts-off"),
    pytest.param(True, id="transcripts-on"),
]


def _operand(elements: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-10.0, 10.0, size=elements)


@pytest.mark.parametrize("transcripts", TRANSCRIPTS)
@pytest.mark.parametrize(("size", "elements", "rounds"), VECTORS)
def test_sigmoid(
    job_bench: JobBench, size: str, elements: int, rounds: int, transcripts: bool
) -> None:
    fed = LocalFederation(N_PARTIES, transcripts=transcripts)
    x = _operand(elements, 11)
    out = np.empty_like(x)
    result = job_bench(
        fed,
        approx.sigmoid,
        fed.share(x),
        operation="sigmoid",
        size=size,
        elements=elements,
        phase="online",
        rounds=rounds,
        plaintext=lambda: np.reciprocal(1.0 + np.exp(-x, out=out), out=out),
        baseline="1 / (1 + np.exp(-a)) float64",
    )
    got = fed.fxp.decode(reconstruct(result.results), 16)
    assert np.abs(got - 0.5 * (1 + np.tanh(0.5 * x))).max() <= approx.SIGMOID_MAX_ERROR[16]


@pytest.mark.parametrize("transcripts", TRANSCRIPTS)
@pytest.mark.parametrize(("size", "elements", "rounds"), VECTORS)
def test_ltz(job_bench: JobBench, size: str, elements: int, rounds: int, transcripts: bool) -> None:
    fed = LocalFederation(N_PARTIES, transcripts=transcripts)
    x = _operand(elements, 12)
    out = np.empty(elements, dtype=bool)
    result = job_bench(
        fed,
        compare.ltz,
        fed.share(x),
        operation="ltz",
        size=size,
        elements=elements,
        phase="online",
        rounds=rounds,
        plaintext=lambda: np.less(x, 0.0, out=out),
        baseline="np.less(a, 0, out=o) float64",
    )
    np.testing.assert_array_equal(reconstruct(result.results).view(np.int64), x < 0)


@pytest.mark.parametrize(("size", "elements", "rounds"), VECTORS)
def test_exp(job_bench: JobBench, size: str, elements: int, rounds: int) -> None:
    fed = LocalFederation(N_PARTIES, transcripts=True)
    x = _operand(elements, 13)
    out = np.empty_like(x)
    result = job_bench(
        fed,
        approx.exp,
        fed.share(x),
        operation="exp",
        size=size,
        elements=elements,
        phase="online",
        rounds=rounds,
        plaintext=lambda: np.exp(x, out=out),
        baseline="np.exp(a, out=o) float64",
    )
    got = fed.fxp.decode(reconstruct(result.results), 16)
    want = np.exp(fed.fxp.decode(fed.fxp.encode(x), 16))  # e^ of the encoded input
    assert np.all(np.abs(got - want) <= 2 * 2.0**-16 + approx.EXP_MAX_RELATIVE_ERROR * want)


@pytest.mark.parametrize(
    ("size", "elements", "rounds", "octaves"),
    [
        pytest.param("1e3", 1_000, 40, None, id="1e3-default-range"),
        pytest.param("1e6", 1_000_000, 5, (-1, 7), id="1e6-octaves-1-7"),
    ],
)
def test_reciprocal(
    job_bench: JobBench, size: str, elements: int, rounds: int, octaves: tuple[int, int] | None
) -> None:
    fed = LocalFederation(N_PARTIES, transcripts=True)
    x = np.random.default_rng(14).uniform(0.5, 100.0, size=elements)
    out = np.empty_like(x)
    result = job_bench(
        fed,
        lambda rt, s: inverse.reciprocal(rt, s, octaves=octaves),
        fed.share(x),
        operation="reciprocal",
        size=size,
        elements=elements,
        phase="online",
        rounds=rounds,
        plaintext=lambda: np.reciprocal(x, out=out),
        baseline="np.reciprocal(a, out=o) float64",
    )
    got = fed.fxp.decode(reconstruct(result.results), 16)
    assert np.all(np.abs(got - 1.0 / x) <= 3 * 2.0**-16 + inverse.MAX_RELATIVE_ERROR / x)
