"""Consent at one hospital: the secret, the patient key, and which rows a job may use."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3

import numpy as np
import pytest

from parties.data.consent import (
    ConsentBook,
    ConsentError,
    load_secret,
    own_records,
    patient_key,
    secret_path,
)
from parties.ledger.record_store import RecordStore
from smpc.chain.records import ConsentRecord

SECRET = bytes(range(32))


def rec(action: str, patient: str, scope: str, time_ms: int) -> ConsentRecord:
    return ConsentRecord(action, "h0", patient_key(SECRET, patient), scope, time_ms)


def test_the_patient_key_is_hmac_sha256_of_the_identifier_under_the_secret() -> None:
    expected = hmac.new(SECRET, b"MRN-17", hashlib.sha256).digest()
    assert patient_key(SECRET, "MRN-17") == expected
    assert patient_key(bytes(32), "MRN-17") != expected
    assert patient_key(SECRET, "MRN-17") != hashlib.sha256(b"MRN-17").digest()


@pytest.mark.parametrize(("mode", "default"), [("opt-in", False), ("opt-out", True)])
def test_a_patient_without_records_follows_the_genesis_mode(mode: str, default: bool) -> None:
    book = ConsentBook([rec("grant", "p1", "statistics", 1)], mode)
    assert book.allows(patient_key(SECRET, "p2"), "statistics") is default
    assert book.allows(patient_key(SECRET, "p1"), "statistics") is True
    # Without a secret nobody can have a record: everyone follows the mode.
    assert book.rows(None, np.array(["p1", "p2"]), "statistics").tolist() == [default, default]


def test_the_latest_record_for_the_scope_or_all_decides() -> None:
    records = [
        rec("grant", "p", "all", 10),
        rec("revoke", "p", "statistics", 20),
        rec("revoke", "q", "all", 10),
        rec("grant", "q", "model-inference", 30),
        rec("revoke", "r", "statistics", 50),
        rec("grant", "r", "statistics", 50),  # same time: the one kept later wins
    ]
    book = ConsentBook(records, "opt-in")
    patients = np.array(["p", "q", "r", "s"])
    assert book.rows(SECRET, patients, "statistics").tolist() == [False, False, True, False]
    assert book.rows(SECRET, patients, "model-training").tolist() == [True, False, False, False]
    assert book.rows(SECRET, patients, "model-inference").tolist() == [True, True, False, False]
    # Records arriving out of time order give the same answer.
    again = ConsentBook(list(reversed(records[:4])), "opt-in")
    assert again.rows(SECRET, patients[:2], "statistics").tolist() == [False, False]


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ConsentError, match="consent mode 'maybe'"):
        ConsentBook([], "maybe")


def test_the_secret_is_made_once_readable_by_its_owner_only(make_federation) -> None:
    hospital = make_federation(["h0", "h1"])[0]
    assert load_secret(hospital) is None
    secret = load_secret(hospital, create=True)
    assert secret is not None and len(secret) == 32
    assert secret_path(hospital).stat().st_mode & 0o777 == 0o600
    assert load_secret(hospital, create=True) == secret
    secret_path(hospital).write_bytes(b"short")
    with pytest.raises(ConsentError, match="32-byte consent secret"):
        load_secret(hospital)


def test_a_consent_row_that_cannot_be_decoded_fails_loudly(tmp_path) -> None:
    path = tmp_path / "records.db"
    with RecordStore(path) as store:
        store.add_pending(rec("grant", "p1", "statistics", 1))
        store.add_pending(rec("revoke", "p2", "statistics", 2))
        assert [r.action for r in own_records(store, "h0")] == ["grant", "revoke"]
        damaged = store.pending(ConsentRecord.KIND)[1][0]
        with sqlite3.connect(path) as db:  # a damaged row, e.g. a disk fault: the revocation
            db.execute("UPDATE pending SET data = ? WHERE id = ?", (b"\x00garbage", damaged))
        with pytest.raises(ConsentError, match=f"consent record {damaged.hex()[:12]}.* decoded"):
            own_records(store, "h0")


def test_the_exclusion_note_says_how_many_and_why_per_mode() -> None:
    from parties.data.consent import exclusion_note

    assert exclusion_note(0, 10, "opt-in", "statistics") == ""
    opt_in = exclusion_note(10, 10, "opt-in", "statistics")
    assert opt_in.startswith("consent excluded 10 of 10 selected rows (consent mode opt-in:")
    assert "'smpc consent grant'" in opt_in and "--consent opt-out" in opt_in
    opt_out = exclusion_note(2, 10, "opt-out", "model-inference")
    assert opt_out == (
        "consent excluded 2 of 10 selected rows (consent mode opt-out: these patients revoked"
        " scope 'model-inference' or 'all')"
    )
