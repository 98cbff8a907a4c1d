"""An analyst's query budget bounds differencing attacks, and its refusal leaks nothing.

``sum where id <= 60`` minus ``sum where id <= 60 and id != 1`` is patient
1's value, though each job passes disclosure control. The defence is a
per-analyst budget of admitted jobs at each hospital: it depends only on how
many jobs the analyst ran, so refusing says nothing about any patient, and
every refusal is on the record.
"""

from __future__ import annotations

import dataclasses

import pytest

from parties.cli.audit import wait_for_record
from parties.client import Client, JobFailed
from parties.config import load_config, write_config
from parties.local.launcher import LocalDeployment

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b")
BUDGET = 2


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    dep = LocalDeployment(tmp_path_factory.mktemp("budget"), HOSPITALS, name="budget")
    member = dep.members["hospital-a"]
    policy = dataclasses.replace(member.policy, query_budget=BUDGET, query_window_s=3600)
    write_config(dataclasses.replace(member, policy=policy), member.config_path)
    dep.members["hospital-a"] = load_config(member.config_path)
    try:
        dep.start_all()
        yield dep
    finally:
        dep.close()


def test_jobs_past_the_budget_are_refused_and_recorded(deployment) -> None:
    client = Client(deployment.members["analyst"])
    try:
        where = ("id <= 60", "id <= 60 and id != 1", "id <= 60 and id != 4")
        for filter_ in where[:BUDGET]:
            client.statistics("sum", ["mean_radius"], where=filter_)
        with pytest.raises(JobFailed) as failed:
            client.statistics("sum", ["mean_radius"], where=where[BUDGET])
    finally:
        client.close()
    assert failed.value.kind == "refused: budget"
    assert failed.value.party == "hospital-a"
    record = wait_for_record(deployment.members["hospital-a"], failed.value.job)
    assert record.status == "aborted"
    assert record.failure is not None and record.failure.kind == "refused: budget"
