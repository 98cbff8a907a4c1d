"""The CSV reader's compiled passes against Python: float() on each cell, the csv module."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parties.data import csv_kernels, csv_source
from parties.data.csv_source import CsvSource
from parties.data.errors import DataSourceError
from parties.data.filters import NUMBER

PLAIN = st.one_of(
    st.integers(-(10**15) + 1, 10**15 - 1).map(str),
    st.decimals(min_value=-(10**8), max_value=10**8, places=6, allow_nan=False).map(str),
    st.builds(
        "{}{}{}{}e{}{}".format,
        st.sampled_from(["", "+", "-"]),
        st.integers(0, 10**7),
        st.sampled_from([".", ""]),
        st.sampled_from(["", "5", "25", "0001"]),
        st.sampled_from(["", "+", "-"]),
        st.integers(0, 14),
    ),
    st.sampled_from(["-0", "+.5", "5.", " 7 ", "\t3.25", "0.00000000000001", "+0", "1E-3"]),
    st.sampled_from(["-.5e+2", "1.e5"]),
    st.sampled_from(["9007199254740992", "900719925474099e-22", "0.00000000000000012"]),
)
MISSING = st.sampled_from(["", " ", "\t", "NA", "NaN", " NA\t", "  NaN "])
OTHER = st.sampled_from(
    [
        *["1e5x", "inf", "nan", "NAN", "Na", "N", "NA1", "1.2.3", "-", ".", "+.", "1 2", "0x1"],
        *["1e", "1e+", "e5", ".e5", "+-1", "1_0", "1e999", "1e-400", "0e999", "\u0663", "é"],
        *["9007199254740993", "1234567890123456789", "0.0000000000000000001", "1e23", "\v1"],
    ]
)


def _number(text: str) -> float:
    """What the reader must give for a cell that is a plain number or missing."""
    stripped = text.strip(" \t")
    return math.nan if stripped in ("", "NA", "NaN") else float(stripped)


def _row(cells: list[str]) -> tuple[np.ndarray, list[int]]:
    """The cells as one CSV row, and where each one starts."""
    starts, at = [], 0
    for c in cells:
        starts.append(at)
        at += len(c.encode()) + 1
    return np.frombuffer((",".join(cells) + "\n").encode(), dtype=np.uint8), starts


def _same(got: float, want: float) -> bool:
    """Equal bit for bit (so -0.0 is not 0.0), or both NaN."""
    return np.float64(got).tobytes() == np.float64(want).tobytes() or (
        math.isnan(got) and math.isnan(want)
    )


@given(st.lists(st.one_of(PLAIN, MISSING), min_size=1, max_size=30))
def test_plain_cells_parse_as_float_does_and_end_at_their_comma(cells: list[str]) -> None:
    data, starts = _row(cells)
    for cell, start in zip(cells, starts, strict=True):
        plain, value, end = csv_kernels.cell(data, start)
        assert plain, cell
        assert _same(value, _number(cell)), cell
        assert end == start + len(cell.encode())


@given(st.text(alphabet="0123456789.eE+- \tNaA_x", max_size=24))
def test_any_cell_the_kernel_takes_is_a_number_float_reads_the_same(text: str) -> None:
    """The kernel may leave a cell to the other paths, but never reads one differently."""
    data, _ = _row([text])
    plain, value, end = csv_kernels.cell(data, 0)
    assert end == len(text)
    if plain:
        stripped = text.strip(" \t")
        assert stripped in ("", "NA", "NaN") or NUMBER.fullmatch(stripped), text
        assert _same(value, _number(text)), text


@given(st.lists(PLAIN, max_size=10), OTHER, st.lists(PLAIN, max_size=10))
def test_any_other_form_is_left_to_the_other_paths(before, odd, after) -> None:
    cells = [*before, odd, *after]
    data, starts = _row(cells)
    plain, _, end = csv_kernels.cell(data, starts[len(before)])
    assert not plain
    assert end == starts[len(before)] + len(odd.encode())


def _split_by_python(body: bytes, width: int) -> tuple[int, list[int], int, int, bool]:
    """What :func:`csv_kernels.split_rows` must find, line by line."""
    special = any(b in body for b in (b'"', b"\0", b"\r"))
    high = any(b >= 128 for b in body)
    if special:
        return csv_kernels.SPLIT_SPECIAL, [], 0, 0, high
    starts, at = [], 0
    for line in body.split(b"\n")[:-1]:
        if line:
            fields = line.count(b",") + 1
            if fields != width:
                return csv_kernels.SPLIT_RAGGED, starts, len(starts) + 1, fields, high
            starts.append(at)
        at += len(line) + 1
    return csv_kernels.SPLIT_OK, starts, 0, 0, high


@given(
    st.lists(
        st.lists(
            st.text(alphabet='0123456789.,- \tNa"\r\0é', max_size=9), min_size=1, max_size=4
        ).map(",".join),
        max_size=12,
    ),
    st.integers(1, 3),
    st.integers(0, 9),
)
def test_split_finds_the_rows_python_finds(lines: list[str], width: int, pad: int) -> None:
    """Every byte offset of the body (``pad``) and every run of 8 bytes, against Python."""
    body = "\n".join(lines).encode() + b"\n"
    data = np.frombuffer(b"h" * pad + body, dtype=np.uint8)
    words = data[: len(data) // 8 * 8].view(np.uint64)
    room = np.empty(len(body) // width + 1, dtype=np.int64)
    what, rows, row, fields, high = csv_kernels.split_rows(data, words, pad, width, room)
    want, starts, want_row, want_fields, want_high = _split_by_python(body, width)
    assert what == want
    if what != csv_kernels.SPLIT_SPECIAL:  # a special byte ends the pass: the rest is unread
        assert high == want_high
    if what == csv_kernels.SPLIT_RAGGED:
        assert (row, fields) == (want_row, want_fields)
        assert (room[: row - 1] - pad).tolist() == starts
    elif what == csv_kernels.SPLIT_OK:
        assert (room[:rows] - pad).tolist() == starts


@given(
    st.lists(st.lists(st.one_of(PLAIN, MISSING, OTHER), min_size=4, max_size=4), max_size=20),
    st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_parse_columns_and_field_bounds_agree_with_python(
    rows: list[list[str]], wanted: list[bool]
) -> None:
    """Each wanted column parsed as float does, or flagged if a cell is of another form."""
    text = "".join(",".join(r) + "\n" for r in rows).encode()
    data = np.frombuffer(text, dtype=np.uint8)
    starts = np.cumsum([0] + [len(",".join(r).encode()) + 1 for r in rows])[:-1].astype(np.int64)
    columns = [j for j in range(4) if wanted[j]]
    slots = np.full(4, -1, dtype=np.int64)
    slots[columns] = np.arange(len(columns))
    out = np.empty((len(columns), len(rows)))
    failed = np.zeros(len(columns), dtype=np.bool_)
    csv_kernels.parse_columns(data, starts, slots, out, failed)
    for k, j in enumerate(columns):
        cells = [r[j] for r in rows]
        odd = [c for c in cells if not csv_kernels.cell(_row([c])[0], 0)[0]]
        assert failed[k] == bool(odd)
        if not odd:
            assert all(_same(v, _number(c)) for v, c in zip(out[k], cells, strict=True))
    for j in range(4):
        first, ends = np.empty_like(starts), np.empty_like(starts)
        csv_kernels.field_bounds(data, starts, j, first, ends)
        cells = [text[a:b].decode() for a, b in zip(first, ends, strict=True)]
        assert cells == [r[j] for r in rows]


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


def test_a_file_that_grew_after_its_size_was_taken_is_read_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The size only sizes the first read: a row written since is read, not cut short."""
    path = tmp_path / "g.csv"
    path.write_bytes(b"a,b\n1,2\n3,4.25\n")
    real = os.fstat

    def earlier(fd: int) -> os.stat_result:
        stat = list(real(fd))
        stat[6] -= 5  # st_size as it was before the last row's end was written
        return os.stat_result(stat)

    monkeypatch.setattr(csv_source.os, "fstat", earlier)
    assert CsvSource(path).select(["b"]).values[:, 0].tolist() == [2.0, 4.25]


def test_warm_compiles_every_kernel_on_zeros() -> None:
    csv_kernels.warm()
    kernels = (csv_kernels.split_rows, csv_kernels.parse_columns, csv_kernels.field_bounds)
    for kernel in kernels:
        assert kernel.signatures  # compiled (or loaded from the cache) for the layouts used
