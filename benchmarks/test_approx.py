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
- ltz: ``smpc.compare.ltz``, 8 rounds.

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

from smpc import approx, compare
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
