"""A node's records file: pending records (one per job) and private notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from parties.ledger.record_store import RecordStore
from smpc.chain.errors import ChainStoreError
from smpc.chain.records import (
    ConsentRecord,
    Failure,
    JobRecord,
    Party,
    decode_record,
    record_id,
)


def job(job_id: str, status: str = "finished") -> JobRecord:
    return JobRecord(
        job_id=job_id,
        signed_job=b"{}",
        protocol="stats-count",
        protocol_version="3",
        parties=(Party("a", "hospital"), Party("b", "hospital")),
        outputs=(("count", ("analyst",)),),
        output_digest=bytes(32) if status == "finished" else b"",
        status=status,
        failure=None if status == "finished" else Failure("b", "timed out"),
        contributions=(),
    )


def test_pending_records_keep_the_first_record_of_a_job(tmp_path: Path) -> None:
    with RecordStore(tmp_path / "records.db") as store:
        first, second = job("j1"), job("j1", status="aborted")
        consent = ConsentRecord("grant", "a", bytes(32), "all", 1)
        assert store.add_pending(first, job="j1")
        assert not store.add_pending(second, job="j1")  # a replay cannot overwrite it
        assert store.add_pending(consent)
        assert not store.add_pending(consent)  # the same record twice is one record
        assert decode_record(store.job_record("j1") or b"") == first
        assert store.job_record("j2") is None
        assert [d for _, d in store.pending("consent")] == [consent.encode()]
        assert [i for i, _ in store.pending()] == [
            record_id(first.encode()),
            record_id(consent.encode()),
        ]
        store.remove_pending([record_id(first.encode())])
        assert store.job_record("j1") is None and len(store.pending()) == 1


def test_a_record_and_its_notes_are_kept_in_one_call(tmp_path: Path) -> None:
    with RecordStore(tmp_path / "records.db") as store:
        notes = {"party": "a", "salt": "00" * 32}
        assert store.add_pending(job("j1"), job="j1", notes=notes)
        assert store.notes("j1") == notes
        assert decode_record(store.job_record("j1") or b"") == job("j1")
        # a replay adds neither: the first record and the first notes stay
        assert not store.add_pending(job("j1", "aborted"), job="j1", notes={"party": "x"})
        assert store.notes("j1") == notes
        assert decode_record(store.job_record("j1") or b"") == job("j1")
        with pytest.raises(ValueError, match="name it"):
            store.add_pending(job("j2"), notes=notes)
        assert store.job_record("j2") is None


def test_notes_are_private_and_first_written_wins(tmp_path: Path) -> None:
    path = tmp_path / "node" / "records.db"
    with RecordStore(path) as store:
        store.keep_notes("j1", {"party": "a", "salt": "00" * 32})
        store.keep_notes("j1", {"party": "a", "salt": "ff" * 32})
        assert store.notes("j1") == {"party": "a", "salt": "00" * 32}
        assert store.notes("j2") is None
    assert path.stat().st_mode & 0o777 == 0o600
    with RecordStore(path, readonly=True) as reader:
        assert reader.notes("j1") is not None
        with pytest.raises(ChainStoreError, match="read-only"):
            reader.add_pending(job("j3"), job="j3")
