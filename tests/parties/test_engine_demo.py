"""The demo's joint computations against numpy on the pooled CSV rows.

The oracle is plain numpy on all 569 patients; the secure side sees only the
three hospitals' cohorts. Counts must be exact; real statistics must agree to
1e-4 relative (the fixed-point error is far smaller).
"""

from __future__ import annotations

import numpy as np
import pytest

from parties.engine_demo import (
    DEMO_FEATURES,
    DemoResult,
    count_by_diagnosis,
    load_cohort,
    pooled_comoments,
    run_demo,
    split_by_id,
)
from smpc.local import LocalFederation

RTOL = 1e-4


@pytest.fixture(scope="module")
def pooled_rows() -> np.ndarray:
    return load_cohort().matrix(DEMO_FEATURES)


@pytest.fixture(scope="module")
def result() -> DemoResult:
    return run_demo(LocalFederation(3), split_by_id(load_cohort()))


def test_split_is_disjoint_and_complete() -> None:
    cohorts = split_by_id(load_cohort())
    ids = np.concatenate([c.ids for c in cohorts])
    assert len(cohorts) == 3
    assert sorted(ids.tolist()) == list(range(1, 570))
    assert all(set(((c.ids - 1) % 3).tolist()) == {h} for h, c in enumerate(cohorts))


def test_counts_are_exact(result: DemoResult) -> None:
    diagnosis = load_cohort().diagnosis
    expected = [int(np.sum(diagnosis == "M")), int(np.sum(diagnosis == "B"))]
    assert result.counts.tolist() == expected == [212, 357]
    assert result.counts.dtype == np.int64
    assert result.n_total == 569


def test_means(result: DemoResult, pooled_rows: np.ndarray) -> None:
    np.testing.assert_allclose(result.means, pooled_rows.mean(axis=0), rtol=RTOL)


def test_sample_stdevs(result: DemoResult, pooled_rows: np.ndarray) -> None:
    np.testing.assert_allclose(result.stdevs, pooled_rows.std(axis=0, ddof=1), rtol=RTOL)


def test_covariance(result: DemoResult, pooled_rows: np.ndarray) -> None:
    np.testing.assert_allclose(
        result.covariance, np.cov(pooled_rows, rowvar=False, ddof=1), rtol=RTOL
    )


def test_every_step_reports_its_cost(result: DemoResult) -> None:
    assert len(result.steps) == 4
    assert all(s.rounds > 0 and s.bytes_sent > 0 for s in result.steps)


def test_counts_with_two_hospitals() -> None:
    """The protocol functions do not assume three parties."""
    cohorts = split_by_id(load_cohort(), 2)
    job = LocalFederation(2).run(count_by_diagnosis, inputs=cohorts)
    assert all(r.tolist() == [212, 357] for r in job.results)


def test_comoments_with_an_empty_hospital(pooled_rows: np.ndarray) -> None:
    """A hospital with no patients contributes zeros and changes nothing."""
    everyone = load_cohort()
    empty = everyone.subset(np.zeros(len(everyone), dtype=bool))
    job = LocalFederation(2).run(
        pooled_comoments, inputs=[everyone, empty], args=(DEMO_FEATURES, len(everyone))
    )
    expected = np.cov(pooled_rows, rowvar=False, ddof=1) * (len(everyone) - 1)
    np.testing.assert_allclose(job.results[1], expected, rtol=RTOL)
