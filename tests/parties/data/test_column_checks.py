"""Validity is decided on every row of a column, before the job's filter.

Each source kind (the compiled CSV reader, the ``csv`` module's path, SQLite)
holds one patient with a bad value in row 3. Whatever the filter keeps, the
selection carries the same whole-column facts, and the refusals made from
them name column and data row 3, never the value. Missing cells are no error.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from parties.data.base import DataSource
from parties.data.csv_source import CsvSource
from parties.data.errors import DataSourceError
from parties.data.sqlite_source import SqliteSource
from protocols.disclosure import StatisticsInputError
from protocols.local_data import ColumnFacts, RowData

HEADER = ("id", "lab", "site", "event")
ROWS = [
    ("1", "12.5", "north", "0"),
    ("2", "", "south", "1"),  # missing: left out, never an error
    ("3", "20000", "elsewhere", "2"),  # out of range, not a declared level, not 0/1
    ("4", "-7", "north", "NA"),
    ("5", "3", "south", "1"),
]
FILTERS = ("id != 3", "id == 3", "id >= 4", None)


def _csv(path: Path, *, quoted: bool) -> CsvSource:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL if quoted else csv.QUOTE_MINIMAL)
        writer.writerow(HEADER)
        writer.writerows(ROWS)
    return CsvSource(path)


def _sqlite(path: Path) -> SqliteSource:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, lab REAL, site TEXT, event TEXT)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [(int(i), float(v) if v else None, s, e) for i, v, s, e in ROWS],
        )
    conn.close()
    return SqliteSource(path, "t")


@pytest.fixture(params=["csv-fast", "csv-module", "sqlite"])
def src(request: pytest.FixtureRequest, tmp_path: Path) -> DataSource:
    if request.param == "sqlite":
        return _sqlite(tmp_path / "d.db")
    return _csv(tmp_path / "d.csv", quoted=request.param == "csv-module")


@pytest.mark.parametrize("where", FILTERS)
def test_facts_are_the_whole_columns_whatever_the_filter(src: DataSource, where: str) -> None:
    numbers = src.select(["lab", "event"], where)
    assert numbers.facts["lab"] == ColumnFacts(out_of_range=3, not_binary=1)
    assert numbers.facts["event"].not_binary == 3
    assert numbers.facts["event"].out_of_range is None
    text = src.select(["site"], where, numeric=False)
    assert text.facts["site"].not_number == 1
    assert dict(text.facts["site"].levels or {}) == {"north": 1, "south": 2, "elsewhere": 3}


@pytest.mark.parametrize("where", ["id != 3", "id == 1 or id == 5"])
def test_a_bounded_statistic_refuses_a_bad_row_the_filter_dropped(
    src: DataSource, where: str
) -> None:
    sel = src.select(["lab"], where)
    assert 3 not in sel.row_ids.tolist()
    RowData(sel.columns, sel.values).sums()  # the kept rows alone are fine
    data = RowData(sel.columns, sel.values, facts=sel.facts)
    data.counts()  # a count reads no value
    data.histogram(np.array([-100.0, 0.0, 100.0]))  # nor is a histogram bounded
    with pytest.raises(StatisticsInputError, match=r"column 'lab' data row 3: value out of range"):
        data.sums()
    with pytest.raises(StatisticsInputError, match=r"data row 3\b") as exc:
        data.extremes()
    assert "20000" not in str(exc.value)


def test_a_table_refuses_a_level_in_a_row_the_filter_dropped(src: DataSource) -> None:
    sel = src.select(["site"], "id != 3", numeric=False)
    text = {"site": sel.categorical("site")}
    levels = [["north", "south"]]
    RowData(sel.columns, sel.values, text).crosstab(levels)  # the kept rows alone are fine
    with pytest.raises(StatisticsInputError, match=r"column 'site' data row 3: value is not one"):
        RowData(sel.columns, sel.values, text, sel.facts).crosstab(levels)
    counted, cells = RowData(sel.columns, sel.values, text, sel.facts).crosstab(
        [["north", "south", "elsewhere"]]
    )
    assert cells.tolist() == [2, 2, 0] and counted.rows == 4


@pytest.mark.parametrize("where", FILTERS)
def test_text_in_a_numeric_column_is_refused_whatever_the_filter(
    src: DataSource, where: str
) -> None:
    with pytest.raises(DataSourceError, match=r"column 'site' .* data row 1\b") as exc:
        src.select(["site"], where)
    assert "north" not in str(exc.value)


def test_missing_cells_are_no_error(tmp_path: Path) -> None:
    src = _csv(tmp_path / "m.csv", quoted=False)
    sel = src.select(["lab"], "lab is missing")
    assert sel.row_ids.tolist() == [2]
    assert sel.facts["lab"].not_number is None


def test_csv_checks_are_kept_for_later_jobs(tmp_path: Path) -> None:
    src = _csv(tmp_path / "c.csv", quoted=False)
    first = src.select(["lab"], "id == 1").facts["lab"]
    assert src.select(["lab"], "id == 5").facts["lab"] is first
    assert src.select(["lab"], numeric=True).facts["lab"] is first
    assert src.select(["lab"], numeric=False).facts["lab"] is not first  # another check


def test_sqlite_checks_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    src = _sqlite(path)
    first = src.select(["lab"], "id == 1").facts["lab"]
    assert first.out_of_range == 3
    assert src.select(["lab"], "id == 5").facts["lab"] is first
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE t SET lab = 1 WHERE id = 3")
    conn.close()
    assert src.select(["lab"], "id == 1").facts["lab"].out_of_range is None


def test_levels_are_read_only_when_asked(src: DataSource) -> None:
    # e.g. the patient column consent reads: its distinct texts are of no use there
    assert src.select(["site"], "id == 1", numeric=False, levels=False).facts["site"] == (
        ColumnFacts(not_number=1)
    )
