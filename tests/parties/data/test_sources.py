"""Local data sources: CSV and SQLite agree, filters match plain Python, errors keep values out.

The oracles read the CSV with ``csv.DictReader`` and filter rows in a plain
Python loop; SQLite databases are written from the same CSV with parameterised
inserts, independently of the module under test.
"""

from __future__ import annotations

import csv
import hashlib
import math
import sqlite3
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parties.config import DataConfig
from parties.data.base import DataSource
from parties.data.errors import DataSourceError, FilterSyntaxError
from parties.data.filters import MAX_FILTER_DEPTH, MAX_FILTER_LENGTH, parse_filter
from parties.data.kinds import open_source
from parties.data.selection import Selection
from smpc.errors import SMPCError

CSV_PATH = Path(__file__).resolve().parents[3] / "parties" / "local" / "data" / "breast_cancer.csv"
MISSING = ("", "NA", "NaN")
Row = dict[str, str]

# -- building data and oracles ------------------------------------------------


def read_rows(path: Path) -> list[Row]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def csv_to_sqlite(csv_path: Path, db_path: Path, table: str = "patients") -> Path:
    """A table with the CSV's rows: TEXT for diagnosis, REAL/INTEGER otherwise, NULL if missing."""
    with csv_path.open(newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    kinds = ["TEXT" if h == "diagnosis" else "INTEGER" if h == "id" else "REAL" for h in header]
    conn = sqlite3.connect(db_path)
    with conn:
        columns = ", ".join(f"{h} {k}" for h, k in zip(header, kinds, strict=True))
        conn.execute(f"CREATE TABLE {table} ({columns})")
        marks = ", ".join("?" for _ in header)
        converted = [
            [
                None if cell.strip() in MISSING else cell if kind == "TEXT" else float(cell)
                for cell, kind in zip(row, kinds, strict=True)
            ]
            for row in rows
        ]
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", converted)
    conn.close()
    return db_path


def sqlite_table(db_path: Path, ddl: str, rows: Sequence[Sequence[object]]) -> Path:
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(ddl)
        table = ddl.split()[2]
        for row in rows:
            marks = ", ".join("?" for _ in row)
            conn.execute(f"INSERT INTO {table} VALUES ({marks})", row)
    conn.close()
    return db_path


def num(row: Row, column: str) -> float | None:
    text = row[column].strip()
    return None if text in MISSING else float(text)


def text(row: Row, column: str) -> str | None:
    value = row[column].strip()
    return None if value in MISSING else value


def lt(row: Row, column: str, bound: float) -> bool:
    """Known and below ``bound``."""
    x = num(row, column)
    return x is not None and x < bound


def gt(row: Row, column: str, bound: float) -> bool:
    x = num(row, column)
    return x is not None and x > bound


def between(row: Row, column: str, low: float, high: float) -> bool:
    x = num(row, column)
    return x is not None and low <= x <= high


def is_text(row: Row, column: str, value: str) -> bool:
    return text(row, column) == value


@pytest.fixture(scope="module")
def holey_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The breast cancer CSV with blanks, NA and NaN cells at fixed rows."""
    with CSV_PATH.open(newline="") as fh:
        header, *rows = list(csv.reader(fh))
    col = {name: j for j, name in enumerate(header)}
    for i, row in enumerate(rows, start=1):
        if i % 7 == 0:
            row[col["mean_radius"]] = ""
        if i % 19 == 0:
            row[col["mean_radius"]] = "NA"
        if i % 11 == 0:
            row[col["mean_texture"]] = "NaN"
        if i % 13 == 0:
            row[col["diagnosis"]] = ""
        if i % 29 == 0:
            row[col["mean_texture"]] = " NA "
    return write_csv(tmp_path_factory.mktemp("holey") / "holey.csv", header, rows)


@pytest.fixture(scope="module")
def datasets(holey_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("dbs")
    return {
        "bc.csv": CSV_PATH,
        "bc.db": csv_to_sqlite(CSV_PATH, folder / "bc.db"),
        "holey.csv": holey_csv,
        "holey.db": csv_to_sqlite(holey_csv, folder / "holey.db"),
    }


def source(path: Path, table: str = "patients") -> DataSource:
    if path.suffix == ".csv":
        return open_source(DataConfig("csv", path))
    return open_source(DataConfig("sqlite", path, table))


# Filter text and the same condition written as a plain Python predicate.
# A comparison with a missing cell is never true, and `not` does not make it true.
CASES: list[tuple[str, Callable[[Row], bool]]] = [
    ('diagnosis == "M"', lambda r: is_text(r, "diagnosis", "M")),
    ("diagnosis != 'B'", lambda r: text(r, "diagnosis") not in (None, "B")),
    (
        "mean_radius >= 15 and diagnosis == 'B'",
        lambda r: (
            not lt(r, "mean_radius", 15)
            and num(r, "mean_radius") is not None
            and is_text(r, "diagnosis", "B")
        ),
    ),
    (
        "mean_radius > 20 or worst_area < 300",
        lambda r: gt(r, "mean_radius", 20) or lt(r, "worst_area", 300),
    ),
    (
        'not (diagnosis == "M" or mean_texture > 20)',
        lambda r: (
            text(r, "diagnosis") not in (None, "M")
            and num(r, "mean_texture") is not None
            and not gt(r, "mean_texture", 20)
        ),
    ),
    (
        '(mean_radius < 12 or mean_radius > 18) and not diagnosis != "B"',
        lambda r: (
            (lt(r, "mean_radius", 12) or gt(r, "mean_radius", 18)) and is_text(r, "diagnosis", "B")
        ),
    ),
    ("id <= 10", lambda r: int(r["id"]) <= 10),
    ("15 < mean_radius", lambda r: gt(r, "mean_radius", 15)),
    (
        "20 >= mean_texture",
        lambda r: num(r, "mean_texture") is not None and not gt(r, "mean_texture", 20),
    ),
    ("mean_area != 1001", lambda r: num(r, "mean_area") != 1001),
    ("mean_radius is missing", lambda r: num(r, "mean_radius") is None),
    ("diagnosis is not missing", lambda r: text(r, "diagnosis") is not None),
    (
        "mean_radius is not missing and mean_texture > 18",
        lambda r: num(r, "mean_radius") is not None and gt(r, "mean_texture", 18),
    ),
    (
        "not mean_radius > 13",
        lambda r: num(r, "mean_radius") is not None and not gt(r, "mean_radius", 13),
    ),
    ("mean_radius != 13.0", lambda r: num(r, "mean_radius") not in (None, 13.0)),
    (
        "mean_radius > 13 or mean_radius is missing",
        lambda r: gt(r, "mean_radius", 13) or num(r, "mean_radius") is None,
    ),
    (
        "not (mean_radius > 13 and mean_texture > 18)",
        lambda r: (
            (num(r, "mean_radius") is not None and not gt(r, "mean_radius", 13))
            or (num(r, "mean_texture") is not None and not gt(r, "mean_texture", 18))
        ),
    ),
    (
        'mean_radius < 10 or mean_texture > 25 and diagnosis == "M"',
        lambda r: (
            lt(r, "mean_radius", 10) or (gt(r, "mean_texture", 25) and is_text(r, "diagnosis", "M"))
        ),
    ),
    (
        "diagnosis is not missing and (worst_concavity >= 0.5 or mean_smoothness < 0.07)",
        lambda r: (
            text(r, "diagnosis") is not None
            and (not lt(r, "worst_concavity", 0.5) or lt(r, "mean_smoothness", 0.07))
        ),
    ),
    (
        "mean_radius >= 1.5e1 and mean_radius <= +2E1",
        lambda r: between(r, "mean_radius", 15, 20),
    ),
    ("not not (id > 560)", lambda r: int(r["id"]) > 560),
    ('diagnosis < "M"', lambda r: text(r, "diagnosis") is not None and r["diagnosis"] < "M"),
    ("id == -1", lambda r: False),
    (
        "((((id>=100))and((id<105))))",
        lambda r: 100 <= int(r["id"]) < 105,
    ),
]
SELECTED = ("id", "mean_radius", "mean_texture", "worst_area")


def expected(rows: list[Row], keep: Callable[[Row], bool]) -> tuple[list[int], np.ndarray]:
    ids = [i for i, row in enumerate(rows, start=1) if keep(row)]
    values = [
        [math.nan if num(rows[i - 1], c) is None else num(rows[i - 1], c) for c in SELECTED]
        for i in ids
    ]
    return ids, np.array(values, dtype=np.float64).reshape(len(ids), len(SELECTED))


# -- behaviour on the shipped data --------------------------------------------


@pytest.mark.parametrize("name", ["bc.csv", "bc.db"])
def test_columns_and_row_count(datasets: dict[str, Path], name: str) -> None:
    with CSV_PATH.open(newline="") as fh:
        header = next(csv.reader(fh))
    src = source(datasets[name])
    assert src.columns == tuple(header)
    assert src.row_count == 569


@pytest.mark.parametrize("name", ["bc.csv", "bc.db", "holey.csv", "holey.db"])
def test_select_all_rows_matches_plain_csv(datasets: dict[str, Path], name: str) -> None:
    data = "holey.csv" if name.startswith("holey") else "bc.csv"
    rows = read_rows(datasets[data])
    sel = source(datasets[name]).select(SELECTED)
    ids, values = expected(rows, lambda r: True)
    assert sel.columns == SELECTED
    assert sel.row_ids.tolist() == ids == list(range(1, 570))
    assert sel.values.dtype == np.float64
    np.testing.assert_array_equal(sel.values, values)  # NaN positions must agree too


@pytest.mark.parametrize("name", ["bc.csv", "bc.db", "holey.csv", "holey.db"])
@pytest.mark.parametrize(("where", "keep"), CASES, ids=[c[0] for c in CASES])
def test_filter_matches_python_loop(
    datasets: dict[str, Path], name: str, where: str, keep: Callable[[Row], bool]
) -> None:
    data = "holey.csv" if name.startswith("holey") else "bc.csv"
    ids, values = expected(read_rows(datasets[data]), keep)
    sel = source(datasets[name]).select(SELECTED, where)
    assert sel.row_ids.tolist() == ids
    np.testing.assert_array_equal(sel.values, values)


def test_cases_are_not_vacuous(datasets: dict[str, Path]) -> None:
    """On the holey data every case but one keeps some rows and drops others."""
    rows = read_rows(datasets["holey.csv"])
    for where, keep in CASES:
        kept = sum(keep(r) for r in rows)
        assert kept == 0 if where == "id == -1" else 0 < kept < len(rows), where


@pytest.mark.parametrize("data", ["bc", "holey"])
@pytest.mark.parametrize("where", [None, *(c[0] for c in CASES)])
def test_csv_and_sqlite_give_the_same_selection(
    datasets: dict[str, Path], data: str, where: str | None
) -> None:
    columns = ["diagnosis", "id", "mean_radius", "mean_texture"]
    a = source(datasets[f"{data}.csv"]).select(columns, where, numeric=False)
    b = source(datasets[f"{data}.db"]).select(columns, where, numeric=False)
    assert a.columns == b.columns == tuple(columns)
    np.testing.assert_array_equal(a.row_ids, b.row_ids)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.categorical("diagnosis"), b.categorical("diagnosis"))
    assert np.isnan(a.column("diagnosis")).all()


def test_categorical_diagnosis(datasets: dict[str, Path]) -> None:
    rows = read_rows(datasets["holey.csv"])
    for name in ("holey.csv", "holey.db"):
        sel = source(datasets[name]).select(["diagnosis", "mean_area"], numeric=False)
        assert sel.categorical("diagnosis").tolist() == [r["diagnosis"] for r in rows]
        assert set(sel.categorical("diagnosis").tolist()) == {"M", "B", ""}
        np.testing.assert_array_equal(
            sel.column("mean_area"), [float(r["mean_area"]) for r in rows]
        )
        with pytest.raises(DataSourceError, match="'id' is not in this selection"):
            sel.categorical("id")


def test_select_no_columns_counts_rows(datasets: dict[str, Path]) -> None:
    for name in ("bc.csv", "bc.db"):
        sel = source(datasets[name]).select([], 'diagnosis == "M"')
        assert sel.values.shape == (212, 0)
        assert len(sel) == 212


def test_selection_is_read_only_and_repr_shows_no_values(datasets: dict[str, Path]) -> None:
    sel = source(datasets["bc.csv"]).select(["mean_radius", "diagnosis"], "id <= 3", numeric=False)
    assert repr(sel) == "<Selection of 3 rows x 2 columns>"
    assert "17.99" not in repr(sel) and "17.99" not in str(sel)
    with pytest.raises(ValueError):
        sel.values[0, 0] = 1.0
    with pytest.raises(ValueError):
        sel.row_ids[0] = 7
    assert isinstance(sel, Selection)


# -- missing values -----------------------------------------------------------


def test_missing_tokens_are_nan_not_errors(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "m.csv",
        ["x", "y"],
        [["1", "a"], ["", "b"], ["NA", ""], ["NaN", "NA"], ["  NA ", "c"], ["-2.5e-1", " d "]],
    )
    sel = source(path).select(["x", "y"], numeric=False)
    np.testing.assert_array_equal(
        sel.column("x"), [1, math.nan, math.nan, math.nan, math.nan, -0.25]
    )
    assert sel.categorical("y").tolist() == ["a", "b", "", "", "c", "d"]
    assert source(path).select(["y"], "y is missing", numeric=False).row_ids.tolist() == [3, 4]
    assert source(path).select(["x"], "x is missing").row_ids.tolist() == [2, 3, 4, 5]


def test_sqlite_null_and_text_missing(tmp_path: Path) -> None:
    db = sqlite_table(
        tmp_path / "m.db",
        "CREATE TABLE t (x REAL, y TEXT, z)",
        [(1.0, "a", 3), (None, None, "4"), (2.0, "NA", "NaN"), (None, "", None)],
    )
    sel = source(db, "t").select(["x", "z", "y"], numeric=False)
    np.testing.assert_array_equal(
        sel.values[:, :2], [[1, 3], [math.nan, 4], [2, math.nan], [math.nan, math.nan]]
    )
    assert np.isnan(sel.column("y")).all()
    assert sel.categorical("y").tolist() == ["a", "", "", ""]
    assert source(db, "t").select(["x"], "z is missing or x < 1.5").row_ids.tolist() == [1, 3, 4]


# -- errors -------------------------------------------------------------------

SECRET = "SECRET-93417"


@pytest.fixture
def secret_csv(tmp_path: Path) -> Path:
    rows = [["1", "50", "ward-A"], ["2", SECRET, "ward-B"], ["3", "", "ward-C"], ["4", "61", ""]]
    return write_csv(tmp_path / "s.csv", ["id", "age", "site"], rows)


@pytest.fixture
def secret_db(tmp_path: Path) -> Path:
    rows = [(1, 50, "ward-A"), (2, SECRET, "ward-B"), (3, None, "ward-C"), (4, 61, None)]
    return sqlite_table(tmp_path / "s.db", "CREATE TABLE people (id INTEGER, age, site TEXT)", rows)


def secret_sources(csv_path: Path, db_path: Path) -> list[DataSource]:
    return [source(csv_path), source(db_path, "people")]


def assert_no_value(exc: pytest.ExceptionInfo[BaseException], *values: str) -> None:
    shown = "".join(traceback.format_exception(exc.value))
    for value in values:
        assert value not in shown
        assert value not in str(exc.value)


@pytest.mark.parametrize("which", [0, 1])
def test_non_numeric_value_names_column_and_row_not_value(
    secret_csv: Path, secret_db: Path, which: int
) -> None:
    src = secret_sources(secret_csv, secret_db)[which]
    with pytest.raises(DataSourceError, match=r"column 'age' .* data row 2") as exc:
        src.select(["id", "age"])
    assert_no_value(exc, SECRET, "93417")
    with pytest.raises(DataSourceError, match=r"column 'age' .* data row 2") as exc:
        src.select(["id"], "age >= 18")
    assert_no_value(exc, SECRET, "93417")
    # Rows the filter drops are checked too: the refusal must not tell whether a
    # filter kept the bad row (a one-bit oracle on one patient's value).
    for where in ("id != 2", "id == 1", "id == 2"):
        with pytest.raises(DataSourceError, match=r"column 'age' .* data row 2") as exc:
            src.select(["age"], where)
        assert_no_value(exc, SECRET, "93417")
    # As text, the same column is readable for local use.
    sel = src.select(["age"], numeric=False)
    assert np.isnan(sel.values).all()
    assert sel.categorical("age").tolist() == ["50", SECRET, "", "61"]


@pytest.mark.parametrize("which", [0, 1])
def test_text_column_compared_with_number(secret_csv: Path, secret_db: Path, which: int) -> None:
    src = secret_sources(secret_csv, secret_db)[which]
    with pytest.raises(DataSourceError, match=r"column 'site' .* data row 1.*quoted string") as exc:
        src.select(["id"], "site > 3")
    assert_no_value(exc, "ward")
    with pytest.raises(DataSourceError, match=r"column 'site' .* data row 1") as exc:
        src.select(["site"])
    assert_no_value(exc, "ward")
    assert src.select(["id"], "site == 'ward-B' or site is missing").row_ids.tolist() == [2, 4]


@pytest.mark.parametrize("which", [0, 1])
def test_numeric_column_compared_with_string(secret_csv: Path, secret_db: Path, which: int) -> None:
    src = secret_sources(secret_csv, secret_db)[which]
    with pytest.raises(DataSourceError, match=r"column 'id', which holds numbers, .*character 7"):
        src.select(["age"], "id == '2'")


def test_numeric_column_compared_with_string_on_breast_cancer(datasets: dict[str, Path]) -> None:
    for name in ("bc.csv", "bc.db"):
        with pytest.raises(DataSourceError, match="'mean_radius', which holds numbers"):
            source(datasets[name]).select(["id"], 'mean_radius == "17.99"')


@pytest.mark.parametrize("bad", ["inf", "-Infinity", "nan", "1e999", "0x10", "1,5", "1_000", "١٢"])
def test_non_finite_and_odd_numbers_are_errors(tmp_path: Path, bad: str) -> None:
    path = write_csv(tmp_path / "n.csv", ["x"], [["1"], [bad]])
    with pytest.raises(DataSourceError, match=r"column 'x' .* data row 2") as exc:
        source(path).select(["x"])
    assert bad not in str(exc.value)


def test_sqlite_infinity_and_blob_are_errors(tmp_path: Path) -> None:
    db = sqlite_table(
        tmp_path / "b.db", "CREATE TABLE t (x)", [(1.0,), (math.inf,), (b"\x00\x01",)]
    )
    with pytest.raises(DataSourceError, match=r"column 'x' .* data row 2"):
        source(db, "t").select(["x"])
    with pytest.raises(DataSourceError, match=r"column 'x' .* data row 2"):
        source(db, "t").select(["x"], "x > 0")
    with pytest.raises(DataSourceError, match="binary data at data row 3"):
        source(db, "t").select(["x"], numeric=False).categorical("x")


def test_sqlite_invalid_utf8_never_reaches_a_message(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.execute("INSERT INTO t VALUES (CAST(X'53454352455431ff' AS TEXT))")  # "SECRET1" + 0xff
    conn.commit()
    conn.close()
    with pytest.raises(DataSourceError, match="data row 1") as exc:
        source(db, "t").select(["x"])
    assert_no_value(exc, "SECRET1")


@pytest.mark.parametrize("name", ["bc.csv", "bc.db"])
def test_unknown_column_is_named_and_known_ones_listed(
    datasets: dict[str, Path], name: str
) -> None:
    src = source(datasets[name])
    with pytest.raises(
        DataSourceError, match=r"unknown column 'age'; known columns: id, diagnosis,"
    ):
        src.select(["mean_radius", "age"])
    with pytest.raises(DataSourceError, match=r"unknown column 'age' in the filter;.*worst_area"):
        src.select(["mean_radius"], "age >= 50")
    with pytest.raises(DataSourceError, match="unknown column"):
        src.select(['id" FROM sqlite_master --'])


def test_select_argument_checks(datasets: dict[str, Path]) -> None:
    src = source(datasets["bc.csv"])
    with pytest.raises(DataSourceError, match="list of column names"):
        src.select("mean_radius")
    with pytest.raises(DataSourceError, match="selected twice"):
        src.select(["id", "id"])
    with pytest.raises(DataSourceError, match="a column name is a string"):
        src.select([3])  # type: ignore[list-item]
    with pytest.raises(DataSourceError, match="a filter is a string"):
        src.select(["id"], 5)  # type: ignore[arg-type]


def test_missing_files_and_tables(tmp_path: Path, datasets: dict[str, Path]) -> None:
    with pytest.raises(DataSourceError, match="no such data file"):
        source(tmp_path / "absent.csv")
    with pytest.raises(DataSourceError, match="no such data file"):
        source(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()  # read-only open creates nothing
    with pytest.raises(DataSourceError, match=r"no table 'records' in .*; tables: patients"):
        source(datasets["bc.db"], "records")
    with pytest.raises(DataSourceError, match="no data"):
        open_source(DataConfig())
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 50)
    with pytest.raises(DataSourceError, match="cannot read table"):
        source(tmp_path / "junk.db")
    with pytest.raises(DataSourceError, match="not a file"):
        open_source(DataConfig("sqlite", tmp_path, "t"))


@pytest.mark.parametrize(
    "table",
    ["patients; DROP TABLE patients", "1patients", 'pa"tients', "pa-tients", "p t", "x" * 200],
)
def test_table_name_must_be_an_identifier(datasets: dict[str, Path], table: str) -> None:
    db = datasets["bc.db"]
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with pytest.raises(DataSourceError, match="is not an identifier"):
        open_source(DataConfig("sqlite", db, table))
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert source(db).row_count == 569


def test_sqlite_reads_leave_the_file_unchanged(datasets: dict[str, Path]) -> None:
    db = datasets["bc.db"]
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    src = source(db)
    src.select(["mean_radius"], "diagnosis == 'M'")
    assert src.row_count == 569
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert not Path(f"{db}-journal").exists() and not Path(f"{db}-wal").exists()


def test_csv_structure_errors(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(f"a,b\n1,2\n3,4,{SECRET}\n", encoding="utf-8")
    with pytest.raises(DataSourceError, match="data row 2 has 3 fields; the header has 2") as exc:
        source(ragged)
    assert_no_value(exc, SECRET)

    dup = tmp_path / "dup.csv"
    dup.write_text("a,b,a\n1,2,3\n", encoding="utf-8")
    with pytest.raises(DataSourceError, match="repeats a"):
        source(dup)

    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataSourceError, match="header"):
        source(empty)

    unnamed = tmp_path / "unnamed.csv"
    unnamed.write_text("a,,c\n1,2,3\n", encoding="utf-8")
    with pytest.raises(DataSourceError, match="header column 2 has no name"):
        source(unnamed)

    quoting = tmp_path / "quoting.csv"
    quoting.write_text(f'a,b\n1,2\n3,"{SECRET}\n', encoding="utf-8")
    with pytest.raises(DataSourceError, match="malformed CSV at data row 2") as exc:
        source(quoting)
    assert_no_value(exc, SECRET)

    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"a,b\n1,2\n3,SECRET\xe9\n")
    with pytest.raises(DataSourceError, match="not UTF-8") as exc:
        source(latin)
    assert_no_value(exc, "SECRET", "0xe9")


def test_csv_bom_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfid, score\r\n1,2\r\n\r\n2,3\r\n\r\n")
    src = source(path)
    assert src.columns == ("id", "score")
    assert src.row_count == 2
    sel = src.select(["score"], "id == 2")
    assert sel.row_ids.tolist() == [2] and sel.values.tolist() == [[3.0]]


# -- SQLite specifics ---------------------------------------------------------


def test_sqlite_rows_follow_rowid_not_insertion_or_index(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (label TEXT, v REAL)")
    for rowid, label in [(30, "c"), (10, "a"), (40, "a"), (20, "b")]:
        conn.execute("INSERT INTO t (rowid, label, v) VALUES (?, ?, ?)", (rowid, label, rowid))
    conn.execute("CREATE INDEX t_label ON t (label)")
    conn.commit()
    conn.close()
    sel = source(db, "t").select(["label", "v"], numeric=False)
    assert sel.categorical("label").tolist() == ["a", "b", "c", "a"]
    assert sel.column("v").tolist() == [10, 20, 30, 40]
    assert source(db, "t").select(["label"], numeric=False).categorical("label").tolist() == [
        "a",
        "b",
        "c",
        "a",
    ]


def test_sqlite_without_rowid_orders_by_primary_key(tmp_path: Path) -> None:
    db = sqlite_table(
        tmp_path / "w.db",
        "CREATE TABLE t (pid INTEGER PRIMARY KEY, v REAL) WITHOUT ROWID",
        [(3, 30.0), (1, 10.0), (2, 20.0)],
    )
    sel = source(db, "t").select(["v"], "v > 10")
    assert sel.row_ids.tolist() == [2, 3]
    assert sel.values[:, 0].tolist() == [20.0, 30.0]


def test_sqlite_awkward_column_names_are_quoted(tmp_path: Path) -> None:
    db = sqlite_table(
        tmp_path / "q.db",
        'CREATE TABLE t ("select" REAL, "we""ird" TEXT, rowid INTEGER)',
        [(1.0, "x", 9), (2.0, "y", 8)],
    )
    src = source(db, "t")
    assert src.columns == ("select", 'we"ird', "rowid")
    sel = src.select(["select", 'we"ird', "rowid"], numeric=False)
    assert sel.column("select").tolist() == [1.0, 2.0]
    assert sel.column("rowid").tolist() == [9, 8]  # a real column, rows still in rowid order
    assert sel.categorical('we"ird').tolist() == ["x", "y"]
    assert src.select(["select"], "rowid < 9").values.tolist() == [[2.0]]


def test_open_source_dispatches_on_kind(datasets: dict[str, Path]) -> None:
    a = open_source(DataConfig("csv", CSV_PATH))
    b = open_source(DataConfig("sqlite", datasets["bc.db"], "patients"))
    assert type(a).__name__ == "CsvSource" and type(b).__name__ == "SqliteSource"
    assert issubclass(DataSourceError, SMPCError) and issubclass(DataSourceError, ValueError)


# -- malformed filters --------------------------------------------------------

MALFORMED = [
    ('diagnosis == "M', 13, "unterminated string"),
    ("diagnosis == 'M", 13, "unterminated string"),
    ("mean_radius >=", 14, "expected a number or a quoted string"),
    ("mean_radius >= 1 and", 20, "expected a column name"),
    ("mean_radius >= 1 or or id == 2", 20, "expected a column name"),
    ("and id == 1", 0, "expected a column name"),
    ("not", 3, "expected a column name"),
    ("mean_radius = 1", 12, "unknown operator '='; use '=='"),
    ("mean_radius => 1", 12, "unknown operator '=>'; use '>='"),
    ("mean_radius <> 1", 12, "unknown operator '<>'; use '!='"),
    ("id == 1 && id == 2", 8, "unknown operator '&&'; use 'and'"),
    ("id == 1 || id == 2", 8, "unknown operator '||'; use 'or'"),
    ("id ~ 1", 3, "unexpected character '~'"),
    ("id == 1;", 7, "unexpected character ';'"),
    ("id == @", 6, "unexpected character '@'"),
    ("(id == 1", 8, "expected ')'"),
    ("id == 1)", 7, "expected 'and', 'or' or the end"),
    ("()", 1, "expected a column name"),
    ("", 0, "expected a column name"),
    ("   ", 3, "expected a column name"),
    ("id == mean_radius", 6, "columns compare with literals"),
    ("1 == 1", 5, "expected a column name"),
    ("id is missin", 6, "expected 'missing'"),
    ("id is not", 9, "expected 'missing'"),
    ("id missing", 3, "expected a comparison or 'is'"),
    ("id == 1e999", 6, "number out of range"),
    ("id == 12abc", 6, "malformed number"),
    ("id == 1.2.3", 6, "malformed number"),
    ("id == 'a\\q'", 8, "a backslash may only escape"),
    ("id == 1 AND id == 2", 8, "expected 'and', 'or' or the end"),
    ("id == 1 id == 2", 8, "expected 'and', 'or' or the end"),
    ("id == - 1", 6, "unexpected character '-'"),
    ("id", 2, "expected a comparison or 'is'"),
    ("id ==\n'x", 6, "unterminated string"),
]


@pytest.mark.parametrize(("where", "position", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_filter_says_where(
    datasets: dict[str, Path], where: str, position: int, reason: str
) -> None:
    with pytest.raises(FilterSyntaxError) as exc:
        source(datasets["bc.csv"]).select(["id"], where)
    assert exc.value.position == position
    assert f"malformed filter at character {position + 1}" in str(exc.value)
    assert reason in str(exc.value)
    assert isinstance(exc.value, DataSourceError)


def test_oversized_and_deep_filters(datasets: dict[str, Path]) -> None:
    src = source(datasets["bc.csv"])
    long = " or ".join(["id == 1"] * 1000)
    assert len(long) > MAX_FILTER_LENGTH
    with pytest.raises(DataSourceError, match=f"at most {MAX_FILTER_LENGTH}"):
        src.select(["id"], long)
    for deep in ("(" * 1000 + "id == 1" + ")" * 1000, "not " * 1000 + "id == 1"):
        with pytest.raises(FilterSyntaxError, match=f"nesting deeper than {MAX_FILTER_DEPTH}"):
            src.select(["id"], deep)
    ok = "(" * MAX_FILTER_DEPTH + "id == 1" + ")" * MAX_FILTER_DEPTH
    assert src.select(["id"], ok).row_ids.tolist() == [1]
    assert src.select(["id"], "not " * (MAX_FILTER_DEPTH - 1) + "id > 1").row_ids.tolist() == [1]
    many = " or ".join(f"id == {i}" for i in range(1, 300))  # long but flat: fine
    assert len(many) < MAX_FILTER_LENGTH
    assert src.select(["id"], many).row_ids.tolist() == list(range(1, 300))


def test_parse_filter_reports_columns() -> None:
    f = parse_filter("not (b > 1 or a is missing) and 3 <= b and c == 'x\\'y'")
    assert f.columns == ("b", "a", "c")
    assert f.text.startswith("not (b")


@pytest.mark.parametrize(
    ("text", "present", "text_columns"),
    [
        ("a > 1 and s == 'x'", {"a", "s"}, {"s"}),
        ("a > 1 or b > 2", set(), set()),
        ("a > 1 or a < 0", {"a"}, set()),
        ("not (a is missing) and b is not missing", {"a", "b"}, set()),
        ("a is missing or a > 2", set(), set()),
        ("not (a > 1 or b is missing)", {"a", "b"}, set()),
        ("not (s != 'y' and a > 0)", set(), {"s"}),
    ],
)
def test_a_filter_says_which_columns_its_rows_have_and_which_hold_text(
    tmp_path: Path, text: str, present: set[str], text_columns: set[str]
) -> None:
    rows = [["1", "", "x"], ["", "3", "y"], ["5", "6", ""], ["-2", "", "y"], ["3", "4", "x"]]
    f = parse_filter(text)
    assert f.present_columns == present and f.text_columns == text_columns
    kept = source(write_csv(tmp_path / "f.csv", ["a", "b", "s"], rows)).select(
        ["a", "b", "s"], text, numeric=False
    )
    for name in present:  # the oracle: no row the filter keeps misses a value there
        missing = kept.categorical(name) == ""
        assert not missing.any(), name


def test_parse_errors_come_before_any_data_is_read(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", ["x"], [["not a number"]])
    with pytest.raises(FilterSyntaxError):
        source(path).select(["x"], "x >")


# -- properties ---------------------------------------------------------------

FUZZ_TOKENS = st.sampled_from(
    ["id", "age", "site", "==", "!=", "<", ">=", "=", "(", ")", "and", "or", "not", "is",
     "missing", "1", "-2.5", "'ward-A'", '"', "'", "\\", "&&", "!", "1e400", "12x", ".", ""]
)  # fmt: skip


@given(st.lists(FUZZ_TOKENS, max_size=12).map(" ".join) | st.text(max_size=40))
def test_any_filter_text_gives_a_selection_or_datasourceerror(where: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(
            Path(tmp) / "f.csv",
            ["id", "age", "site"],
            [["1", "50", "ward-A"], ["2", "", "ward-B"], ["3", "NA", ""]],
        )
        try:
            sel = source(path).select(["id"], where)
        except DataSourceError:
            return
        assert set(sel.row_ids.tolist()) <= {1, 2, 3}


Kleene = bool | None


def _kleene_not(x: Kleene) -> Kleene:
    return None if x is None else not x


def _kleene_and(x: Kleene, y: Kleene) -> Kleene:
    if x is False or y is False:
        return False
    return None if x is None or y is None else True


def _kleene_or(x: Kleene, y: Kleene) -> Kleene:
    if x is True or y is True:
        return True
    return None if x is None or y is None else False


PyRow = dict[str, object]
PYOPS: dict[str, Callable[[object, object], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}


def _compare(column: str, op: str, literal: object) -> Callable[[PyRow], Kleene]:
    def check(row: PyRow) -> Kleene:
        cell = row[column]
        return None if cell is None else PYOPS[op](cell, literal)

    return check


OP = st.sampled_from(list(PYOPS))
LEAF = st.one_of(
    st.builds(
        lambda op, v: (f"a {op} {v!r}", _compare("a", op, v)),
        OP,
        st.sampled_from([-2.0, 0.0, 1.5, 3.0]),
    ),
    st.builds(
        lambda op, v: (f"s {op} '{v}'", _compare("s", op, v)), OP, st.sampled_from(["x", "y", "z"])
    ),
    st.builds(
        lambda col, neg: (
            f"{col} is {'not ' if neg else ''}missing",
            (lambda r: r[col] is not None) if neg else (lambda r: r[col] is None),
        ),
        st.sampled_from(["a", "s"]),
        st.booleans(),
    ),
)


def _extend(
    inner: st.SearchStrategy[tuple[str, Callable[[PyRow], Kleene]]],
) -> st.SearchStrategy[tuple[str, Callable[[PyRow], Kleene]]]:
    def neg(node: tuple[str, Callable[[PyRow], Kleene]]) -> tuple[str, Callable[[PyRow], Kleene]]:
        return f"not ({node[0]})", lambda r: _kleene_not(node[1](r))

    def both(pair: tuple, word: str) -> tuple[str, Callable[[PyRow], Kleene]]:
        (ta, fa), (tb, fb) = pair
        join = _kleene_and if word == "and" else _kleene_or
        return f"({ta}) {word} ({tb})", lambda r: join(fa(r), fb(r))

    return st.one_of(
        inner.map(neg),
        st.tuples(inner, inner).map(lambda p: both(p, "and")),
        st.tuples(inner, inner).map(lambda p: both(p, "or")),
    )


FILTERS = st.recursive(LEAF, _extend, max_leaves=8)
ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "a": st.sampled_from([None, -2.0, 0.0, 1.5, 3.0, 7.0]),
            "s": st.sampled_from([None, "x", "y", "z"]),
        }
    ),
    max_size=12,
)


@given(ROWS, FILTERS, st.sampled_from(["", "NA", "NaN"]))
def test_filters_agree_with_a_row_by_row_kleene_oracle(
    rows: list[PyRow], node: tuple[str, Callable[[PyRow], Kleene]], blank: str
) -> None:
    where, predicate = node
    want = [i for i, row in enumerate(rows, start=1) if predicate(row) is True]
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = write_csv(
            Path(tmp) / "r.csv",
            ["s", "a"],
            [
                [blank if r["s"] is None else r["s"], blank if r["a"] is None else r["a"]]
                for r in rows
            ],
        )
        db = sqlite_table(
            Path(tmp) / "r.db", "CREATE TABLE t (s TEXT, a REAL)", [(r["s"], r["a"]) for r in rows]
        )
        for src in (source(csv_path), source(db, "t")):
            sel = src.select(["a"], where)
            assert sel.row_ids.tolist() == want, where
            expect = [math.nan if rows[i - 1]["a"] is None else rows[i - 1]["a"] for i in want]
            np.testing.assert_array_equal(sel.values[:, 0], expect)


@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False).map(repr),
            st.integers(-(10**12), 10**12).map(str),
            st.sampled_from(["1e5", " 2.5 ", "+.5", "5.", "1E-3", "-0", "1e999", "1e", "", "NA"]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_the_fast_column_parser_agrees_with_the_cell_by_cell_one(cells: list[str]) -> None:
    from parties.data.selection import _all_numbers, _number

    fast = _all_numbers(cells)
    slow = [_number(c) for c in cells]
    if fast is None:
        return  # the cell-by-cell path decides (missing cells, bad text, overflow)
    assert all(v is not None for v in slow)
    np.testing.assert_array_equal(fast, np.array(slow, dtype=np.float64))


def test_the_fast_column_parser_takes_plain_numbers_and_leaves_the_rest() -> None:
    from parties.data.selection import _all_numbers

    np.testing.assert_array_equal(_all_numbers(["1", " 2.5", "3e2", "-.5"]), [1, 2.5, 300, -0.5])
    for odd in (["1", ""], ["1", "NA"], ["inf"], ["1_000"], ["1e999"], ["1e"], ["٣"]):
        assert _all_numbers(odd) is None, odd


class _HeaderOnly(DataSource):
    """A source that knows its columns but fails the test if any row is read."""

    columns = ("id", "age", "diagnosis")
    row_count = 3

    def _load(self, names):
        raise AssertionError("check() read rows")


def test_check_answers_from_the_header_alone() -> None:
    source = _HeaderOnly()
    names, parsed = source.check(["age"], 'diagnosis == "M" and id > 2')
    assert names == ("age",)
    assert parsed is not None and set(parsed.columns) == {"diagnosis", "id"}
    with pytest.raises(DataSourceError, match="unknown column 'weight'"):
        source.check(["weight"])
    with pytest.raises(DataSourceError, match="unknown column 'bmi' in the filter"):
        source.check(["age"], "bmi > 30")
    with pytest.raises(FilterSyntaxError):
        source.check(["age"], "age >")
    with pytest.raises(DataSourceError, match="selected twice"):
        source.check(["age", "age"])


# -- the CSV's two readers ----------------------------------------------------

CELLS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**17), 10**17).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.sampled_from(
        [
            *["", " ", "NA", "NaN", " NA ", "1e5", " 2.5", "+.5", "5.", "-0", "1E-3", "-", "."],
            *["1e999", "1e", "1.2.3", "inf", "nan", "1 2", "+-1", "0x10", "N", "A1", "é", "1_0"],
        ]
    ),
)


@given(st.lists(st.tuples(CELLS, CELLS), min_size=1, max_size=30))
def test_the_numpy_csv_reader_agrees_with_the_csv_module(rows: list[tuple[str, str]]) -> None:
    """A file without quotes is split by numpy; the same cells quoted go through ``csv``."""
    with tempfile.TemporaryDirectory() as folder:
        plain, quoted = Path(folder) / "plain.csv", Path(folder) / "quoted.csv"
        plain.write_text("a,b\n" + "".join(f"{a},{b}\n" for a, b in rows), encoding="utf-8")
        with quoted.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, quoting=csv.QUOTE_ALL).writerows([("a", "b"), *rows])
        fast, slow = source(plain), source(quoted)
        assert fast.row_count == slow.row_count == len(rows)
        for where in (None, "a > 0", "b is missing or a <= 1"):
            outcomes = []
            for src in (fast, slow):
                try:
                    sel = src.select(["a", "b"], where, numeric=False)
                    outcomes.append(
                        (sel.row_ids.tolist(), sel.values.tobytes(), sel.categorical("a").tolist())
                    )
                except DataSourceError as exc:
                    outcomes.append(str(exc).replace("quoted.csv", "plain.csv"))
            assert outcomes[0] == outcomes[1]


def test_the_numpy_csv_reader_parses_every_plain_number_as_float_does(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    numbers = np.concatenate(
        [rng.normal(0, 1e3, 500), rng.integers(-(10**15), 10**15, 500), rng.random(500)]
    )
    cells = [f"{x:.6f}" for x in numbers[:500]] + [str(int(x)) for x in numbers[500:1000]]
    cells += [repr(float(x)) for x in numbers[1000:]] + ["-0", "+.5", "5.", " 7 ", "1e-3"]
    path = tmp_path / "n.csv"
    path.write_text("x\n" + "\n".join(cells) + "\n", encoding="utf-8")
    got = source(path).select(["x"]).values[:, 0]
    want = np.array([float(c) for c in cells])
    np.testing.assert_array_equal(got, want)
    assert np.signbit(got[-5])


def test_csv_without_final_newline_and_header_only(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n1,2\n\n3,4")
    assert source(path).select(["b"], "a == 3").values.tolist() == [[4.0]]
    assert source(path).select(["a"]).row_ids.tolist() == [1, 2]
    path.write_bytes(b"a,b\n")
    assert source(path).select(["a"]).values.shape == (0, 1)
    path.write_bytes(b"a,b\n1,2\r\n3\r\n")
    with pytest.raises(DataSourceError, match="data row 2 has 1 fields; the header has 2"):
        source(path)


def test_a_text_column_read_job_after_job_matches_the_csv_module_and_is_worked_out_once(
    tmp_path: Path,
) -> None:
    """The patient column consent reads for every job: the csv module's cells, stripped,
    "" where missing, for each job's filter; the whole column's text made once per snapshot."""
    from parties.data.csv_source import CsvSource

    ids = [" p1", "p2 ", "NA", "", "é3", "p4", "NaN", "p1", "x\t"]
    rows = [[p, i] for i, p in enumerate(ids)]
    path = write_csv(tmp_path / "d.csv", ["pid", "age"], rows)
    with path.open(newline="", encoding="utf-8") as fh:
        cells = [r["pid"].strip() for r in csv.DictReader(fh)]
    want = ["" if c in ("", "NA", "NaN") else c for c in cells]
    source = CsvSource(path)
    whole = source._cells["pid"]
    for where, kept in [(None, range(9)), ("age > 2", range(3, 9)), ("age < 5", range(5))]:
        for _ in range(2):
            got = source.select(["pid"], where, numeric=False, levels=False).categorical("pid")
            assert got.tolist() == [want[i] for i in kept]
            assert not got.flags.writeable
    assert whole.texts() is whole.texts()


# -- a CSV source's kept selections -------------------------------------------


def _counting_loads(src: DataSource, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Record the columns of every pass a source makes over its rows."""
    loads: list[tuple[str, ...]] = []
    load = src._load

    def counted(names: Sequence[str]) -> tuple[dict[str, Sequence[object]], np.ndarray]:
        loads.append(tuple(names))
        return load(names)

    monkeypatch.setattr(src, "_load", counted)
    return loads


def _python_selection(rows: list[Row], columns: Sequence[str], keep: Callable[[Row], bool]):
    """Values and 1-based row ids of the rows ``keep`` picks, read with the csv module."""
    picked = [(i + 1, r) for i, r in enumerate(rows) if keep(r)]
    values = [[math.nan if num(r, c) is None else num(r, c) for c in columns] for _, r in picked]
    return np.array(values, dtype=float).reshape(len(picked), len(columns)), [i for i, _ in picked]


def test_a_csv_source_answers_a_repeated_request_without_a_pass_over_its_rows(
    datasets: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same columns, filter and kind of selection give what the csv module reads, job
    after job, and only the first of them reads the rows; any other request reads them."""
    path = datasets["holey.csv"]
    rows = read_rows(path)
    src = source(path)
    loads = _counting_loads(src, monkeypatch)
    columns = ["mean_radius", "mean_texture"]
    requests = [
        (columns, None, True, lambda r: True),
        (columns, "mean_radius > 14", True, lambda r: gt(r, "mean_radius", 14)),
        (columns[::-1], None, True, lambda r: True),
    ]
    for _ in range(3):
        for names, where, numeric, keep in requests:
            got = src.select(names, where, numeric=numeric)
            values, ids = _python_selection(rows, names, keep)
            np.testing.assert_array_equal(got.values, values)
            assert got.row_ids.tolist() == ids and got.columns == tuple(names)
            assert not got.values.flags.writeable and not got.row_ids.flags.writeable
    assert len(loads) == len(requests)  # one pass per distinct request, none after
    src.select(columns, None, numeric=False)  # another kind of selection: read again
    src.select(columns, None, numeric=False, levels=False)
    assert len(loads) == len(requests) + 2
    text = src.select(["diagnosis"], "mean_radius > 14", numeric=False)
    again = src.select(["diagnosis"], "mean_radius > 14", numeric=False)
    want = [text_or_blank(r, "diagnosis") for r in rows if gt(r, "mean_radius", 14)]
    assert again.categorical("diagnosis").tolist() == want
    assert text.categorical("diagnosis").tolist() == want
    assert len(loads) == len(requests) + 3


def text_or_blank(row: Row, column: str) -> str:
    value = text(row, column)
    return "" if value is None else value


def test_a_kept_selection_gives_each_job_the_facts_of_a_fresh_source(
    datasets: dict[str, Path],
) -> None:
    """A job that changes its selection's facts mapping changes no later job's."""
    path = datasets["holey.csv"]
    src = source(path)
    first = src.select(["mean_radius", "diagnosis"], "mean_radius > 14", numeric=False)
    want = source(path).select(["mean_radius", "diagnosis"], "mean_radius > 14", numeric=False)
    assert first.facts == want.facts and first.facts
    first.facts.clear()
    second = src.select(["mean_radius", "diagnosis"], "mean_radius > 14", numeric=False)
    assert second is not first
    assert second.facts == want.facts


def test_a_request_that_fails_is_not_kept_and_fails_the_same_way_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path / "t.csv", ["site", "age"], [["north", 3], ["south", 4]])
    src = source(path)
    loads = _counting_loads(src, monkeypatch)
    for _ in range(2):
        with pytest.raises(DataSourceError, match="'site' has a value that is not a finite"):
            src.select(["site"])
        with pytest.raises(DataSourceError, match="list of column names"):
            src.select("site")
        with pytest.raises(DataSourceError, match="a filter is a string"):
            src.select(["age"], 5)  # type: ignore[arg-type]
        with pytest.raises(DataSourceError, match="unknown column 'weight'"):
            src.select(["weight"])
    assert loads == [("site",), ("site",)]  # the numbers were asked for, and refused, twice


def test_kept_selections_stay_within_their_bytes_least_recently_used_dropped_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parties.data import csv_source

    path = write_csv(tmp_path / "n.csv", ["a", "b", "c"], [[i, 2 * i, 3 * i] for i in range(10)])
    one = 2 * 10 * 8 + 10 * 8  # a one-column selection of 10 rows: values counted twice, ids
    monkeypatch.setattr(csv_source, "SELECTION_BYTES", 2 * one)
    src = source(path)
    loads = _counting_loads(src, monkeypatch)
    for name in ["a", "b", "a", "c", "a", "b", "c"]:
        assert src.select([name]).values[:, 0].tolist() == [
            float(i * " abc".index(name)) for i in range(10)
        ]
    # kept: a, b; a again; c drops b (used less recently than a); a again; b drops c; c drops a
    assert [names[0] for names in loads] == ["a", "b", "c", "b", "c"]

    loads.clear()
    src.select(["a", "b", "c"])  # larger than all the bytes there are: never kept
    src.select(["a", "b", "c"])
    assert loads == [("a", "b", "c"), ("a", "b", "c")]

    monkeypatch.setattr(csv_source, "SELECTIONS_KEPT", 1)
    few = source(path)
    loads = _counting_loads(few, monkeypatch)
    for name in ["a", "a", "b", "a"]:
        few.select([name])
    assert [names[0] for names in loads] == ["a", "b", "a"]


def test_kept_selections_belong_to_the_snapshot_they_were_made_from(tmp_path: Path) -> None:
    """An open CSV source is a snapshot: it keeps answering from the rows it read, and a
    source opened on the rewritten file (same size, same columns) answers from the new
    rows, not from another source's kept selections."""
    path = write_csv(tmp_path / "s.csv", ["a", "b"], [[1, 2], [3, 4]])
    before = source(path)
    assert before.select(["a", "b"]).values.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    size = path.stat().st_size
    write_csv(path, ["a", "b"], [[5, 6], [7, 8]])
    assert path.stat().st_size == size
    after = source(path)
    assert after.select(["a", "b"]).values.tolist() == [[5.0, 6.0], [7.0, 8.0]]
    assert before.select(["a", "b"]).values.tolist() == [[1.0, 2.0], [3.0, 4.0]]
