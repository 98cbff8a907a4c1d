"""Extreme quantiles are a minimum or a maximum: attacks on three real party processes.

A quantile at a probability closer to 0 or 1 than m / N is one of the m
smallest or largest values; with a fine grid it is the pooled minimum or
maximum itself. It must fall under the same policy as ``stats-minmax``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from parties.client import Client, JobFailed
from parties.config import write_config
from parties.local.launcher import LocalDeployment
from protocols.disclosure import StatisticsParamsError

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
RANGE = [0.0, 64.0]
BITS = 16
"""Grid of 2^16 steps over [0, 64]: a quantile is reported within 2^-11 of numpy's."""


def _deployment(root, *, allow_min_max: bool):
    fed = LocalDeployment(root, HOSPITALS, name="quantiles")
    for name in HOSPITALS:
        member = fed.members[name]
        policy = dataclasses.replace(member.policy, allow_min_max=allow_min_max)
        write_config(dataclasses.replace(member, policy=policy), member.config_path)
    return fed


def _column(fed: LocalDeployment, name: str) -> np.ndarray:
    j = fed.header.index(name)
    return np.array([float(r[j]) for rows in fed.rows.values() for r in rows])


def _quantiles(fed: LocalDeployment, probabilities: list[float]) -> dict:
    fed.start_all()
    client = Client(fed.members["analyst"])
    try:
        params = {"probabilities": probabilities, "range": RANGE, "bits": BITS}
        return client.statistics("quantiles", ["mean_radius"], params=params)
    finally:
        client.close()
        fed.close()


def test_a_quantile_next_to_the_minimum_is_revealed_only_where_every_policy_allows(
    tmp_path,
) -> None:
    result = _quantiles(_deployment(tmp_path / "default", allow_min_max=False), [0.0001])
    assert result["suppressed"] is True
    assert "quantiles" not in result and "count" not in result
    fed = _deployment(tmp_path / "allowed", allow_min_max=True)
    x = _column(fed, "mean_radius")
    result = _quantiles(fed, [0.0001, 0.5, 0.9999])
    exact = np.quantile(x, [0.0001, 0.5, 0.9999], method="inverted_cdf")
    assert exact[0] == x.min() and exact[2] == x.max()
    resolution = (RANGE[1] - RANGE[0]) / 2**BITS
    assert result["count"] == len(x)
    assert np.max(np.abs(result["quantiles"] - exact)) <= resolution / 2 + 1e-9


def test_a_grid_finer_than_the_documented_bound_is_refused(tmp_path) -> None:
    fed = _deployment(tmp_path, allow_min_max=True)
    fed.start_all()
    client = Client(fed.members["analyst"])
    try:
        with pytest.raises(StatisticsParamsError, match=r"params\.bits must be an integer from 1"):
            client.statistics("median", ["mean_radius"], params={"bits": 33})  # before signing
        spec = client.job(
            "stats-quantiles", "3", inputs={h: ["mean_radius"] for h in HOSPITALS}, params={}
        )
        forged = dataclasses.replace(spec, params={**spec.params, "bits": 33})
        with pytest.raises(JobFailed, match=r"params\.bits must be an integer from 1 to 32"):
            client.submit(forged)  # and every party refuses it on its own
    finally:
        client.close()
        fed.close()
