"""The filter language of a job's ``where``, tokenized and parsed by recursive descent.

Never ``eval``::

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

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from parties.data.errors import DataSourceError, FilterSyntaxError

MAX_FILTER_LENGTH = 4096
MAX_FILTER_DEPTH = 64

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
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


class ColumnView(Protocol):
    """What filter evaluation reads of a column (see ``parties.data.selection.Column``)."""

    name: str

    @property
    def missing(self) -> np.ndarray: ...

    @property
    def is_numeric(self) -> bool: ...

    @property
    def text(self) -> np.ndarray: ...

    def numbers(self, hint: str = "") -> np.ndarray: ...


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
    match = NUMBER.match(text, start)
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


def evaluate(node: _Node, column: Callable[[str], ColumnView]) -> tuple[np.ndarray, np.ndarray]:
    """Three-valued logic: (rows where ``node`` is true, rows where it is false)."""
    if isinstance(node, _Missing):
        missing = column(node.column).missing
        return (~missing, missing) if node.negated else (missing, ~missing)
    if isinstance(node, _Not):
        true, false = evaluate(node.operand, column)
        return false, true
    if isinstance(node, _And | _Or):
        true, false = evaluate(node.operands[0], column)
        for child in node.operands[1:]:
            t, f = evaluate(child, column)
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


__all__ = [
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "NUMBER",
    "ColumnView",
    "Filter",
    "evaluate",
    "parse_filter",
]
