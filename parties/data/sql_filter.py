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


class Binder:
    """Collects a query's bound parameters; each value becomes a named placeholder.

    The whitespace set and the number pattern are bound once as ``ws`` and
    ``num``; every literal of a job gets a placeholder of its own.
    """

    def __init__(self) -> None:
        self.params: dict[str, object] = {"ws": WHITESPACE, "num": NUMBER_PATTERN}

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


def not_finite(name: str) -> sql.Composable:
    """True where a numeric cell holds NaN or an infinity (NaN sorts above all in PostgreSQL)."""
    cell = number(name)
    return sql.SQL(
        "({c} IS NOT NULL AND NOT ({c} > '-Infinity'::float8 AND {c} < 'Infinity'::float8))"
    ).format(c=cell)


def looks_numeric(name: str) -> sql.Composable:
    """True where a text cell is missing or a plain decimal number (the filter's NUMBER)."""
    return sql.SQL("({t} IS NULL OR {t} ~ %(num)s)").format(t=text(name))


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
    "kind_of",
    "looks_numeric",
    "not_finite",
    "number",
    "quoted",
    "text",
]
