"""Forged records gossiped by an authority never become final (three hospital processes).

hospital-a, an authority, sends the other chain nodes over gRPC with its own
certificate: an unsigned consent record naming hospital-b, and a job record for
a real job's id that carries another signed job and only hospital-a as a party.
Neither may become final, the honest record of the job must, and
``smpc chain verify`` must pass at every hospital.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import pytest

from parties.client import Client
from parties.config import MemberConfig
from parties.jobs.spec import sign_job
from parties.ledger.chain_node import CHAIN_DB_FILE
from parties.ledger.chain_store import SqliteChainStore
from parties.local.launcher import LocalDeployment
from parties.service.mesh import Mesh
from smpc.chain.keys import load_private_key
from smpc.chain.messages import Gossip, encode_message
from smpc.chain.records import (
    ConsentRecord,
    Contribution,
    JobRecord,
    Party,
    decode_record,
    output_digest,
    record_id,
)

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
WAIT_S = 40.0


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    deployment = LocalDeployment(
        tmp_path_factory.mktemp("chain-records"),
        HOSPITALS,
        name="records",
        consent="opt-out",
        patient_id="id",
    )
    try:
        deployment.start_all()
        yield deployment
    finally:
        deployment.close()


def final_records(member: MemberConfig) -> dict[bytes, bytes]:
    """Every record in a final block at ``member``, by record id."""
    path = member.home / CHAIN_DB_FILE
    if not path.exists():
        return {}
    with SqliteChainStore(path, readonly=True) as store:
        return {record_id(d): d for e in store.iterate() for d in e.block.records}


def final_job(member: MemberConfig, job_id: str) -> JobRecord | None:
    for data in final_records(member).values():
        record = decode_record(data)
        if isinstance(record, JobRecord) and record.job_id == job_id:
            return record
    return None


def forged_job(forger: MemberConfig, job_id: str, other_signed_job: bytes) -> JobRecord:
    """A finished record for ``job_id`` with another signed job, signed by the forger alone."""
    mine = Contribution(
        party=forger.name,
        input_commitment=hashlib.sha256(b"made up").digest(),
        sent=(),
        received=(),
        output_tag=hashlib.sha256(b"made up tag").digest(),
    )
    record = JobRecord(
        job_id=job_id,
        signed_job=other_signed_job,
        protocol="stats-mean",
        protocol_version="3",
        parties=(Party(forger.name, "hospital"),),
        outputs=(("sum", ("analyst",)),),
        output_digest=output_digest({forger.name: mine.output_tag}),
        status="finished",
        failure=None,
        contributions=(mine,),
    )
    return record.signed_by(forger.name, load_private_key(forger.chain_key.read_bytes()))


def test_forged_consent_and_job_records_never_become_final(fed) -> None:
    forger, victim = fed.members["hospital-a"], "hospital-b"
    analyst = fed.members["analyst"]
    client = Client(analyst)
    inputs = {h: ["mean_area"] for h in HOSPITALS}
    spec = client.job("stats-mean", "3", inputs=inputs)
    signed = sign_job(spec, analyst.tls.key, analyst.tls.cert)
    other = client.job("stats-mean", "3", inputs=inputs)  # a different job, another id
    decoy = sign_job(other, analyst.tls.key, analyst.tls.cert).to_json().encode()
    now = time.time_ns() // 1_000_000
    consent = ConsentRecord("grant", victim, hashlib.sha256(b"p").digest(), "statistics", now)
    forged = [consent.encode(), forged_job(forger, signed.job_id, decoy).encode()]

    mesh = Mesh(forger)  # hospital-a's own certificate: an authority of the chain
    try:
        for data in forged:
            for peer in ("hospital-b", "hospital-c"):
                mesh.chain_send(peer, encode_message(Gossip(data)))
    finally:
        mesh.stop()
    time.sleep(3.0)  # long enough for a round change, were the records pending anywhere

    try:
        outcome = client.submit_signed(signed, spec)
    finally:
        client.close()
    honest = signed.to_json().encode()
    deadline = time.monotonic() + WAIT_S
    while any(final_job(fed.members[h], outcome.job) is None for h in HOSPITALS):
        assert time.monotonic() < deadline, "the job's record never became final everywhere"
        time.sleep(0.2)
    for h in HOSPITALS:
        member = fed.members[h]
        record = final_job(member, outcome.job)
        assert record is not None and record.signed_job == honest, (
            f"{h}: the final record of job {outcome.job} is not the honest one"
        )
        assert [c.party for c in record.contributions] == list(HOSPITALS)
        assert not set(map(record_id, forged)) & final_records(member).keys()
        verify = ["chain", "verify", "--config", str(member.config_path)]
        done = subprocess.run(
            [sys.executable, "-m", "parties.cli", *verify],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    for h in ("hospital-b", "hospital-c"):
        log = (fed.root / f"{h}.log").read_text()
        assert "refused" in log and "consent" in log and outcome.job in log
