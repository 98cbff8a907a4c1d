"""SQLite storage for the chain: a block store and an authority's seal log.

Both keep one table in their own SQLite file in WAL mode. The block store writes
one row per block (height, block hash, encoded block, encoded seal set) in one
transaction, so a crash leaves a prefix of whole blocks; the seal log commits
with ``synchronous=FULL`` before :meth:`SqliteSealLog.remember` returns, so an
authority that crashes after sealing still refuses a second block at that height.

One write needs no sync of its own: :meth:`SqliteChainStore.replace_head_seals`
(another quorum of seals for the head, which the next block commits to). It
survives a crash of the process like any WAL commit; lost to a power cut, the
head keeps the quorum it had, which still verifies, and the next block, whose
append is synced, carries the new seals again (the node adopts them from it).
WAL keeps commits in order, so that sync makes the replacement durable first.
It costs an fsync, about 0.1 ms of CPU, for half the jobs at every node.

Opening never changes an existing file: a new (missing or empty) file is set up,
anything else is only checked, and ``readonly=True`` opens without write access
(what ``smpc chain verify`` and ``show`` do). Nothing read is trusted: a row that
does not decode, or whose height or hash disagrees with its block, raises
:class:`StoredBlockError` naming the height; everything else is for
:func:`smpc.chain.verify.verify_chain` to check.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from smpc.chain.block import Block, Seal, decode_seals, encode_seals
from smpc.chain.errors import (
    ChainEncodingError,
    ChainStoreError,
    ChainVerificationError,
)
from smpc.chain.store import ChainStore, SealedBlock, SealLog

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the files written here."""

SYNCHRONOUS_MODES: tuple[str, ...] = ("FULL", "NORMAL")

_BLOCKS_TABLE = "blocks"
_BLOCKS_SCHEMA = (
    "CREATE TABLE blocks ("
    " height INTEGER PRIMARY KEY CHECK (height >= 1),"
    " hash BLOB NOT NULL,"
    " block BLOB NOT NULL,"
    " seals BLOB NOT NULL)"
)
_SEALED_TABLE = "sealed"
_SEALED_SCHEMA = (
    "CREATE TABLE sealed (height INTEGER PRIMARY KEY CHECK (height >= 1), hash BLOB NOT NULL)"
)


class StoredBlockError(ChainVerificationError, ChainStoreError):
    """A stored row is damaged: it does not decode, or its height or hash disagree with it."""


class _SqliteFile:
    """One SQLite connection to a file holding ``table``, opened as the module docstring says."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        table: str,
        schema: str | Sequence[str],
        *,
        readonly: bool,
        synchronous: str,
    ) -> None:
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        if readonly and not self.path.is_file():
            raise ChainStoreError(f"no chain database at {self.path}")
        mode = "ro" if readonly else "rwc"
        uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?mode={mode}"
        try:
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ChainStoreError(f"cannot open {self.path}: {exc}") from None
        try:
            self._prepare(table, schema, synchronous)
        except BaseException:
            self._db.close()
            raise

    def _prepare(self, table: str, schema: str | Sequence[str], synchronous: str) -> None:
        try:
            self._db.execute(f"PRAGMA synchronous = {synchronous}")
            self._db.execute("PRAGMA busy_timeout = 5000")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = [r[0] for r in self._db.execute("SELECT name FROM sqlite_schema")]
        except sqlite3.DatabaseError as exc:
            raise ChainStoreError(f"{self.path} is not an SQLite database: {exc}") from None
        if version == 0 and not tables and not self.readonly:
            self._db.execute("PRAGMA journal_mode = WAL")
            with self.transaction():
                for statement in [schema] if isinstance(schema, str) else schema:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        if version != SCHEMA_VERSION or table not in tables:
            raise ChainStoreError(
                f"{self.path} is not a chain file of version {SCHEMA_VERSION} with a "
                f"{table!r} table; give the path of one, or of a new file"
            )

    def transaction(self) -> _Transaction:
        """``with``: BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception."""
        return _Transaction(self._db)

    def execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, params)

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def close(self) -> None:
        self._db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


class SqliteChainStore(ChainStore):
    """A :class:`~smpc.chain.store.ChainStore` in an SQLite file (WAL, a row per block).

    ``synchronous`` is SQLite's setting for this connection: ``FULL`` (the
    default) makes each appended block durable across power loss, ``NORMAL``
    only across a crash of the process (a lost tail is fetched again from peers).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        synchronous: str = "FULL",
    ) -> None:
        self._file = _SqliteFile(
            path, _BLOCKS_TABLE, _BLOCKS_SCHEMA, readonly=readonly, synchronous=synchronous
        )
        self._synchronous = synchronous

    @property
    def path(self) -> Path:
        return self._file.path

    def journal_mode(self) -> str:
        """SQLite's journal mode of the file (``wal`` for a store made here)."""
        return self._file.journal_mode()

    def append(self, block: Block, seals: Sequence[Seal]) -> None:
        if self._file.readonly:
            raise ChainStoreError(f"{self.path} is open read-only")
        row = (block.height, block.hash(), block.encode(), encode_seals(seals))
        with self._file.lock, self._file.transaction():
            top = self._file.execute("SELECT max(height) FROM blocks").fetchone()[0]
            expected = (top or 0) + 1
            if block.height != expected:
                raise ChainStoreError(f"the next block is height {expected}, not {block.height}")
            self._file.execute("INSERT INTO blocks VALUES (?, ?, ?, ?)", row)

    def replace_head_seals(self, seals: Sequence[Seal]) -> None:
        if self._file.readonly:
            raise ChainStoreError(f"{self.path} is open read-only")
        with self._file.lock:
            self._file.execute("PRAGMA synchronous = NORMAL")  # no sync: see the module docstring
            try:
                with self._file.transaction():
                    top = self._file.execute("SELECT max(height) FROM blocks").fetchone()[0]
                    if top is None:
                        raise ChainStoreError(
                            "the chain holds no block whose seals could be replaced"
                        )
                    self._file.execute(
                        "UPDATE blocks SET seals = ? WHERE height = ?", (encode_seals(seals), top)
                    )
            finally:
                self._file.execute(f"PRAGMA synchronous = {self._synchronous}")

    def get(self, height: int) -> SealedBlock | None:
        with self._file.lock:
            row = self._file.execute(
                "SELECT height, hash, block, seals FROM blocks WHERE height = ?", (height,)
            ).fetchone()
        return None if row is None else _decode_row(row)

    def head(self) -> SealedBlock | None:
        with self._file.lock:
            row = self._file.execute(
                "SELECT height, hash, block, seals FROM blocks ORDER BY height DESC LIMIT 1"
            ).fetchone()
        return None if row is None else _decode_row(row)

    def height(self) -> int:
        """The highest stored height (0 for a chain holding only the genesis)."""
        with self._file.lock:
            return int(self._file.execute("SELECT max(height) FROM blocks").fetchone()[0] or 0)

    def iterate(self) -> Iterator[SealedBlock]:
        # Rows are read in batches, each under the lock, so a long scan neither
        # holds the lock throughout nor reads the whole chain into memory.
        after = 0
        while True:
            with self._file.lock:
                rows = self._file.execute(
                    "SELECT height, hash, block, seals FROM blocks WHERE height > ?"
                    " ORDER BY height LIMIT 512",
                    (after,),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _decode_row(row)
            after = rows[-1][0]

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards."""
        self._file.close()

    def __enter__(self) -> SqliteChainStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteSealLog(SealLog):
    """A durable :class:`~smpc.chain.store.SealLog`: each hash is committed (FULL) before return."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file = _SqliteFile(
            path, _SEALED_TABLE, _SEALED_SCHEMA, readonly=False, synchronous="FULL"
        )

    @property
    def path(self) -> Path:
        return self._file.path

    def sealed(self, height: int) -> bytes | None:
        with self._file.lock:
            row = self._file.execute(
                "SELECT hash FROM sealed WHERE height = ?", (height,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def remember(self, height: int, block_hash: bytes) -> None:
        if isinstance(height, bool) or not isinstance(height, int) or height < 1:
            raise ValueError(f"a sealed height is a positive integer, got {height!r}")
        with self._file.lock, self._file.transaction():
            row = self._file.execute(
                "SELECT hash FROM sealed WHERE height = ?", (height,)
            ).fetchone()
            if row is None:
                self._file.execute("INSERT INTO sealed VALUES (?, ?)", (height, bytes(block_hash)))
            elif bytes(row[0]) != block_hash:
                raise ChainStoreError(f"a different block is already sealed at height {height}")

    def close(self) -> None:
        """Close the connection; the log cannot be used afterwards."""
        self._file.close()

    def __enter__(self) -> SqliteSealLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode_row(row: tuple[int, bytes, bytes, bytes]) -> SealedBlock:
    height, stored_hash, data, seal_data = row
    try:
        block = Block.decode(bytes(data))
    except ChainEncodingError as exc:
        raise StoredBlockError(
            height, "block", f"the stored block does not decode: {exc}"
        ) from None
    try:
        seals = decode_seals(bytes(seal_data))
    except ChainEncodingError as exc:
        raise StoredBlockError(height, "seals", f"the stored seals do not decode: {exc}") from None
    if block.height != height:
        raise StoredBlockError(height, "height", f"the row holds block {block.height}")
    if bytes(stored_hash) != block.hash():
        raise StoredBlockError(height, "hash", "the stored hash is not the block's hash")
    return SealedBlock(block, seals)
