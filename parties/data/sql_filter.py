"""A parsed filter as a PostgreSQL condition, and the cell expressions it compares.

The condition is built from the filter's syntax tree with ``psycopg.sql``:
column names are quoted identifiers checked against the schema, every
literal is a bound parameter, and no text of the job is pasted into SQL.
It keeps the filter language's meaning (:mod:`parties.data.filters`):

- a number compares with a numeric column (``smallint`` to ``double
  precision``, ``numeric``) as float64; a string with a text column
  (``text``, ``varchar``, ``char``) by code point (``COLLATE "C"`` on UTF-8);
- a text cell is stripped of the whitespace Python's ``str.strip`` removes,
  and is missing when NULL or empty, ``NA`` or ``NaN`` after stripping;
- logic is SQL's three-valued logic, which is the filter language's: a
  comparison on a missing cell is unknown, and only true rows are kept.

A filter that compares a column of another type (or a number with a text
column) has no translation here: :func:`condition` returns None and the
source reads the rows instead, where the filter language decides.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg import sql

from parties.data.filters import Filter, _And, _Compare, _Missing, _Node, _Not, _Or

NUMERIC = "numeric"
TEXT = "text"
OTHER = "other"

_KINDS = {
    "smallint": NUMERIC,
    "integer": NUMERIC,
    "bigint": NUMERIC,
    "real": NUMERIC,
    "double precision": NUMERIC,
    "numeric": NUMERIC,
    "text": TEXT,
    "character varying": TEXT,
    "character": TEXT,
}
INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})

WHITESPACE = "".join(chr(i) for i in range(0x110000) if chr(i).isspace())
"""The characters ``str.strip()`` removes, bound as btrim's second argument."""

NUMBER_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
"""The filter language's NUMBER, as a PostgreSQL regular expression."""

NUMBER_PARTS = r"^[+-]?([0-9]*)(\.([0-9]*))?([eE]([+-]?)([0-9]+))?$"
"""A NUMBER's integer digits (1), fraction digits (3), exponent sign (5) and digits (6)."""

MAY_OVERFLOW = r"^[+-]?0*[1-9][0-9]{199}|[eE]\+?0*[1-9][0-9]{2}"
"""A NUMBER that may be too large for a float64: 200 or more integer digits, or an
exponent of 100 or more. Any other is below 10^299, so finite."""

OVERFLOW_DIGITS = str(2**1024 - 2**970)
"""The smallest integer that parses to an infinite float64 (it rounds to 2^1024), 309 digits.

A decimal parses to an infinity (float() and strtod round correctly) exactly
when its magnitude is at least this."""

UNDERFLOW_DIGITS = "0." + str(5**1075).zfill(1075)
"""2^-1075, exactly: half the smallest float64. A decimal of at most this
magnitude parses to a zero; PostgreSQL's float8 input refuses it instead."""


class Binder:
    """Collects a query's bound parameters; each value becomes a named placeholder.

    The whitespace set, the number patterns and the float64 limits are bound
    once (``ws``, ``num``, ``parts``, ``big``; ``fmax`` as text, ``huge`` and
    ``tiny`` as numeric: a placeholder has one type in a query); every
    literal of a job gets a placeholder of its own.
    """

    def __init__(self) -> None:
        self.params: dict[str, object] = {
            "ws": WHITESPACE,
            "num": NUMBER_PATTERN,
            "parts": NUMBER_PARTS,
            "big": MAY_OVERFLOW,
            "fmax": OVERFLOW_DIGITS,
            "huge": OVERFLOW_DIGITS,
            "tiny": UNDERFLOW_DIGITS,
        }

    def __call__(self, value: object) -> sql.Placeholder:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return sql.Placeholder(name)


def quoted(*names: str) -> sql.Composable:
    """A quoted identifier (``schema.name`` for two) that is safe in a query with parameters.

    ``psycopg.sql.Identifier`` doubles quotes but leaves ``%``, which psycopg
    then reads as a placeholder once parameters are bound (a column may be
    called ``rate%``); doubled here, it reaches the server as a single ``%``.
    """
    text = ".".join(sql.Identifier(n).as_string(None) for n in names)
    return sql.SQL(text.replace("%", "%%"))


def kind_of(data_type: str) -> str:
    """NUMERIC, TEXT or OTHER for an ``information_schema`` data type."""
    return _KINDS.get(data_type, OTHER)


def number(name: str) -> sql.Composable:
    """A numeric column's cell as float8 (NULL where missing)."""
    return sql.SQL("{}::float8").format(quoted(name))


def text(name: str) -> sql.Composable:
    """A text column's cell stripped, NULL where missing (NULL, empty, NA, NaN)."""
    return sql.SQL("NULLIF(NULLIF(NULLIF(btrim({}::text, %(ws)s), ''), 'NA'), 'NaN')").format(
        quoted(name)
    )


def exact_as_float(name: str) -> sql.Composable:
    """A ``numeric`` column's cell as float8, as ``float()`` reads its decimal text.

    A plain cast fails on a value beyond float64 (|x| >= 2^1024 - 2^970) and
    on one so small it rounds to zero, ending the query without naming the
    cell; here the first becomes an infinity (refused by column and row, as
    a CSV cell of it is) and the second a zero of its sign, as in a CSV.
    """
    cell = quoted(name)
    return sql.SQL(
        "(CASE WHEN {c} IS NULL OR {c} = 'NaN'::numeric THEN {c}::float8"
        " WHEN abs({c}) >= %(huge)s::numeric THEN"
        " (CASE WHEN {c} > 0 THEN 'Infinity' ELSE '-Infinity' END)::float8"
        " WHEN abs({c}) <= %(tiny)s::numeric THEN"
        " (CASE WHEN {c} < 0 THEN '-0' ELSE '0' END)::float8"
        " ELSE {c}::float8 END)"
    ).format(c=cell)


def not_finite(name: str) -> sql.Composable:
    """True where a numeric cell holds NaN or an infinity (NaN sorts above all in PostgreSQL)."""
    cell = number(name)
    return sql.SQL(
        "({c} IS NOT NULL AND NOT ({c} > '-Infinity'::float8 AND {c} < 'Infinity'::float8))"
    ).format(c=cell)


def looks_numeric(name: str) -> sql.Composable:
    """True where a text cell is missing or a number as the row path reads one.

    That is the filter's NUMBER whose value is a finite float64: ``1e999``
    or 400 nines are text there (``float`` gives an infinity), so here too.
    Only a cell that may overflow (:data:`MAY_OVERFLOW`) has its magnitude
    worked out, from its digits (:func:`_finite_number`).
    """
    return sql.SQL(
        "(CASE WHEN {t} IS NULL THEN TRUE WHEN {t} !~ %(num)s THEN FALSE"
        " WHEN {t} !~ %(big)s THEN TRUE ELSE {finite} END)"
    ).format(t=text(name), finite=_finite_number(text(name)))


def _finite_number(cell: sql.Composable) -> sql.Composable:
    """True where a NUMBER's magnitude is below :data:`OVERFLOW_DIGITS` (finite as float64).

    With s the significant digits (leading zeros dropped) and k the power
    of ten with the value = 0.s x 10^k, it is finite when k < 309, or
    k = 309 and s, padded with zeros, is below the limit's digits. An
    exponent of more than 12 digits decides by its sign alone (the digits of
    a text cell are far fewer than 10^12).
    """
    return sql.SQL(
        "(SELECT k < 309 OR (k = 309 AND rpad(s, w, '0') COLLATE \"C\""
        " < rpad(%(fmax)s::text, w, '0') COLLATE \"C\")"
        " FROM (SELECT s, greatest(length(s), length(%(fmax)s::text)) AS w,"
        " CASE WHEN s = '' THEN 0"
        " WHEN length(e) > 12 THEN (CASE WHEN neg THEN -1 ELSE 1 END) * 1000000000000000"
        " ELSE length(i) - (length(i) + length(f) - length(s))"
        " + (CASE WHEN neg THEN -1 ELSE 1 END) * COALESCE(NULLIF(e, '')::bigint, 0) END AS k"
        " FROM (SELECT m[1] AS i, COALESCE(m[3], '') AS f,"
        " ltrim(m[1] || COALESCE(m[3], ''), '0') AS s,"
        " COALESCE(m[5] = '-', FALSE) AS neg, ltrim(COALESCE(m[6], ''), '0') AS e"
        " FROM (SELECT regexp_match({c}, %(parts)s) AS m) AS a) AS b) AS c)"
    ).format(c=cell)


_OPS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def condition(parsed: Filter, kinds: Mapping[str, str], bind: Binder) -> sql.Composable | None:
    """The filter as a SQL condition, or None where a column's type has no translation."""
    return _node(parsed.root, kinds, bind)


def _node(node: _Node, kinds: Mapping[str, str], bind: Binder) -> sql.Composable | None:
    if isinstance(node, _Missing):
        kind = kinds.get(node.column, OTHER)
        if kind == OTHER:
            return None
        cell = number(node.column) if kind == NUMERIC else text(node.column)
        test = "IS NOT NULL" if node.negated else "IS NULL"
        return sql.SQL("({} " + test + ")").format(cell)
    if isinstance(node, _Compare):
        kind = kinds.get(node.column, OTHER)
        op = sql.SQL(_OPS[node.op])
        if isinstance(node.value, str):
            if kind != TEXT:
                return None
            return sql.SQL('({} COLLATE "C" {} {}::text)').format(
                text(node.column), op, bind(node.value)
            )
        if kind != NUMERIC:
            return None
        return sql.SQL("({} {} {}::float8)").format(
            number(node.column), op, bind(float(node.value))
        )
    if isinstance(node, _Not):
        inner = _node(node.operand, kinds, bind)
        return None if inner is None else sql.SQL("(NOT {})").format(inner)
    parts = [_node(child, kinds, bind) for child in node.operands]
    if any(p is None for p in parts):
        return None
    joiner = sql.SQL(" AND " if isinstance(node, _And) else " OR ")
    assert isinstance(node, _And | _Or)
    return sql.SQL("({})").format(joiner.join(p for p in parts if p is not None))


def compared(parsed: Filter) -> list[tuple[str, bool]]:
    """The columns the filter compares with a literal, once each: (column, with a string).

    The filter language reads every row of these columns: one compared with a
    number must hold only finite numbers (NULL aside), one compared with a
    string must not hold only numbers.
    """
    return list(dict.fromkeys(_compared(parsed.root)))


def _compared(node: _Node) -> list[tuple[str, bool]]:
    if isinstance(node, _Compare):
        return [(node.column, isinstance(node.value, str))]
    if isinstance(node, _Missing):
        return []
    if isinstance(node, _Not):
        return _compared(node.operand)
    return [pair for child in node.operands for pair in _compared(child)]


__all__ = [
    "INTEGER_TYPES",
    "NUMERIC",
    "OTHER",
    "TEXT",
    "Binder",
    "compared",
    "condition",
    "exact_as_float",
    "kind_of",
    "looks_numeric",
    "not_finite",
    "number",
    "quoted",
    "text",
]
