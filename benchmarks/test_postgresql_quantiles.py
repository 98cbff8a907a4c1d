"""Quantiles over 10^6 rows per hospital held in PostgreSQL: counts per step in SQL or in memory.

Scenario: a throwaway PostgreSQL server (``parties.local.postgres_server``)
holds one table per hospital of 10^6 rows (``id`` and two columns of
numbers made by ``generate_series`` from formulas numpy repeats for the
oracle). Three parties run the quantile protocol in process
(``LocalFederation``), each answering its local counts from its own table
through :class:`~parties.data.pushdown.PostgresAggregates`: the median and
the 10th and 90th percentiles of ``x`` over the rows with ``y < 150``, on
the default 20-bit grid (5 bisection steps). Timed: the whole job, the
first pass over each table included.

Two ways to answer the protocol's counts, toggled in the same run: the kept
values read once (one more pass, then a binary search per step), and a
grouped SQL pass per step (what a selection above
``SORTED_VALUES_LIMIT`` still does). Loading 3 x 10^6 rows takes about
10 s, so the module runs only with ``--benchmark-enable``. Command::

    .venv/bin/python -m pytest benchmarks/test_postgresql_quantiles.py --benchmark-enable \\
        --benchmark-only
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.test_postgresql_stats import fill_tables, table_columns
from parties.data import pushdown
from parties.data.postgresql_source import PostgresSource
from parties.local import postgres_server
from protocols.statistics import contexts, run_local
from smpc.local import LocalFederation

ROWS = 10**6
TABLES = ("h1", "h2", "h3")
PASSWORD = "bench-pg-password-4417"
ENV = "SMPC_BENCH_PG_PASSWORD"
WHERE = "y < 150"
PARAMS = {"probabilities": [0.1, 0.5, 0.9], "range": [0, 128], "bits": 20}


def _kept_x(h: int) -> np.ndarray:
    x, y = table_columns(h, ROWS).T
    return x[y < 150]


@pytest.fixture(scope="module")
def sources(request: pytest.FixtureRequest) -> Iterator[tuple[list[PostgresSource], np.ndarray]]:
    if not request.config.getoption("benchmark_enable"):
        pytest.skip("loads 3 x 10^6 rows into PostgreSQL: runs only with --benchmark-enable")
    if postgres_server.binaries() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with postgres_server.running(PASSWORD, ["shared_buffers=256MB"]) as server:
        with psycopg.connect(server.dsn, password=PASSWORD, autocommit=True) as conn:
            fill_tables(conn, TABLES, ROWS)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(ENV, PASSWORD)
            made = [PostgresSource(server.dsn, name, password_env=ENV) for name in TABLES]
            yield made, np.concatenate([_kept_x(h) for h in range(len(TABLES))])


def _job(made: list[PostgresSource]) -> dict:
    datas = [src.aggregates(["x"], WHERE) for src in made]
    ctxs = [
        dataclasses.replace(ctx, data=d)
        for ctx, d in zip(
            contexts([np.zeros((0, 1))] * len(made), ["x"], params=PARAMS), datas, strict=True
        )
    ]
    try:
        result, _ = run_local(LocalFederation(len(made)), "stats-quantiles", ctxs)
    finally:
        for d in datas:
            assert d is not None
            d.close()
    return result


@pytest.mark.parametrize("counting", ["values read once", "sql pass per step"])
def test_quantiles_over_a_million_rows_per_hospital(
    benchmark: BenchmarkFixture,
    sources: tuple[list[PostgresSource], np.ndarray],
    counting: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made, pooled = sources
    if counting == "sql pass per step":
        monkeypatch.setattr(pushdown, "SORTED_VALUES_LIMIT", 0)
    benchmark.group = "quantiles over PostgreSQL, 3 x 10^6 rows"
    result = benchmark.pedantic(lambda: _job(made), rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(rows_per_hospital=ROWS, kept=len(pooled), counting=counting)
    assert result["count"] == len(pooled)
    exact = np.quantile(pooled, PARAMS["probabilities"], method="inverted_cdf")
    width = 128 / 2**20
    assert np.all(np.abs(np.asarray(result["quantiles"]) - exact) <= width / 2 + 1e-9)
