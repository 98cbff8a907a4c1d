"""Consent applies to statistics jobs, text columns included (two hospital processes)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from parties.client import Client
from parties.data.consent import record_consent
from parties.ledger.record_store import RecordStore, records_path
from parties.local.launcher import LocalDeployment

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b")


def test_a_revoked_patient_leaves_the_frequency_table_and_the_mean(tmp_path: Path) -> None:
    dep = LocalDeployment(tmp_path, HOSPITALS, name="consent", consent="opt-out")
    for h in HOSPITALS:
        dep.set_data(h, dataclasses.replace(dep.members[h].data, patient_id="id"))
    member = dep.members["hospital-b"]
    row = dep.rows["hospital-b"][0]
    diagnosis = [r[1] for h in HOSPITALS for r in dep.rows[h]]
    radius = np.array([float(r[2]) for h in HOSPITALS for r in dep.rows[h]])
    with dep:
        with RecordStore(records_path(member)) as store:
            record_consent(member, store, "revoke", row[0], "statistics")
        client = Client(dep.members["analyst"])
        try:
            table = client.statistics("crosstab", ["diagnosis"], params={"levels": [["M", "B"]]})
            mean = client.statistics("mean", ["mean_radius"])
        finally:
            client.close()
    expected = [diagnosis.count("M"), diagnosis.count("B")]
    expected["MB".index(row[1])] -= 1
    assert table["counts"].tolist() == expected
    assert mean["count"] == len(radius) - 1
    np.testing.assert_allclose(mean["sum"], [radius.sum() - float(row[2])], rtol=1e-6)
