"""The selection cache: equal to the source's own selection, kept only for snapshot sources."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from parties.data.csv_source import CsvSource
from parties.data.sqlite_source import SqliteSource
from parties.service.selections import SelectionCache

ROWS = [(1, 61.5, "F"), (2, 47.0, "M"), (3, 55.25, "F"), (4, 70.0, "M"), (5, 39.5, "F")]


def _csv(path: Path) -> Path:
    lines = ["id,age,sex", *(f"{i},{a},{s}" for i, a, s in ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_snapshot_selection_equals_the_source_and_is_kept(tmp_path: Path) -> None:
    source = CsvSource(_csv(tmp_path / "d.csv"))
    cache = SelectionCache(source)
    first = cache.select(["age"], 'sex == "F"')
    again = cache.select(["age"], 'sex == "F"')
    assert again is first
    expected = np.array([[a] for _, a, s in ROWS if s == "F"])
    np.testing.assert_array_equal(first.values, expected)
    np.testing.assert_array_equal(first.row_ids, [1, 3, 5])
    other = cache.select(["age"], 'sex == "M"')  # another filter is another selection
    np.testing.assert_array_equal(other.values, [[47.0], [70.0]])
    text = cache.select(["sex"], None, numeric=False)
    assert list(text.categorical("sex")) == [s for _, _, s in ROWS]
    assert len(cache) == 3


def test_live_source_is_asked_every_time(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (id integer, age real, sex text)")
        conn.executemany("insert into t values (?, ?, ?)", ROWS)
    conn.close()
    cache = SelectionCache(SqliteSource(db, "t"))
    assert cache.select(["age"]).values.shape == (5, 1)
    with sqlite3.connect(db) as conn:
        conn.execute("insert into t values (6, 80.0, 'M')")
    conn.close()
    assert cache.select(["age"]).values[:, 0].tolist() == [a for _, a, _ in ROWS] + [80.0]
    assert len(cache) == 0


def test_budget_drops_least_recently_used(tmp_path: Path) -> None:
    source = CsvSource(_csv(tmp_path / "d.csv"))
    one = source.select(["age"])
    size = one.values.nbytes + one.row_ids.nbytes
    cache = SelectionCache(source, budget=2 * size)
    a = cache.select(["age"])
    b = cache.select(["id"])
    assert cache.select(["age"]) is a  # now the most recently used
    cache.select(["age"], "id > 0")  # a third: the least recently used (id) goes
    assert len(cache) == 2
    assert cache.select(["age"]) is a
    assert cache.select(["id"]) is not b
    too_big = SelectionCache(source, budget=size - 1)
    too_big.select(["age"])
    assert len(too_big) == 0
