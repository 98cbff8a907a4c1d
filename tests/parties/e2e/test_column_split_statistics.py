"""Column-split correlation and covariance between two real hospital processes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from parties.client import Client
from parties.config import DataConfig
from parties.local.launcher import DATA_PATH, LocalDeployment

pytestmark = pytest.mark.process

HELD = {"hospital-a": ["mean_radius", "mean_texture"], "hospital-b": ["mean_area"]}


def _write(path: Path, header: list[str], rows: list[list[str]], columns: list[str]) -> None:
    picks = [header.index("id")] + [header.index(c) for c in columns]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *columns])
        writer.writerows([[r[j] for j in picks] for r in rows])


def test_correlation_of_columns_held_by_different_hospitals(tmp_path: Path) -> None:
    with DATA_PATH.open() as f:
        table = list(csv.reader(f))
    header, body = table[0], table[1:]
    dep = LocalDeployment(tmp_path, list(HELD), name="split")
    shuffled = [body[i] for i in np.random.default_rng(3).permutation(len(body))]
    for hospital, rows in (("hospital-a", body), ("hospital-b", shuffled)):
        path = tmp_path / f"{hospital}-columns.csv"
        _write(path, header, rows, HELD[hospital])
        dep.set_data(hospital, DataConfig("csv", path))
    ids = [int(r[0]) for r in body]
    x = np.array(
        [[float(r[header.index(c)]) for c in [*HELD["hospital-a"], "mean_area"]] for r in body]
    )
    with dep:
        client = Client(dep.members["analyst"])
        try:
            result = client.column_split("covariance", HELD, key="id", ids=ids)
        finally:
            client.close()
    assert result["count"] == len(body)
    np.testing.assert_allclose(result["correlation"], np.corrcoef(x, rowvar=False), atol=1e-3)
    expected = np.cov(x, rowvar=False)
    scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
    assert np.max(np.abs(result["covariance"] - expected) / scale) < 1e-4
