"""Patient receipts: a hospital's per-job patient commitment, and issuing a receipt.

Scenario: a federation of 2 hospitals, both chain authorities; hospital-a
keys its patients by an identifier column.

- per job: what hospital-a's node does for 10^5 selected rows (every other
  row of a 2x10^5-row source, in the source's order, as a filter selects
  them), from the identifiers, with their keys remembered from an earlier
  job, to the commitment and root, the leaves handed to the thread that
  stores them (:class:`parties.ledger.patients.PatientLedger`: ``selected``
  starts it on a thread as the job starts, ``commit`` waits for it at the
  end). Timed twice: all of it back to back, and what is left at the end of
  a job that ran 50 ms. Target: < 5 ms. Also timed, part by part: the key look-up (also with the
  rows shuffled, which defeats the look-up's in-order window), the
  commitment from the keys (job key, one AES call, the Numba counting sort,
  the bucketed Merkle tree), identifiers never seen (one HMAC each, once per
  patient per node start), and keeping the leaves in ``patients.db`` (off
  the reply's critical path: it runs while the record is assembled).
- issue: :func:`parties.ledger.receipts.issue` for one patient over 1,000
  finished jobs (200 patients each at hospital-a, 10 job records per block,
  in a ``MemoryStore``), with every proof, the headers and the scan of the
  range that makes the receipt complete. Target: < 1 s.

Trust model: none at stake; these time hashing and proofs, not a protocol.

Run::

    .venv/bin/python -m pytest benchmarks/test_receipts.py --benchmark-enable --benchmark-only -q

Numbers swing twofold with the machine's load; compare medians taken together.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from parties.federation import init_federation
from parties.jobs.spec import InputSpec, JobSpec, sign_job
from parties.ledger.genesis import load_genesis
from parties.ledger.patients import (
    JobPatients,
    PatientKeys,
    PatientLedger,
    PatientStore,
    patient_keys,
)
from parties.ledger.receipts import issue
from smpc.chain import patients
from smpc.chain.block import Block
from smpc.chain.keys import load_private_key
from smpc.chain.records import Contribution, JobRecord, Party
from smpc.chain.store import MemoryStore

HOSPITALS = ("hospital-a", "hospital-b")
ROWS = 100_000
JOBS = 1_000
PER_JOB = 200
PER_BLOCK = 10


def _commit(secret: bytes, keys: np.ndarray) -> bytes:
    salt = secrets.token_bytes(32)
    return patients.commit(salt, patients.leaves(patients.job_key(secret, "job", salt), keys))[0]


def _ids() -> list[str]:
    return [f"MRN-{i:07d}" for i in range(ROWS)]


def _source() -> np.ndarray:
    """A 2x10^5-row source's identifier column, in no particular order."""
    drawn = np.random.default_rng(0).permutation(10 * ROWS)[: 2 * ROWS]
    return np.array([f"MRN-{i:07d}" for i in drawn])


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PatientLedger]:
    root: Path = tmp_path_factory.mktemp("ledger")
    member = {m.name: m for m in init_federation("fed", HOSPITALS, ["analyst"], [], root)}[
        "hospital-a"
    ]
    data = replace(member.data, kind="csv", path=root / "rows.csv", patient_id="id")  # not read
    member = replace(member, data=data)
    node = PatientLedger(member)
    assert node.active
    node.selected("warm-up", _source())  # an earlier job over the whole source
    node.commit("warm-up")
    node.kept("warm-up")
    yield node
    node.close()


@pytest.mark.parametrize("wait", ["all of it", "at the job's end"])
def test_per_job_from_identifiers_keys_remembered(
    benchmark: BenchmarkFixture, ledger: PatientLedger, wait: str
) -> None:
    """All of it: the rows chosen, then the commitment at once (as if the job took no time).
    At the job's end: what is left once the job ran longer than the commitment takes."""
    selection = np.ascontiguousarray(_source()[::2])  # the rows a filter kept, as a new array
    jobs: list[str] = []

    def setup() -> None:  # untimed: the last job's leaves stored
        if jobs:
            ledger.kept(jobs[-1])
        jobs.append(f"job {len(jobs)}")
        if wait != "all of it":
            ledger.selected(jobs[-1], selection)
            time.sleep(0.05)  # the job runs

    def run() -> None:
        if wait == "all of it":
            ledger.selected(jobs[-1], selection)
        ledger.commit(jobs[-1])

    benchmark.pedantic(run, setup=setup, rounds=30, warmup_rounds=2)
    ledger.kept(jobs[-1])
    benchmark.extra_info["rows"] = len(selection)


@pytest.mark.parametrize("order", ["source", "shuffled"])
def test_key_lookup_remembered(benchmark: BenchmarkFixture, order: str) -> None:
    secret, source, remembered = secrets.token_bytes(32), _source(), PatientKeys()
    remembered.array(secret, source)
    selection = np.ascontiguousarray(source[::2])
    if order == "shuffled":
        selection = selection[np.random.default_rng(1).permutation(len(selection))]
    benchmark.pedantic(lambda: remembered.array(secret, selection), rounds=30, iterations=1)
    benchmark.extra_info["rows"] = len(selection)


def test_commitment_from_patient_keys(benchmark: BenchmarkFixture) -> None:
    secret = secrets.token_bytes(32)
    keys = patient_keys(secret, _ids())
    _commit(secret, keys)  # compile the sort once
    benchmark.pedantic(_commit, args=(secret, keys), rounds=30, iterations=1)
    benchmark.extra_info["rows"] = ROWS


def test_commitment_from_identifiers_never_seen(benchmark: BenchmarkFixture) -> None:
    secret, ids = secrets.token_bytes(32), _ids()
    benchmark.pedantic(lambda: _commit(secret, patient_keys(secret, ids)), rounds=3, iterations=1)
    benchmark.extra_info["rows"] = ROWS


def test_keeping_the_leaves(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    secret = secrets.token_bytes(32)
    leaves = patients.leaves(bytes(32), patient_keys(secret, _ids())).tobytes()
    jobs = iter(range(10**6))
    with PatientStore(tmp_path / "patients.db") as store:
        benchmark.pedantic(
            lambda: store.keep(JobPatients(f"job {next(jobs)}", 1, bytes(32), leaves)),
            rounds=15,
            iterations=1,
        )
    benchmark.extra_info["rows"] = ROWS


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root: Path = tmp_path_factory.mktemp("receipts")
    members = {m.name: m for m in init_federation("fed", HOSPITALS, ["analyst"], [], root)}
    genesis = load_genesis(members["hospital-a"].genesis)
    keys = {h: load_private_key(members[h].chain_key.read_bytes()) for h in HOSPITALS}  # type: ignore[union-attr]
    analyst = members["analyst"]
    secret = secrets.token_bytes(32)
    population = [f"MRN-{i:05d}" for i in range(5 * PER_JOB)]
    now = time.time_ns() // 1_000_000
    template = JobSpec(
        federation="fed",
        protocol="pooled-sum",
        protocol_version="1",
        analyst="analyst",
        parties=HOSPITALS,
        inputs={h: InputSpec(("age",)) for h in HOSPITALS},
        outputs={"sum": ("analyst",)},
        deadline_ms=now + 60_000,
    )
    signed = sign_job(template, analyst.tls.key, analyst.tls.cert)
    chain, kept, records = MemoryStore(), [], []
    parent = genesis.hash()
    for n in range(JOBS):
        # One analyst signature reused: the receipt reads the spec, not the signature.
        job_id = hashlib.sha256(f"job {n}".encode()).hexdigest()
        salt = secrets.token_bytes(32)
        chosen = population[n % 5 :: 5][:PER_JOB]
        leaves = patients.leaves(
            patients.job_key(secret, job_id, salt), patient_keys(secret, chosen)
        )
        kept.append(JobPatients(job_id, now + n, salt, leaves.tobytes()))
        record = JobRecord(
            job_id=job_id,
            signed_job=signed.to_json().encode(),
            protocol="pooled-sum",
            protocol_version="1",
            parties=tuple(Party(h, "hospital") for h in HOSPITALS),
            outputs=(("sum", ("analyst",)),),
            output_digest=bytes(32),
            status="finished",
            failure=None,
            contributions=(
                Contribution(
                    "hospital-a", bytes(32), (), (), patients=patients.commit(salt, leaves)[0]
                ),
                Contribution("hospital-b", bytes(32), (), ()),
            ),
        ).signed_by("hospital-a", keys["hospital-a"])
        records.append(record.encode())
        if len(records) == PER_BLOCK:
            block = Block.create(n // PER_BLOCK + 1, parent, (), now, 0, 0, records)
            chain.append(block, [])
            parent, records = block.hash(), []
    return {
        "genesis": genesis,
        "key": keys["hospital-a"],
        "chain": chain,
        "kept": {k.job: k for k in kept}.get,
        "pending": [k.job for k in kept],
        "secret": secret,
    }


def test_issue_a_receipt_over_1000_jobs(benchmark: BenchmarkFixture, history: dict) -> None:
    def run() -> dict:
        return issue(
            hospital="hospital-a",
            key=history["key"],
            genesis=history["genesis"],
            chain=history["chain"],
            kept=history["kept"],
            pending=history["pending"],
            secret=history["secret"],
            patient="MRN-00007",
        )

    receipt = benchmark.pedantic(run, rounds=3, iterations=1)
    assert len(receipt["jobs"]) == JOBS
    assert sum(j["included"] for j in receipt["jobs"]) == JOBS // 5
    benchmark.extra_info["jobs"] = JOBS
