"""stats mean and variance over 10^7 rows per hospital held in PostgreSQL, 3 hospital processes.

Scenario: a throwaway PostgreSQL server (``parties.local.postgres_server``)
holds one table per hospital of 10^7 rows (``id`` and two columns of
numbers, made by ``generate_series`` from formulas numpy repeats for the
oracle); three hospital processes and a dealer process on loopback
(``LocalDeployment``), each hospital with ``[data] kind = "postgresql"``.
Semi-honest parties, the dealer colluding with none. Each hospital computes
its local aggregates in its database (one pass over its rows, in one
read-only snapshot); only those are secret-shared. Timed: submit to result
at the analyst's client, the whole job.

Loading 3 x 10^7 rows takes a minute or two, so the module runs only with
``--benchmark-enable``. Command::

    .venv/bin/python -m pytest benchmarks/test_postgresql_stats.py --benchmark-enable \\
        --benchmark-only

Target: under 3 s per job.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import psycopg
import pytest
from psycopg import sql
from pytest_benchmark.fixture import BenchmarkFixture

from parties.client import Client
from parties.config import DataConfig
from parties.local import postgres_server
from parties.local.launcher import LocalDeployment

ROWS = 10**7
HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
PASSWORD = "bench-pg-password-7301"
# x = ((i * 7919 + 31 h) mod 10007) / 100 and y = ((i * 104729 + 17 h) mod 9973) / 50 for row i
# of hospital h: both in [0, 200), the same doubles in PostgreSQL and numpy.
_FILL = (
    "INSERT INTO {} SELECT i, ((i * 7919 + {a}) % 10007) / 100.0,"
    " ((i * 104729 + {b}) % 9973) / 50.0 FROM generate_series(1::bigint, {n}) AS i"
)


def table_columns(h: int, rows: int = ROWS) -> np.ndarray:
    """Hospital ``h``'s (x, y) columns as :func:`fill_tables` writes them, computed in numpy."""
    i = np.arange(1, rows + 1, dtype=np.int64)
    x = ((i * 7919 + 31 * h) % 10007) / 100.0
    y = ((i * 104729 + 17 * h) % 9973) / 50.0
    return np.column_stack([x, y])


def fill_tables(conn: psycopg.Connection, tables: Sequence[str], rows: int = ROWS) -> None:
    """Create and fill one (id, x, y) table per name, table h with hospital h's columns."""
    for h, name in enumerate(tables):
        table = sql.Identifier(name)
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint PRIMARY KEY, x double precision, y double precision)"
            ).format(table)
        )
        conn.execute(
            sql.SQL(_FILL).format(
                table, a=sql.Literal(31 * h), b=sql.Literal(17 * h), n=sql.Literal(rows)
            )
        )
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))


@pytest.fixture(scope="module")
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalDeployment, np.ndarray]]:
    if not request.config.getoption("benchmark_enable"):
        pytest.skip("loads 3 x 10^7 rows into PostgreSQL: runs only with --benchmark-enable")
    if postgres_server.binaries() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = tmp_path_factory.mktemp("pg-bench")
    with postgres_server.running(PASSWORD, ["shared_buffers=1GB"]) as server:
        with psycopg.connect(server.dsn, password=PASSWORD, autocommit=True) as conn:
            fill_tables(conn, [name.replace("-", "_") for name in HOSPITALS])
        secret = root / "db-password"
        secret.write_text(PASSWORD, encoding="utf-8")
        dep = LocalDeployment(root, HOSPITALS, name="pgbench")
        for name in HOSPITALS:
            dep.set_data(
                name,
                DataConfig(
                    "postgresql",
                    table=name.replace("-", "_"),
                    dsn=server.dsn,
                    password_file=secret,
                ),
            )
        pooled = np.vstack([table_columns(h) for h in range(len(HOSPITALS))])
        try:
            dep.start_all()
            yield dep, pooled
        finally:
            dep.close()


@pytest.mark.parametrize("statistic", ["mean", "variance"])
def test_stats_over_ten_million_rows_per_hospital(
    benchmark: BenchmarkFixture, deployment: tuple[LocalDeployment, np.ndarray], statistic: str
) -> None:
    dep, pooled = deployment
    client = Client(dep.members["analyst"])
    try:
        benchmark.group = "stats over PostgreSQL, 3 x 10^7 rows"
        result = benchmark.pedantic(
            lambda: client.statistics(statistic, ["x", "y"]),
            rounds=3,
            iterations=1,
            warmup_rounds=1,
        )
    finally:
        client.close()
    benchmark.extra_info.update(rows_per_hospital=ROWS, hospitals=len(HOSPITALS))
    assert result["count"] == len(pooled)
    np.testing.assert_allclose(result["mean"], pooled.mean(axis=0), rtol=1e-6)
    if statistic == "variance":
        np.testing.assert_allclose(result["variance"], pooled.var(axis=0, ddof=1), rtol=1e-5)
