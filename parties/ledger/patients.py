"""A hospital's per-job patient commitments and the leaves it keeps to prove them later.

When a job ends, a hospital with a patient column commits to the patients
whose rows entered the job after its filter and consent
(:mod:`smpc.chain.patients`); the commitment goes into its signed
contribution to the job record. To issue receipts later it keeps, per job, the
salt and the sorted leaves in ``<config folder>/<name>/patients.db`` (SQLite,
WAL, mode 0600), the leaves of a job as one blob: the leaves are keyed
permutations of patient keys, unlinkable to anyone without the hospital's
consent secret, and never leave the hospital except as the buckets a receipt
shows. Identifiers are never stored, logged or printed.

Cost: the patient key of an identifier (one HMAC, about 2 us) does not depend
on the job, so the node remembers it (:class:`PatientKeys`, looked up for the
whole column at once) and a job's commitment is one AES call, one sort and
the bucket hashes over its rows (:mod:`smpc.chain.patients`): 7-15 ms at
10^5 rows on a loaded 2-core machine, done on a thread from the moment the
job's rows are chosen, so the job's end rarely waits for it.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from parties.config import MemberConfig
from parties.data import consent
from parties.ledger import keytable
from parties.ledger.chain_store import _SqliteFile
from smpc.chain import patients
from smpc.chain.errors import ChainStoreError

PATIENTS_DB_FILE = "patients.db"
_TABLE = "job_patients"
_SCHEMA = (
    "CREATE TABLE job_patients ("
    " job TEXT PRIMARY KEY,"
    " time_ms INTEGER NOT NULL,"
    " salt BLOB NOT NULL,"
    " leaves BLOB NOT NULL)",
    "CREATE INDEX job_patients_time ON job_patients (time_ms)",
)


@dataclass(frozen=True, slots=True)
class JobPatients:
    """What a hospital kept about one job's patients: when, the salt, the sorted leaves packed."""

    job: str
    time_ms: int
    salt: bytes
    leaves: bytes

    @property
    def count(self) -> int:
        return len(self.leaves) // patients.LEAF_SIZE

    @property
    def commitment(self) -> bytes:
        return patients.commit(self.salt, self.leaves)[0]


def patient_keys(secret: bytes, ids: Sequence[object]) -> np.ndarray:
    """HMAC-SHA256 of each identifier under the consent secret (the consent records' key).

    An (n, 32) uint8 array, one key per identifier.
    """
    keys = b"".join(hmac.digest(secret, str(p).encode("utf-8"), "sha256") for p in ids)
    return np.frombuffer(keys, dtype=np.uint8).reshape(len(ids), patients.KEY_SIZE)


class PatientKeys:
    """Patient keys remembered by identifier, so each identifier costs one HMAC per secret.

    Looked up for a whole column at once (:mod:`parties.ledger.keytable`).
    Holds the identifiers' text and their keyed hashes, in memory only, about
    100 bytes per patient; forgets them all when the secret changes or when
    remembering a job's new patients would pass ``limit``.
    """

    def __init__(self, limit: int = 2_000_000) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self._lock = threading.Lock()
        self._odd = keytable.multipliers(64)
        self._forget(None)

    def _forget(self, secret: bytes | None) -> None:
        self._secret = secret
        self._count = 0
        self._words = np.zeros((0, 1), dtype=np.uint32)
        self._prints = np.zeros(0, dtype=np.uint64)
        self._keys = np.zeros((0, patients.KEY_SIZE), dtype=np.uint8)
        self._table = np.full(16, keytable.EMPTY, dtype=np.int64)

    def __len__(self) -> int:
        return self._count

    def array(self, secret: bytes, ids: Sequence[object] | np.ndarray) -> np.ndarray:
        """The key of each identifier in ``ids``, in order, as an (n, 32) uint8 array.

        ``ids`` is best a numpy text array (what data sources give); anything
        else is made one with ``str`` of each identifier.
        """
        words = keytable.text_words(_as_text(ids))
        with self._lock:
            if secret != self._secret:
                self._forget(secret)
            if len(self._odd) < words.shape[1]:
                self._odd = keytable.multipliers(words.shape[1])
            stored = self._words[: self._count]
            rows = keytable.find(self._table, self._prints, stored, words, self._odd)
            missing = rows == keytable.EMPTY
            if missing.any():
                new, inverse = _first_seen(words[missing])
                if self._count + len(new) > self.limit:
                    self._forget(secret)
                    missing[:] = True
                    new, inverse = _first_seen(words)
                if len(new) > self.limit:  # too many to remember: the right keys, kept nowhere
                    return patient_keys(secret, _names(new))[inverse]
                rows[missing] = self._count + inverse
                self._store(secret, new)
            whole = self._keys.view(f"V{patients.KEY_SIZE}")  # one item per key: 3x faster
            return whole[rows].view(np.uint8).reshape(len(rows), patients.KEY_SIZE)

    def _store(self, secret: bytes, new: np.ndarray) -> None:
        first, stop = self._count, self._count + len(new)
        width = max(self._words.shape[1], new.shape[1])
        if stop > len(self._keys) or width > self._words.shape[1]:
            size = min(max(stop, 2 * len(self._keys)), self.limit)
            words = np.zeros((size, width), dtype=np.uint32)
            words[:first, : self._words.shape[1]] = self._words[:first]
            self._words = words
            self._prints = np.resize(self._prints, size)
            keys = np.zeros((size, patients.KEY_SIZE), dtype=np.uint8)
            keys[:first] = self._keys[:first]
            self._keys = keys
        self._words[first:stop, : new.shape[1]] = new
        self._prints[first:stop] = keytable.fingerprints(new, self._odd)
        self._keys[first:stop] = patient_keys(secret, _names(new))
        self._count = stop
        if 2 * stop > len(self._table):
            size = len(self._table)
            while 2 * stop > size:
                size *= 2
            self._table = np.full(size, keytable.EMPTY, dtype=np.int64)
            keytable.insert(self._table, self._prints, 0, stop)
        else:
            keytable.insert(self._table, self._prints, first, stop)


def _first_seen(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``words`` in the order first seen, and each row's place among them."""
    new, first, inverse = np.unique(words, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(order))
    return new[order], place[inverse.reshape(-1)]


def _names(words: np.ndarray) -> list[str]:
    """The identifiers whose code points are the rows of ``words``."""
    return np.ascontiguousarray(words).view(f"<U{words.shape[1]}").reshape(-1).tolist()


def _as_text(ids: Sequence[object] | np.ndarray) -> np.ndarray:
    """``ids`` as a 1-d numpy text array (a text array is used as it is)."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind == "U":
        return ids
    names = [p if type(p) is str else str(p) for p in ids]
    if any(name.endswith("\0") for name in names):
        raise ValueError("an identifier ends in a NUL character, which numpy text drops")
    return np.array(names, dtype=str) if names else np.zeros(0, dtype="<U1")


class PatientStore:
    """Per-job salts and leaves of one hospital (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        file = Path(path)
        if not readonly and not file.exists():
            file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._file = _SqliteFile(file, _TABLE, _SCHEMA, readonly=readonly, synchronous="NORMAL")

    @property
    def path(self) -> Path:
        return self._file.path

    def keep(self, kept: JobPatients) -> None:
        """Keep one job's salt and leaves; a job keeps the first ones stored."""
        if self._file.readonly:
            raise ChainStoreError(f"{self.path} is open read-only")
        row = (kept.job, kept.time_ms, kept.salt, kept.leaves)
        with self._file.lock, self._file.transaction():
            self._file.execute("INSERT OR IGNORE INTO job_patients VALUES (?, ?, ?, ?)", row)

    def get(self, job: str) -> JobPatients | None:
        """What was kept about ``job``, or None."""
        with self._file.lock:
            row = self._file.execute(
                "SELECT job, time_ms, salt, leaves FROM job_patients WHERE job = ?", (job,)
            ).fetchone()
        return None if row is None else _kept(row)

    def jobs(self, since_ms: int = 0) -> list[JobPatients]:
        """Every job kept from ``since_ms`` on, oldest first."""
        with self._file.lock:
            rows = self._file.execute(
                "SELECT job, time_ms, salt, leaves FROM job_patients WHERE time_ms >= ?"
                " ORDER BY time_ms, rowid",
                (since_ms,),
            ).fetchall()
        return [_kept(r) for r in rows]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PatientStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kept(row: tuple[str, int, bytes, bytes]) -> JobPatients:
    job, time_ms, salt, blob = row
    if len(blob) % patients.LEAF_SIZE:
        raise ChainStoreError(f"the leaves kept for job {job} are damaged")
    return JobPatients(job, int(time_ms), bytes(salt), bytes(blob))


def store_path(member: MemberConfig) -> Path:
    """Where ``member`` keeps its patient leaves."""
    return member.home / PATIENTS_DB_FILE


class PatientLedger:
    """The node's side: remembers each job's selected patients and commits to them at its end.

    Inactive (commitments are empty) for a member whose data names no
    ``patient_id`` column.
    """

    def __init__(self, member: MemberConfig) -> None:
        self.member = member
        self.active = member.role == "hospital" and member.data.patient_id is not None
        self._selected: dict[str, _Task] = {}
        self._lock = threading.Lock()
        self._store: PatientStore | None = None
        self._store_lock = threading.Lock()
        self._writing: dict[str, _Task] = {}
        self.keys = PatientKeys()

    def selected(self, job: str, ids: np.ndarray, keys: np.ndarray | None = None) -> None:
        """The identifiers of the rows ``job`` uses (after its filter and consent).

        ``keys``: their keys as an (n, 32) uint8 array, if the caller looked
        them up already (under the consent secret on file), so they are not
        looked up again. The commitment to them is computed from here on, on
        a thread of its own, while the job runs: :meth:`commit` at the job's
        end only waits for it.
        """
        if keys is not None and keys.shape != (len(ids), patients.KEY_SIZE):
            raise ValueError(f"keys must be ({len(ids)}, {patients.KEY_SIZE}), got {keys.shape}")
        if self.active:
            task = _Task(self._prepare, job, ids, keys)
            with self._lock:
                self._selected[job] = task
            task.start()

    def _prepare(self, job: str, ids: np.ndarray, keys: np.ndarray | None = None) -> _Prepared:
        """The salt, the sorted leaves, the commitment and the root of ``job``'s patients."""
        secret = consent.load_secret(self.member, create=True)
        if secret is None:
            raise consent.ConsentError(f"no consent secret at {consent.secret_path(self.member)}")
        salt = secrets.token_bytes(patients.SALT_SIZE)
        if keys is None:
            keys = self.keys.array(secret, ids)
        leaves = patients.leaves(patients.job_key(secret, job, salt), keys)
        commitment, root = patients.commit(salt, leaves)
        return salt, leaves.tobytes(), commitment, root

    def commit(self, job: str) -> tuple[bytes, dict[str, object]]:
        """(commitment, notes) for ``job``; empty when inactive.

        Waits for the commitment :meth:`selected` started; its salt and leaves
        are stored on a thread of their own (2-4 ms at 10^5 rows): call
        :meth:`kept` before the record leaves the node.

        A job that ended before it selected rows commits to no patient.
        """
        with self._lock:
            task = self._selected.pop(job, None)
        if not self.active:
            return b"", {}
        if task is None:
            prepared = self._prepare(job, np.zeros(0, dtype="<U1"))
        else:
            prepared = cast(_Prepared, task.outcome())
        salt, leaves, commitment, root = prepared
        kept = JobPatients(job, time.time_ns() // 1_000_000, salt, leaves)
        writer = _Task(self._keep, kept)
        with self._lock:
            self._writing[job] = writer
        writer.start()  # while the record is assembled with the peers; see kept()
        notes: dict[str, object] = {
            "patients": commitment.hex(),
            "patients_salt": salt.hex(),
            "patients_count": kept.count,
            "patients_root": root.hex(),
        }
        return commitment, notes

    def _keep(self, kept: JobPatients) -> None:
        with self._store_lock:
            if self._store is None:
                self._store = PatientStore(store_path(self.member))
            self._store.keep(kept)

    def kept(self, job: str) -> None:
        """Wait until :meth:`commit` has stored ``job``'s salt and leaves; raise what it raised.

        Call before the job's record goes anywhere, so that no record commits
        to leaves the hospital failed to keep. Returns at once for a job not committed.
        """
        with self._lock:
            writer = self._writing.pop(job, None)
        if writer is not None:
            writer.outcome()

    def close(self) -> None:
        with self._lock:
            writers = [*self._writing.values(), *self._selected.values()]
        for writer in writers:
            writer.join()
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None


_Prepared = tuple[bytes, bytes, bytes, bytes]


class _Task(threading.Thread):
    """One call on a thread of its own; :meth:`outcome` waits and returns or raises what it did."""

    def __init__(self, call: Callable[..., object], *args: object) -> None:
        super().__init__(name="patients", daemon=True)
        self._call, self._args = call, args
        self._result: object = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._result = self._call(*self._args)
        except BaseException as exc:  # raised again by outcome(), in the caller's thread
            self._error = exc

    def outcome(self) -> object:
        self.join()
        if self._error is not None:
            raise self._error
        return self._result
