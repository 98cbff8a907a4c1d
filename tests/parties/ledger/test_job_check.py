"""The chain's check of a job record's signed job, against the CA pinned in the genesis."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from parties.config import MemberConfig
from parties.federation import init_federation
from parties.jobs.spec import InputSpec, JobSpec, SignedJob, sign_job
from parties.ledger import job_check as module
from parties.ledger.genesis import load_genesis
from parties.ledger.job_check import job_check
from smpc.chain.errors import RecordError
from smpc.chain.genesis import Genesis

HOSPITALS = ("hospital-a", "hospital-b")


@pytest.fixture
def fed(tmp_path: Path) -> dict[str, MemberConfig]:
    members = init_federation("fed", HOSPITALS, ["analyst"], [], tmp_path / "fed", base_port=0)
    return {m.name: m for m in members}


def spec_for(federation: str = "fed", analyst: str = "analyst") -> JobSpec:
    now = time.time_ns() // 1_000_000
    return JobSpec(
        federation=federation,
        protocol="pooled-sum",
        protocol_version="1",
        analyst=analyst,
        parties=HOSPITALS,
        inputs={h: InputSpec(("age",)) for h in HOSPITALS},
        outputs={"sum": ("analyst",), "count": ("analyst", "hospital-a")},
        deadline_ms=now + 60_000,
        created_ms=now,
    )


def signed_by(member: MemberConfig, spec: JobSpec) -> SignedJob:
    return sign_job(spec, member.tls.key, member.tls.cert)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_init_pins_the_federation_ca_in_the_genesis(fed: dict[str, MemberConfig]) -> None:
    genesis = load_genesis(fed["analyst"].genesis)
    ca = x509.load_pem_x509_certificate(fed["analyst"].tls.ca_cert.read_bytes())
    assert genesis.version == 2
    assert genesis.federation_ca == ca.public_bytes(serialization.Encoding.DER)


def test_an_analysts_signed_job_gives_its_id_and_what_it_states(
    fed: dict[str, MemberConfig],
) -> None:
    spec = spec_for()
    signed = signed_by(fed["analyst"], spec)
    facts = job_check(load_genesis(fed["analyst"].genesis))(signed.to_json().encode(), now_ms())
    assert facts.job_id == hashlib.sha256(spec.canonical()).hexdigest() == spec.job_id
    assert (facts.protocol, facts.protocol_version) == ("pooled-sum", "1")
    assert facts.parties == HOSPITALS
    assert facts.outputs == (("count", ("analyst", "hospital-a")), ("sum", ("analyst",)))


def test_a_tampered_signature_is_refused(fed: dict[str, MemberConfig]) -> None:
    signed = signed_by(fed["analyst"], spec_for())
    bad = bytearray(signed.signature)
    bad[-1] ^= 1
    forged = dataclasses.replace(signed, signature=bytes(bad))
    check = job_check(load_genesis(fed["analyst"].genesis))
    with pytest.raises(RecordError, match="bad-signature: the signature does not match"):
        check(forged.to_json().encode(), now_ms())


def test_a_job_signed_by_a_hospital_is_refused(fed: dict[str, MemberConfig]) -> None:
    signed = signed_by(fed["hospital-a"], spec_for(analyst="hospital-a"))
    check = job_check(load_genesis(fed["analyst"].genesis))
    with pytest.raises(RecordError, match="not an analyst"):
        check(signed.to_json().encode(), now_ms())


def test_an_analyst_of_another_federation_ca_is_refused(
    fed: dict[str, MemberConfig], tmp_path: Path
) -> None:
    other = init_federation("fed", HOSPITALS, ["analyst"], [], tmp_path / "other", base_port=0)
    stranger = next(m for m in other if m.name == "analyst")
    signed = signed_by(stranger, spec_for())  # same names, a CA the genesis does not pin
    check = job_check(load_genesis(fed["analyst"].genesis))
    with pytest.raises(RecordError, match="not from the federation CA"):
        check(signed.to_json().encode(), now_ms())


def test_a_job_checked_after_the_certificate_expired_is_refused(
    fed: dict[str, MemberConfig],
) -> None:
    signed = signed_by(fed["analyst"], spec_for())
    cert = x509.load_pem_x509_certificate(fed["analyst"].tls.cert.read_bytes())
    after = int(cert.not_valid_after_utc.timestamp() * 1000) + 1
    check = job_check(load_genesis(fed["analyst"].genesis))
    with pytest.raises(RecordError, match="not valid"):
        check(signed.to_json().encode(), after)


def test_bytes_that_are_not_a_signed_job_are_refused(fed: dict[str, MemberConfig]) -> None:
    check = job_check(load_genesis(fed["analyst"].genesis))
    with pytest.raises(RecordError, match="not a signed job"):
        check(b"signed job-1", now_ms())


def test_a_version_1_genesis_cannot_check_jobs_and_says_why(
    fed: dict[str, MemberConfig],
) -> None:
    data = json.loads(fed["analyst"].genesis.read_text())
    del data["federation_ca"]
    old = Genesis.from_dict({**data, "version": 1})
    signed = signed_by(fed["analyst"], spec_for())
    with pytest.raises(RecordError, match="pins no federation CA"):
        job_check(old)(signed.to_json().encode(), now_ms())


def test_a_signed_job_that_passed_is_not_verified_again_in_its_validity(
    fed: dict[str, MemberConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    verify = module.verify_signed_job

    def counted(*args: object) -> object:
        calls.append(args)
        return verify(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "verify_signed_job", counted)
    data = signed_by(fed["analyst"], spec_for()).to_json().encode()
    check = job_check(load_genesis(fed["analyst"].genesis))
    first, second = check(data, now_ms()), check(data, now_ms() + 1000)
    assert first == second
    assert len(calls) == 1


def test_a_signed_job_that_passed_is_refused_after_its_certificate_expired(
    fed: dict[str, MemberConfig],
) -> None:
    signed = signed_by(fed["analyst"], spec_for())
    cert = x509.load_pem_x509_certificate(fed["analyst"].tls.cert.read_bytes())
    after = int(cert.not_valid_after_utc.timestamp() * 1000) + 1
    before = int(cert.not_valid_before_utc.timestamp() * 1000) - 1
    check = job_check(load_genesis(fed["analyst"].genesis))
    check(signed.to_json().encode(), now_ms())
    for when in (after, before):
        with pytest.raises(RecordError, match="not valid"):
            check(signed.to_json().encode(), when)


def test_a_different_signed_job_is_verified_on_its_own(fed: dict[str, MemberConfig]) -> None:
    """A tampered copy of a job that passed is still refused."""
    signed = signed_by(fed["analyst"], spec_for())
    check = job_check(load_genesis(fed["analyst"].genesis))
    check(signed.to_json().encode(), now_ms())
    bad = bytearray(signed.signature)
    bad[-1] ^= 1
    forged = dataclasses.replace(signed, signature=bytes(bad))
    with pytest.raises(RecordError, match="does not match"):
        check(forged.to_json().encode(), now_ms())
