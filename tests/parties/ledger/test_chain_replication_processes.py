"""Chain replication between real hospital processes: finality, a dead proposer, forged blocks."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time

import pytest

from parties.config import MemberConfig
from parties.ledger.chain_node import CHAIN_DB_FILE
from parties.ledger.chain_store import SqliteChainStore
from parties.ledger.genesis import load_genesis
from parties.local.launcher import LocalDeployment
from parties.service.mesh import Mesh
from smpc.chain.block import Block, make_seal, proposer_index
from smpc.chain.keys import load_private_key
from smpc.chain.messages import Commit, Proposal, encode_message
from smpc.chain.records import ConsentRecord, decode_record
from smpc.chain.store import SealedBlock

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
WAIT_S = 30.0


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    deployment = LocalDeployment(tmp_path_factory.mktemp("replication"), HOSPITALS, name="repl")
    for h in HOSPITALS:
        data = deployment.members[h].data
        deployment.set_data(h, dataclasses.replace(data, patient_id="id"))
    try:
        deployment.start_all()
        yield deployment
    finally:
        deployment.close()


def chain_db(member: MemberConfig):
    return member.home / CHAIN_DB_FILE


def blocks(member: MemberConfig) -> list[SealedBlock]:
    path = chain_db(member)
    if not path.exists():
        return []
    with SqliteChainStore(path, readonly=True) as store:
        return list(store.iterate())


def consent_blocks(member: MemberConfig) -> dict[bytes, SealedBlock]:
    """Each consent record's patient key -> the final block holding it, at ``member``."""
    found = {}
    for entry in blocks(member):
        for data in entry.block.records:
            record = decode_record(data)
            if isinstance(record, ConsentRecord):
                found[record.patient_key] = entry
    return found


def grant(member: MemberConfig, patient: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "parties.cli",
            "consent",
            "grant",
            "--config",
            str(member.config_path),
            "--patient",
            patient,
            "--scope",
            "statistics",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def wait_for_blocks(members, count: int) -> list[SealedBlock]:
    """Wait until every member stores ``count`` consent records; returns the first's blocks."""
    deadline = time.monotonic() + WAIT_S
    while True:
        if all(len(consent_blocks(m)) >= count for m in members):
            return blocks(members[0])
        assert time.monotonic() < deadline, "the records never became final everywhere"
        time.sleep(0.2)


def test_when_the_proposer_dies_the_next_one_proposes_and_it_catches_up_on_restart(fed) -> None:
    genesis = load_genesis(fed.members[HOSPITALS[0]].genesis)
    names = [a.name for a in genesis.authorities]
    height = max(len(blocks(fed.members[h])) for h in HOSPITALS)
    proposer = names[proposer_index(height + 1, 0, len(names))]
    live = [fed.members[h] for h in HOSPITALS if h != proposer]
    before = len(consent_blocks(live[0]))
    fed.stop(proposer, signal.SIGKILL)
    try:
        grant(live[0], "patient-17")
        chain = wait_for_blocks(live, before + 1)
    finally:
        fed.start(proposer)
    new = chain[-1].block
    assert new.round >= 1  # the round changed
    assert names[new.proposer] != proposer
    heads = {blocks(m)[-1].block.hash() for m in live}
    assert len(heads) == 1
    restarted = fed.members[proposer]
    deadline = time.monotonic() + WAIT_S
    while len(blocks(restarted)) < len(chain):
        assert time.monotonic() < deadline, f"{proposer} did not catch up"
        time.sleep(0.2)
    assert blocks(restarted)[len(chain) - 1].block.hash() == new.hash()
    grant(restarted, "patient-18")  # the chain goes on with every node
    wait_for_blocks([fed.members[h] for h in HOSPITALS], before + 2)


def test_forged_blocks_are_refused_and_the_node_stays_on_the_honest_chain(fed) -> None:
    sender = fed.members["hospital-a"]
    target = fed.members["hospital-b"]
    genesis = load_genesis(sender.genesis)
    names = [a.name for a in genesis.authorities]
    key = load_private_key(sender.chain_key.read_bytes())
    me = names.index("hospital-a")
    honest = blocks(target)
    head = honest[-1] if honest else None
    height = len(honest) + 1
    parent = head.block.hash() if head else genesis.hash()
    parent_seals = head.seals if head else ()
    now = time.time_ns() // 1_000_000
    record = ConsentRecord("grant", "hospital-a", bytes(32), "statistics", now).signed_by(key)
    records = [record.encode()]
    wrong_round = next(r for r in range(3) if proposer_index(height, r, 3) != me)
    forged = [
        # a minority of seals: only hospital-a's
        Commit(
            Block.create(
                height, parent, parent_seals, now, proposer_index(height, 0, 3), 0, records
            ),
            (),
        ),
        # a wrong proposer: hospital-a claims a round that is not its turn
        Proposal(Block.create(height, parent, parent_seals, now, me, wrong_round, records)),
    ]
    block = forged[0].block
    forged[0] = Commit(block, (make_seal(key, me, block.hash()),))
    bad = make_seal(key, (me + 1) % 3, block.hash())  # claims another authority's index
    forged.append(
        Commit(block, tuple(sorted([forged[0].seals[0], bad], key=lambda s: s.authority)))
    )
    mesh = Mesh(sender)  # hospital-a's certificate: an authority, so the node checks the blocks
    try:
        for message in forged:
            mesh.chain_send("hospital-b", encode_message(message))
    finally:
        mesh.stop()
    log = (fed.root / "hospital-b.log").read_text()
    assert "below the quorum" in log
    assert "proposer" in log and "refused" in log
    assert "does not verify" in log
    assert [e.block.hash() for e in blocks(target)] == [e.block.hash() for e in honest]
    before = len(consent_blocks(target))
    grant(fed.members["hospital-c"], "patient-19")
    wait_for_blocks([fed.members[h] for h in HOSPITALS], before + 1)
