"""A UTF-8 CSV file with a header row."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parties.data import csv_kernels
from parties.data.base import DataSource
from parties.data.errors import DataSourceError
from parties.data.selection import CellBlock, stripped_texts


class CsvSource(DataSource):
    """A UTF-8 CSV file with a header row, read once when opened (a snapshot).

    Blank lines are skipped and not counted as rows. A file without quotes,
    NUL bytes or lone carriage returns is split into fields by a compiled
    pass (``csv_kernels``) and each column is parsed on its own when a job
    needs it (plain decimals in a compiled pass, other numbers with numpy);
    any other file is read with the ``csv`` module. Both give the same cells
    and the same errors.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise DataSourceError(f"no such data file: {self.path}") from None
        except OSError as exc:
            raise DataSourceError(f"cannot read data file {self.path} ({exc.strerror})") from None
        table = _split(self.path, raw)
        if table is None:
            self._header, cells, self._rows = _read_csv(self.path)
            self._cells: dict[str, Sequence[object]] = dict(cells)
        else:
            self._header, self._rows = table.header, len(table.starts)
            self._cells = _LazyColumns(table)

    @property
    def columns(self) -> tuple[str, ...]:
        return self._header

    @property
    def row_count(self) -> int:
        return self._rows

    def _version(self) -> object | None:
        """The file is read once when opened: one version for this source's life."""
        return 0

    def _load(self, names: Sequence[str]) -> tuple[dict[str, Sequence[object]], np.ndarray]:
        if isinstance(self._cells, _LazyColumns):
            self._cells.parse(names)
        return {name: self._cells[name] for name in names}, np.arange(1, self._rows + 1)


_BOM = b"\xef\xbb\xbf"
_WIDEST = 64  # longer cells are parsed one by one
# Bytes a plain decimal number (or the padding after it) may contain.
_PLAIN = np.zeros(256, dtype=bool)
_PLAIN[list(b"0123456789eE+-. \t\0")] = True
# ... and the letters of the missing-cell tokens NA and NaN.
_PLAIN_OR_NA = _PLAIN.copy()
_PLAIN_OR_NA[list(b"NAa")] = True


@dataclass(frozen=True)
class _Table:
    """A CSV split into fields: each row's first byte and the byte after each of its fields."""

    header: tuple[str, ...]
    data: np.ndarray  # the file's bytes (uint8)
    starts: np.ndarray  # (rows,)
    ends: np.ndarray  # (rows, columns)

    def column(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        first = self.starts if j == 0 else self.ends[:, j - 1] + 1
        return first, self.ends[:, j]


def _split(path: Path, raw: bytes) -> _Table | None:
    """The file split by a compiled pass, or None when it needs the csv module.

    The csv module reads a file with quotes, NUL bytes, lone carriage returns
    or bytes that are not UTF-8; CRLF line ends are rewritten to LF first.
    """
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    if not raw.endswith(b"\n"):
        raw += b"\n"
    head = raw.index(b"\n")
    first = raw[:head]
    if b'"' in first or b"\0" in first or b"\r" in first.rstrip(b"\r"):
        return None
    if not first.isascii():
        try:
            first.decode("utf-8")
        except UnicodeDecodeError:
            return None
    header = _check_header(path, first.rstrip(b"\r").decode("utf-8").split(",") if head else [])
    width = len(header)
    data = np.frombuffer(raw, dtype=np.uint8)
    index = np.int32 if len(raw) < 2**31 else np.int64
    lines = raw.count(b"\n", head + 1)  # rows, and empty lines
    starts = np.empty(lines, dtype=index)
    ends = np.empty((lines, width), dtype=index)
    what, rows, row, fields, high = csv_kernels.split_fields(data, head + 1, starts, ends)
    if what == csv_kernels.SPLIT_SPECIAL:
        if b"\r\n" in raw and b"\r" not in raw.replace(b"\r\n", b""):
            return _split(path, raw.replace(b"\r\n", b"\n"))
        return None
    if high:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if what == csv_kernels.SPLIT_RAGGED:
        raise DataSourceError(f"{path}: data row {row} has {fields} fields; the header has {width}")
    return _Table(header, data, starts[:rows], ends[:rows])


class _LazyColumns(dict[str, Sequence[object]]):
    """Each column's fields, cut from the split file when first asked for.

    :meth:`parse` reads the plain numbers of several columns in one pass over
    the rows and keeps them with the fields, so later jobs on the same
    columns of this snapshot parse nothing.
    """

    def __init__(self, table: _Table) -> None:
        super().__init__()
        self._table = table

    def __missing__(self, name: str) -> _Fields:
        fields = _Fields(self._table.data, self._table.column(self._table.header.index(name)))
        self[name] = fields
        return fields

    def parse(self, names: Sequence[str]) -> None:
        """Parse the named columns' numbers, row by row, where not parsed already."""
        todo = [n for n in dict.fromkeys(names) if self.fields(n).parsed is None]
        if not todo or not len(self._table.starts):
            return
        table = self._table
        columns = np.array([table.header.index(n) for n in todo], dtype=np.int64)
        out = np.empty((len(todo), len(table.starts)), dtype=np.float64)
        failed = np.zeros(len(todo), dtype=np.bool_)
        csv_kernels.parse_rows(table.data, table.starts, table.ends, columns, out, failed)
        for k, name in enumerate(todo):
            numbers = out[k]
            numbers.flags.writeable = False  # shared by every job on this snapshot
            self.fields(name).parsed = False if failed[k] else numbers

    def fields(self, name: str) -> _Fields:
        fields = self[name]
        assert isinstance(fields, _Fields)  # only __missing__ fills this mapping
        return fields


class _Fields(CellBlock):
    """One column of a split CSV: byte ranges into the file, decoded or parsed on demand.

    ``parsed`` is the column's numbers once a compiled pass read them all (or
    False if some cell is not a plain number or missing; None before).
    """

    def __init__(
        self,
        data: np.ndarray,
        bounds: tuple[np.ndarray, np.ndarray],
        parsed: np.ndarray | bool | None = None,
        whole: tuple[_Fields, np.ndarray] | None = None,
    ) -> None:
        self._data = data
        self._starts, self._ends = bounds
        self.parsed = parsed
        self._whole = whole  # the snapshot's whole column, and these rows' places in it
        self._texts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._starts)

    def cell(self, i: int) -> str:
        return self._data[self._starts[i] : self._ends[i]].tobytes().decode("utf-8")

    def take(self, rows: np.ndarray) -> _Fields:
        parsed = self.parsed[rows] if isinstance(self.parsed, np.ndarray) else self.parsed
        whole = (self, rows) if self._whole is None else (self._whole[0], self._whole[1][rows])
        return _Fields(self._data, (self._starts[rows], self._ends[rows]), parsed, whole)

    def texts(self) -> np.ndarray:
        """The cells stripped, "" where missing; worked out once per snapshot's column
        (e.g. the patient column consent reads for every job), then indexed."""
        if self._whole is not None:
            whole, rows = self._whole
            text = whole.texts()[rows]
            text.flags.writeable = False
            return text
        if self._texts is None:
            self._texts = stripped_texts(self)
        return self._texts

    def numbers(self) -> np.ndarray | None:
        if isinstance(self.parsed, np.ndarray):
            return self.parsed  # read-only
        if self.parsed is False:
            return self._planes()
        values = np.empty(len(self._starts), dtype=np.float64)
        if csv_kernels.parse_plain(self._data, self._starts, self._ends, values) < 0:
            return values  # every cell plain or missing: parsed in one compiled pass
        return self._planes()

    def _planes(self) -> np.ndarray | None:
        """Every cell parsed with numpy, byte plane by byte plane, or None (cell by cell)."""
        lengths = (self._ends - self._starts).astype(np.int64)
        width = int(lengths.max(initial=0))
        if len(lengths) == 0 or width > _WIDEST:
            return None
        if width == 0:
            return np.full(len(lengths), np.nan)
        # Byte k of every cell, one array per k (NUL past a cell's end): elementwise work only.
        last, data = len(self._data) - 1, self._data
        planes = [
            np.where(lengths > k, data[np.minimum(self._starts + k, last)], 0).astype(np.uint8)
            for k in range(width)
        ]
        if not all(_PLAIN_OR_NA[plane].all() for plane in planes):
            return None
        blank = np.ones(len(lengths), dtype=bool)
        for plane in planes:
            blank &= (plane == 0) | (plane == ord(" ")) | (plane == ord("\t"))
        missing = blank | _spells(planes, b"NA") | _spells(planes, b"NaN")
        present = ~missing
        if not all(_PLAIN[plane[present]].all() for plane in planes):
            return None  # a letter outside a missing-cell token: decided cell by cell
        values, simple = _decimals(planes)
        values[missing] = np.nan
        rest = present & ~simple
        if rest.any():
            cells = np.stack([plane[rest] for plane in planes], axis=1).view(f"S{width}").ravel()
            try:
                values[rest] = cells.astype(np.float64)  # numpy's parser, in C
            except ValueError:  # e.g. "1e", "1.2.3": decided cell by cell
                return None
        if not np.isfinite(values[present]).all():  # an overflowing literal such as 1e999
            return None
        return values


def _spells(planes: list[np.ndarray], word: bytes) -> np.ndarray:
    """Cells that are exactly ``word``."""
    if len(word) > len(planes):
        return np.zeros(len(planes[0]), dtype=bool)
    found = np.ones(len(planes[0]), dtype=bool)
    for k, plane in enumerate(planes):
        found &= plane == (word[k] if k < len(word) else 0)
    return found


def _decimals(planes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Cells of the form [+-]digits[.digits] with at most 15 digits, parsed exactly.

    Such a cell is M / 10^d with M < 2^53 and d <= 15, both exact in float64,
    so one correctly rounded division gives what ``float`` gives. Returns the
    values and which cells had that form (the others' values are unset).
    """
    n = len(planes[0])
    mantissa = np.zeros(n, dtype=np.int64)
    digits = np.zeros(n, dtype=np.int64)
    fraction = np.zeros(n, dtype=np.int64)
    dots = np.zeros(n, dtype=np.int64)
    simple = np.ones(n, dtype=bool)
    for k, plane in enumerate(planes):
        digit = (plane >= ord("0")) & (plane <= ord("9"))
        dot = plane == ord(".")
        allowed = digit | dot | (plane == 0)
        if k == 0:
            allowed |= (plane == ord("+")) | (plane == ord("-"))
        else:
            allowed &= (plane != 0) | (planes[k - 1] != ord(" "))  # no inner padding
        simple &= allowed
        mantissa = np.where(digit, mantissa * 10 + (plane.astype(np.int64) - ord("0")), mantissa)
        digits += digit
        fraction += digit & (dots > 0)
        dots += dot
    simple &= (dots <= 1) & (digits >= 1) & (digits <= 15)
    values = mantissa / 10.0**fraction
    negative = planes[0] == ord("-")
    values[negative] = -values[negative]
    return values, simple


def _check_header(path: Path, first: list[str]) -> tuple[str, ...]:
    if not first:
        raise DataSourceError(f"{path}: the first line must be a header of column names")
    header = tuple(name.strip() for name in first)
    for i, name in enumerate(header):
        if not name:
            raise DataSourceError(f"{path}: header column {i + 1} has no name")
    if len(set(header)) != len(header):
        repeated = sorted({h for h in header if header.count(h) > 1})
        raise DataSourceError(f"{path}: the header repeats {', '.join(repeated)}")
    return header


def _read_csv(path: Path) -> tuple[tuple[str, ...], dict[str, list[str]], int]:
    rows: list[list[str]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, strict=True)
            header = _check_header(path, next(reader, []))
            for record in reader:
                if not record:
                    continue
                if len(record) != len(header):
                    raise DataSourceError(
                        f"{path}: data row {len(rows) + 1} has {len(record)} fields;"
                        f" the header has {len(header)}"
                    )
                rows.append(record)
    except FileNotFoundError:
        raise DataSourceError(f"no such data file: {path}") from None
    except UnicodeDecodeError:
        raise DataSourceError(f"{path}: data row {len(rows) + 1} is not UTF-8 text") from None
    except csv.Error:
        # The csv module's message is dropped: keep the row, never the content.
        raise DataSourceError(
            f"{path}: malformed CSV at data row {len(rows) + 1} (check quoting and NUL bytes)"
        ) from None
    except OSError as exc:
        raise DataSourceError(f"cannot read data file {path} ({exc.strerror})") from None
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in header]
    return header, dict(zip(header, columns, strict=True)), len(rows)


__all__ = ["CsvSource"]
