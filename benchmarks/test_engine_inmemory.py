"""Engine core benchmarks: 3 in-memory parties in threads, semi-honest, seed-based dealer.

Scenario: ``LocalFederation(3)`` runs three computing parties as threads of
one process, over in-memory queues (payloads are handed over, not copied or
encrypted), with the real seed-based dealer in process. Kernels release the
GIL, so the parties share the machine's cores. There is no gRPC and no TLS:
these numbers are the engine's floor, not a deployment's.

Trust model: semi-honest parties; any 2 of the 3 learn nothing beyond the
declared outputs provided the dealer colludes with none of them. The dealer
knows every party's seeds, so dealer plus any one party learns everything.

Operations, fixed point with F = 16 fractional bits, on 10^3 and 10^6
elements (matmul on 32x32 and 256x256 square matrices):

- share: party 0 secret-shares its array with ``rt.input`` (one round);
- open: every party learns a shared array (one round, all-to-all);
- add: local addition of two shared arrays (no round);
- mul: elementwise product, Beaver round + truncation round;
- matmul: matrix product, Beaver round + truncation round.

Phases: ``online`` times only ``job.run()``; the dry run, the dealer, every
party's preprocessing (``prefetch=True``) and the thread start happen in the
untimed setup. ``online+preprocessing`` (mul, matmul) times the whole
``fed.run``: dry run, dealer, thread start, and preprocessing expanded as the
parties reach it. Transcripts (per-channel SHA-256) are on or off.

Every benchmark records in ``extra_info``: rounds and payload bytes sent
(max over parties, as defined in ARCHITECTURE.md), elements, and the time of
the same computation on float64 numpy arrays measured in the same run, with
the ratio median secure time / plaintext time. share and open compute
nothing in plaintext; their baseline is a copy of the array.

Run (short by default; ``make bench-suites`` does this and prints the table)::

    .venv/bin/python -m pytest benchmarks --benchmark-enable --benchmark-only \\
        --benchmark-json=bench-results/engine-inmemory.json
    .venv/bin/python -m benchmarks.report --json bench-results/engine-inmemory.json
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from smpc.local import LocalFederation, reconstruct
from smpc.runtime import Runtime
from smpc.shares import SharedTensor

if TYPE_CHECKING:
    from benchmarks.conftest import JobBench

N_PARTIES = 3
OWNER = 0

# (label, elements, timed rounds): enough rounds at 10^3 for a stable median,
# few at 10^6 so that the default run stays short.
VECTORS = [
    pytest.param("1e3", 1_000, 60, id="1e3"),
    pytest.param("1e6", 1_000_000, 7, id="1e6"),
]
MATRICES = [
    pytest.param(32, 60, id="32x32"),
    pytest.param(256, 15, id="256x256"),
]
TRANSCRIPTS = [
    pytest.param(False, id="transcripts-off"),
    pytest.param(True, id="transcripts-on"),
]
PHASES = [
    pytest.param("online", id="online"),
    pytest.param("online+preprocessing", id="online+prep"),
]


def _operand(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Plaintext test data in [-8, 8): products stay far inside the fixed-point range."""
    return np.random.default_rng(seed).uniform(-8.0, 8.0, size=shape)


def _decoded(fed: LocalFederation, shares: list[SharedTensor]) -> np.ndarray:
    """The real value behind every party's share of a result."""
    return fed.fxp.decode(reconstruct(shares), shares[0].scale)


def share_job(rt: Runtime, value: np.ndarray | None, shape: tuple[int, ...]) -> SharedTensor:
    """Party OWNER inputs ``value``; the others know only its shape."""
    return rt.input(value, OWNER, shape)


def open_job(rt: Runtime, x: SharedTensor) -> np.ndarray | None:
    return rt.open(x)


def add_job(rt: Runtime, xy: tuple[SharedTensor, SharedTensor]) -> SharedTensor:
    return xy[0] + xy[1]


def mul_job(rt: Runtime, xy: tuple[SharedTensor, SharedTensor]) -> SharedTensor:
    return rt.mul(*xy)


def matmul_job(rt: Runtime, xy: tuple[SharedTensor, SharedTensor]) -> SharedTensor:
    return rt.matmul(*xy)


def _pairs(fed: LocalFederation, x: np.ndarray, y: np.ndarray) -> list[tuple[SharedTensor, ...]]:
    return list(zip(fed.share(x), fed.share(y), strict=True))


@pytest.mark.parametrize("transcripts", TRANSCRIPTS)
@pytest.mark.parametrize(("size", "elements", "rounds"), VECTORS)
def test_share(
    job_bench: JobBench, size: str, elements: int, rounds: int, transcripts: bool
) -> None:
    fed = LocalFederation(N_PARTIES, transcripts=transcripts)
    x = _operand((elements,), 1)
    inputs = [x if p == OWNER else None for p in range(N_PARTIES)]
    out = np.empty_like(x)
    result = job_bench(
        fed,
        share_job,
        inputs,
        args=(x.shape,),
        operation="share",
        size=size,
        elements=elements,
        phase="online",
        rounds=rounds,
        plaintext=lambda: np.copyto(out, x),
        baseline="np.copyto(o, a) float64",
    )
    np.testing.assert_allclose(_decoded(fed, result.results), x, atol=2.0**-15)


@pytest.mark.parametrize("transcripts", TRANSCRIPTS)
@pytest.mark.parametrize(("size", "elements", "rounds"), VECTORS)
def test_open(
    job_bench: JobBench, size: str, elements: int, rounds: int, transcripts: bool
) -> None:
    fed = LocalFederation(N_PARTIES, transcripts=transcripts)
    x = _operand((elements,), 2)
    out = np.empty_like(x)
    result = job_bench(
        fed,
        open_job,
        fed.share(x),
        operation="open",
        size=size,
        elements=elements,
        phase="online",
        rounds=rounds,
        plaintext=lambda: np.copyto(out, x),
        baseline="np.copyto(o, a) float64",
    )
    for opened in result.results:
        np.testing.assert_allclose(opened, x, atol=2.0**-15)


@pytest.mark.parametrize("transcripts", TRANSCRIPTS)
@pytest.mark.parametrize(("size", "elements", "rounds"), VECTORS)
def test_add(job_bench: JobBench, size: str, elements: int, rounds: int, transcripts: bool) -> None:
    fed = LocalFederation(N_PARTIES, transcripts=transcripts)
    x, y = _operand((elements,), 3), _operand((elements,), 4)
    out = np.empty_like(x)
    result = job_bench(
        fed,
        add_job,
        _pairs(fed, x, y),
        operation="add",
        size=size,
        elements=elements,
        phase="online",
        rounds=rounds,
        plaintext=lambda: np.add(x, y, out=out),
        baseline="np.add(a, b, out=o) float64",
    )
    np.testing.assert_allclose(_decoded(fed, result.results), x + y, atol=2.0**-14)


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("transcripts", TRANSCRIPTS)
@pytest.mark.parametrize(("size", "elements", "rounds"), VECTORS)
def test_mul(
    job_bench: JobBench, size: str, elements: int, rounds: int, transcripts: bool, phase: str
) -> None:
    fed = LocalFederation(N_PARTIES, transcripts=transcripts)
    x, y = _operand((elements,), 5), _operand((elements,), 6)
    out = np.empty_like(x)
    result = job_bench(
        fed,
        mul_job,
        _pairs(fed, x, y),
        operation="mul",
        size=size,
        elements=elements,
        phase=phase,
        rounds=rounds,
        plaintext=lambda: np.multiply(x, y, out=out),
        baseline="np.multiply(a, b, out=o) float64",
    )
    np.testing.assert_allclose(_decoded(fed, result.results), x * y, atol=1e-3)


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("transcripts", TRANSCRIPTS)
@pytest.mark.parametrize(("n", "rounds"), MATRICES)
def test_matmul(job_bench: JobBench, n: int, rounds: int, transcripts: bool, phase: str) -> None:
    fed = LocalFederation(N_PARTIES, transcripts=transcripts)
    x, y = _operand((n, n), 7), _operand((n, n), 8)
    out = np.empty_like(x)
    result = job_bench(
        fed,
        matmul_job,
        _pairs(fed, x, y),
        operation="matmul",
        size=f"{n}x{n}",
        elements=n * n,
        phase=phase,
        rounds=rounds,
        plaintext=lambda: np.matmul(x, y, out=out),
        baseline="np.matmul(a, b, out=o) float64",
    )
    # Each of the n terms of an entry carries encoding error below 2 * 8 * 2^-17 = 2^-13.
    np.testing.assert_allclose(_decoded(fed, result.results), x @ y, atol=n * 2.0**-12)
