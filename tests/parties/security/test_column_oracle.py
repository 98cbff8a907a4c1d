"""A refusal for a bad value must not tell whether the job's filter selected its row.

The attack: hospital-a holds one patient whose ``mean_area`` is out of the
statistics' range (or whose ``mean_texture`` is not a number, whose
``diagnosis`` is not one of a table's levels, or whose 0/1 outcome
``malignant`` is 2). Two jobs with
filters that differ only in that patient's row would, if a hospital checked
only the rows it selected, give "local-data" for one and a result for the
other: a one-bit oracle on the patient's value. A hospital decides validity
on its whole column instead, so both jobs read the same, and the hospital's
own log names column and data row (never the value) so it can fix its data.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator

import pytest

from parties.client import Client
from parties.jobs.spec import LOCAL_DATA_REASON, JobSpec
from parties.local.launcher import LocalDeployment
from protocols import glm
from protocols.statistics import protocol

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b")
View = Callable[[Client, JobSpec], tuple[str, dict[str, bytes]]]
PATIENT = "1"  # hospital-a's first data row
BAD = {  # out of range; not a number; not a level; not 0/1
    "mean_area": "20000",
    "mean_texture": "n/a",
    "diagnosis": "X",
    "malignant": "2",
}
WITH_PATIENT = "id >= 1 and id <= 19"
WITHOUT_PATIENT = "id >= 3 and id <= 21"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalDeployment, Client]]:
    dep = LocalDeployment(tmp_path_factory.mktemp("column-oracle"), HOSPITALS, name="columns")
    header = [*dep.header, "malignant"]
    for hospital in HOSPITALS:
        rows = [[*r, "1" if r[1] == "M" else "0"] for r in dep.rows[hospital]]
        if hospital == "hospital-a":
            assert rows[0][0] == PATIENT
            for column, cell in BAD.items():
                rows[0][header.index(column)] = cell
        path = dep.members[hospital].data.path
        assert path is not None
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    client = Client(dep.members["analyst"])
    try:
        dep.start_all()
        yield dep, client
    finally:
        client.close()
        dep.close()


def _seen(view: View, client: Client, column: str, where: str) -> tuple[str, dict[str, bytes]]:
    """The job reading ``column`` (a mean, a table, a fit), its id and each party's reply
    as the analyst gets it, with the id blanked (``view``: the ``analyst_view_of`` fixture)."""
    if column == "diagnosis":
        spec = client.job(
            "stats-crosstab",
            protocol("stats-crosstab").version,
            inputs={h: ([column], where) for h in HOSPITALS},
            params={"levels": [["M", "B"]]},
        )
    elif column == "malignant":
        params = glm.GLMParams(outcome=column)
        spec = client.job(
            "stats-glm",
            glm.protocol_for(params).version,
            inputs={h: (["mean_radius", column], where) for h in HOSPITALS},
            params=params,
        )
    else:
        spec = client.job(
            "stats-mean",
            protocol("stats-mean").version,
            inputs={h: ([column], where) for h in HOSPITALS},
        )
    return view(client, spec)


def test_a_good_column_runs_with_both_filters(
    fed: tuple[LocalDeployment, Client], analyst_view_of: View
) -> None:
    # The control: with a valid column both cohorts are large enough and the job runs.
    _, client = fed
    for where in (WITH_PATIENT, WITHOUT_PATIENT):
        _, seen = _seen(analyst_view_of, client, "mean_radius", where)
        assert LOCAL_DATA_REASON.encode() not in seen["hospital-a"]


@pytest.mark.parametrize("column", sorted(BAD))
def test_selecting_the_bad_row_or_not_reads_the_same(
    fed: tuple[LocalDeployment, Client], analyst_view_of: View, column: str
) -> None:
    _, client = fed
    _, selected = _seen(analyst_view_of, client, column, WITH_PATIENT)
    _, unselected = _seen(analyst_view_of, client, column, WITHOUT_PATIENT)
    assert selected == unselected
    assert LOCAL_DATA_REASON.encode() in unselected["hospital-a"]
    assert b"data row" not in unselected["hospital-a"]


@pytest.mark.parametrize("column", sorted(BAD))
def test_a_bad_row_no_filter_selects_fails_the_job_and_is_logged(
    fed: tuple[LocalDeployment, Client], analyst_view_of: View, column: str
) -> None:
    dep, client = fed
    job_id, seen = _seen(analyst_view_of, client, column, WITHOUT_PATIENT)
    assert LOCAL_DATA_REASON.encode() in seen["hospital-a"]
    logged = [
        line.replace(job_id, "<job>")
        for line in dep.log_path("hospital-a").read_text().splitlines()
        if job_id in line
    ]
    named = re.compile(rf"column {column!r}.* data row 1\b")
    assert any(named.search(line) for line in logged)
    value = re.compile(rf"(?<![\w.]){re.escape(BAD[column])}(?![\w.])")
    assert not any(value.search(line.partition(" column ")[2]) for line in logged)
