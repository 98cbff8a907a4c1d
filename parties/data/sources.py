"""A hospital's local records for a job: a CSV file or a SQLite table behind one interface.

A party reads only the columns a job names, for the rows the job's filter
keeps. Both sources load the needed columns and then filter them in Python
with numpy, so the same records give the same :class:`Selection` whichever
way they are stored.

Filters are a small expression language, tokenized and parsed here by a
recursive-descent parser (never ``eval``)::

    filter  := or_expr END
    or_expr := and_expr ("or" and_expr)*
    and_expr:= not_expr ("and" not_expr)*
    not_expr:= "not" not_expr | "(" or_expr ")" | test
    test    := NAME "is" ["not"] "missing"
             | NAME OP literal | literal OP NAME
    OP      := "==" | "!=" | "<" | "<=" | ">" | ">="
    literal := NUMBER | 'single-quoted' | "double-quoted"

Inside a string a backslash escapes a backslash or either quote. ``and``
binds tighter than ``or``; keywords are lower case; NAME is a column
whose name is an identifier (``[A-Za-z_][A-Za-z0-9_]*``). A column compared
with a number must hold numbers; a column compared with a string must hold
text (comparisons are by code point). Logic is three-valued as in SQL: a
comparison on a missing cell is unknown, ``not`` keeps it unknown, and a row is
kept only when the whole filter is true. So ``x != 1`` and ``not x == 1`` both
drop rows where ``x`` is missing; ask for them with ``x is missing``.

Missing cells: NULL, and text that is empty or exactly ``NA`` or ``NaN`` after
stripping spaces. They are NaN in numeric columns and ``""`` as text.

Values are patient data: no message raised here carries one, and nothing is
logged. Errors name the column and the data row (1-based, header excluded; for
SQLite the position in rowid or primary-key order).
"""

from __future__ import annotations

import csv
import math
import operator
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parties.config import DataConfig
from smpc.errors import SMPCError

MISSING_TOKENS = frozenset({"", "NA", "NaN"})
MAX_FILTER_LENGTH = 4096
MAX_FILTER_DEPTH = 64

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_KEYWORDS = frozenset({"and", "or", "not", "is", "missing"})
_OP_CHARS = frozenset("=!<>&|")
_OPS: dict[str, Callable[..., np.ndarray]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_OP_HINTS = {
    "=": "'=='",
    "=>": "'>='",
    "=<": "'<='",
    "<>": "'!='",
    "!": "'not'",
    "&": "'and'",
    "&&": "'and'",
    "|": "'or'",
    "||": "'or'",
}


class DataSourceError(SMPCError, ValueError):
    """Local data, or a job's request for it, is unusable; names column and row, never a value."""


class FilterSyntaxError(DataSourceError):
    """A filter string is malformed; ``position`` is the 0-based offset where parsing failed."""

    def __init__(self, reason: str, text: str, position: int) -> None:
        self.position = position
        after = text[max(0, position - 24) : position].lstrip()
        where = f" (after {after!r})" if after else ""
        super().__init__(f"malformed filter at character {position + 1}{where}: {reason}")


# -- filters ------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "number", "string", "op", "(", ")", a keyword, or "end"
    text: str
    pos: int
    value: float | str = ""  # the literal's value; unused for other kinds


@dataclass(frozen=True)
class _Compare:
    column: str
    op: str
    value: float | str
    pos: int


@dataclass(frozen=True)
class _Missing:
    column: str
    negated: bool


@dataclass(frozen=True)
class _Not:
    operand: _Node


@dataclass(frozen=True)
class _And:
    operands: tuple[_Node, ...]


@dataclass(frozen=True)
class _Or:
    operands: tuple[_Node, ...]


_Node = _Compare | _Missing | _Not | _And | _Or


@dataclass(frozen=True)
class Filter:
    """A parsed filter: its text and the columns it reads (in first-use order)."""

    text: str
    columns: tuple[str, ...]
    root: _Node = field(repr=False)

    @property
    def text_columns(self) -> frozenset[str]:
        """Columns the filter compares with a quoted string: they hold text, not numbers."""
        return frozenset(_text_columns(self.root))

    @property
    def present_columns(self) -> frozenset[str]:
        """Columns in which every row the filter keeps has a value (none is missing there)."""
        return frozenset(_present(self.root, True))


def _text_columns(node: _Node) -> set[str]:
    if isinstance(node, _Compare):
        return {node.column} if isinstance(node.value, str) else set()
    if isinstance(node, _Missing):
        return set()
    if isinstance(node, _Not):
        return _text_columns(node.operand)
    return set().union(*(_text_columns(child) for child in node.operands))


def _present(node: _Node, outcome: bool) -> set[str]:
    """Columns that cannot be missing in a row where ``node`` is ``outcome`` (not unknown)."""
    if isinstance(node, _Compare):
        return {node.column}  # true or false only on a known value
    if isinstance(node, _Missing):
        return {node.column} if outcome == node.negated else set()
    if isinstance(node, _Not):
        return _present(node.operand, not outcome)
    parts = [_present(child, outcome) for child in node.operands]
    every = isinstance(node, _And) == outcome  # all operands have this outcome
    return set().union(*parts) if every else set.intersection(*parts)


def parse_filter(text: str) -> Filter:
    """Parse ``text`` in the filter language (see the module docstring); no data is read."""
    if not isinstance(text, str):
        raise DataSourceError(f"a filter is a string, not {type(text).__name__}")
    if len(text) > MAX_FILTER_LENGTH:
        raise DataSourceError(
            f"the filter is {len(text)} characters long; at most {MAX_FILTER_LENGTH} are allowed"
        )
    root = _Parser(text).parse()
    names: dict[str, None] = {}
    _collect_columns(root, names)
    return Filter(text, tuple(names), root)


def _collect_columns(node: _Node, out: dict[str, None]) -> None:
    if isinstance(node, _Compare | _Missing):
        out.setdefault(node.column)
    elif isinstance(node, _Not):
        _collect_columns(node.operand, out)
    else:
        for child in node.operands:
            _collect_columns(child, out)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in "()":
            tokens.append(_Token(c, c, i))
            i += 1
        elif c in "'\"":
            i = _string_token(text, i, tokens)
        elif c.isascii() and (c.isdigit() or c in ".+-"):
            i = _number_token(text, i, tokens)
        elif c.isascii() and (c.isalpha() or c == "_"):
            match = _NAME.match(text, i)
            assert match is not None  # a letter or "_" always starts a name
            word = match.group()
            tokens.append(_Token(word if word in _KEYWORDS else "name", word, i))
            i = match.end()
        elif c in _OP_CHARS:
            j = i
            while j < n and text[j] in _OP_CHARS:
                j += 1
            run = text[i:j]
            if run not in _OPS:
                hint = f"; use {_OP_HINTS[run]}" if run in _OP_HINTS else ""
                raise FilterSyntaxError(f"unknown operator {run!r}{hint}", text, i)
            tokens.append(_Token("op", run, i))
            i = j
        else:
            raise FilterSyntaxError(f"unexpected character {c!r}", text, i)
    tokens.append(_Token("end", "", n))
    return tokens


def _string_token(text: str, start: int, tokens: list[_Token]) -> int:
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            value = "".join(chars)
            tokens.append(_Token("string", text[start : i + 1], start, value))
            return i + 1
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "\\'\"":
                raise FilterSyntaxError("a backslash may only escape \\, ' or \"", text, i)
            chars.append(text[i + 1])
            i += 2
        else:
            chars.append(c)
            i += 1
    raise FilterSyntaxError("unterminated string (no closing quote)", text, start)


def _number_token(text: str, start: int, tokens: list[_Token]) -> int:
    match = _NUMBER.match(text, start)
    if match is None:
        raise FilterSyntaxError(f"unexpected character {text[start]!r}", text, start)
    end = match.end()
    if end < len(text) and (text[end].isalnum() or text[end] in "_."):
        raise FilterSyntaxError("malformed number", text, start)
    value = float(match.group())
    if not math.isfinite(value):
        raise FilterSyntaxError("number out of range", text, start)
    tokens.append(_Token("number", match.group(), start, value))
    return end


class _Parser:
    """Recursive descent over the token list; nesting is bounded by MAX_FILTER_DEPTH."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def parse(self) -> _Node:
        node = self._or()
        if self._peek().kind != "end":
            raise self._error("expected 'and', 'or' or the end of the filter")
        return node

    def _peek(self) -> _Token:
        return self.tokens[self.i]

    def _next(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def _error(self, reason: str) -> FilterSyntaxError:
        token = self._peek()
        return FilterSyntaxError(f"{reason}, found {_describe(token)}", self.text, token.pos)

    def _or(self) -> _Node:
        operands = [self._and()]
        while self._peek().kind == "or":
            self._next()
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else _Or(tuple(operands))

    def _and(self) -> _Node:
        operands = [self._not()]
        while self._peek().kind == "and":
            self._next()
            operands.append(self._not())
        return operands[0] if len(operands) == 1 else _And(tuple(operands))

    def _not(self) -> _Node:
        token = self._peek()
        if token.kind not in ("not", "("):
            return self._test()
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            raise self._error(f"nesting deeper than {MAX_FILTER_DEPTH} levels")
        self._next()
        if token.kind == "not":
            node: _Node = _Not(self._not())
        else:
            node = self._or()
            if self._peek().kind != ")":
                raise self._error(f"expected ')' to close the '(' at character {token.pos + 1}")
            self._next()
        self.depth -= 1
        return node

    def _test(self) -> _Node:
        token = self._peek()
        if token.kind == "name":
            self._next()
            after = self._peek()
            if after.kind == "is":
                self._next()
                negated = self._peek().kind == "not"
                if negated:
                    self._next()
                if self._peek().kind != "missing":
                    raise self._error("expected 'missing' after 'is' or 'is not'")
                self._next()
                return _Missing(token.text, negated)
            if after.kind != "op":
                raise self._error(f"expected a comparison or 'is' after column {token.text!r}")
            self._next()
            literal = self._literal()
            return _Compare(token.text, after.text, literal.value, literal.pos)
        if token.kind in ("number", "string"):
            self._next()
            if self._peek().kind != "op":
                raise self._error("expected a comparison operator after a literal")
            op = self._next().text
            if self._peek().kind != "name":
                raise self._error("expected a column name (a literal is compared with a column)")
            name = self._next().text
            return _Compare(name, _FLIPPED[op], token.value, token.pos)
        raise self._error("expected a column name, a literal, 'not' or '('")

    def _literal(self) -> _Token:
        token = self._peek()
        if token.kind in ("number", "string"):
            return self._next()
        if token.kind == "name":
            raise self._error(
                "expected a number or a quoted string (columns compare with literals)"
            )
        raise self._error("expected a number or a quoted string")


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the filter"
    if token.kind == "name":
        return f"column {token.text!r}"
    if token.kind == "number":
        return "a number"
    if token.kind == "string":
        return "a string"
    return repr(token.text)


def _evaluate(node: _Node, column: Callable[[str], _Column]) -> tuple[np.ndarray, np.ndarray]:
    """Three-valued logic: (rows where ``node`` is true, rows where it is false)."""
    if isinstance(node, _Missing):
        missing = column(node.column).missing
        return (~missing, missing) if node.negated else (missing, ~missing)
    if isinstance(node, _Not):
        true, false = _evaluate(node.operand, column)
        return false, true
    if isinstance(node, _And | _Or):
        true, false = _evaluate(node.operands[0], column)
        for child in node.operands[1:]:
            t, f = _evaluate(child, column)
            if isinstance(node, _And):
                true, false = true & t, false | f
            else:
                true, false = true | t, false & f
        return true, false
    col = column(node.column)
    if isinstance(node.value, str):
        if col.is_numeric:
            raise DataSourceError(
                f"the filter compares column {node.column!r}, which holds numbers, with the"
                f" string literal at character {node.pos + 1}; compare it with a number"
            )
        known = ~col.missing
        result = _OPS[node.op](col.text, node.value)
    else:
        numbers = col.numbers("; it holds text, so compare it with a quoted string")
        known = ~np.isnan(numbers)
        with np.errstate(invalid="ignore"):
            result = _OPS[node.op](numbers, node.value)
    return known & result, known & ~result


# -- cells --------------------------------------------------------------------


def _number(cell: object) -> float | None:
    """A cell as a float (NaN if missing), or None if it is not a finite number."""
    if cell is None:
        return math.nan
    if isinstance(cell, str):
        text = cell.strip()
        if text in MISSING_TOKENS:
            return math.nan
        if _NUMBER.fullmatch(text) is None:
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


class _Column:
    """One column's cells for some rows; numbers and text are worked out on first use."""

    def __init__(self, name: str, cells: Sequence[object], row_ids: np.ndarray) -> None:
        self.name = name
        self._cells = cells
        self._row_ids = row_ids
        self._numbers: np.ndarray | None = None
        self._bad: np.ndarray | None = None
        self._text: np.ndarray | None = None

    def _parse(self) -> tuple[np.ndarray, np.ndarray]:
        if self._numbers is None or self._bad is None:
            fast = _all_numbers(self._cells)
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
        if bad.any():
            row = int(self._row_ids[int(np.argmax(bad))])
            raise DataSourceError(
                f"column {self.name!r} has a value that is not a finite number"
                f" at data row {row}{hint}"
            )
        return numbers

    @property
    def text(self) -> np.ndarray:
        """The cells as stripped strings, "" where missing."""
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


# -- selections and sources ---------------------------------------------------


class Selection:
    """The rows a filter kept, for the columns a job asked for.

    ``values`` is a read-only float64 array (rows x columns), NaN where a cell
    is missing and, for a selection made with ``numeric=False``, in the
    columns that hold text; read those with :meth:`categorical`. ``row_ids``
    are the source's 1-based data-row numbers, for error messages. The repr
    shows shapes only, never values.
    """

    __slots__ = ("_cells", "columns", "row_ids", "values")

    def __init__(
        self,
        columns: tuple[str, ...],
        values: np.ndarray,
        row_ids: np.ndarray,
        cells: dict[str, _Column],
    ) -> None:
        values.flags.writeable = False
        row_ids.flags.writeable = False
        self.columns = columns
        self.values = values
        self.row_ids = row_ids
        self._cells = cells

    def __len__(self) -> int:
        return len(self.row_ids)

    def __repr__(self) -> str:
        return f"<Selection of {len(self.row_ids)} rows x {len(self.columns)} columns>"

    def _column(self, name: str) -> _Column:
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


class DataSource(ABC):
    """Read-only access to one member's records: column names, row count, selections."""

    @property
    @abstractmethod
    def columns(self) -> tuple[str, ...]:
        """Column names in the source's order."""

    @property
    @abstractmethod
    def row_count(self) -> int:
        """Number of data rows (the header is not a row)."""

    @abstractmethod
    def _load(self, names: Sequence[str]) -> tuple[dict[str, Sequence[object]], np.ndarray]:
        """The cells of each named column, and the 1-based row ids, in source order."""

    def check(
        self, columns: Sequence[str], where: str | None = None
    ) -> tuple[tuple[str, ...], Filter | None]:
        """Check a request against the header alone: names, known columns, the filter's syntax.

        Reads no row, so its errors say nothing of any patient and may go back
        to the analyst as they are. Returns the column names and the parsed filter.
        """
        if isinstance(columns, str) or not isinstance(columns, Sequence):
            raise DataSourceError("columns must be a list of column names")
        names = tuple(columns)
        for name in names:
            if not isinstance(name, str):
                raise DataSourceError(f"a column name is a string, not {type(name).__name__}")
        if len(set(names)) != len(names):
            raise DataSourceError("a column is selected twice")
        parsed = parse_filter(where) if where is not None else None
        known = self.columns
        for name in names:
            if name not in known:
                raise _unknown(name, known, "")
        if parsed is not None:
            for name in parsed.columns:
                if name not in known:
                    raise _unknown(name, known, " in the filter")
        return names, parsed

    def select(
        self, columns: Sequence[str], where: str | None = None, *, numeric: bool = True
    ) -> Selection:
        """The ``columns`` of the rows that pass ``where`` (all rows when None).

        With ``numeric=True`` every selected column must hold numbers (or
        missing cells) in the kept rows; otherwise a column that holds text
        is NaN in ``values`` and read with ``Selection.categorical``.
        """
        names, parsed = self.check(columns, where)
        needed = dict.fromkeys(names)
        if parsed is not None:
            needed.update(dict.fromkeys(parsed.columns))
        cells, row_ids = self._load(tuple(needed))

        if parsed is None:
            keep = np.arange(len(row_ids))
        else:
            loaded: dict[str, _Column] = {}

            def column(name: str) -> _Column:
                if name not in loaded:
                    loaded[name] = _Column(name, cells[name], row_ids)
                return loaded[name]

            keep = np.flatnonzero(_evaluate(parsed.root, column)[0])

        kept_ids = row_ids[keep].astype(np.int64)
        values = np.empty((len(keep), len(names)), dtype=np.float64)
        selected: dict[str, _Column] = {}
        kept_rows = keep.tolist()
        for j, name in enumerate(names):
            source = cells[name]
            col = _Column(name, [source[i] for i in kept_rows], kept_ids)
            if numeric:
                hint = "; select it with numeric=False and read it with Selection.categorical"
                values[:, j] = col.numbers(hint)
            elif col.is_numeric:
                values[:, j] = col.numbers()
            else:
                values[:, j] = math.nan
            selected[name] = col
        return Selection(names, values, kept_ids, selected)


def _unknown(name: str, known: Sequence[str], where: str) -> DataSourceError:
    listed = ", ".join(known) or "none"
    return DataSourceError(f"unknown column {name!r}{where}; known columns: {listed}")


class CsvSource(DataSource):
    """A UTF-8 CSV file with a header row, read once when opened (a snapshot).

    Blank lines are skipped and not counted as rows.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._header, self._cells, self._rows = _read_csv(self.path)

    @property
    def columns(self) -> tuple[str, ...]:
        return self._header

    @property
    def row_count(self) -> int:
        return self._rows

    def _load(self, names: Sequence[str]) -> tuple[dict[str, Sequence[object]], np.ndarray]:
        return {name: self._cells[name] for name in names}, np.arange(1, self._rows + 1)


def _read_csv(path: Path) -> tuple[tuple[str, ...], dict[str, list[str]], int]:
    rows: list[list[str]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, strict=True)
            first = next(reader, None)
            if not first:
                raise DataSourceError(f"{path}: the first line must be a header of column names")
            header = tuple(name.strip() for name in first)
            for i, name in enumerate(header):
                if not name:
                    raise DataSourceError(f"{path}: header column {i + 1} has no name")
            if len(set(header)) != len(header):
                repeated = sorted({h for h in header if header.count(h) > 1})
                raise DataSourceError(f"{path}: the header repeats {', '.join(repeated)}")
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


def _quote(name: str) -> str:
    """A SQL identifier; only ever applied to names checked against the schema."""
    return '"' + name.replace('"', '""') + '"'


def _decode(raw: bytes) -> str:
    # Invalid UTF-8 must not surface in sqlite3's error text, which quotes it.
    return raw.decode("utf-8", errors="replace")


class SqliteSource(DataSource):
    """One table of a SQLite database, opened read-only (``mode=ro``) for each read.

    Rows come in rowid order (primary-key order for WITHOUT ROWID tables), so
    data row k is the k-th row in that order.
    """

    def __init__(self, path: Path, table: str) -> None:
        if not isinstance(table, str) or _TABLE.fullmatch(table) is None:
            raise DataSourceError(
                f"table name {table!r} is not an identifier"
                " (letters, digits and '_', not starting with a digit, at most 128)"
            )
        self.path = Path(path)
        self.table = table
        if not self.path.exists():
            raise DataSourceError(f"no such data file: {self.path}")
        if not self.path.is_file():
            raise DataSourceError(f"data path is not a file: {self.path}")
        with self._connect() as conn:
            self._columns, _ = self._schema(conn)

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    @property
    def row_count(self) -> int:
        with self._connect() as conn:
            (count,) = conn.execute(f"SELECT COUNT(*) FROM {_quote(self.table)}").fetchone()
        return int(count)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True)
        except sqlite3.Error as exc:
            raise DataSourceError(f"cannot open {self.path} read-only ({exc})") from None
        conn.text_factory = _decode
        try:
            conn.execute("PRAGMA query_only = ON")
            yield conn
        except sqlite3.Error as exc:
            # Name the kind of failure only: sqlite3 messages may quote cell text.
            kind = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
            raise DataSourceError(
                f"cannot read table {self.table!r} from {self.path} ({kind})"
            ) from None
        finally:
            conn.close()

    def _schema(self, conn: sqlite3.Connection) -> tuple[tuple[str, ...], str | None]:
        """The table's columns and the ORDER BY clause that fixes its row order."""
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self.table,)
        ).fetchone()
        if found is None:
            tables = [
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite~_%' ESCAPE '~' ORDER BY name"
                )
            ]
            raise DataSourceError(
                f"no table {self.table!r} in {self.path}; tables: {', '.join(tables) or 'none'}"
            )
        info = conn.execute("SELECT name, pk FROM pragma_table_info(?)", (self.table,)).fetchall()
        names = tuple(name for name, _ in info)
        lowered = {name.lower() for name in names}
        for alias in ("rowid", "_rowid_", "oid"):
            if alias in lowered:
                continue  # a real column shadows the alias
            try:
                conn.execute(f"SELECT {alias} FROM {_quote(self.table)} LIMIT 0")
            except sqlite3.OperationalError:
                break  # WITHOUT ROWID: order by the primary key instead
            return names, alias
        keys = [name for name, pk in sorted(info, key=lambda row: row[1]) if pk > 0]
        return names, ", ".join(_quote(k) for k in keys) or None

    def _load(self, names: Sequence[str]) -> tuple[dict[str, Sequence[object]], np.ndarray]:
        with self._connect() as conn:
            current, order = self._schema(conn)
            for name in names:
                if name not in current:
                    raise _unknown(name, current, "")
            listed = ", ".join(_quote(name) for name in names) or "1"
            sql = f"SELECT {listed} FROM {_quote(self.table)}"
            if order is not None:
                sql += f" ORDER BY {order}"
            rows = conn.execute(sql).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        cells: dict[str, Sequence[object]] = {name: columns[j] for j, name in enumerate(names)}
        return cells, np.arange(1, len(rows) + 1)


def open_source(data: DataConfig) -> DataSource:
    """The data source a member's ``[data]`` config describes."""
    if data.kind == "none" or data.path is None:
        raise DataSourceError(
            "this member has no data (data kind 'none'); set kind and path under [data]"
        )
    if data.kind == "csv":
        return CsvSource(data.path)
    if data.kind == "sqlite":
        return SqliteSource(data.path, data.table or "")
    raise DataSourceError(f"unknown data kind {data.kind!r}")


__all__ = [
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "MISSING_TOKENS",
    "CsvSource",
    "DataSource",
    "DataSourceError",
    "Filter",
    "FilterSyntaxError",
    "Selection",
    "SqliteSource",
    "open_source",
    "parse_filter",
]
