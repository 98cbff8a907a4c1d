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
from parties.data.selection import CellBlock, Column, side_by_side
from parties.data.sqlite_source import SqliteSource
from protocols.disclosure import VALUE_BOUND, StatisticsInputError
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


class _Parsed(CellBlock):
    """Cells a source has parsed already, as the CSV reader keeps them."""

    def __init__(self, numbers: np.ndarray) -> None:
        self._numbers = numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def cell(self, i: int) -> str:
        return repr(float(self._numbers[i]))

    def take(self, rows: np.ndarray) -> _Parsed:
        return _Parsed(self._numbers[rows])

    def numbers(self) -> np.ndarray:
        return self._numbers


@pytest.mark.parametrize("bad", [2e9, -2e9, np.inf, -np.inf])
@pytest.mark.parametrize("at", [0, 5, 70_000, 199_999])
def test_facts_find_the_first_bad_row_anywhere_in_a_long_column(bad: float, at: int) -> None:
    """The checks look a block of rows at a time; the row they name is the first one
    numpy finds over the whole column, in any block, missing cells skipped."""
    numbers = np.zeros(200_000)
    numbers[::7] = np.nan
    numbers[at] = bad
    numbers[at + 1 :: 9] = 1.0
    row_ids = np.arange(1, len(numbers) + 1)
    facts = Column("x", _Parsed(numbers), row_ids).facts()
    present = ~np.isnan(numbers)
    outside = present & ~(np.abs(numbers) < VALUE_BOUND)
    other = present & (numbers != 0) & (numbers != 1)
    assert facts.out_of_range == row_ids[np.argmax(outside)] == at + 1
    assert facts.not_binary == row_ids[np.argmax(other)] == at + 1
    binary = np.where(np.isnan(numbers), np.nan, (np.arange(len(numbers)) % 3 == 0) * 1.0)
    assert Column("y", _Parsed(binary), row_ids).facts() == ColumnFacts()
    assert Column("z", _Parsed(np.full(10, np.nan)), row_ids[:10]).facts() == ColumnFacts()


def test_side_by_side_shares_a_parsed_block_and_copies_anything_else() -> None:
    block = np.arange(12.0).reshape(4, 3).copy()  # owns its memory, as a parsed block does
    values = side_by_side([block[1], block[2]], 3)
    np.testing.assert_array_equal(values, block[1:3].T)
    assert np.shares_memory(values, block) and values.flags.f_contiguous
    cases: list[list[np.ndarray | None]] = [
        [block[2], block[1]],  # out of order
        [block[1], None],  # a text column
        [block[1], block[3]],  # not adjacent
        [block[1], block[2].copy()],
        [block[1:3, 0], block[1:3, 1]],  # strided
    ]
    for columns in cases:
        rows = next(len(c) for c in columns if c is not None)
        values = side_by_side(columns, rows)
        assert not np.shares_memory(values, block) and values.flags.f_contiguous
        filled = [np.full(rows, np.nan) if c is None else c for c in columns]
        np.testing.assert_array_equal(values, np.stack(filled, axis=1))
    assert side_by_side([], 5).shape == (5, 0)


def test_every_column_of_a_csv_is_selected_without_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("a,b,c\n1,2,3\n4,,6\n", encoding="utf-8")
    src = CsvSource(path)
    first = src.select(["a", "b", "c"])
    np.testing.assert_array_equal(first.values, [[1, 2, 3], [4, np.nan, 6]])
    again = src.select(["a", "b", "c"])
    assert np.shares_memory(first.values, again.values) and not again.values.flags.writeable
    assert src.select(["c", "a"]).values.tolist() == [[3, 1], [6, 4]]
