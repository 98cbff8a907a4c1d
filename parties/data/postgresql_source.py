"""One table of a PostgreSQL database, read in read-only transactions with psycopg 3.

Rows come in primary-key order (physical order without one; a view's rows
in the order the server gives), so data row k is the k-th row in that order.
Every statement is composed with ``psycopg.sql``: identifiers are quoted,
values are bound parameters, and nothing from a job is pasted into SQL
text. The password comes from a file or an environment variable named in
the config, never from the DSN; neither is logged, and a connection error is
reported by its kind only (libpq messages may repeat the DSN's parameters).

Row-level jobs read rows through a server-side cursor, in batches of
:data:`BATCH_ROWS` straight into numpy. Statistics never read rows: the
source answers their local aggregates with SQL inside one read-only
snapshot (:mod:`parties.data.pushdown`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psycopg
from psycopg import conninfo, sql

from parties.data import sql_filter
from parties.data.base import DataSource, unknown_column
from parties.data.errors import DataSourceError
from parties.data.selection import CellBlock

if TYPE_CHECKING:
    from parties.data.pushdown import PostgresAggregates

_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
STATEMENT_TIMEOUT_MS = 60_000
CONNECT_TIMEOUT_S = 10
BATCH_ROWS = 50_000
"""Rows fetched per round trip of the server-side cursor."""


class PostgresSource(DataSource):
    """A table in the connection's default schema; each read is its own read-only transaction."""

    def __init__(
        self,
        dsn: str,
        table: str,
        *,
        password_file: Path | None = None,
        password_env: str | None = None,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    ) -> None:
        if not isinstance(table, str) or _TABLE.fullmatch(table) is None:
            raise DataSourceError(
                f"table name {table!r} is not an identifier"
                " (letters, digits and '_', not starting with a digit, at most 63)"
            )
        self.table = table
        self._dsn = dsn
        self._password = _password(password_file, password_env)
        self._timeout = int(statement_timeout_ms)
        with self._connect() as conn:
            self._columns, self._types, _ = self._schema(conn)

    def __repr__(self) -> str:
        return f"<PostgresSource table {self.table!r}>"  # never the DSN

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    @property
    def kinds(self) -> dict[str, str]:
        """Each column's kind for pushdown: numeric, text or other (see ``sql_filter``)."""
        return {
            name: sql_filter.kind_of(t) for name, t in zip(self._columns, self._types, strict=True)
        }

    @property
    def types(self) -> dict[str, str]:
        """Each column's ``information_schema`` data type."""
        return dict(zip(self._columns, self._types, strict=True))

    @property
    def row_count(self) -> int:
        with self._connect() as conn:
            query = sql.SQL("SELECT count(*) FROM {} AS r").format(
                self.relation(sql_filter.Binder())
            )
            (count,) = conn.execute(query, self.relation_params()).fetchone() or (0,)
        return int(count)

    def relation(self, bind: sql_filter.Binder) -> sql.Composable:
        """What the source's rows are selected from (a subclass may map a query).

        The table itself, or, when it has ``numeric`` columns, the table with
        those read as float8 the way a CSV's cells are (``exact_as_float``),
        and its ``ctid`` for the row order.
        """
        names, types, is_table = self._shape
        exact = {n for n, t in zip(names, types, strict=True) if t == "numeric"}
        if not exact:
            return sql_filter.quoted(self.table)
        listed = [
            sql.SQL("{} AS {}").format(sql_filter.exact_as_float(n), sql_filter.quoted(n))
            if n in exact
            else sql_filter.quoted(n)
            for n in names
        ]
        if is_table:
            listed.insert(0, sql.SQL("ctid"))
        return sql.SQL("(SELECT {} FROM {})").format(
            sql.SQL(", ").join(listed), sql_filter.quoted(self.table)
        )

    def relation_params(self) -> dict[str, object]:
        """Bound parameters of :meth:`relation` and of the shared expressions."""
        bind = sql_filter.Binder()
        self.relation(bind)
        return bind.params

    def open_connection(self) -> psycopg.Connection:
        """A new connection in read-only mode with the statement timeout set."""
        params: dict[str, str | int] = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={self._timeout} -c default_transaction_read_only=on",
        }
        if self._password is not None:
            params["password"] = self._password
        try:
            conn = psycopg.connect(conninfo.make_conninfo(self._dsn, **params))
        except psycopg.Error as exc:
            raise DataSourceError(
                f"cannot connect to the database for {self.describe()} ({kind_of_error(exc)})"
            ) from None
        conn.read_only = True
        return conn

    def describe(self) -> str:
        """How errors name the source: its table, never the DSN."""
        return f"table {self.table!r}"

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection]:
        conn = self.open_connection()
        try:
            with conn.transaction():
                yield conn
        except psycopg.Error as exc:
            # Name the kind of failure only: server messages may quote cell text.
            raise DataSourceError(f"cannot read {self.describe()} ({kind_of_error(exc)})") from None
        finally:
            conn.close()

    def _schema(
        self, conn: psycopg.Connection
    ) -> tuple[tuple[str, ...], tuple[str, ...], list[str] | None]:
        """The table's columns, their data types, and the columns that order its rows.

        Kept as the shape :meth:`relation` lists, so a column dropped since
        the source opened is not selected by the next job's queries.
        """
        found = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            (self.table,),
        ).fetchall()
        if not found:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() ORDER BY table_name"
            ).fetchall()
            listed = ", ".join(name for (name,) in tables) or "none"
            raise DataSourceError(f"no table {self.table!r} in the database; tables: {listed}")
        keys = conn.execute(
            "SELECT a.attname FROM pg_index i"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = %s::regclass AND i.indisprimary"
            " ORDER BY array_position(i.indkey, a.attnum)",
            (sql.Identifier(self.table).as_string(conn),),
        ).fetchall()
        (kind,) = conn.execute(
            "SELECT relkind::text FROM pg_class WHERE oid = %s::regclass",
            (sql.Identifier(self.table).as_string(conn),),
        ).fetchone() or ("",)
        order = [name for (name,) in keys] or (["ctid"] if kind in ("r", "p", "m") else None)
        names = tuple(name for name, _ in found)
        types = tuple(str(t) for _, t in found)
        self._shape = (names, types, order is not None)  # a view has neither keys nor ctid
        return names, types, order

    def numbering(self, conn: psycopg.Connection) -> sql.Composable:
        """The ORDER BY clause that numbers the data rows (empty for an unordered view)."""
        return _order_by(self._schema(conn)[2])

    def check_current(self, conn: psycopg.Connection, names: Sequence[str]) -> dict[str, str]:
        """The columns' data types as the schema is now; an error for one that went away."""
        current, types, _ = self._schema(conn)
        for name in names:
            if name not in current:
                raise unknown_column(name, current, "")
        return dict(zip(current, types, strict=True))

    def _load(self, names: Sequence[str]) -> tuple[dict[str, Sequence[object]], np.ndarray]:
        with self._connect() as conn:
            current, types, keys = self._schema(conn)
            for name in names:
                if name not in current:
                    raise unknown_column(name, current, "")
            typed = dict(zip(current, types, strict=True))
            kinds = [sql_filter.kind_of(typed[n]) for n in names]
            bind = sql_filter.Binder()
            listed = (
                sql.SQL(", ").join(
                    sql_filter.number(n) if k == sql_filter.NUMERIC else sql_filter.quoted(n)
                    for n, k in zip(names, kinds, strict=True)
                )
                if names
                else sql.SQL("1")
            )
            query = sql.SQL("SELECT {} FROM {} AS r{}").format(
                listed, self.relation(bind), _order_by(keys)
            )
            integer = [typed[n] in sql_filter.INTEGER_TYPES for n in names]
            columns = _stream(conn, query, bind.params, kinds, integer)
        rows = len(columns[0]) if columns else self._count_rows()
        cells: dict[str, Sequence[object]] = {name: columns[j] for j, name in enumerate(names)}
        return cells, np.arange(1, rows + 1)

    def _count_rows(self) -> int:
        return self.row_count

    def aggregates(
        self, columns: Sequence[str], where: str | None = None, *, categorical: bool = False
    ) -> PostgresAggregates | None:
        """The job's local aggregates computed in the database (see ``parties.data.pushdown``).

        None when a column's type has no translation (the rows are read instead).
        """
        from parties.data.pushdown import PostgresAggregates  # it imports this module

        names, parsed = self.check(columns, where)
        return PostgresAggregates.build(self, names, parsed, categorical=categorical)


def _order_by(keys: list[str] | None) -> sql.Composable:
    if keys is None:
        return sql.SQL("")
    return sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(sql_filter.quoted(k) for k in keys))


def _stream(
    conn: psycopg.Connection,
    query: sql.Composed,
    params: dict[str, object],
    kinds: list[str],
    integer: list[bool],
) -> list[Sequence[object]]:
    """Run ``query`` on a server-side cursor, BATCH_ROWS at a time, into per-column blocks.

    Numeric columns (selected as float8) go straight into float64 arrays with
    a mask of NULLs; other columns stay Python objects.
    """
    numeric = [k == sql_filter.NUMERIC for k in kinds]
    floats: list[list[np.ndarray]] = [[] for _ in kinds]
    nulls: list[list[np.ndarray]] = [[] for _ in kinds]
    objects: list[list[object]] = [[] for _ in kinds]
    with conn.cursor(name="smpc_rows", binary=True) as cur:
        cur.itersize = BATCH_ROWS
        cur.execute(query, params)
        while True:
            batch = cur.fetchmany(BATCH_ROWS)
            if not batch:
                break
            for j, column in enumerate(zip(*batch, strict=True)):
                if numeric[j]:
                    values = np.array(column, dtype=np.float64)  # NULL becomes NaN
                    null = np.zeros(len(values), dtype=bool)
                    for i in np.flatnonzero(np.isnan(values)).tolist():
                        null[i] = column[i] is None  # else a NaN stored in the table
                    floats[j].append(values)
                    nulls[j].append(null)
                else:
                    objects[j].extend(column)
    out: list[Sequence[object]] = []
    for j in range(len(kinds)):
        if numeric[j]:
            values = np.concatenate(floats[j]) if floats[j] else np.zeros(0)
            null = np.concatenate(nulls[j]) if nulls[j] else np.zeros(0, dtype=bool)
            out.append(FloatCells(values, null, integer=integer[j]))
        else:
            out.append(objects[j])
    return out


class FloatCells(CellBlock):
    """A numeric column read from the database: float64 values and a mask of NULL cells."""

    def __init__(self, values: np.ndarray, null: np.ndarray, *, integer: bool = False) -> None:
        self._values = values
        self._null = null
        self._integer = integer

    def __len__(self) -> int:
        return len(self._values)

    def cell(self, i: int) -> str:
        if self._null[i]:
            return ""
        value = float(self._values[i])
        return str(int(value)) if self._integer else repr(value)

    def take(self, rows: np.ndarray) -> FloatCells:
        return FloatCells(self._values[rows], self._null[rows], integer=self._integer)

    def numbers(self) -> np.ndarray | None:
        known = self._values[~self._null]
        if not np.isfinite(known).all():
            return None  # NaN or an infinity stored: the strict path names the row
        out = self._values.copy()
        out[self._null] = np.nan
        return out


def _password(path: Path | None, env: str | None) -> str | None:
    if path is not None:
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise DataSourceError(f"cannot read password file {path} ({exc.strerror})") from None
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise DataSourceError(f"the environment variable {env} (the password) is not set")
        return value
    return None


def kind_of_error(exc: psycopg.Error) -> str:
    """A psycopg error by class and SQLSTATE only: its message may quote cells or the DSN."""
    state = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__}, SQLSTATE {state}" if state else type(exc).__name__


__all__ = ["BATCH_ROWS", "STATEMENT_TIMEOUT_MS", "FloatCells", "PostgresSource", "kind_of_error"]
