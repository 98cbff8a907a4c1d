"""A text cell is a number, or not, the same way in a CSV file and in PostgreSQL.

Whether a column holds only numbers decides refusals (a numeric statistic
over text, a filter comparing numbers with a string), so every source kind
must decide it alike over the whole column (``ColumnFacts``), or the kind of
source would change what a job may ask. The row path (:func:`_number`:
strip, the filter's NUMBER, a finite float64) is the reference; PostgreSQL
decides the same in SQL (``sql_filter.looks_numeric``) when it computes a
job's aggregates in place. Each case is a text column holding ``"7"`` and
one odd cell, written to a CSV file (both readers) and to a table. A
``numeric`` column, which holds decimals beyond float64 either way, reads
them as the CSV's text is read too.
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from parties.data import sql_filter
from parties.data.csv_source import CsvSource
from parties.data.errors import DataSourceError
from parties.data.postgresql_source import PostgresSource
from parties.data.selection import _number

ENV = "SMPC_TEST_PG_PASSWORD"
LIMIT = 2**1024 - 2**970  # the smallest integer float() rounds to an infinity

# (cell, whether a column of it and "7" holds numbers only); missing cells count as numbers.
CASES = [
    ("1e999", False),
    ("-1e999", False),
    ("inf", False),
    ("-Infinity", False),
    ("NaN", True),  # missing
    ("nan", False),
    ("NA", True),  # missing
    ("", True),  # missing
    ("  12 ", True),
    ("1e308", True),
    ("-1.7976931348623157e308", True),
    ("1.7976931348623159e308", False),
    ("1e309", False),
    (str(LIMIT), False),
    (str(LIMIT - 1), True),
    ("0." + str(LIMIT) + "e309", False),
    ("0.000" + str(LIMIT - 1) + "9e312", True),
    ("9" * 400, False),
    ("0" * 400 + "1", True),
    ("1e-400", True),  # underflows to 0.0: finite
    ("0e99999", True),
    ("1e99999999999999999999", False),
    ("1e-99999999999999999999", True),
    ("0x1p3", False),
    ("0x10", False),
    ("1_000", False),
    ("\u0661\u0662", False),  # Arabic-Indic digits
    ("\uff11\uff12", False),  # full-width digits
    ("+5", True),
    ("+.5", True),
    ("5.", True),
    (".", False),
    ("1e", False),
    ("\u22125", False),  # a minus sign that is not '-'
    ("\u00a012\u3000", True),  # no-break and ideographic spaces strip like any space
    ("\u200b12", False),  # a zero-width space is not whitespace
]


@pytest.fixture(autouse=True)
def _password(postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, postgres.password)


def _connect(server) -> psycopg.Connection:
    return psycopg.connect(server.dsn, password=server.password, autocommit=True)


def _csv(path: Path, cell: str, *, quoted: bool) -> CsvSource:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL if quoted else csv.QUOTE_MINIMAL)
        writer.writerows([("v", "x"), ("7", "1"), (cell, "2")])
    return CsvSource(path)


def _table(server, name: str, cell: str) -> PostgresSource:
    with _connect(server) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (k integer PRIMARY KEY, v text, x double precision)").format(
                sql.Identifier(name)
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (1, '7', 1), (2, %s, 2)").format(sql.Identifier(name)),
            (cell,),
        )
    return PostgresSource(server.dsn, name, password_env=ENV)


def _refuses_a_string(run) -> bool:
    """Whether comparing the column with a string is refused because it holds numbers."""
    try:
        run()
    except DataSourceError as exc:
        assert "which holds numbers" in str(exc), str(exc)
        return True
    return False


@pytest.mark.parametrize(("cell", "numbers"), CASES, ids=[repr(c)[:24] for c, _ in CASES])
def test_every_source_reads_a_cell_as_a_number_alike(postgres, tmp_path, cell, numbers) -> None:
    where = "v == 'a'"
    verdicts = {}
    for quoted in (False, True):
        src = _csv(tmp_path / f"q{quoted}.csv", cell, quoted=quoted)
        verdicts[f"csv quoted={quoted}"] = _refuses_a_string(lambda s=src: s.select(["x"], where))
    table = _table(postgres, "cells", cell)
    verdicts["postgresql rows"] = _refuses_a_string(lambda: table.select(["x"], where))

    def in_sql() -> None:
        data = table.aggregates(["x"], where)
        assert data is not None
        try:
            data.counts()
        finally:
            data.close()

    verdicts["postgresql in place"] = _refuses_a_string(in_sql)
    assert verdicts == dict.fromkeys(verdicts, numbers)
    # and read as numbers: refused exactly where the column is not all numbers
    src = _csv(tmp_path / "n.csv", cell, quoted=False)
    for reader in (src, table):
        try:
            reader.select(["v"])
            accepted = True
        except DataSourceError as exc:
            assert "column 'v' has a value that is not a finite number at data row 2" in str(exc)
            accepted = False
        assert accepted == numbers


def _number_strings(count: int, seed: int) -> list[str]:
    """Numbers in the filter's syntax, many near the float64 limit, some past it."""
    rng = random.Random(seed)
    digits = str(LIMIT)
    out = []
    for _ in range(count):
        if rng.random() < 0.5:  # the limit's digits, maybe changed, with a point and exponent
            head = list(digits[: rng.randint(1, len(digits))])
            if rng.random() < 0.5:
                head[rng.randrange(len(head))] = rng.choice("0123456789")
            body = "0" * rng.randint(0, 3) + "".join(head) + "9" * rng.randint(0, 3)
            point = rng.randint(0, len(body))
            mantissa = body[:point] + "." + body[point:] if rng.random() < 0.7 else body
            whole = len(body[:point].lstrip("0")) if "." in mantissa else len(body.lstrip("0"))
            exponent = 309 - whole + rng.choice([-1, 0, 0, 1])
            out.append(f"{mantissa}e{exponent:+d}" if exponent else mantissa)
        else:
            whole = "".join(rng.choice("0123456789") for _ in range(rng.choice([1, 200, 309])))
            mantissa = rng.choice(["", "-", "+"]) + whole + rng.choice(["", ".5", "."])
            if rng.random() < 0.6:
                size = rng.choice([1, 2, 3, 4, 15])
                power = "".join(rng.choice("0123456789") for _ in range(size))
                mantissa += rng.choice("eE") + rng.choice(["", "+", "-"]) + power
            out.append(mantissa)
    return out


def test_sql_decides_overflow_as_float_does_on_thousands_of_numbers(postgres) -> None:
    cells = _number_strings(5000, 11)
    with _connect(postgres) as conn:
        conn.execute("DROP TABLE IF EXISTS many_cells")
        conn.execute("CREATE TABLE many_cells (k integer, v text)")
        with conn.cursor() as cur, cur.copy("COPY many_cells (k, v) FROM STDIN") as copy:
            for row in enumerate(cells):
                copy.write_row(row)
        bind = sql_filter.Binder()
        query = sql.SQL("SELECT k, {} FROM many_cells AS r ORDER BY k").format(
            sql_filter.looks_numeric("v")
        )
        got = [numeric for _, numeric in conn.execute(query, bind.params).fetchall()]
    want = [_number(c) is not None for c in cells]
    overflow = sum(1 for c in cells if math.isinf(float(c)))
    assert 1000 < overflow < 4000  # both sides of the limit are well covered
    assert [c for c, g, w in zip(cells, got, want, strict=True) if g != w] == []


# Decimals a `numeric` column can hold that a float64 cannot: past the largest, or so
# small they round to a zero; and their neighbours that it can.
TINY = sql_filter.UNDERFLOW_DIGITS  # 2^-1075: a zero
DECIMALS = [
    "1e400",
    "-1e400",
    str(LIMIT),
    str(LIMIT - 1),
    "-" + str(LIMIT - 1),
    "1e-400",
    "-1e-400",
    TINY,
    "-" + TINY,
    TINY + "1",  # just above: the smallest float64
    "2.5e-324",
    "1.5",
    "0.1",
]  # not "-0": numeric keeps no negative zero, so the table would hold other data


@pytest.mark.parametrize("keyed", [True, False], ids=["primary key", "ctid order"])
@pytest.mark.parametrize("cell", DECIMALS, ids=[c[:12] for c in DECIMALS])
def test_a_numeric_column_reads_a_decimal_as_a_csv_does(postgres, tmp_path, cell, keyed) -> None:
    src = _csv(tmp_path / "d.csv", cell, quoted=False)  # column v: "7", then the cell
    with _connect(postgres) as conn:
        conn.execute("DROP TABLE IF EXISTS exact")
        key = "PRIMARY KEY" if keyed else ""
        conn.execute(f"CREATE TABLE exact (k integer {key}, v numeric, x double precision)")
        conn.execute("INSERT INTO exact VALUES (1, 7, 1), (2, %s::numeric, 2)", (cell,))
    table = PostgresSource(postgres.dsn, "exact", password_env=ENV)

    def read(source) -> list[float] | str:
        try:
            return source.select(["v"]).values[:, 0].tolist()
        except DataSourceError as exc:
            return str(exc)

    want, got = read(src), read(table)
    assert got == want
    if isinstance(want, list):  # the same doubles, the sign of a zero included
        assert [math.copysign(1, v) for v in got] == [math.copysign(1, v) for v in want]
        assert want[1] == float(cell)
    data = table.aggregates(["v"])
    assert data is not None
    try:
        data.counts()
        refused = None
    except DataSourceError as exc:
        refused = str(exc)
    finally:
        data.close()
    if isinstance(want, str):
        assert refused == "column 'v' has a value that is not a finite number at data row 2"
    else:
        assert refused is None


def test_a_numeric_column_dropped_after_opening_is_not_selected_again(postgres) -> None:
    with _connect(postgres) as conn:
        conn.execute("DROP TABLE IF EXISTS shrinking")
        conn.execute("CREATE TABLE shrinking (k integer PRIMARY KEY, a numeric, x numeric)")
        conn.execute("INSERT INTO shrinking VALUES (1, 1, 2.5), (2, 3, 4.5)")
    table = PostgresSource(postgres.dsn, "shrinking", password_env=ENV)
    with _connect(postgres) as conn:
        conn.execute("ALTER TABLE shrinking DROP COLUMN a")
    assert table.select(["x"]).values[:, 0].tolist() == [2.5, 4.5]  # reads the schema first
    data = table.aggregates(["x"])
    assert data is not None
    try:
        assert data.sums()[1].tolist() == [7.0]
    finally:
        data.close()
