"""Job records, audit and consent between real processes (three hospitals, a dealer).

One federation (opt-out consent, each hospital's CSV with its ``id`` column as
the patient identifier) serves every test of the module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from parties.cli.audit import AuditError, find_record, wait_for_record
from parties.cli.main import main
from parties.client import Client, JobFailed
from parties.config import DataConfig, MemberConfig, write_config
from parties.data.consent import record_consent, secret_path
from parties.jobs.spec import sign_job
from parties.ledger.chain_node import CHAIN_DB_FILE
from parties.ledger.chain_store import SqliteChainStore
from parties.ledger.record_store import RecordStore, records_path
from parties.local.launcher import LocalDeployment
from parties.service import wire_pb2
from parties.service.job_record import digest_of_replies
from smpc.chain.keys import load_private_key
from smpc.chain.records import ConsentRecord, JobRecord, decode_record

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    deployment = LocalDeployment(
        tmp_path_factory.mktemp("ledger"),
        HOSPITALS,
        name="ledger",
        consent="opt-out",
        patient_id="id",
    )
    try:
        deployment.start_all()
        yield deployment
    finally:
        deployment.close()


@pytest.fixture(scope="module")
def client(fed):
    c = Client(fed.members["analyst"])
    yield c
    c.close()


def smpc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parties.cli", *args], capture_output=True, text=True, timeout=60
    )


def column(fed: LocalDeployment, name: str, skip: frozenset[str] = frozenset()) -> np.ndarray:
    """A numeric column over every hospital's rows, leaving out the patients in ``skip``."""
    j, key = fed.header.index(name), fed.header.index("id")
    return np.array([float(r[j]) for rows in fed.rows.values() for r in rows if r[key] not in skip])


def test_a_finished_job_leaves_the_same_signed_record_at_every_hospital(fed, client) -> None:
    outcome = client.submit(
        client.job("stats-mean", "3", inputs={h: ["mean_area"] for h in HOSPITALS})
    )
    records = [wait_for_record(fed.members[h], outcome.job) for h in HOSPITALS]
    assert all(r.encode() == records[0].encode() for r in records)
    record = records[0]
    assert record.status == "finished" and record.failure is None
    assert [c.party for c in record.contributions] == list(HOSPITALS)
    assert all(len(c.signature) == 64 for c in record.contributions)
    assert record.channel_mismatches() == []
    # The analyst, holding every share and key, recomputes the digest; nobody else can.
    assert record.output_digest == digest_of_replies(outcome.replies)
    assert dict(record.outputs) == {h: ("analyst",) for h in ("count", "dropped", "sum")}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def final_block_of(member: MemberConfig, job: str, wait_s: float = 20.0) -> bytes:
    """The hash of the final block holding the job's record at ``member`` (waiting for it)."""
    home = member.home
    deadline = time.monotonic() + wait_s
    while True:
        try:
            found = find_record(job, home / CHAIN_DB_FILE, records_path(member))
        except AuditError:  # not kept yet
            found = None
        if found is not None and found.block is not None:
            with SqliteChainStore(home / CHAIN_DB_FILE, readonly=True) as store:
                return store.get(found.block).block.hash()
        assert time.monotonic() < deadline, f"the record of {job} is not final at {member.name}"
        time.sleep(0.2)


def test_a_jobs_record_is_final_in_one_block_at_every_hospital_and_audits_there(
    fed, client
) -> None:
    outcome = client.submit(
        client.job("stats-count", "3", inputs={h: ["mean_radius"] for h in HOSPITALS})
    )
    blocks = {final_block_of(fed.members[h], outcome.job) for h in HOSPITALS}
    assert len(blocks) == 1  # the same final block everywhere
    for h in HOSPITALS:
        done = smpc("audit", outcome.job, "--config", str(fed.members[h].config_path))
        assert done.returncode == 0, done.stderr
        assert "audit passed: 3 contributions; checked against this member's own notes" in (
            done.stdout
        )
        assert "  block " in done.stdout and all(x in done.stdout for x in HOSPITALS)
        verified = smpc("chain", "verify", "--config", str(fed.members[h].config_path))
        assert verified.returncode == 0, verified.stderr
    config = str(fed.members["hospital-b"].config_path)
    as_json = json.loads(smpc("audit", outcome.job, "--config", config, "--json").stdout)
    assert as_json["ok"] and as_json["status"] == "finished" and as_json["findings"] == []
    assert [c["party"] for c in as_json["contributions"]] == list(HOSPITALS)


def _store_with(path: Path, record: JobRecord, notes: dict | None = None) -> Path:
    with RecordStore(path) as store:
        store.add_pending(record, job=record.job_id)
        if notes is not None:
            store.keep_notes(record.job_id, notes)
    return path


def _chain_key(fed: LocalDeployment, name: str):
    return load_private_key(fed.members[name].chain_key.read_bytes())


def test_audit_names_a_tampered_record_and_a_mismatched_transcript(
    fed, client, tmp_path, capsys
) -> None:
    outcome = client.submit(
        client.job("stats-count", "3", inputs={h: ["mean_radius"] for h in HOSPITALS})
    )
    record = wait_for_record(fed.members["hospital-a"], outcome.job)
    genesis = str(fed.members["hospital-a"].genesis)
    b = record.contribution("hospital-b")
    forged = dict(b.sent) | {"hospital-c": hashlib.sha256(b"forged").hexdigest()}
    changed = dataclasses.replace(b, sent=tuple(sorted(forged.items())))
    contributions = tuple(changed if c.party == "hospital-b" else c for c in record.contributions)
    tampered = dataclasses.replace(record, contributions=contributions)

    # Edited after signing: hospital-b's signature no longer verifies, and the channel disagrees.
    db = _store_with(tmp_path / "edited.db", tampered)
    status, _, err = cli(capsys, "audit", outcome.job, "--records", str(db), "--genesis", genesis)
    assert status == 1
    assert "party hospital-b, field signature: does not verify" in err
    assert "party hospital-b, channel hospital-b -> hospital-c, field sent/received" in err

    # Signed by hospital-b as it is: the signatures verify, the channel still does not.
    resigned = tampered.signed_by("hospital-b", _chain_key(fed, "hospital-b"))
    db = _store_with(tmp_path / "resigned.db", resigned)
    status, _, err = cli(capsys, "audit", outcome.job, "--records", str(db), "--genesis", genesis)
    assert status == 1 and "signature" not in err
    assert "party hospital-b, channel hospital-b -> hospital-c, field sent/received" in err

    # An output digest that is not the digest of the signed output tags.
    db = _store_with(tmp_path / "digest.db", dataclasses.replace(record, output_digest=bytes(32)))
    status, _, err = cli(capsys, "audit", outcome.job, "--records", str(db), "--genesis", genesis)
    assert status == 1 and "field output_digest: is not the digest" in err

    # A member's own notes disagree with the record it holds.
    with RecordStore(records_path(fed.members["hospital-a"]), readonly=True) as store:
        notes = store.notes(outcome.job)
    assert notes is not None and notes["party"] == "hospital-a"
    notes["received"]["hospital-c"] = "0" * 64
    db = _store_with(tmp_path / "notes.db", record, notes)
    status, _, err = cli(capsys, "audit", outcome.job, "--records", str(db), "--genesis", genesis)
    assert status == 1
    assert "party hospital-a, channel hospital-c -> hospital-a, field received: differs" in err


def test_audit_refuses_unknown_jobs_and_malformed_records(fed, tmp_path, capsys) -> None:
    config = str(fed.members["hospital-a"].config_path)
    unknown = hashlib.sha256(b"no such job").hexdigest()
    status, _, err = cli(capsys, "audit", unknown, "--config", config)
    assert status == 1 and f"no record of job {unknown}" in err
    status, _, err = cli(capsys, "audit", "not-a-job", "--config", config)
    assert status == 2 and "is not a job id" in err
    db = tmp_path / "bad.db"
    RecordStore(db).close()
    with sqlite3.connect(db) as raw:
        raw.execute(
            "INSERT INTO pending VALUES (?, 'job', ?, ?, 0)", (b"x" * 32, unknown, b"\x01junk")
        )
    genesis = str(fed.members["hospital-a"].genesis)
    status, _, err = cli(capsys, "audit", unknown, "--records", str(db), "--genesis", genesis)
    assert status == 1 and f"the pending record of job {unknown} is malformed" in err


def test_an_aborted_job_leaves_a_record_with_its_failure(fed, client) -> None:
    # hospital-a's own rows are below the minimum cohort: it refuses, the others abort.
    inputs = {h: (["mean_radius"], "id < 4" if h == "hospital-a" else None) for h in HOSPITALS}
    job = client.job("stats-count", "3", inputs=inputs)
    with pytest.raises(JobFailed):
        client.submit(job)
    records = [wait_for_record(fed.members[h], job.job_id) for h in HOSPITALS]
    record = records[0]
    assert all(r.encode() == record.encode() for r in records)
    assert record.status == "aborted" and record.output_digest == b""
    assert record.failure is not None
    assert (record.failure.party, record.failure.kind) == ("hospital-a", "local-data")
    assert [c.party for c in record.contributions] == list(HOSPITALS)
    config = str(fed.members["hospital-c"].config_path)
    assert smpc("audit", job.job_id, "--config", config).returncode == 0


def _sum_job(client: Client):
    job = client.job("stats-mean", "3", inputs={h: ["mean_area"] for h in HOSPITALS})
    return client.submit(job).outputs


def _revoke(fed, member, patient: str, scope: str) -> None:
    done = smpc(
        "consent", "revoke", "--config", str(member.config_path), "--patient", patient,
        "--scope", scope,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # as a word: a short id such as "11" may turn up inside the printed record hash
    named = re.compile(rf"\b{re.escape(patient)}\b")
    assert not named.search(done.stdout) and not named.search(done.stderr)


def test_a_revoke_removes_the_patient_from_the_next_job_only_for_its_scope(fed, client) -> None:
    member = fed.members["hospital-b"]
    patient = fed.rows["hospital-b"][3][fed.header.index("id")]
    before = _sum_job(client)
    assert before["count"].tolist() == [len(column(fed, "mean_area"))]  # opt-out: all count
    # A revoke for another purpose leaves the patient's row in a statistics job.
    _revoke(fed, member, patient, "model-training")
    other = _sum_job(client)
    np.testing.assert_allclose(other["sum"], [column(fed, "mean_area").sum()], rtol=1e-6)
    _revoke(fed, member, patient, "statistics")
    after = _sum_job(client)
    remaining = column(fed, "mean_area", skip=frozenset({patient}))
    assert after["count"].tolist() == [len(remaining)]
    np.testing.assert_allclose(after["sum"], [remaining.sum()], rtol=1e-6)
    # A later grant for every scope brings the row back.
    with RecordStore(records_path(member)) as store:
        record_consent(member, store, "grant", patient, "all")
    assert _sum_job(client)["count"].tolist() == [len(column(fed, "mean_area"))]


def test_the_chain_alone_does_not_link_a_consent_record_to_the_patient(fed) -> None:
    member = fed.members["hospital-c"]
    patient = "MRN 2026-000417"  # long enough that its bytes cannot turn up by chance
    with RecordStore(records_path(member)) as store:
        kept = record_consent(member, store, "revoke", patient, "model-inference")
        stored = [data for _, data in store.pending("consent")]
    data = kept.encode()
    assert data in stored
    raw = patient.encode()
    assert raw not in data and hashlib.sha256(raw).digest() not in data
    assert kept.patient_key != hashlib.sha256(raw).digest()
    # Only the hospital's secret links it: HMAC-SHA256 of the identifier under it.
    secret = secret_path(member)
    assert secret.stat().st_mode & 0o777 == 0o600
    assert kept.patient_key == hmac.new(secret.read_bytes(), raw, hashlib.sha256).digest()
    record = decode_record(data)
    assert isinstance(record, ConsentRecord)
    assert record.signature_valid(_chain_key(fed, "hospital-c").public_key().public_bytes_raw())


def test_consent_refuses_an_unknown_scope_and_a_hospital_without_patient_data(
    fed, tmp_path, capsys
) -> None:
    member = fed.members["hospital-a"]
    args = ("--patient", "17", "--scope")
    status, _, err = cli(
        capsys, "consent", "grant", "--config", str(member.config_path), *args, "research"
    )
    assert status == 1 and "scope 'research' is not one of all, statistics" in err
    cases = {
        "no data source": DataConfig(),
        "names no patient_id column": dataclasses.replace(member.data, patient_id=None),
        "has no patient_id column 'mrn'": dataclasses.replace(member.data, patient_id="mrn"),
    }
    for i, (message, data) in enumerate(cases.items()):
        path = member.config_path.parent / f"variant-{i}.toml"
        write_config(dataclasses.replace(member, data=data), path)
        status, _, err = cli(capsys, "consent", "grant", "--config", str(path), *args, "all")
        assert status == 1 and message in err, err
    analyst = str(fed.members["analyst"].config_path)
    status, _, err = cli(capsys, "consent", "grant", "--config", analyst, *args, "all")
    assert status == 1 and "consent is kept by hospitals" in err


def test_a_restarted_hospital_still_refuses_a_replayed_job(fed, client) -> None:
    job = client.job("stats-count", "3", inputs={h: ["mean_radius"] for h in HOSPITALS})
    signed = sign_job(job, client.member.tls.key, client.member.tls.cert)
    client.submit_signed(signed, job)
    record = wait_for_record(fed.members["hospital-a"], job.job_id)
    fed.stop("hospital-a")
    fed.start("hospital-a")
    request = wire_pb2.SubmitRequest(signed_job=signed.to_json().encode())
    reply = client._stub("hospital-a").Submit(request, timeout=30)
    assert not reply.ok and reply.failure_kind == "refused: replay"
    assert wait_for_record(fed.members["hospital-a"], job.job_id) == record
