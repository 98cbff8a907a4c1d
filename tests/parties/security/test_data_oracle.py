"""A hospital's refusals must not depend on one patient's value.

The attack: a filter such as ``id == 1 and mean_radius > t`` selects patient 1
only when their value exceeds ``t``. If the job's answer differs between "the
row was selected" and "no row was selected", bisecting on ``t`` recovers the
value in about 16 jobs. Every answer below is compared byte for byte across
both sides of the patient's true value.
"""

from __future__ import annotations

import pytest

from parties.jobs.spec import LOCAL_DATA_REASON
from protocols.statistics import protocol

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")


def _value_of_patient_1(dep, column: str) -> float:
    row = dep.rows["hospital-a"][0]
    assert row[0] == "1"
    return float(row[dep.header.index(column)])


def _mean_job(kit, analyst: str, column: str, where: str):
    return kit.clients[analyst].job(
        "stats-mean",
        protocol("stats-mean").version,
        inputs={h: ([column], where) for h in HOSPITALS},
    )


def _both_sides(kit, analyst: str, column: str) -> list[tuple[str, dict[str, bytes]]]:
    """The same job with patient 1 selected (its value is above t) and not selected."""
    value = _value_of_patient_1(kit.dep, "mean_radius")
    return [
        kit.seen(analyst, _mean_job(kit, analyst, column, f"id == 1 and mean_radius > {t}"))
        for t in (value - 0.5, value + 0.5)
    ]


def test_policy_refusal_comes_before_any_row_is_read(kit) -> None:
    # "diagnosis" holds text: reading patient 1's row as a number fails, reading no row
    # does not, so a data error before the policy check told the analyst which happened.
    (_, selected), (_, empty) = _both_sides(kit, "outsider", "diagnosis")
    assert selected == empty
    assert b"refused: unknown-analyst" in selected["hospital-a"]


def test_data_failures_and_small_cohorts_read_the_same(kit) -> None:
    bad_row = _both_sides(kit, "analyst", "diagnosis")  # selected: not a number
    one_row = _both_sides(kit, "analyst", "mean_radius")  # selected: one good row
    replies = [seen for _, seen in (*bad_row, *one_row)]
    assert all(r == replies[0] for r in replies)
    assert LOCAL_DATA_REASON.encode() in replies[0]["hospital-a"]
    assert b"data row" not in replies[0]["hospital-a"]
    views = {kit.public_view(kit.record("hospital-a", job)) for job, _ in (*bad_row, *one_row)}
    assert len(views) == 1
    (view,) = views
    assert view[4] == "aborted"


def test_a_shape_mismatch_does_not_tell_a_hospitals_row_count(kit) -> None:
    dep = kit.dep
    client = kit.clients["analyst"]
    features = dep.header[2:]
    jobs = [
        client.inference_job("model-owner", features, {h: declared for h in HOSPITALS})
        for declared in (1, 2)
    ]
    seen = [kit.seen("analyst", job)[1] for job in jobs]
    assert seen[0] == seen[1]
    for reply in seen[0].values():
        for h in HOSPITALS:
            assert f"({len(dep.rows[h])},".encode() not in reply
