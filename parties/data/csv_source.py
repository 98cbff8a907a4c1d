"""A UTF-8 CSV file with a header row."""

from __future__ import annotations

import codecs
import csv
import os
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parties.data import csv_kernels
from parties.data.base import DataSource
from parties.data.errors import DataSourceError
from parties.data.selection import CellBlock, Selection, stripped_texts

SELECTION_BYTES = 32 << 20
"""Bytes a CSV source spends at most on the selections it keeps for later jobs."""
SELECTIONS_KEPT = 16
"""Selections a CSV source keeps at most: the requests in use at once are far fewer."""


class CsvSource(DataSource):
    """A UTF-8 CSV file with a header row, read once when opened (a snapshot).

    Blank lines are skipped and not counted as rows. A file without quotes,
    NUL bytes or lone carriage returns has its rows found by a compiled pass
    (``csv_kernels``); the columns a job needs are parsed when it needs them
    (plain decimals of all of them in one compiled pass over the rows, other
    numbers with numpy) and a text column's fields are found when first
    read. Any other file is read with the ``csv`` module. Both give the same
    cells and the same errors.

    Since the rows never change, a selection depends on the request alone: the
    source keeps its recent selections (see :meth:`select`).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            data = _read(self.path)
        except FileNotFoundError:
            raise DataSourceError(f"no such data file: {self.path}") from None
        except OSError as exc:
            raise DataSourceError(f"cannot read data file {self.path} ({exc.strerror})") from None
        table = _split(self.path, data)
        if table is None:
            self._header, cells, self._rows = _read_csv(self.path)
            self._cells: dict[str, Sequence[object]] = dict(cells)
        else:
            self._header, self._rows = table.header, len(table.starts)
            self._cells = _LazyColumns(table)
        self._kept = _KeptSelections(SELECTION_BYTES, SELECTIONS_KEPT)

    @property
    def columns(self) -> tuple[str, ...]:
        return self._header

    @property
    def row_count(self) -> int:
        return self._rows

    def _version(self) -> object | None:
        """The file is read once when opened: one version for this source's life."""
        return 0

    def select(
        self,
        columns: Sequence[str],
        where: str | None = None,
        *,
        numeric: bool = True,
        levels: bool | None = None,
    ) -> Selection:
        """As :meth:`DataSource.select`; a request this source answered before is answered
        with the selection it made then, without a pass over the columns.

        The snapshot's rows never change, so the same columns, filter and kind
        of selection give the same rows, values, row ids, column checks and
        text, and the request's checks against the header (names, filter
        syntax) passed when that selection was made. A request that failed
        is not kept: it fails again the same way. Parsing 30 columns of a
        190-row file anew cost about 0.35 ms per job, more than the job's
        own use of them.
        """
        key = _request(columns, where, numeric, levels)
        kept = self._kept.get(key) if key is not None else None
        if kept is None:
            kept = super().select(columns, where, numeric=numeric, levels=levels)
            if key is not None:
                self._kept.put(key, kept)
        return kept.reused()

    def _load(self, names: Sequence[str]) -> tuple[dict[str, Sequence[object]], np.ndarray]:
        if isinstance(self._cells, _LazyColumns):
            self._cells.parse(names)
        return {name: self._cells[name] for name in names}, np.arange(1, self._rows + 1)


def _request(
    columns: object, where: object, numeric: bool, levels: bool | None
) -> tuple[tuple[str, ...], str | None, bool, bool] | None:
    """A select request as a key (the kind of selection spelled out), or None for one
    that is not a list of names and a filter text: it is checked, and refused, every time."""
    if not isinstance(columns, list | tuple) or not all(type(c) is str for c in columns):
        return None
    if where is not None and type(where) is not str:
        return None
    numeric = bool(numeric)
    return tuple(columns), where, numeric, not numeric if levels is None else bool(levels)


class _KeptSelections:
    """A CSV source's recent selections by request, least recently used dropped first.

    A selection counts twice its values (the matrix, and each column's numbers
    when the filter took rows) and its row ids, within ``budget`` bytes in
    all; when every row is kept the values are the snapshot's parsed columns
    as they lie, so this overstates. A selection larger than the budget is
    not kept. Safe to share between threads.
    """

    def __init__(self, budget: int, count: int) -> None:
        self.budget = budget
        self.count = count
        self._kept: OrderedDict[Hashable, tuple[Selection, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Selection | None:
        with self._lock:
            kept = self._kept.get(key)
            if kept is None:
                return None
            self._kept.move_to_end(key)
            return kept[0]

    def put(self, key: Hashable, selection: Selection) -> None:
        size = 2 * selection.values.nbytes + selection.row_ids.nbytes
        if size > self.budget:
            return
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._kept[key] = (selection, size)
            self._bytes += size
            while self._bytes > self.budget or len(self._kept) > self.count:
                _, (_, dropped) = self._kept.popitem(last=False)
                self._bytes -= dropped


_BOM = b"\xef\xbb\xbf"
_NEWLINE = 10
_WIDEST = 64  # longer cells are parsed one by one
# Bytes a plain decimal number (or the padding after it) may contain.
_PLAIN = np.zeros(256, dtype=bool)
_PLAIN[list(b"0123456789eE+-. \t\0")] = True
# ... and the letters of the missing-cell tokens NA and NaN.
_PLAIN_OR_NA = _PLAIN.copy()
_PLAIN_OR_NA[list(b"NAa")] = True


@dataclass(frozen=True)
class _Table:
    """A CSV's bytes and the first byte of each row (every row has the header's width)."""

    header: tuple[str, ...]
    data: np.ndarray  # the file's bytes (uint8), ending with a newline
    starts: np.ndarray  # (rows,)

    def bounds(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Column ``j``'s fields: each one's first byte and the byte after it."""
        first = np.empty_like(self.starts)
        ends = np.empty_like(self.starts)
        csv_kernels.field_bounds(self.data, self.starts, j, first, ends)
        return first, ends

    def parse(self, columns: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The plain numbers of the given columns (one row of the result each), in one
        pass over the rows, and which columns hold a cell of another form."""
        slots = np.full(len(self.header), -1, dtype=np.int64)
        slots[list(columns)] = np.arange(len(columns))
        out = np.empty((len(columns), len(self.starts)), dtype=np.float64)
        failed = np.zeros(len(columns), dtype=np.bool_)
        csv_kernels.parse_columns(self.data, self.starts, slots, out, failed)
        return out, failed


def _read(path: Path) -> np.ndarray:
    """The file's bytes, ending with a newline (added if the last line has none), read-only.

    Read straight into a numpy array: no copy of the file is made after the
    read, and a large array is backed by huge pages where the system has them.
    """
    with path.open("rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        data = np.empty(size + 1, dtype=np.uint8)
        view, got = data.data, 0
        while got < size:  # a read returns at most about 2 GB, and less if the file shrank
            n = fh.readinto(view[got:size])
            if not n:
                break
            got += n
        view.release()
        grown = fh.read()  # written since its size was taken: read to the end, as before
    if grown:
        whole = data[:got].tobytes() + grown
        data = np.empty(len(whole) + 1, dtype=np.uint8)
        data[: len(whole)] = np.frombuffer(whole, dtype=np.uint8)
        got = len(whole)
    if got == 0 or data[got - 1] != _NEWLINE:
        data[got] = _NEWLINE
        got += 1
    data = data[:got]
    data.flags.writeable = False
    return data


def _line_end(data: np.ndarray, begin: int) -> int:
    """The position of the first newline at or after ``begin`` (the data ends with one)."""
    step = 1 << 16
    for at in range(begin, len(data), step):
        found = data[at : at + step].tobytes().find(b"\n")
        if found >= 0:
            return at + found
    return len(data) - 1  # not reached: the data ends with a newline


def _split(path: Path, data: np.ndarray) -> _Table | None:
    """The file's rows found by a compiled pass, or None when it needs the csv module.

    ``data`` ends with a newline. The csv module reads a file with quotes, NUL
    bytes, lone carriage returns or bytes that are not UTF-8; CRLF line ends
    are rewritten to LF first.
    """
    begin = len(_BOM) if data[: len(_BOM)].tobytes() == _BOM else 0
    head = _line_end(data, begin)
    first = data[begin:head].tobytes()
    if b'"' in first or b"\0" in first or b"\r" in first.rstrip(b"\r"):
        return None
    if not first.isascii():
        try:
            first.decode("utf-8")
        except UnicodeDecodeError:
            return None
    names = first.rstrip(b"\r").decode("utf-8").split(",") if head > begin else []
    header = _check_header(path, names)
    width = len(header)
    index = np.int32 if len(data) < 2**31 else np.int64
    # Rows before a ragged one have width - 1 commas and a newline each: at most this many.
    room = np.empty((len(data) - head - 1) // width + 1, dtype=index)
    words = data[: len(data) // 8 * 8].view(np.uint64)
    what, rows, row, fields, high = csv_kernels.split_rows(data, words, head + 1, width, room)
    if what == csv_kernels.SPLIT_SPECIAL:
        raw = data.tobytes()
        if b"\r\n" in raw and b"\r" not in raw.replace(b"\r\n", b""):
            return _split(path, np.frombuffer(raw.replace(b"\r\n", b"\n"), dtype=np.uint8))
        return None
    if high:
        try:
            codecs.utf_8_decode(data.data, "strict", True)
        except UnicodeDecodeError:
            return None
    if what == csv_kernels.SPLIT_RAGGED:
        raise DataSourceError(f"{path}: data row {row} has {fields} fields; the header has {width}")
    return _Table(header, data, room[:rows].copy())


class _LazyColumns(dict[str, Sequence[object]]):
    """Each column's fields, found in the file when first asked for.

    :meth:`parse` reads the plain numbers of several columns in one pass over
    the rows and keeps them with the fields, so later jobs on the same
    columns of this snapshot parse nothing.
    """

    def __init__(self, table: _Table) -> None:
        super().__init__()
        self._table = table

    def __missing__(self, name: str) -> _Fields:
        fields = _Fields(self._table, self._table.header.index(name))
        self[name] = fields
        return fields

    def parse(self, names: Sequence[str]) -> None:
        """Parse the named columns' numbers, row by row, where not parsed already."""
        todo = [self.fields(n) for n in dict.fromkeys(names)]
        todo = [f for f in todo if f.parsed is None]
        if todo and len(self._table.starts):
            _parse_together(self._table, todo)

    def fields(self, name: str) -> _Fields:
        fields = self[name]
        assert isinstance(fields, _Fields)  # only __missing__ fills this mapping
        return fields


def _parse_together(table: _Table, columns: Sequence[_Fields]) -> None:
    """Parse whole columns of ``table`` in one pass and keep each one's numbers (read-only,
    shared by every job on this snapshot), or False if a cell is of another form."""
    out, failed = table.parse([f.field for f in columns])
    for k, fields in enumerate(columns):
        numbers = out[k]
        numbers.flags.writeable = False
        fields.parsed = False if failed[k] else numbers


class _Fields(CellBlock):
    """One column of a split CSV: its fields found, decoded or parsed on demand.

    ``parsed`` is the column's numbers once a compiled pass read them all (or
    False if some cell is not a plain number or missing; None before). A
    block taken from a whole column keeps the whole column and its rows in it.
    """

    def __init__(
        self,
        table: _Table,
        field: int,
        parsed: np.ndarray | bool | None = None,
        whole: tuple[_Fields, np.ndarray] | None = None,
    ) -> None:
        self._table = table
        self.field = field
        self.parsed = parsed
        self._whole = whole  # the snapshot's whole column, and these rows' places in it
        self._found: tuple[np.ndarray, np.ndarray] | None = None
        self._texts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._table.starts) if self._whole is None else len(self._whole[1])

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Each cell's first byte and the byte after it: found once for the whole column."""
        if self._found is None:
            if self._whole is None:
                self._found = self._table.bounds(self.field)
            else:
                whole, rows = self._whole
                first, ends = whole._bounds()
                self._found = first[rows], ends[rows]
        return self._found

    def cell(self, i: int) -> str:
        first, ends = self._bounds()
        return self._table.data[first[i] : ends[i]].tobytes().decode("utf-8")

    def take(self, rows: np.ndarray) -> _Fields:
        parsed = self.parsed[rows] if isinstance(self.parsed, np.ndarray) else self.parsed
        whole = (self, rows) if self._whole is None else (self._whole[0], self._whole[1][rows])
        return _Fields(self._table, self.field, parsed, whole)

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
        if self.parsed is None:  # the whole column, read by no job yet
            whole = self if self._whole is None else self._whole[0]
            if whole.parsed is None:
                _parse_together(self._table, [whole])
            self.parsed = whole.parsed
            if self._whole is not None and isinstance(whole.parsed, np.ndarray):
                self.parsed = whole.parsed[self._whole[1]]
        if isinstance(self.parsed, np.ndarray):
            return self.parsed  # read-only
        return self._planes()

    def _planes(self) -> np.ndarray | None:
        """Every cell parsed with numpy, byte plane by byte plane, or None (cell by cell)."""
        first, ends = self._bounds()
        lengths = (ends - first).astype(np.int64)
        width = int(lengths.max(initial=0))
        if len(lengths) == 0 or width > _WIDEST:
            return None
        if width == 0:
            return np.full(len(lengths), np.nan)
        # Byte k of every cell, one array per k (NUL past a cell's end): elementwise work only.
        last, data = len(self._table.data) - 1, self._table.data
        planes = [
            np.where(lengths > k, data[np.minimum(first + k, last)], 0).astype(np.uint8)
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
