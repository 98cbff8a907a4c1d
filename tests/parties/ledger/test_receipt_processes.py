"""Patient receipts from a real federation: two hospital processes, a dealer, an analyst.

Consent is opt-out and each hospital keys its patients by the ``id`` column.
A patient of hospital-a is in a first job, revokes consent for statistics, and
is out of the second; the receipt hospital-a issues proves both, checked
against hospital-b's copy of the chain and against a checkpoint alone.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from parties.cli.audit import AuditError, find_record
from parties.client import Client
from parties.ledger.chain_node import CHAIN_DB_FILE
from parties.ledger.receipts import loads
from parties.local.launcher import LocalDeployment

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    deployment = LocalDeployment(
        tmp_path_factory.mktemp("receipts"),
        HOSPITALS,
        name="receipts",
        consent="opt-out",
        patient_id="id",
    )
    try:
        deployment.start_all()
        yield deployment
    finally:
        deployment.close()


def smpc(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parties.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def final_at(fed: LocalDeployment, name: str, job: str, wait_s: float = 30.0) -> int:
    """The height of the final block holding ``job``'s record at ``name``."""
    home = fed.members[name].home
    deadline = time.monotonic() + wait_s
    while True:
        try:
            found = find_record(job, home / CHAIN_DB_FILE, None)
        except AuditError:
            found = None
        if found is not None and found.block is not None:
            return found.block
        assert time.monotonic() < deadline, f"job {job} is not final at {name}"
        time.sleep(0.2)


def test_a_receipt_proves_inclusion_then_exclusion_after_a_revoke(fed, tmp_path) -> None:
    a, b = fed.members["hospital-a"], fed.members["hospital-b"]
    patient = fed.rows["hospital-a"][2][fed.header.index("id")]
    named = re.compile(rf"\b{re.escape(patient)}\b")
    client = Client(fed.members["analyst"])
    try:
        spec = client.job("stats-mean", "3", inputs={h: ["mean_area"] for h in HOSPITALS})
        first = client.submit(spec).job
        revoked = smpc(
            "consent", "revoke", "--config", str(a.config_path), "--patient", "-",
            "--scope", "statistics", stdin=patient + "\n",
        )  # fmt: skip
        assert revoked.returncode == 0, revoked.stderr
        spec = client.job("stats-mean", "3", inputs={h: ["mean_area"] for h in HOSPITALS})
        second = client.submit(spec).job
    finally:
        client.close()
    for job in (first, second):
        for h in HOSPITALS:
            final_at(fed, h, job)
    # audit: hospital-a's signed contribution carries its patients commitment, matching its notes
    audited = smpc("audit", first, "--config", str(a.config_path))
    assert audited.returncode == 0, audited.stderr
    assert "patients commitment" in audited.stdout

    out = tmp_path / "receipt.json"
    issued = smpc(
        "receipt", "issue", "--config", str(a.config_path), "--patient", "-",
        "--since", "2000-01-01", "--out", str(out), stdin=patient + "\n",
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    text = out.read_text(encoding="utf-8")
    assert not named.search(text + issued.stdout + issued.stderr)
    receipt = loads(text)
    by_job = {j["job"]: j["included"] for j in receipt["jobs"]}
    assert by_job == {first: True, second: False}

    # against another hospital's copy of the chain
    page = tmp_path / "receipt.html"
    checked = smpc(
        "receipt", "verify", str(out), "--config", str(b.config_path), "--html", str(page)
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "verifies</b> against hospital-b" in page.read_text(encoding="utf-8")
    assert not named.search(page.read_text(encoding="utf-8"))
    assert "the receipt verifies against hospital-b's copy of the chain" in checked.stdout
    assert "the patient's row was among" in checked.stdout
    assert "the patient's row was not among" in checked.stdout
    assert "Complete: hospital-a took part in 2 jobs in blocks" in checked.stdout
    assert "2 with a proof, 0 to which hospital-a committed no patient set" in checked.stdout
    assert "It does not prove" in checked.stdout

    # against a checkpoint alone
    cp = tmp_path / "checkpoint.json"
    made = smpc("chain", "checkpoint", "--config", str(b.config_path), "--out", str(cp))
    assert made.returncode == 0, made.stderr
    alone = smpc(
        "receipt", "verify", str(out), "--checkpoint", str(cp), "--genesis", str(a.genesis)
    )
    assert alone.returncode == 0, alone.stderr
    assert "verifies against the checkpoint of block" in alone.stdout
    assert "Completeness not checked: a checkpoint does not carry" in alone.stdout

    # one changed byte in a proof is named
    job = receipt["jobs"][0]
    leaf = job["leaf"]
    flipped = ("0" if leaf[0] != "0" else "1") + leaf[1:]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(text.replace(leaf, flipped), encoding="utf-8")
    refused = smpc("receipt", "verify", str(tampered), "--config", str(b.config_path))
    assert refused.returncode == 1
    assert "proof fails" in refused.stderr and "does NOT verify" in refused.stdout

    # nothing in the hospitals' logs names the patient
    for h in HOSPITALS:
        assert not named.search(fed.log_path(h).read_text(encoding="utf-8"))


def test_issue_refuses_a_member_without_patients(fed, tmp_path) -> None:
    analyst = fed.members["analyst"]
    done = smpc(
        "receipt", "issue", "--config", str(analyst.config_path), "--patient", "x",
        "--out", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert done.returncode == 1 and "hospitals issue receipts" in done.stderr
    bad = smpc(
        "receipt", "issue", "--config", str(fed.members["hospital-a"].config_path),
        "--patient", "x", "--since", "yesterday", "--out", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert bad.returncode == 1 and "is not a date" in bad.stderr
    usage = smpc("receipt", "verify", str(tmp_path / "r.json"))
    assert usage.returncode == 2 and "give --config" in usage.stderr
