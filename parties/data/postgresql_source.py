"""One table of a PostgreSQL database, read in read-only transactions with psycopg 3.

Rows come in primary-key order (physical order without one; a view's rows
in the order the server gives), so data row k is the k-th row in that order.
Every statement is composed with
``psycopg.sql``: identifiers are quoted, values are bound parameters, and
nothing from a job is pasted into SQL text. The password comes from a file
or an environment variable named in the config, never from the DSN; neither
is logged, and a connection error is reported by its kind only (libpq
messages may repeat the DSN's parameters).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psycopg
from psycopg import conninfo, sql

from parties.data.base import DataSource, unknown_column
from parties.data.errors import DataSourceError

_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
STATEMENT_TIMEOUT_MS = 60_000
CONNECT_TIMEOUT_S = 10


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
            self._columns, _ = self._schema(conn)

    def __repr__(self) -> str:
        return f"<PostgresSource table {self.table!r}>"  # never the DSN

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    @property
    def row_count(self) -> int:
        with self._connect() as conn:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.table))
            (count,) = conn.execute(query).fetchone() or (0,)
        return int(count)

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection]:
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
                f"cannot connect to the database for table {self.table!r} ({_kind(exc)})"
            ) from None
        try:
            conn.read_only = True
            with conn.transaction():
                yield conn
        except psycopg.Error as exc:
            # Name the kind of failure only: server messages may quote cell text.
            raise DataSourceError(f"cannot read table {self.table!r} ({_kind(exc)})") from None
        finally:
            conn.close()

    def _schema(self, conn: psycopg.Connection) -> tuple[tuple[str, ...], list[str] | None]:
        """The table's columns and the columns that order its rows (None: a view, unordered)."""
        found = conn.execute(
            "SELECT column_name FROM information_schema.columns"
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
        return tuple(name for (name,) in found), order

    def _load(self, names: Sequence[str]) -> tuple[dict[str, Sequence[object]], np.ndarray]:
        with self._connect() as conn:
            current, keys = self._schema(conn)
            for name in names:
                if name not in current:
                    raise unknown_column(name, current, "")
            listed = sql.SQL(", ").join(sql.Identifier(n) for n in names) if names else sql.SQL("1")
            query = sql.SQL("SELECT {} FROM {}").format(listed, sql.Identifier(self.table))
            if keys is not None:
                by = sql.SQL(", ").join(sql.Identifier(k) for k in keys)
                query = sql.SQL("{} ORDER BY {}").format(query, by)
            rows = conn.execute(query).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        cells: dict[str, Sequence[object]] = {name: columns[j] for j, name in enumerate(names)}
        return cells, np.arange(1, len(rows) + 1)


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


def _kind(exc: psycopg.Error) -> str:
    state = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__}, SQLSTATE {state}" if state else type(exc).__name__


__all__ = ["STATEMENT_TIMEOUT_MS", "PostgresSource"]
