"""Only the recipients a job's ``outputs`` name, accepted by every policy, get an output.

The attack: a column-split inference job whose ``outputs`` name a hospital but
whose parameters name the model owner as the recipient of the labels, which
no policy accepts; with probabilities asked for, the model owner would learn
the feature behind a one-feature logit for every patient.
"""

from __future__ import annotations

import dataclasses

import pytest

from parties.client import JobFailed

pytestmark = pytest.mark.process


def _column_job(kit, *, probabilities: bool = False):
    dep = kit.dep
    features = dep.header[2:]
    # hospital-a holds every feature of its own patients; patient 1 withdrew from inference.
    patients = [int(r[0]) for r in dep.rows["hospital-a"] if r[0] != "1"]
    return kit.clients["analyst"].column_inference_job(
        "model-owner",
        features,
        {"hospital-a": features},
        "id",
        patients,
        ["hospital-a"],
        probabilities=probabilities,
    )


def test_labels_reach_only_the_recipients_in_outputs(kit) -> None:
    spec = _column_job(kit)
    assert spec.outputs["labels"] == ("hospital-a",)
    outcome = kit.clients["analyst"].submit(spec)
    assert not kit.results_file("model-owner", outcome.job).exists()
    assert kit.results_file("hospital-a", outcome.job).exists()
    # a recipient named in the parameters instead: the parties refuse the job outright
    forged = dataclasses.replace(spec, params={**spec.params, "recipients": ["model-owner"]})
    with pytest.raises(JobFailed, match=r"params\.recipients is not a parameter") as failed:
        kit.clients["analyst"].submit(forged)
    for party in spec.parties:
        assert not kit.results_file(party, failed.value.job).exists()


def test_probabilities_need_every_policy_to_permit_them(kit) -> None:
    spec = _column_job(kit, probabilities=True)
    with pytest.raises(JobFailed) as failed:
        kit.clients["analyst"].submit(spec)
    assert failed.value.kind == "refused: probabilities-not-allowed"
    for party in spec.parties:
        assert not kit.results_file(party, failed.value.job).exists()
    record = kit.record("hospital-a", failed.value.job)
    assert record.status == "aborted"
    assert record.failure is not None and record.failure.kind == failed.value.kind
