"""The node's patient ledger: commitments made as jobs run, leaves kept before records."""

from __future__ import annotations

import hmac
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from parties.config import MemberConfig
from parties.data import consent
from parties.federation import init_federation
from parties.ledger.patients import PatientLedger, PatientStore, store_path
from smpc.chain import patients
from smpc.chain.errors import ChainStoreError


def _hospital(root: Path) -> MemberConfig:
    members = {m.name: m for m in init_federation("fed", ["h-a", "h-b"], ["analyst"], [], root)}
    data = replace(members["h-a"].data, kind="csv", path=root / "rows.csv", patient_id="id")
    return replace(members["h-a"], data=data)


def _expected(secret: bytes, job: str, salt: bytes, ids: list[str]) -> bytes:
    keys = b"".join(hmac.digest(secret, p.encode("utf-8"), "sha256") for p in ids)
    array = np.frombuffer(keys, dtype=np.uint8).reshape(len(ids), 32)
    return patients.leaves(patients.job_key(secret, job, salt), array).tobytes()


def test_the_commitment_is_over_the_hmac_keys_of_the_selected_ids(tmp_path: Path) -> None:
    member = _hospital(tmp_path)
    ledger = PatientLedger(member)
    try:
        chosen = ["MRN-3", "MRN-1", "MRN-3", "Zoë", ""]
        for job in ("job-1", "job-2"):  # the second finds every key remembered
            ledger.selected(job, np.array(chosen))
            commitment, notes = ledger.commit(job)
            ledger.kept(job)
            secret = consent.load_secret(member)
            assert secret is not None
            salt = bytes.fromhex(str(notes["patients_salt"]))
            leaves = _expected(secret, job, salt, chosen)
            assert (commitment, notes["patients_count"]) == (patients.commit(salt, leaves)[0], 4)
            with PatientStore(store_path(member), readonly=True) as store:
                kept = store.get(job)
            assert kept is not None and (kept.salt, kept.leaves) == (salt, leaves)
        commitment, notes = ledger.commit("never-selected")  # ended before choosing rows
        assert notes["patients_count"] == 0
        ledger.kept("never-selected")
    finally:
        ledger.close()


def test_leaves_that_cannot_be_stored_stop_the_record(tmp_path: Path) -> None:
    member = _hospital(tmp_path)
    store_path(member).mkdir(parents=True)  # a folder where the database should be
    ledger = PatientLedger(member)
    try:
        ledger.selected("job-1", np.array(["MRN-1"]))
        ledger.commit("job-1")
        with pytest.raises(ChainStoreError):
            ledger.kept("job-1")
    finally:
        ledger.close()


def test_keys_handed_over_with_the_ids_give_their_commitment(tmp_path: Path) -> None:
    member = _hospital(tmp_path)
    secret = consent.load_secret(member, create=True)
    assert secret is not None
    ledger = PatientLedger(member)
    try:
        chosen = ["MRN-3", "MRN-1", "Zoë"]
        keys = ledger.keys.array(secret, np.array(chosen))
        with pytest.raises(ValueError, match="keys must be"):
            ledger.selected("job-0", np.array(chosen), keys[:2])
        ledger.selected("job-1", np.array(chosen), keys)
        commitment, notes = ledger.commit("job-1")
        ledger.kept("job-1")
        salt = bytes.fromhex(str(notes["patients_salt"]))
        assert commitment == patients.commit(salt, _expected(secret, "job-1", salt, chosen))[0]
    finally:
        ledger.close()
