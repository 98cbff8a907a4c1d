"""Counts, sums and means must not single out a patient: attacks on three real party processes.

The hospitals' copy of the data has ``mean_texture`` missing for ids 2 to 31
(ten rows at each hospital). A filter that keeps those rows and one more
patient passes every hospital's own minimum on selected rows, but leaves one
complete row: the statistic must read "suppressed", never that row's value.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parties.client import Client, JobFailed
from parties.jobs.spec import InputSpec
from parties.local.launcher import DATA_PATH, LocalDeployment
from protocols.disclosure import StatisticsParamsError
from protocols.statistics import protocol

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
BLANKED = range(2, 32)
"""Patient ids whose ``mean_texture`` is missing in the federation's data."""

ATTACK = "mean_texture is missing or id == 1"


def _data_with_gaps(path: Path) -> Path:
    with DATA_PATH.open(newline="") as f:
        table = list(csv.reader(f))
    header, body = table[0], table[1:]
    column = header.index("mean_texture")
    for row in body:
        if int(row[0]) in BLANKED:
            row[column] = ""
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *body])
    return path


@pytest.fixture(scope="module")
def gaps(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("gaps")
    fed = LocalDeployment(root, HOSPITALS, data=_data_with_gaps(root / "data.csv"), name="gaps")
    try:
        fed.start_all()
        yield fed
    finally:
        fed.close()


@pytest.fixture(scope="module")
def client(gaps):
    c = Client(gaps.members["analyst"])
    yield c
    c.close()


def _texture(fed: LocalDeployment) -> dict[int, float]:
    """Every patient's mean_texture, by id (the plaintext oracle; NaN where missing)."""
    j = fed.header.index("mean_texture")
    return {int(r[0]): float(r[j]) if r[j] else np.nan for rows in fed.rows.values() for r in rows}


def _smpc(fed: LocalDeployment, word: str, where: str) -> subprocess.CompletedProcess[str]:
    config = str(fed.members["analyst"].config_path)
    options = ["--config", config, "--columns", "mean_texture", "--where", where, "--json"]
    return subprocess.run(
        [sys.executable, "-m", "parties.cli", word, *options],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("word", ["count", "sum", "mean"])
def test_smpc_shortcuts_suppress_one_patient_isolated_by_missing_values(gaps, word) -> None:
    done = _smpc(gaps, word, ATTACK)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result.get("suppressed") is True, result
    assert not {"count", "sum", "mean", "outputs"} & set(result)
    shown = [v for k, v in result.items() if k not in ("job", "seconds")]
    numbers = np.array([v for v in np.ravel(shown) if isinstance(v, int | float)], dtype=float)
    assert not np.isclose(numbers, _texture(gaps)[1], atol=0.01).any()


def test_client_mean_suppresses_the_same_attack(client) -> None:
    result = client.statistics("mean", ["mean_texture"], where=ATTACK)
    assert result["suppressed"] is True
    assert "mean" not in result and "count" not in result


def test_the_minimum_counts_complete_rows_and_the_mean_is_numpys(gaps) -> None:
    texture = _texture(gaps)
    done = _smpc(gaps, "mean", "mean_texture is missing or id <= 60")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    kept = np.array([v for i, v in texture.items() if i <= 60 and not np.isnan(v)])
    assert result["count"] == len(kept) == 30 and result["dropped"] == len(BLANKED)
    np.testing.assert_allclose(result["mean"], [kept.mean()], rtol=1e-4)


def _forged(client, inputs: dict[str, list[str]]):
    """A stats-mean job whose inputs are replaced after the client checked them."""
    version = protocol("stats-mean").version
    job = client.job("stats-mean", version, inputs={h: ["mean_radius"] for h in HOSPITALS})
    return dataclasses.replace(job, inputs={h: InputSpec(tuple(c)) for h, c in inputs.items()})


def test_parties_that_select_different_columns_fail_before_any_share(client) -> None:
    version = protocol("stats-mean").version
    two = ["mean_radius", "mean_area"]
    inputs = {"hospital-a": two, "hospital-b": ["mean_radius"], "hospital-c": two}
    with pytest.raises(StatisticsParamsError, match="hospital-b selects other ones"):
        client.job("stats-mean", version, inputs=inputs)  # the client refuses to sign it
    with pytest.raises(JobFailed, match="same columns") as caught:
        client.submit(_forged(client, inputs))  # and every party refuses it on its own
    message = str(caught.value)
    assert "hospital-b selects other ones" in message and caught.value.job in message
    assert not any(token in message for token in ("shape", "(1,)", "(2,)", "1 column"))


def test_a_party_without_input_fails_the_job_naming_it(client) -> None:
    version = protocol("stats-mean").version
    inputs = {"hospital-a": ["mean_radius"], "hospital-b": ["mean_radius"]}
    with pytest.raises(StatisticsParamsError, match="hospital-c selects none"):
        client.job("stats-mean", version, inputs=inputs, parties=list(HOSPITALS))
    with pytest.raises(JobFailed, match="same columns") as caught:
        client.submit(_forged(client, inputs))
    assert "hospital-c selects none" in str(caught.value) and caught.value.job in str(caught.value)
