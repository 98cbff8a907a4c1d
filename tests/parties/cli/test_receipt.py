"""``smpc receipt``: the jobs a hospital still holds as pending are named as not final."""

from __future__ import annotations

import time
from pathlib import Path

from parties.cli.receipt import pending_jobs
from parties.federation import init_federation
from parties.jobs.spec import InputSpec, JobSpec, sign_job
from parties.ledger.record_store import RecordStore, records_path
from smpc.chain.records import ConsentRecord, JobRecord, Party

HOSPITALS = ("hospital-a", "hospital-b")


def test_pending_job_records_are_the_jobs_not_final(tmp_path: Path) -> None:
    members = {m.name: m for m in init_federation("fed", HOSPITALS, ["analyst"], [], tmp_path)}
    hospital, analyst = members["hospital-a"], members["analyst"]
    assert pending_jobs(hospital) == []  # no records file yet
    now = time.time_ns() // 1_000_000
    spec = JobSpec(
        federation="fed",
        protocol="pooled-sum",
        protocol_version="1",
        analyst="analyst",
        parties=HOSPITALS,
        inputs={h: InputSpec(("age",)) for h in HOSPITALS},
        outputs={"sum": ("analyst",)},
        deadline_ms=now + 60_000,
    )
    signed = sign_job(spec, analyst.tls.key, analyst.tls.cert)
    record = JobRecord(
        job_id=signed.job_id,
        signed_job=signed.to_json().encode(),
        protocol="pooled-sum",
        protocol_version="1",
        parties=tuple(Party(h, "hospital") for h in HOSPITALS),
        outputs=(("sum", ("analyst",)),),
        output_digest=bytes(32),
        status="finished",
        failure=None,
        contributions=(),
    )
    with RecordStore(records_path(hospital)) as store:
        store.add_pending(record, job=signed.job_id)
        store.add_pending(ConsentRecord("grant", "hospital-a", bytes(32), "statistics", now))
    assert pending_jobs(hospital) == [signed.job_id]
