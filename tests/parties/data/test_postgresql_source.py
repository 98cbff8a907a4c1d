"""The PostgreSQL source against a real server: same selections as the CSV path, no injection.

The server is started by the ``postgres`` fixture (conftest.py). Tables are
written from the test CSVs with bound parameters; the oracle is the CSV
source on the same rows, itself checked against plain Python elsewhere.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from parties.config import ConfigError, DataConfig
from parties.data import postgresql_source
from parties.data.errors import DataSourceError
from parties.data.kinds import open_source
from parties.data.postgresql_source import PostgresSource

CSV_PATH = Path(__file__).resolve().parents[3] / "parties" / "local" / "data" / "breast_cancer.csv"
FILTERS = [
    None,
    "mean_radius > 15",
    "diagnosis == 'M' and mean_texture <= 20",
    "not (mean_radius < 12 or mean_radius is missing)",
    "mean_texture is missing or diagnosis != 'B'",
]


def _connect(server) -> psycopg.Connection:
    return psycopg.connect(server.dsn, password=server.password, autocommit=True)


def _csv_to_table(server, path: Path, table: str) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    kinds = ["text" if h == "diagnosis" else "double precision" for h in header]
    with _connect(server) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(h), sql.SQL(k))
            for h, k in zip(header, kinds, strict=True)
        )
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), columns))
        marks = sql.SQL(", ").join(sql.Placeholder() for _ in header)
        insert = sql.SQL("INSERT INTO {} VALUES ({})").format(sql.Identifier(table), marks)
        with conn.cursor() as cur:
            cur.executemany(
                insert,
                [
                    [
                        None if c.strip() in ("", "NA", "NaN") else c if k == "text" else float(c)
                        for c, k in zip(row, kinds, strict=True)
                    ]
                    for row in rows
                ],
            )


@pytest.fixture(scope="module")
def holey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with CSV_PATH.open(newline="") as fh:
        header, *rows = list(csv.reader(fh))
    radius, texture, diagnosis = (
        header.index(c) for c in ("mean_radius", "mean_texture", "diagnosis")
    )
    for i, row in enumerate(rows, start=1):
        if i % 7 == 0:
            row[radius] = ""
        if i % 11 == 0:
            row[texture] = "NA"
        if i % 13 == 0:
            row[diagnosis] = ""
    path = tmp_path_factory.mktemp("pg") / "holey.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return path


@pytest.fixture(scope="module")
def tables(postgres, holey: Path) -> Iterator[dict[str, Path]]:
    _csv_to_table(postgres, CSV_PATH, "bc")
    _csv_to_table(postgres, holey, "holey")
    yield {"bc": CSV_PATH, "holey": holey}


def _source(server, table: str, **kw) -> PostgresSource:
    return PostgresSource(server.dsn, table, password_env="SMPC_TEST_PG_PASSWORD", **kw)


@pytest.fixture(autouse=True)
def _password(postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMPC_TEST_PG_PASSWORD", postgres.password)


@pytest.mark.parametrize("table", ["bc", "holey"])
@pytest.mark.parametrize("where", FILTERS)
def test_postgresql_selection_equals_the_csv_one(postgres, tables, table: str, where) -> None:
    csv_src = open_source(DataConfig("csv", tables[table]))
    pg = _source(postgres, table)
    assert pg.columns == csv_src.columns and pg.row_count == csv_src.row_count
    columns = ["mean_radius", "mean_texture", "mean_area"]
    want, got = csv_src.select(columns, where), pg.select(columns, where)
    assert len(want) > 0
    np.testing.assert_array_equal(got.row_ids, want.row_ids)
    np.testing.assert_array_equal(got.values, want.values)
    # and against numpy on the CSV's own numbers
    np.testing.assert_allclose(np.nanmean(got.values, axis=0), np.nanmean(want.values, axis=0))
    text = pg.select(["diagnosis"], where, numeric=False).categorical("diagnosis")
    assert (
        text.tolist()
        == csv_src.select(["diagnosis"], where, numeric=False).categorical("diagnosis").tolist()
    )


def test_rows_stream_in_batches_with_the_same_cells(postgres, tables, monkeypatch) -> None:
    """A server-side cursor fetched 100 rows at a time gives the one-batch selection."""
    csv_src = open_source(DataConfig("csv", tables["holey"]))
    monkeypatch.setattr(postgresql_source, "BATCH_ROWS", 100)
    pg = _source(postgres, "holey")
    columns = ["mean_radius", "mean_texture", "diagnosis"]
    got = pg.select(columns, "mean_area > 500", numeric=False)
    want = csv_src.select(columns, "mean_area > 500", numeric=False)
    np.testing.assert_array_equal(got.row_ids, want.row_ids)
    np.testing.assert_array_equal(got.values, want.values)
    assert got.categorical("diagnosis").tolist() == want.categorical("diagnosis").tolist()


def test_open_source_reads_the_password_from_a_file(postgres, tables, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(postgres.password + "\n", encoding="utf-8")
    src = open_source(DataConfig("postgresql", table="bc", dsn=postgres.dsn, password_file=secret))
    assert src.row_count == 569
    assert postgres.password not in repr(src) and "port" not in repr(src)


def test_wrong_or_missing_password_names_neither_dsn_nor_password(postgres, tables, monkeypatch):
    monkeypatch.setenv("SMPC_TEST_PG_PASSWORD", "wrong-password-771")
    with pytest.raises(DataSourceError, match="cannot connect") as exc:
        _source(postgres, "bc")
    assert "wrong-password-771" not in str(exc.value) and str(postgres.port) not in str(exc.value)
    monkeypatch.delenv("SMPC_TEST_PG_PASSWORD")
    with pytest.raises(DataSourceError, match=r"SMPC_TEST_PG_PASSWORD .* not set"):
        _source(postgres, "bc")


@pytest.mark.parametrize(
    "dsn",
    [
        "host=h password=hunter2 dbname=x",
        "postgresql://u:hunter2@h/db",
        "postgres://h/db?password=hunter2",
    ],
)
def test_a_password_in_the_dsn_is_refused_without_repeating_it(dsn: str) -> None:
    with pytest.raises(ConfigError) as exc:
        DataConfig("postgresql", table="t", dsn=dsn)
    assert "hunter2" not in str(exc.value)


def test_injection_through_names_and_filters_is_refused(postgres, tables) -> None:
    pg = _source(postgres, "bc")
    for name in ['mean_radius"; DROP TABLE bc; --', "mean_radius FROM bc; --", "*"]:
        with pytest.raises(DataSourceError, match="unknown column"):
            pg.select([name])
    for where in ["mean_radius > 1; DROP TABLE bc", "mean_radius > 1 -- x", "1 == 1 or true"]:
        with pytest.raises(DataSourceError):
            pg.select(["mean_radius"], where)
    # A literal full of SQL is only ever a value: it matches no diagnosis.
    assert len(pg.select(["mean_radius"], "diagnosis == \"M' OR '1'='1\"")) == 0
    for table in ["bc; DROP TABLE bc", 'bc" --', "pg_catalog.pg_authid"]:
        with pytest.raises(DataSourceError, match="not an identifier"):
            _source(postgres, table)
    assert pg.row_count == 569


def test_reads_are_read_only_transactions(postgres, tables) -> None:
    pg = _source(postgres, "bc")
    with pytest.raises(DataSourceError, match="ReadOnlySqlTransaction"), pg._connect() as conn:
        conn.execute("DELETE FROM bc")
    assert pg.row_count == 569


def test_primary_key_order_and_unknown_table(postgres, tables) -> None:
    with _connect(postgres) as conn:
        conn.execute("DROP TABLE IF EXISTS keyed")
        conn.execute("CREATE TABLE keyed (k integer PRIMARY KEY, v double precision)")
        conn.execute("INSERT INTO keyed VALUES (3, 30), (1, 10), (2, NULL)")
    sel = _source(postgres, "keyed").select(["v"], "v is not missing")
    assert sel.row_ids.tolist() == [1, 3] and sel.values[:, 0].tolist() == [10.0, 30.0]
    with pytest.raises(DataSourceError, match=r"no table 'absent'.*keyed"):
        _source(postgres, "absent")


def _slow_view(postgres, seconds: float) -> None:
    with _connect(postgres) as conn:
        conn.execute(
            sql.SQL(
                "CREATE OR REPLACE VIEW slow AS SELECT mean_radius FROM bc, pg_sleep({})"
            ).format(sql.Literal(seconds))
        )


def test_a_dropped_connection_mid_read_is_a_clear_error(postgres, tables) -> None:
    _slow_view(postgres, 3)
    pg = _source(postgres, "slow")

    def kill() -> None:
        time.sleep(0.7)
        with _connect(postgres) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
                " AND state = 'active'"
            )

    killer = threading.Thread(target=kill)
    killer.start()
    try:
        with pytest.raises(DataSourceError, match=r"cannot read table 'slow' \(.*57P01\)") as exc:
            pg.select(["mean_radius"])
    finally:
        killer.join()
    assert postgres.password not in str(exc.value)


def test_the_statement_timeout_stops_a_long_read(postgres, tables) -> None:
    _slow_view(postgres, 2)
    pg = _source(postgres, "slow", statement_timeout_ms=300)
    start = time.monotonic()
    with pytest.raises(DataSourceError, match="QueryCanceled"):
        pg.select(["mean_radius"])
    assert time.monotonic() - start < 1.8
