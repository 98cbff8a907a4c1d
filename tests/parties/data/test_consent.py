"""Consent at one hospital: the secret, the patient key, and which rows a job may use."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parties.data import consent as consent_module
from parties.data.consent import (
    ConsentBook,
    ConsentError,
    ConsentView,
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


def test_the_consent_view_follows_every_new_record_and_decodes_only_new_rows(
    tmp_path, monkeypatch
) -> None:
    """Job after job the view answers what the records file holds now (the oracle: a book
    built from :func:`own_records`); an unchanged file is not decoded again."""
    decoded: list[bytes] = []
    decode = consent_module.decode_record

    def counted(data: bytes) -> object:
        decoded.append(data)
        return decode(data)

    monkeypatch.setattr(consent_module, "decode_record", counted)
    patients = np.array(["p1", "p2", "p3"])
    view = ConsentView("h0", "opt-in")
    with RecordStore(tmp_path / "records.db") as store:
        steps = [
            rec("grant", "p1", "statistics", 1),
            rec("grant", "p2", "all", 2),
            rec("revoke", "p1", "statistics", 3),  # a withdrawal counts from the next job on
            ConsentRecord("grant", "h1", patient_key(SECRET, "p3"), "statistics", 4),
        ]
        seen = []
        for record in steps:
            store.add_pending(record)
            for _ in range(2):
                records, book = view.read(store)
                oracle = ConsentBook(own_records(store, "h0"), "opt-in")
                assert list(records) == own_records(store, "h0")
                got = book.rows(SECRET, patients, "statistics").tolist()
                assert got == oracle.rows(SECRET, patients, "statistics").tolist()
            seen.append(got)
        assert seen == [
            [True, False, False],
            [True, True, False],
            [False, True, False],
            [False, True, False],  # another hospital's record: not this hospital's patient
        ]
        decoded.clear()
        view.read(store)
        view.read(store)
        assert decoded == []


def test_a_damaged_consent_row_fails_the_view_at_every_read_after_a_good_one(tmp_path) -> None:
    path = tmp_path / "records.db"
    view = ConsentView("h0", "opt-out")
    with RecordStore(path) as store:
        store.add_pending(rec("grant", "p1", "statistics", 1))
        store.add_pending(rec("revoke", "p2", "statistics", 2))
        records, _ = view.read(store)
        assert [r.action for r in records] == ["grant", "revoke"]
        damaged = store.pending(ConsentRecord.KIND)[1][0]
        with sqlite3.connect(path) as db:  # the revocation's bytes change, its id does not
            db.execute("UPDATE pending SET data = ? WHERE id = ?", (b"\x00garbage", damaged))
        for _ in range(2):
            with pytest.raises(ConsentError, match=f"consent record {damaged.hex()[:12]}"):
                view.read(store)


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


# The vectorised decision against a plain per-row reference: one HMAC per
# identifier, then Python sets of the keys whose latest record for the scope
# (or "all") grants or revokes.

JOB_SCOPES = ("statistics", "model-training", "model-inference")
PATIENTS = ("p0", "p1", "MRN-0417", "é", " p4", "p5", "x" * 40, "7")


def reference(records: list[ConsentRecord], keys: list[bytes], mode: str, scope: str) -> np.ndarray:
    latest: dict[bytes, tuple[int, int, str]] = {}
    for order, r in enumerate(records):
        if r.scope in (scope, "all"):
            seen = latest.get(r.patient_key)
            if seen is None or (r.time_ms, order) > seen[:2]:
                latest[r.patient_key] = (r.time_ms, order, r.action)
    granted = {k for k, v in latest.items() if v[2] == "grant"}
    revoked = {k for k, v in latest.items() if v[2] == "revoke"}
    return np.array(
        [k in granted or (mode == "opt-out" and k not in revoked) for k in keys], dtype=bool
    )


RECORDS = st.lists(
    st.tuples(
        st.sampled_from(["grant", "revoke"]),
        st.sampled_from(PATIENTS),
        st.sampled_from(["all", *JOB_SCOPES]),
        st.integers(0, 5),  # few times, so records often tie and their order decides
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(
    RECORDS,
    st.lists(st.sampled_from([*PATIENTS, "nobody", ""]), max_size=40),
    st.sampled_from(["opt-in", "opt-out"]),
    st.sampled_from(JOB_SCOPES),
)
def test_the_row_decision_agrees_with_a_per_row_reference(
    drawn: list[tuple[str, str, str, int]], rows: list[str], mode: str, scope: str
) -> None:
    records = [rec(a, p, s, t) for a, p, s, t in drawn]
    book = ConsentBook(records, mode)
    keys = [hmac.digest(SECRET, p.encode("utf-8"), "sha256") for p in rows]
    expected = reference(records, keys, mode, scope)
    table = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32)
    assert book.allowed(table, scope).tolist() == expected.tolist()
    assert book.allowed(keys, scope).tolist() == expected.tolist()
    assert book.rows(SECRET, np.array(rows, dtype=str), scope).tolist() == expected.tolist()


@pytest.mark.parametrize("mode", ["opt-in", "opt-out"])
@pytest.mark.parametrize("shared", [0, 8, 31])
def test_random_books_agree_with_the_reference_also_where_keys_share_a_prefix(
    mode: str, shared: int
) -> None:
    rng = np.random.default_rng(shared + len(mode))
    keys = rng.integers(0, 256, (3000, 32), dtype=np.uint8)
    keys[:, :shared] = 7  # keys alike in their first bytes take the full-key search
    if shared:  # all-zero and trailing-zero keys are keys like any other
        keys[-5:] = 0
        keys[-4:, 31] = 1
        keys[-3:, 30] = 2
    raw = [k.tobytes() for k in keys]
    recorded = rng.choice(len(raw), 1200)
    records = [
        ConsentRecord(
            str(rng.choice(["grant", "revoke"])),
            "h0",
            raw[i],
            str(rng.choice(["all", *JOB_SCOPES])),
            int(rng.integers(0, 50)),
        )
        for i in recorded.tolist()
    ]
    book = ConsentBook(records, mode)
    rows = rng.integers(0, len(raw), 20_000)
    for scope in JOB_SCOPES:
        expected = reference(records, [raw[i] for i in rows.tolist()], mode, scope)
        assert book.allowed(keys[rows], scope).tolist() == expected.tolist()


@pytest.mark.parametrize("mode", ["opt-in", "opt-out"])
def test_a_revocation_after_a_grant_excludes_and_a_later_grant_includes_again(mode: str) -> None:
    keys = [patient_key(SECRET, p) for p in ("p1", "p2", "p3")]
    records = [
        rec("grant", "p1", "all", 1),
        rec("revoke", "p1", "model-inference", 2),
        rec("grant", "p2", "model-inference", 1),
        rec("revoke", "p2", "all", 2),
        rec("grant", "p2", "model-inference", 3),
        rec("revoke", "p3", "statistics", 1),
    ]
    book = ConsentBook(records, mode)
    assert book.allowed(keys, "model-inference").tolist() == [False, True, mode == "opt-out"]
    assert book.allowed(keys, "statistics").tolist() == [True, False, False]
    assert book.allowed(keys, "model-training").tolist() == [True, False, mode == "opt-out"]


def test_keys_of_the_wrong_shape_are_refused() -> None:
    book = ConsentBook([rec("grant", "p1", "all", 1)], "opt-in")
    with pytest.raises(TypeError, match="uint8"):
        book.allowed(np.zeros((2, 16), dtype=np.uint8), "statistics")
    with pytest.raises(ValueError, match="32 bytes"):
        book.allowed([b"short"], "statistics")
