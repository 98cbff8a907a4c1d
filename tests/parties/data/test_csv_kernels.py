"""The CSV reader's compiled passes against Python: float() on each cell, the csv module."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parties.data import csv_kernels
from parties.data.csv_source import CsvSource
from parties.data.errors import DataSourceError

PLAIN = st.one_of(
    st.integers(-(10**15) + 1, 10**15 - 1).map(str),
    st.decimals(min_value=-(10**8), max_value=10**8, places=6, allow_nan=False).map(str),
    st.sampled_from(["-0", "+.5", "5.", " 7 ", "\t3.25", "0.00000000000001", "+0"]),
)
OTHER = st.sampled_from(["1e5", "inf", "nan", "1.2.3", "-", ".", "1 2", "0x1", "1234567890123456"])


def _bounds(cells: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = "".join(cells).encode()
    sizes = np.array([len(c.encode()) for c in cells], dtype=np.int64)
    ends = np.cumsum(sizes, dtype=np.int64)
    return np.frombuffer(data, dtype=np.uint8), ends - sizes, ends


@given(st.lists(st.one_of(PLAIN, st.sampled_from(["", " ", "NA", "NaN"])), max_size=40))
def test_plain_cells_parse_as_float_does(cells: list[str]) -> None:
    data, starts, ends = _bounds(cells)
    out = np.empty(len(cells))
    assert csv_kernels.parse_plain(data, starts, ends, out) == -1
    want = [math.nan if c.strip() in ("", "NA", "NaN") else float(c) for c in cells]
    np.testing.assert_array_equal(out, want)
    assert [math.copysign(1, v) for v in out] == [math.copysign(1, v) for v in want]


@given(st.lists(PLAIN, max_size=10), OTHER, st.lists(PLAIN, max_size=10))
def test_any_other_form_is_left_to_the_other_paths(before, odd, after) -> None:
    cells = [*before, odd, *after]
    data, starts, ends = _bounds(cells)
    assert csv_kernels.parse_plain(data, starts, ends, np.empty(len(cells))) == len(before)


def test_rows_parse_column_by_column_and_flag_a_column_with_text(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n1,x,2.5\n-3, ,NA\n4,7,1e3\n", encoding="utf-8")
    src = CsvSource(path)
    sel = src.select(["a", "c"])  # c holds 1e3: the numpy path parses it after the kernel
    np.testing.assert_array_equal(sel.values, [[1, 2.5], [-3, np.nan], [4, 1000]])
    assert src.select(["b"], numeric=False).categorical("b").tolist() == ["x", "", "7"]


def test_quoted_fields_go_to_the_csv_module(tmp_path: Path) -> None:
    """A quote anywhere sends the file to the csv module, which reads quoted commas as text."""
    path = tmp_path / "q.csv"
    path.write_text('a,b\n1,2\n3,4,5\n6,"7,8"\n', encoding="utf-8")
    with pytest.raises(DataSourceError, match="data row 2 has 3 fields"):
        CsvSource(path)  # row 2 is ragged for the csv module too
    path.write_text('a,b\n1,"2,5"\n3,4\n', encoding="utf-8")
    assert CsvSource(path).select(["a"]).values[:, 0].tolist() == [1.0, 3.0]
    assert CsvSource(path).select(["b"], numeric=False).categorical("b").tolist() == ["2,5", "4"]


def test_crlf_files_and_non_utf8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n3,4\r\n")
    assert CsvSource(path).select(["b"]).values[:, 0].tolist() == [2.0, 4.0]
    path.write_bytes("a,b\n1,é\n".encode())
    assert CsvSource(path).select(["b"], numeric=False).categorical("b").tolist() == ["é"]


def test_warm_compiles_every_kernel_on_zeros() -> None:
    csv_kernels.warm()
    for kernel in (csv_kernels.split_fields, csv_kernels.parse_plain, csv_kernels.parse_rows):
        assert kernel.signatures  # compiled (or loaded from the cache) for the layouts used
