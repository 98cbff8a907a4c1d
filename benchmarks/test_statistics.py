"""Joint statistics with disclosure control on an in-process federation.

Scenario: 3 hospitals as threads of one process (``LocalFederation``,
in-memory transport, transcripts on), the seed-based dealer, semi-honest
parties; synthetic patients (``protocols.synthetic``) split over the three.
Each timed job is the whole ``LocalFederation.run`` (dry run, dealer,
preprocessing, every party's local aggregation of its rows, the protocol
and the opening of its outputs). The plaintext baseline is numpy on the
pooled rows, in the same run. Command::

    .venv/bin/python -m pytest benchmarks/test_statistics.py --benchmark-enable --benchmark-only

Cases: mean and variance of one column over 3 x 10^6 rows (target under
50 ms), the 10 x 10 correlation matrix over 3 x 10^5 rows, a 20-bin
histogram over 3 x 10^6 rows, and the median of 3 x 10^5 rows (20 bits).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.conftest import ONLINE_PREP, JobBench
from protocols.statistics import contexts, opened, protocol
from smpc.local import LocalFederation

PARTIES = 3


def _columns(rows: int, width: int, seed: int = 3) -> list[np.ndarray]:
    """``width`` correlated columns of values below 10^4, split in three equal parts."""
    rng = np.random.default_rng(seed)
    base = rng.normal(50.0, 15.0, (rows, 1))
    x = np.clip(base + rng.normal(0.0, 10.0, (rows, width)) * np.arange(1, width + 1), -9e3, 9e3)
    return np.array_split(x, PARTIES)


def _bench(job_bench: JobBench, name: str, parts, columns, *, size: str, plaintext, baseline, **kw):
    fed = LocalFederation(PARTIES)
    ctxs = contexts(parts, columns, **kw)
    job = job_bench(
        fed,
        opened(protocol(name)),
        ctxs,
        operation=name,
        size=size,
        elements=sum(len(p) for p in parts),
        phase=ONLINE_PREP,
        rounds=5,
        plaintext=plaintext,
        baseline=baseline,
    )
    return job.results[0]


def test_mean_and_variance_3e6_rows(job_bench: JobBench) -> None:
    parts = _columns(3_000_000, 1)
    pooled = np.vstack(parts)[:, 0]
    out = _bench(
        job_bench,
        "stats-variance",
        parts,
        ["x"],
        size="3x10^6 rows",
        plaintext=lambda: (pooled.mean(), pooled.var(ddof=1)),
        baseline="numpy mean + var(ddof=1) on the pooled column",
    )
    assert np.allclose(out["mean"], pooled.mean(), rtol=1e-4)


def test_correlation_matrix_10x10_3e5_rows(job_bench: JobBench) -> None:
    parts = _columns(300_000, 10)
    pooled = np.vstack(parts)
    names = [f"c{j}" for j in range(10)]
    out = _bench(
        job_bench,
        "stats-covariance",
        parts,
        names,
        size="10x10, 3x10^5 rows",
        plaintext=lambda: np.corrcoef(pooled, rowvar=False),
        baseline="numpy corrcoef on the pooled rows",
    )
    cov = out["pcovariance"]
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.allclose(corr, np.corrcoef(pooled, rowvar=False), atol=1e-3)


def test_histogram_20_bins_3e6_rows(job_bench: JobBench) -> None:
    parts = _columns(3_000_000, 1)
    pooled = np.vstack(parts)[:, 0]
    edges = np.linspace(-20.0, 120.0, 21)
    out = _bench(
        job_bench,
        "stats-histogram",
        parts,
        ["x"],
        size="20 bins, 3x10^6 rows",
        plaintext=lambda: np.histogram(pooled, edges),
        baseline="numpy histogram on the pooled column",
        params={"edges": edges.tolist()},
    )
    expected, _ = np.histogram(pooled, edges)
    assert np.array_equal(out["counts"], np.where(expected >= 5, expected, 0))


@pytest.mark.parametrize("bits", [20])
def test_median_3e5_rows(job_bench: JobBench, bits: int) -> None:
    parts = _columns(300_000, 1)
    pooled = np.vstack(parts)[:, 0]
    out = _bench(
        job_bench,
        "stats-quantiles",
        parts,
        ["x"],
        size=f"median, 3x10^5 rows, {bits} bits",
        plaintext=lambda: np.quantile(pooled, 0.5, method="inverted_cdf"),
        baseline="numpy quantile (inverted_cdf) on the pooled column",
        params={"probabilities": [0.5], "range": [-128.0, 256.0], "bits": bits},
    )
    width = 384.0 / 2**bits
    assert abs(out["quantiles"][0] - np.quantile(pooled, 0.5, method="inverted_cdf")) <= width
