"""A live federation to attack: 3 hospital processes, a model owner, a dealer, two analysts.

``analyst`` is accepted everywhere; ``outsider`` is a member of the federation
whose analyst certificate hospital-a's policy does not accept. No policy
accepts the model owner as an output recipient, and no policy permits
revealing probabilities. Consent is opt-out and hospital-a keys consent by its
``id`` column; patient 1 (at hospital-a) revoked use of their record for
model inference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from parties.cli.audit import wait_for_record
from parties.client import Client
from parties.config import RESULTS_DIR, DataConfig, load_config, write_config
from parties.data.consent import record_consent
from parties.data.model_file import save_model
from parties.jobs.spec import JobSpec, sign_job
from parties.ledger.record_store import RecordStore, records_path
from parties.local.launcher import LocalDeployment
from parties.service import wire_pb2
from protocols.model import train
from smpc.chain.records import JobRecord

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
MODEL_OWNER = "model-owner"
REVOKED_PATIENT = "1"


def _rewrite(dep: LocalDeployment, name: str, **changes: object) -> None:
    member = dep.members[name]
    write_config(dataclasses.replace(member, **changes), member.config_path)
    dep.members[name] = load_config(member.config_path)


@pytest.fixture(scope="session")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    dep = LocalDeployment(
        tmp_path_factory.mktemp("attacked"),
        HOSPITALS,
        analysts=("analyst", "outsider"),
        model_owners=(MODEL_OWNER,),
        name="attacked",
        consent="opt-out",
    )
    features = dep.header[2:]
    rows = [r for h in HOSPITALS for r in dep.rows[h]]
    x = np.array([[float(v) for v in r[2:]] for r in rows])
    y = np.array([r[1] == "M" for r in rows], dtype=float)
    path = dep.root / "model.npz"
    save_model(train(x, y, features), path)
    dep.set_data(MODEL_OWNER, DataConfig("model", path))
    for name, member in list(dep.members.items()):
        if member.role in ("hospital", "model-owner"):
            recipients = tuple(r for r in member.policy.recipients if r != MODEL_OWNER)
            _rewrite(dep, name, policy=dataclasses.replace(member.policy, recipients=recipients))
    a = dep.members["hospital-a"]
    _rewrite(
        dep,
        "hospital-a",
        policy=dataclasses.replace(a.policy, analysts=("analyst",)),
        data=dataclasses.replace(a.data, patient_id="id"),
    )
    with RecordStore(records_path(dep.members["hospital-a"])) as store:
        record_consent(
            dep.members["hospital-a"], store, "revoke", REVOKED_PATIENT, "model-inference"
        )
    try:
        dep.start_all()
        yield dep
    finally:
        dep.close()


def analyst_view(client: Client, spec: JobSpec) -> tuple[str, dict[str, bytes]]:
    """``client`` submits ``spec``: the job's id, and each party's reply as the analyst gets
    it with that id blanked (and the reply's wall time, which no two jobs share)."""
    signed = sign_job(spec, client.member.tls.key, client.member.tls.cert)
    replies, unreachable = client.replies(signed, spec)
    assert not unreachable, {p: e.code() for p, e in unreachable.items()}
    out = {}
    for party, reply in replies.items():
        blank = wire_pb2.SubmitReply()
        blank.CopyFrom(reply)
        blank.job = ""
        blank.failure = reply.failure.replace(signed.job_id, "<job>")
        blank.seconds = 0.0
        out[party] = blank.SerializeToString(deterministic=True)
    return signed.job_id, out


@pytest.fixture(scope="session")
def analyst_view_of() -> Callable[[Client, JobSpec], tuple[str, dict[str, bytes]]]:
    """:func:`analyst_view`, for test modules (they cannot import a conftest)."""
    return analyst_view


class Kit:
    """The attacker's and the auditor's view of the federation, for the tests to share.

    (Test modules cannot import a conftest, so these helpers arrive as a fixture.)
    """

    def __init__(self, dep: LocalDeployment) -> None:
        self.dep = dep
        self.clients = {name: Client(dep.members[name]) for name in ("analyst", "outsider")}

    def seen(self, analyst: str, spec: JobSpec) -> tuple[str, dict[str, bytes]]:
        """The job's id, and each party's reply as the analyst gets it with that id blanked.

        Two jobs differ in their ids and nothing else an analyst could compare,
        so equal replies here mean they told the analyst nothing more.
        """
        return analyst_view(self.clients[analyst], spec)

    def record(self, name: str, job_id: str) -> JobRecord:
        """The record member ``name`` keeps of ``job_id``, pending or final, once it exists."""
        return wait_for_record(self.dep.members[name], job_id)

    @staticmethod
    def public_view(record: JobRecord) -> tuple[object, ...]:
        """What a record says of a job, apart from values tied to its id and salts."""
        return (
            record.protocol,
            record.protocol_version,
            record.parties,
            record.outputs,
            record.status,
            record.failure,
            tuple((c.party, tuple(p for p, _ in c.sent)) for c in record.contributions),
        )

    def results_file(self, name: str, job_id: str) -> Path:
        """Where computing party ``name`` keeps the per-row outputs it got in ``job_id``."""
        return self.dep.members[name].home / RESULTS_DIR / f"{job_id}.npz"

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@pytest.fixture(scope="session")
def kit(attacked: LocalDeployment) -> Iterator[Kit]:
    made = Kit(attacked)
    yield made
    made.close()
