"""A job's consent scope is its protocol's, not the analyst's choice.

The attack: an inference job submitted with scope ``statistics`` scored
patient 1, who had revoked the use of their record for model inference.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from parties.client import JobFailed

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")


def _inference_job(kit):
    dep = kit.dep
    # Row counts are declared public: hospital-a's excludes patient 1, who withdrew.
    rows = {h: len(dep.rows[h]) - (h == "hospital-a") for h in HOSPITALS}
    return kit.clients["analyst"].inference_job("model-owner", dep.header[2:], rows)


def test_a_job_naming_another_scope_than_its_protocols_is_refused(kit) -> None:
    spec = dataclasses.replace(_inference_job(kit), scope="statistics")
    with pytest.raises(JobFailed) as failed:
        kit.clients["analyst"].submit(spec)
    assert failed.value.kind == "refused: scope"
    record = kit.record("hospital-a", failed.value.job)
    assert record.failure is not None and record.failure.kind == "refused: scope"


def test_the_client_sets_the_protocols_scope_and_consent_applies(kit) -> None:
    spec = _inference_job(kit)
    assert spec.scope == "model-inference"
    outcome = kit.clients["analyst"].submit(spec)
    with np.load(kit.results_file("hospital-a", outcome.job)) as kept:
        labels = kept["labels"]
    assert len(labels) == len(kit.dep.rows["hospital-a"]) - 1
