"""One table of a SQLite database, read-only."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from parties.data.base import DataSource, unknown_column
from parties.data.errors import DataSourceError

_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


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

    def _version(self) -> object | None:
        """The database file's and its write-ahead log's size and modification time.

        Taken before the rows are read: a write during a read changes it, so
        the next job checks its column again.
        """
        stamps: list[tuple[int, int] | None] = []
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                info = path.stat()
            except OSError:
                stamps.append(None)
            else:
                stamps.append((info.st_size, info.st_mtime_ns))
        return tuple(stamps)

    def _load(self, names: Sequence[str]) -> tuple[dict[str, Sequence[object]], np.ndarray]:
        with self._connect() as conn:
            current, order = self._schema(conn)
            for name in names:
                if name not in current:
                    raise unknown_column(name, current, "")
            listed = ", ".join(_quote(name) for name in names) or "1"
            sql = f"SELECT {listed} FROM {_quote(self.table)}"
            if order is not None:
                sql += f" ORDER BY {order}"
            rows = conn.execute(sql).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        cells: dict[str, Sequence[object]] = {name: columns[j] for j, name in enumerate(names)}
        return cells, np.arange(1, len(rows) + 1)


__all__ = ["SqliteSource"]
