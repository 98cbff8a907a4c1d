"""A fourth hospital joins the chain and later a hospital leaves, with real party processes.

The steps are the ones a hospital's IT staff take, through the CLI:
``smpc federation add-member`` issues the newcomer's certificate and chain key
and lists it at every peer; the peers restart to load it; it starts and
follows the chain; ``smpc authority add`` at two of the three authorities
votes it in, and a job over the four hospitals puts its signed
contribution on the chain, which an audit and its patient's receipt check at
the others; later ``smpc authority remove`` at three of the
four votes hospital-a out. Consent grants make blocks along the way, and
every member's copy of the chain is checked with ``smpc chain verify`` after
each step. The authority set is read from the chain by an independent replay.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from parties.cli.audit import AuditError, find_record
from parties.cli.main import main
from parties.client import Client
from parties.config import DataConfig, MemberConfig, load_config
from parties.ledger.chain_node import CHAIN_DB_FILE
from parties.ledger.chain_store import SqliteChainStore
from parties.ledger.genesis import load_genesis
from parties.ledger.job_check import job_check
from parties.local.launcher import LocalDeployment
from smpc.chain.keys import load_private_key, public_bytes, signature_valid
from smpc.chain.records import ConsentRecord, JobRecord, decode_record
from smpc.chain.verify import ChainState, replay

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
NEW = "hospital-d"
WAIT_S = 30.0


def state_of(member: MemberConfig) -> ChainState:
    """``member``'s chain as an independent replay from the genesis sees it."""
    genesis = load_genesis(member.genesis)
    path = member.home / CHAIN_DB_FILE
    if not path.exists():
        return ChainState.start(genesis)
    with SqliteChainStore(path, readonly=True) as store:
        return replay(store, genesis, time.time_ns() // 1_000_000, jobs=job_check(genesis))


def consent_count(member: MemberConfig) -> int:
    path = member.home / CHAIN_DB_FILE
    if not path.exists():
        return 0
    with SqliteChainStore(path, readonly=True) as store:
        return sum(
            isinstance(decode_record(data), ConsentRecord)
            for entry in store.iterate()
            for data in entry.block.records
        )


def wait_until(what: str, check) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def run(capsys, *argv: str) -> str:
    status = main(list(argv))
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def grant(capsys, member: MemberConfig, patient: str) -> None:
    run(capsys, "consent", "grant", "--config", str(member.config_path),
        "--patient", patient, "--scope", "statistics")  # fmt: skip


def run_job(fed: LocalDeployment, hospitals: tuple[str, ...]) -> JobRecord:
    """A mean over ``hospitals``; its record once final at every one of them."""
    client = Client(fed.members["analyst"])
    try:
        spec = client.job("stats-mean", "3", inputs={h: ["mean_area"] for h in hospitals})
        job = client.submit(spec).job
    finally:
        client.close()
    found: dict[str, JobRecord] = {}

    def final_everywhere() -> bool:
        for h in hospitals:
            try:
                hit = find_record(job, fed.members[h].home / CHAIN_DB_FILE, None)
            except AuditError:
                return False
            if hit.block is None:
                return False
            found[h] = hit.record
        return True

    wait_until(f"job {job[:12]} is final everywhere", final_everywhere)
    return found[hospitals[0]]


def all_verify(capsys, members: list[MemberConfig]) -> None:
    for member in members:
        out = run(capsys, "chain", "verify", "--config", str(member.config_path))
        assert " is valid: " in out, out


def test_a_fourth_hospital_joins_and_later_a_hospital_is_removed(tmp_path: Path, capsys) -> None:
    fed = LocalDeployment(tmp_path, HOSPITALS, name="joins", patient_id="id", consent="opt-out")
    try:
        fed.start_all()
        a, b, c = (fed.members[h] for h in HOSPITALS)
        grant(capsys, a, "patient-1")
        wait_until("the first grant is final everywhere", lambda: all(
            consent_count(m) == 1 for m in (a, b, c)))  # fmt: skip
        all_verify(capsys, [a, b, c])

        # 1. the federation's operator adds the member; the peers restart to load it
        out = run(capsys, "federation", "add-member", "--dir", str(tmp_path / "fed"),
                  "--name", NEW, "--role", "hospital")  # fmt: skip
        d = load_config(tmp_path / "fed" / f"{NEW}.toml")
        public = public_bytes(load_private_key(d.chain_key.read_bytes())).hex()
        assert f"its chain public key: {public}" in out
        assert re.search(rf"smpc authority add .*--name {NEW} --public-key {public}", out)
        data = tmp_path / f"{NEW}.csv"
        shutil.copy(tmp_path / "hospital-a.csv", data)
        fed.members[NEW] = d
        fed.set_data(NEW, DataConfig("csv", data, patient_id="id"))
        for h in (*HOSPITALS, "dealer", "analyst"):
            fed.members[h] = load_config(fed.members[h].config_path)
            assert fed.members[h].peer(NEW).role == "hospital"
            if h != "analyst":
                fed.stop(h)
                fed.start(h)
        a, b, c, d = (fed.members[h] for h in (*HOSPITALS, NEW))
        fed.start(NEW)
        wait_until(f"{NEW} has synced the chain as a follower", lambda: consent_count(d) == 1)
        assert [x.name for x in state_of(d).authorities] == list(HOSPITALS)
        all_verify(capsys, [a, b, c, d])

        # 2. two of the three authorities vote it in
        vote = tmp_path / "vote-add.json"
        for voter in (a, b):
            out = run(capsys, "authority", "add", "--config", str(voter.config_path),
                      "--name", NEW, "--public-key", public, "--file", str(vote))  # fmt: skip
        assert "filed as a pending record at hospital-b" in out
        wait_until(f"{NEW} is an authority at every member", lambda: all(
            NEW in {x.name for x in state_of(m).authorities} for m in (a, b, c, d)))  # fmt: skip
        grant(capsys, d, "patient-2")  # its own record, signed by its chain key
        wait_until("the new authority's grant is final everywhere", lambda: all(
            consent_count(m) == 2 for m in (a, b, c, d)))  # fmt: skip
        all_verify(capsys, [a, b, c, d])
        assert state_of(a).epoch == 1
        record = run_job(fed, (*HOSPITALS, NEW))
        keys = {m.name: load_private_key(m.chain_key.read_bytes()) for m in (a, b, c, d)}
        assert record.status == "finished"
        assert sorted(x.party for x in record.contributions) == sorted((*HOSPITALS, NEW))
        for x in record.contributions:  # each signed by its own chain key, the newcomer's too
            public = public_bytes(keys[x.party])
            assert signature_valid(public, x.signature, record.signing_message(x.party))
        all_verify(capsys, [a, b, c, d])
        audited = run(capsys, "audit", record.job_id, "--config", str(d.config_path))
        assert "chain authority" not in audited and "genesis" not in audited
        # the newcomer's receipt verifies at a genesis member: its key comes from the vote
        patient = fed.rows["hospital-a"][0][fed.header.index("id")]
        receipt = tmp_path / "receipt-d.json"
        run(capsys, "receipt", "issue", "--config", str(d.config_path), "--patient", patient,
            "--out", str(receipt))  # fmt: skip
        checked = run(capsys, "receipt", "verify", str(receipt), "--config", str(a.config_path))
        assert "the patient's row was among" in checked
        assert f"Complete: {NEW} took part in 1 jobs" in checked

        # 3. three of the four vote hospital-a out; it keeps following the chain
        key_a = public_bytes(load_private_key(a.chain_key.read_bytes())).hex()
        vote = tmp_path / "vote-remove.json"
        for voter in (b, c, d):
            config, file = str(voter.config_path), str(vote)
            out = run(capsys, "authority", "remove", "--config", config,
                      "--name", "hospital-a", "--public-key", key_a, "--file", file)  # fmt: skip
        assert f"filed as a pending record at {NEW}" in out
        expected = ["hospital-b", "hospital-c", NEW]
        wait_until("hospital-a is out at every member", lambda: all(
            sorted(x.name for x in state_of(m).authorities) == expected
            for m in (a, b, c, d)))  # fmt: skip
        grant(capsys, c, "patient-3")
        wait_until("a grant after the removal is final everywhere", lambda: all(
            consent_count(m) == 3 for m in (a, b, c, d)))  # fmt: skip
        all_verify(capsys, [a, b, c, d])
        heads = {state_of(m).head_hash for m in (a, b, c, d)}
        assert len(heads) == 1
        assert state_of(b).epoch == 2
    finally:
        fed.close()
