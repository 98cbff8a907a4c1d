"""One column's cells, read as numbers or text, and the :class:`Selection` a job receives.

Missing cells: NULL, and text that is empty or exactly ``NA`` or ``NaN`` after
stripping spaces. They are NaN in numeric columns and ``""`` as text. No
message raised here carries a value; errors name the column and data row.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import overload

import numpy as np

from parties.data.errors import DataSourceError
from parties.data.filters import NUMBER
from protocols.disclosure import VALUE_BOUND
from protocols.local_data import ColumnFacts

MISSING_TOKENS = frozenset({"", "NA", "NaN"})


def _number(cell: object) -> float | None:
    """A cell as a float (NaN if missing), or None if it is not a finite number."""
    if cell is None:
        return math.nan
    if isinstance(cell, str):
        text = cell.strip()
        if text in MISSING_TOKENS:
            return math.nan
        if NUMBER.fullmatch(text) is None:
            return None
        value = float(text)
    elif isinstance(cell, int | float) and not isinstance(cell, bool):
        value = float(cell)
    else:
        return None
    return value if math.isfinite(value) else None


# Characters a plain decimal number may contain. A column whose cells use only these
# and all convert with float() is parsed in C; anything else (missing cells, text,
# non-ASCII digits, "inf", "1_000") takes the strict cell-by-cell path.
_NOT_NUMERIC = re.compile(r"[^0-9eE+\-. \t]")


def _all_numbers(cells: Sequence[object]) -> np.ndarray | None:
    """Every cell parsed at C speed if all are plain decimal numbers, else None.

    The slow path (:func:`_number`, cell by cell) decides every other case
    and finds the row to name in an error; both give the same numbers.
    """
    if not cells or not all(isinstance(cell, str) for cell in cells):
        return None
    if _NOT_NUMERIC.search("\t".join(cells)) is not None:  # type: ignore[arg-type]
        return None
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:  # e.g. "1e", "1.2.3", "" (missing): decided cell by cell
        return None
    if not np.isfinite(values).all():  # an overflowing literal such as 1e999
        return None
    return values


class CellBlock(ABC, Sequence[str]):
    """A source's cells for one column kept in its own form (e.g. byte ranges of a file).

    Indexing gives a cell's text; :meth:`take` and :meth:`numbers` work on the
    whole block at once, so a source can parse a column without a Python loop.
    """

    @abstractmethod
    def cell(self, i: int) -> str:
        """The text of the cell at row ``i`` of the block."""

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self.cell(k) for k in range(*i.indices(len(self)))]
        return self.cell(i)

    @abstractmethod
    def take(self, rows: np.ndarray) -> CellBlock:
        """The cells at the given positions, in that order."""

    @abstractmethod
    def numbers(self) -> np.ndarray | None:
        """Every cell as float64 (NaN where missing) when all are plain decimal numbers
        or missing, else None: the strict cell-by-cell path then decides."""

    def texts(self) -> np.ndarray | None:
        """The cells as :attr:`Column.text` gives them, if the block keeps them (per
        snapshot); None to have the column work them out."""
        return None


def stripped_texts(cells: Sequence[str]) -> np.ndarray:
    """Text cells stripped, "" where missing, as a read-only numpy text array."""
    out = [c.strip() for c in cells]
    text = np.array(["" if c in MISSING_TOKENS else c for c in out], dtype=str)
    text.flags.writeable = False
    return text


def _take(cells: Sequence[object], rows: np.ndarray) -> Sequence[object]:
    if isinstance(cells, CellBlock | np.ndarray):
        return cells.take(rows)
    return [cells[i] for i in rows.tolist()]


_BLOCK = 1 << 16
"""Rows a column's checks test at a time."""


def _outside(numbers: np.ndarray) -> np.ndarray:
    """Present cells outside the statistics' range (see ``VALUE_BOUND``)."""
    with np.errstate(invalid="ignore"):
        return ~np.isnan(numbers) & ~(np.abs(numbers) < VALUE_BOUND)


def _not_binary(numbers: np.ndarray) -> np.ndarray:
    """Present cells that are neither 0 nor 1."""
    return ~np.isnan(numbers) & (numbers != 0.0) & (numbers != 1.0)


class Column:
    """One column's cells for some rows; numbers and text are worked out on first use."""

    def __init__(self, name: str, cells: Sequence[object], row_ids: np.ndarray) -> None:
        self.name = name
        self._cells = cells
        self._row_ids = row_ids
        self._numbers: np.ndarray | None = None
        self._bad: np.ndarray | None = None
        self._text: np.ndarray | None = None

    def _fast_numbers(self) -> np.ndarray | None:
        """Every cell as float64 in one pass when all are plain numbers or missing, else None."""
        if isinstance(self._cells, CellBlock):
            return self._cells.numbers()
        return _all_numbers(self._cells)

    def _parse(self) -> tuple[np.ndarray, np.ndarray]:
        if self._numbers is None or self._bad is None:
            fast = self._fast_numbers()
            if fast is not None:
                self._numbers, self._bad = fast, np.zeros(len(fast), dtype=bool)
                return self._numbers, self._bad
            numbers = np.empty(len(self._cells), dtype=np.float64)
            bad = np.zeros(len(self._cells), dtype=bool)
            for i, cell in enumerate(self._cells):
                value = _number(cell)
                if value is None:
                    bad[i] = True
                    numbers[i] = math.nan
                else:
                    numbers[i] = value
            self._numbers, self._bad = numbers, bad
        return self._numbers, self._bad

    def take(self, rows: np.ndarray, row_ids: np.ndarray) -> Column:
        """This column at the given positions (``row_ids`` are theirs); keeps what was parsed."""
        out = Column(self.name, _take(self._cells, rows), row_ids)
        if self._numbers is not None and self._bad is not None:
            out._numbers, out._bad = self._numbers[rows], self._bad[rows]
        if self._text is not None:
            out._text = self._text[rows]
            out._text.flags.writeable = False
        return out

    @property
    def missing(self) -> np.ndarray:
        numbers, bad = self._parse()
        return np.isnan(numbers) & ~bad

    @property
    def is_numeric(self) -> bool:
        """True if some cell holds a number and every other cell is a number or missing."""
        numbers, bad = self._parse()
        return not bad.any() and not np.isnan(numbers).all()

    def numbers(self, hint: str = "") -> np.ndarray:
        """The cells as float64 with NaN where missing; raises at the first non-number."""
        numbers, bad = self._parse()
        row = self._first(bad)
        if row is not None:
            raise not_a_number(self.name, row, hint)
        return numbers

    def _first(self, hits: np.ndarray) -> int | None:
        """The data row of the first cell where ``hits`` is set, or None."""
        return int(self._row_ids[int(np.argmax(hits))]) if hits.any() else None

    def facts(self, *, levels: bool = False) -> ColumnFacts:
        """This column's validity checks over its rows (all of them, when given all).

        ``levels``: also each distinct present text and its first row, for a table.
        """
        seen: dict[str, int] | None = None
        if levels:
            distinct, first = np.unique(self.text, return_index=True)
            seen = {
                str(value): int(self._row_ids[i])
                for value, i in zip(distinct.tolist(), first.tolist(), strict=True)
                if value != ""
            }
        text_at = self._first_text()
        if text_at is not None:  # a text column: no number check applies to it
            return ColumnFacts(not_number=text_at, levels=seen)
        numbers, _ = self._parse()
        low = np.fmin.reduce(numbers, initial=np.inf)  # fmin and fmax skip NaN (missing)
        high = np.fmax.reduce(numbers, initial=-np.inf)
        outside = None
        if not (low > -VALUE_BOUND and high < VALUE_BOUND):  # some present cell is outside
            outside = self._first_in_blocks(numbers, _outside)
        other = self._first_in_blocks(numbers, _not_binary)
        return ColumnFacts(out_of_range=outside, not_binary=other, levels=seen)

    def _first_in_blocks(
        self, numbers: np.ndarray, test: Callable[[np.ndarray], np.ndarray]
    ) -> int | None:
        """The data row of the first cell where ``test`` holds, testing a block of rows at a
        time: a hit near the top (e.g. a column's first value that is not 0 or 1) costs one."""
        for start in range(0, len(numbers), _BLOCK):
            hits = test(numbers[start : start + _BLOCK])
            if hits.any():
                return int(self._row_ids[start + int(np.argmax(hits))])
        return None

    def _first_text(self) -> int | None:
        """The data row of the first cell that is not a number (nor missing), or None.

        Stops at that cell, so a text column (e.g. patient identifiers) costs
        one cell, not a parse of every row.
        """
        if self._bad is not None:
            return self._first(self._bad)
        fast = self._fast_numbers()
        if fast is not None:
            self._numbers, self._bad = fast, np.zeros(len(fast), dtype=bool)
            return None
        for i, cell in enumerate(self._cells):
            if _number(cell) is None:
                return int(self._row_ids[i])
        return None

    @property
    def text(self) -> np.ndarray:
        """The cells as stripped strings, "" where missing."""
        if self._text is None and isinstance(self._cells, CellBlock):
            self._text = self._cells.texts()
        if self._text is None:
            out: list[str] = []
            for i, cell in enumerate(self._cells):
                if cell is None:
                    out.append("")
                elif isinstance(cell, str):
                    stripped = cell.strip()
                    out.append("" if stripped in MISSING_TOKENS else stripped)
                elif isinstance(cell, int | float) and not isinstance(cell, bool):
                    out.append(str(cell))
                else:
                    raise DataSourceError(
                        f"column {self.name!r} holds binary data at data row {self._row_ids[i]}"
                    )
            self._text = np.array(out, dtype=str)
            self._text.flags.writeable = False
        return self._text


def side_by_side(columns: Sequence[np.ndarray | None], rows: int) -> np.ndarray:
    """The columns as one (rows x columns) float64 array in column-major order, NaN for None.

    Columns a source parsed together (consecutive rows of one C-ordered block,
    as the CSV reader keeps them) are that block's transpose, a view: at 10^6
    rows x 30 columns this saves a copy of 240 MB. Any other columns are copied.
    """
    block = _block_of(columns)
    if block is not None:
        return block.T
    values = np.empty((rows, len(columns)), dtype=np.float64, order="F")
    for j, column in enumerate(columns):
        values[:, j] = math.nan if column is None else column
    return values


def _block_of(columns: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """The rows of one 2-D C-ordered float64 array that are exactly ``columns``, or None."""
    if not columns or columns[0] is None:
        return None
    base = columns[0].base
    if not isinstance(base, np.ndarray) or base.ndim != 2 or not base.flags.c_contiguous:
        return None
    if base.dtype != np.float64 or base.shape[0] < len(columns):
        return None
    origin = base.__array_interface__["data"][0]
    offset = columns[0].__array_interface__["data"][0] - origin
    pitch = base.strides[0]
    first = offset // pitch if pitch else 0
    for k, column in enumerate(columns):
        if (
            column is None
            or column.base is not base
            or column.shape != base.shape[1:]
            or column.strides != base.strides[1:]
            or column.__array_interface__["data"][0] != origin + (first + k) * pitch
        ):
            return None
    if offset != first * pitch or first + len(columns) > base.shape[0]:
        return None
    return base[first : first + len(columns)]


def not_a_number(column: str, row: int, hint: str = "") -> DataSourceError:
    """The error for a cell that is not a finite number: column and data row, never the value."""
    return DataSourceError(
        f"column {column!r} has a value that is not a finite number at data row {row}{hint}"
    )


class Selection:
    """The rows a filter kept, for the columns a job asked for.

    ``values`` is a read-only float64 array (rows x columns), NaN where a cell
    is missing and, for a selection made with ``numeric=False``, in the
    columns that hold text; read those with :meth:`categorical`. ``row_ids``
    are the source's 1-based data-row numbers, for error messages; ``facts``
    each column's validity over all the source's rows (see
    :class:`~protocols.local_data.ColumnFacts`), for refusals that do not
    depend on the filter. The repr
    shows shapes only, never values.
    """

    __slots__ = ("_cells", "columns", "facts", "row_ids", "values")

    def __init__(
        self,
        columns: tuple[str, ...],
        values: np.ndarray,
        row_ids: np.ndarray,
        cells: dict[str, Column],
        facts: dict[str, ColumnFacts] | None = None,
    ) -> None:
        values.flags.writeable = False
        row_ids.flags.writeable = False
        self.columns = columns
        self.values = values
        self.row_ids = row_ids
        self._cells = cells
        self.facts: dict[str, ColumnFacts] = dict(facts or {})
        """Each selected column checked over every row of the source, before the filter."""

    def __len__(self) -> int:
        return len(self.row_ids)

    def reused(self) -> Selection:
        """This selection for another job: the same read-only arrays and columns (their
        worked-out numbers and text included), with a ``facts`` mapping of its own."""
        return Selection(self.columns, self.values, self.row_ids, self._cells, self.facts)

    def __repr__(self) -> str:
        return f"<Selection of {len(self.row_ids)} rows x {len(self.columns)} columns>"

    def _column(self, name: str) -> Column:
        if name not in self._cells:
            raise DataSourceError(
                f"column {name!r} is not in this selection; selected: {', '.join(self.columns)}"
            )
        return self._cells[name]

    def column(self, name: str) -> np.ndarray:
        """One selected column of ``values``."""
        self._column(name)
        return self.values[:, self.columns.index(name)]

    def categorical(self, name: str) -> np.ndarray:
        """One selected column as stripped strings ("" where missing), e.g. a diagnosis."""
        return self._column(name).text


__all__ = [
    "MISSING_TOKENS",
    "CellBlock",
    "Column",
    "Selection",
    "not_a_number",
    "side_by_side",
]
