"""A node's pending records and private job notes, in its own SQLite file.

``<config folder>/<name>/records.db`` (WAL, created with mode 0600) holds two
tables:

- ``pending``: records this node assembled or signed (job records, consent
  records) that are not in a block yet, each under its record id (SHA-256 of
  its encoding). Proposing and sealing blocks moves them onto the chain and
  then calls :meth:`RecordStore.remove_pending`; until then :meth:`pending`
  is what a proposer reads. A job has at most one pending record: the first
  one stored wins, so a replayed job id can never overwrite a record.
- ``job_notes``: what this node alone knows about a job it took part in: the
  salt of its input commitment, its own transcript hashes and the key of its
  output tag. They never go on the chain; ``smpc audit`` compares them with
  the record. This is why the file is private to the node.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from parties.config import MemberConfig
from parties.ledger.chain_store import _SqliteFile
from smpc.chain.errors import ChainStoreError
from smpc.chain.records import Record, record_id

RECORDS_DB_FILE = "records.db"

_PENDING_TABLE = "pending"
_SCHEMA = (
    "CREATE TABLE pending ("
    " id BLOB PRIMARY KEY,"
    " kind TEXT NOT NULL,"
    " job TEXT UNIQUE,"
    " data BLOB NOT NULL,"
    " added_ms INTEGER NOT NULL)",
    "CREATE INDEX pending_kind ON pending (kind, added_ms)",
    "CREATE TABLE job_notes (job TEXT PRIMARY KEY, data TEXT NOT NULL)",
)


def records_path(member: MemberConfig) -> Path:
    """Where ``member`` keeps its records file: ``<config folder>/<name>/records.db``."""
    return member.home / RECORDS_DB_FILE


class RecordStore:
    """Pending records and private job notes of one node (see the module docstring).

    ``synchronous`` is SQLite's setting: ``NORMAL`` (the default) keeps what was
    written across a crash of the process at no cost on the job path (WAL, no
    fsync per commit); ``FULL`` also across power loss, at about an fsync per
    write.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, readonly: bool = False, synchronous: str = "NORMAL"
    ) -> None:
        file = Path(path)
        if not readonly and not file.exists():
            file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._file = _SqliteFile(
            file, _PENDING_TABLE, _SCHEMA, readonly=readonly, synchronous=synchronous
        )

    @property
    def path(self) -> Path:
        return self._file.path

    # -- pending records ------------------------------------------------------------
    def add_pending(
        self, record: Record, *, job: str | None = None, notes: dict[str, Any] | None = None
    ) -> bool:
        """Store ``record`` as pending; False if it (or a record of ``job``) is already here.

        With ``notes``, ``job``'s private notes are kept in the same transaction
        (as :meth:`keep_notes`: first write wins), so one commit keeps both.
        """
        if self._file.readonly:
            raise ChainStoreError(f"{self.path} is open read-only")
        if notes is not None and job is None:
            raise ValueError("notes belong to a job: name it")
        data = record.encode()
        row = (record_id(data), record.KIND, job, data, time.time_ns() // 1_000_000)
        with self._file.lock, self._file.transaction():
            cursor = self._file.execute("INSERT OR IGNORE INTO pending VALUES (?, ?, ?, ?, ?)", row)
            added = cursor.rowcount == 1
            if notes is not None and job is not None:
                self._insert_notes(job, notes)
            return added

    def pending(self, kind: str | None = None) -> list[tuple[bytes, bytes]]:
        """(record id, encoded record) of every pending record (of ``kind``), oldest first."""
        sql = "SELECT id, data FROM pending"
        params: tuple[str, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            params = (kind,)
        with self._file.lock:
            rows = self._file.execute(sql + " ORDER BY added_ms, rowid", params).fetchall()
        return [(bytes(i), bytes(d)) for i, d in rows]

    def job_record(self, job: str) -> bytes | None:
        """The encoded pending record of ``job``, or None."""
        with self._file.lock:
            row = self._file.execute("SELECT data FROM pending WHERE job = ?", (job,)).fetchone()
        return None if row is None else bytes(row[0])

    def remove_pending(self, ids: Iterable[bytes]) -> None:
        """Forget pending records (once a final block holds them)."""
        with self._file.lock, self._file.transaction():
            for rid in ids:
                self._file.execute("DELETE FROM pending WHERE id = ?", (bytes(rid),))

    # -- private notes ----------------------------------------------------------------
    def keep_notes(self, job: str, notes: dict[str, Any]) -> None:
        """Keep this node's private notes on ``job`` (first write wins)."""
        with self._file.lock, self._file.transaction():
            self._insert_notes(job, notes)

    def _insert_notes(self, job: str, notes: dict[str, Any]) -> None:
        text = json.dumps(notes, sort_keys=True)
        self._file.execute("INSERT OR IGNORE INTO job_notes VALUES (?, ?)", (job, text))

    def notes(self, job: str) -> dict[str, Any] | None:
        """This node's private notes on ``job``, or None."""
        with self._file.lock:
            row = self._file.execute("SELECT data FROM job_notes WHERE job = ?", (job,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
