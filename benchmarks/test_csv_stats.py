"""stats variance over a 10^6-row, 30-column CSV per hospital, 3 hospital processes.

Scenario: three hospital processes and a dealer process on loopback
(``LocalDeployment``), each hospital with its own CSV of 10^6 rows and 30
columns (written as in ``test_csv_source.py``, about 200 MB each), opened
once when the process starts, as a party does. Semi-honest parties, the
dealer colluding with none. Timed: submit to result at the analyst's
client. Each timed job asks for two columns no earlier job read, so every
round parses its columns afresh (a party keeps the numbers of columns it
parsed for later jobs on the same snapshot). Command::

    .venv/bin/python -m pytest benchmarks/test_csv_stats.py --benchmark-enable --benchmark-only

Target: under 1.5 s per job. Writing the three files takes a while, so the
module runs only with ``--benchmark-enable``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.test_csv_source import ROWS, WIDTH, _write
from parties.client import Client
from parties.config import DataConfig
from parties.local.launcher import LocalDeployment

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")


@pytest.fixture(scope="module")
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalDeployment, list[np.ndarray]]]:
    if not request.config.getoption("benchmark_enable"):
        pytest.skip("writes 3 CSVs of 10^6 rows: runs only with --benchmark-enable")
    root = tmp_path_factory.mktemp("csv-stats")
    dep = LocalDeployment(root, HOSPITALS, name="csvbench")
    values = []
    for h, name in enumerate(HOSPITALS):
        path = root / f"{name}-big.csv"
        values.append(_write(path, ROWS, WIDTH, seed=11 + h))
        dep.set_data(name, DataConfig("csv", path))
    try:
        dep.start_all()
        yield dep, values
    finally:
        dep.close()


def test_variance_over_a_million_rows_per_hospital(
    benchmark: BenchmarkFixture, deployment: tuple[LocalDeployment, list[np.ndarray]]
) -> None:
    dep, values = deployment
    client = Client(dep.members["analyst"])
    pairs = iter([(f"c{j}", f"c{j + 1}") for j in range(2, WIDTH - 2, 2)])
    asked: list[tuple[str, str]] = []

    def setup() -> tuple[tuple[tuple[str, str]], dict[str, object]]:
        pair = next(pairs)
        asked.append(pair)
        return (pair,), {}

    try:
        benchmark.group = "stats over CSV, 3 x 10^6 rows"
        result = benchmark.pedantic(
            lambda pair: client.statistics("variance", list(pair)),
            setup=setup,
            rounds=3,
            iterations=1,
            warmup_rounds=1,
        )
    finally:
        client.close()
    columns = [int(c[1:]) for c in asked[-1]]  # the data columns after "id"
    pooled = np.vstack([v[:, columns] for v in values])
    complete = pooled[~np.isnan(pooled).any(axis=1)]
    assert result["count"] == len(complete)
    np.testing.assert_allclose(result["mean"], complete.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(result["variance"], complete.var(axis=0, ddof=1), rtol=1e-5)
