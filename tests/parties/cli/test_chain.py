"""``smpc chain verify`` and ``smpc chain show`` on SQLite stores, valid and tampered with."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from parties.cli.main import main
from parties.federation import canonical_json, init_federation
from parties.ledger.chain_node import CHAIN_DB_FILE
from parties.ledger.chain_store import SqliteChainStore
from parties.ledger.genesis import load_genesis
from smpc.chain.block import proposer_index
from smpc.chain.checkpoint import check_checkpoint
from smpc.chain.genesis import Genesis
from smpc.chain.ledger import Authority, ChainState

REPO = Path(__file__).resolve().parents[3]


def load_kit() -> ModuleType:
    """The ledger tests' ChainKit module, loaded by path (a conftest cannot be imported)."""
    path = REPO / "tests" / "smpc" / "chain" / "conftest.py"
    spec = importlib.util.spec_from_file_location("chain_kit_for_commands", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ck = load_kit()
BLOCKS = 6
TAMPERED = 4  # the block whose first consent record is edited in the file


def genesis_json(genesis: Genesis) -> str:
    return canonical_json(
        {
            "version": genesis.version,
            "federation": genesis.federation,
            "consent_mode": genesis.consent_mode,
            "created_ms": genesis.created_ms,
            "federation_ca": genesis.federation_ca.hex(),
            "hospitals": [
                {"name": a.name, "chain_public_key": a.public_key.hex()}
                for a in genesis.authorities
            ],
        }
    )


def job_id(label: str) -> str:
    """The id of the kit's job ``label`` among the chain's first two hospitals."""
    return ck.job_spec(label, ["h0", "h1"]).job_id


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Path, Path]:
    """(db, genesis.json) of a ChainKit chain of BLOCKS blocks with job and consent records."""
    kit = ck.ChainKit(4)
    names = list(kit.keys)
    db = tmp_path / "chain.db"
    with SqliteChainStore(db) as store:
        kit.store = store
        for h in range(1, BLOCKS + 1):
            records = [ck.consent(10 * h + j, names[j]) for j in range(2)]
            if h % 3 == 0:
                records.append(ck.job(f"job-{h}", names[:2], {n: kit.keys[n] for n in names[:2]}))
            kit.add_block(records, round=h % 2)
    genesis = tmp_path / "genesis.json"
    genesis.write_text(genesis_json(kit.genesis))
    return db, genesis


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def edit_row(db: Path, height: int, column: str, position: int) -> None:
    raw = sqlite3.connect(db)
    try:
        value = raw.execute(f"SELECT {column} FROM blocks WHERE height = ?", (height,)).fetchone()
        data = bytearray(value[0])
        data[position] ^= 0x01
        raw.execute(f"UPDATE blocks SET {column} = ? WHERE height = ?", (bytes(data), height))
        raw.commit()
    finally:
        raw.close()


# -- verify -------------------------------------------------------------------------


def test_verify_accepts_a_valid_chain(
    capsys: pytest.CaptureFixture[str], chain: tuple[Path, Path]
) -> None:
    db, genesis = chain
    status, out, err = run(capsys, "chain", "verify", "--db", str(db), "--genesis", str(genesis))
    assert status == 0, err
    assert f"{BLOCKS} blocks" in out and "valid" in out


def test_verify_detects_a_byte_edited_in_the_database_file(
    capsys: pytest.CaptureFixture[str], chain: tuple[Path, Path]
) -> None:
    db, genesis = chain
    # A consent record's patient key is 32 distinct bytes; find them in the file
    # itself (the store is closed, so the WAL is checkpointed) and flip one bit.
    patient = ck.consent(10 * TAMPERED).patient_key
    content = bytearray(db.read_bytes())
    assert content.count(patient) == 1
    content[content.index(patient) + 5] ^= 0x01
    db.write_bytes(bytes(content))
    status, out, err = run(capsys, "chain", "verify", "--db", str(db), "--genesis", str(genesis))
    assert status != 0
    assert f"height {TAMPERED}" in err and "field records" in err, err
    assert out == ""


@pytest.mark.parametrize(
    ("column", "position", "field"),
    [
        ("seals", -1, "seals"),  # the last byte of the last signature
        ("block", 0, "block"),  # the encoding's leading type tag: no longer decodes
        ("hash", 3, "hash"),  # the stored hash no longer is the block's
    ],
)
def test_verify_names_height_and_field_of_an_edited_row(
    capsys: pytest.CaptureFixture[str],
    chain: tuple[Path, Path],
    column: str,
    position: int,
    field: str,
) -> None:
    db, genesis = chain
    edit_row(db, 2, column, position)
    status, _, err = run(capsys, "chain", "verify", "--db", str(db), "--genesis", str(genesis))
    assert status != 0
    assert f"height 2, field {field}:" in err, err


def test_verify_exit_status_of_a_real_process(chain: tuple[Path, Path]) -> None:
    db, genesis = chain
    command = [sys.executable, "-m", "parties.cli", "chain", "verify"]
    command += ["--db", str(db), "--genesis", str(genesis)]
    ok = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    edit_row(db, 5, "seals", -1)
    bad = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "height 5, field seals" in bad.stderr


def test_verify_refuses_a_genesis_of_another_federation(
    capsys: pytest.CaptureFixture[str], chain: tuple[Path, Path], tmp_path: Path
) -> None:
    db, _ = chain
    other = tmp_path / "other.json"
    other.write_text(genesis_json(ck.ChainKit(3).genesis))
    status, _, err = run(capsys, "chain", "verify", "--db", str(db), "--genesis", str(other))
    assert status == 1
    assert "height 1, field parent" in err


def test_verify_of_a_missing_store_fails_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, chain: tuple[Path, Path]
) -> None:
    _, genesis = chain
    missing = tmp_path / "nowhere.db"
    status, _, err = run(capsys, "chain", "verify", "--db", str(missing), "--genesis", str(genesis))
    assert status == 1
    assert "no chain database" in err
    assert not missing.exists()


def test_verify_needs_a_store_and_a_genesis(
    capsys: pytest.CaptureFixture[str], chain: tuple[Path, Path]
) -> None:
    db, _ = chain
    status, _, err = run(capsys, "chain", "verify", "--db", str(db))
    assert status == 2
    assert "--genesis" in err


def test_verify_takes_db_and_genesis_from_a_member_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    members = init_federation("fed", ["alpha", "beta", "gamma"], [], [], tmp_path / "fed", 0)
    genesis = Genesis.from_dict(json.loads(members[0].genesis.read_text()))
    keys: dict[bytes, Ed25519PrivateKey] = {}
    for m in members:
        if m.role != "hospital":
            continue
        assert m.chain_key is not None
        k = serialization.load_pem_private_key(m.chain_key.read_bytes(), password=None)
        assert isinstance(k, Ed25519PrivateKey)
        keys[k.public_key().public_bytes_raw()] = k
    authorities = [Authority(keys[a.public_key]) for a in genesis.authorities]
    state = ChainState.start(genesis)
    alpha = next(keys[a.public_key] for a in genesis.authorities if a.name == "alpha")
    member = next(m for m in members if m.name == "beta")
    db = member.home / CHAIN_DB_FILE
    now = time.time_ns() // 1_000_000
    with SqliteChainStore(db) as store:
        for h in range(1, 4):
            proposer = authorities[proposer_index(h, 0, len(authorities))]
            consent = ck.consent(h, "alpha", signed=False).signed_by(alpha)
            block = proposer.propose(state, [consent], genesis.created_ms + h)
            seals = [a.seal(block, state, now) for a in authorities]
            store.append(block, seals)
            state.apply(block, seals, now)
    status, out, err = run(capsys, "chain", "verify", "--config", str(member.config_path))
    assert status == 0, err
    assert "3 blocks" in out and "'fed'" in out
    status, out, _ = run(capsys, "chain", "show", "--config", str(member.config_path), "--json")
    assert status == 0
    shown = json.loads(out)
    assert [b["proposer_name"] for b in shown["blocks"]] == ["beta", "gamma", "alpha"]


# -- show ---------------------------------------------------------------------------


def test_show_json_lists_every_block_and_record(
    capsys: pytest.CaptureFixture[str], chain: tuple[Path, Path]
) -> None:
    db, genesis = chain
    status, out, err = run(
        capsys, "chain", "show", "--db", str(db), "--genesis", str(genesis), "--json"
    )
    assert status == 0, err
    shown = json.loads(out)
    assert shown["federation"] == "testfed"
    assert shown["verified"] is False
    blocks = shown["blocks"]
    assert [b["height"] for b in blocks] == list(range(1, BLOCKS + 1))
    with SqliteChainStore(db, readonly=True) as store:
        for b, entry in zip(blocks, store.iterate(), strict=True):
            assert b["hash"] == entry.block.hash().hex()
            assert b["proposer"] == entry.block.proposer
            assert b["round"] == entry.block.round
            assert b["timestamp_ms"] == entry.block.timestamp_ms
            assert b["seals"] == [s.authority for s in entry.seals]
            assert len(b["records"]) == len(entry.block.records)
    jobs = [r for b in blocks for r in b["records"] if r["kind"] == "job"]
    assert [(r["job_id"], r["status"]) for r in jobs] == [
        (job_id("job-3"), "finished"),
        (job_id("job-6"), "finished"),
    ]
    consents = [r for b in blocks for r in b["records"] if r["kind"] == "consent"]
    assert len(consents) == 2 * BLOCKS
    assert {r["scope"] for r in consents} == {"statistics"}


def test_show_text_has_a_line_per_block_and_record(
    capsys: pytest.CaptureFixture[str], chain: tuple[Path, Path]
) -> None:
    db, genesis = chain
    status, out, _ = run(capsys, "chain", "show", "--db", str(db), "--genesis", str(genesis))
    assert status == 0
    lines = out.splitlines()
    assert "6 blocks" in lines[2]
    block_lines = [line for line in lines[3:] if not line.startswith(" " * 11)]
    assert len(block_lines) == BLOCKS
    assert "3 records" in block_lines[2] and "4 seals" in block_lines[2]
    ids = (job_id("job-3"), job_id("job-6"))
    assert sum(any(f"job {i}" in line for i in ids) and "finished" in line for line in lines) == 2
    assert sum("consent grant" in line for line in lines) == 2 * BLOCKS


def closed_pipe_run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with its standard output on a pipe nobody reads (as ``| head`` leaves)."""
    read, write = os.pipe()
    os.close(read)  # closed before the command writes a byte
    try:
        return subprocess.run(
            command, cwd=REPO, stdout=write, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("extra", [(), ("--json",)])
def test_show_into_a_closed_pipe_exits_quietly(
    chain: tuple[Path, Path], extra: tuple[str, ...]
) -> None:
    db, genesis = chain
    command = [sys.executable, "-m", "parties.cli", "chain", "show", *extra]
    done = closed_pipe_run([*command, "--db", str(db), "--genesis", str(genesis)])
    assert done.returncode == 0
    assert done.stderr == ""


def test_verify_accepts_a_store_holding_only_the_genesis(
    capsys: pytest.CaptureFixture[str], chain: tuple[Path, Path], tmp_path: Path
) -> None:
    _, genesis = chain
    empty = tmp_path / "empty.db"
    SqliteChainStore(empty).close()
    status, out, err = run(capsys, "chain", "verify", "--db", str(empty), "--genesis", str(genesis))
    assert status == 0, err
    assert "genesis only" in out


# -- checkpoints --------------------------------------------------------------------


def test_a_checkpoint_of_the_head_checks_out_and_a_forged_one_does_not(
    capsys: pytest.CaptureFixture[str], chain: tuple[Path, Path], tmp_path: Path
) -> None:
    db, genesis = chain
    out_file = tmp_path / "checkpoint.json"
    status, out, err = run(
        capsys,
        "chain",
        "checkpoint",
        "--db",
        str(db),
        "--genesis",
        str(genesis),
        "--out",
        str(out_file),
    )
    assert status == 0, err
    data = json.loads(out_file.read_text())
    with SqliteChainStore(db, readonly=True) as store:
        head = store.head()
    assert data["height"] == BLOCKS and data["block"] == head.block.hash().hex()
    status, out, err = run(
        capsys, "chain", "check-checkpoint", str(out_file), "--genesis", str(genesis)
    )
    assert status == 0, err
    assert f"block {BLOCKS}" in out and "the genesis authority set" in out
    data["block"] = "00" * 32  # the seals no longer match the block named
    out_file.write_text(json.dumps(data))
    status, out, err = run(capsys, "chain", "check-checkpoint", str(out_file))
    assert status == 1 and "does not verify" in err


def test_a_checkpoint_with_too_few_seals_or_of_another_genesis_is_refused(
    capsys: pytest.CaptureFixture[str], chain: tuple[Path, Path], tmp_path: Path
) -> None:
    db, genesis = chain
    status, out, _ = run(capsys, "chain", "checkpoint", "--db", str(db), "--genesis", str(genesis))
    data = json.loads(out)
    data["seals"] = data["seals"][:1]
    path = tmp_path / "few.json"
    path.write_text(json.dumps(data))
    status, _, err = run(capsys, "chain", "check-checkpoint", str(path))
    assert status == 1 and "below the quorum" in err
    other = tmp_path / "other-genesis.json"
    other.write_text(genesis_json(ck.ChainKit(3).genesis))
    data = json.loads(out)
    path.write_text(json.dumps(data))
    status, _, err = run(capsys, "chain", "check-checkpoint", str(path), "--genesis", str(other))
    assert status == 1 and "another genesis" in err


def test_a_checkpoint_of_an_earlier_height_checks_out(
    capsys: pytest.CaptureFixture[str], chain: tuple[Path, Path]
) -> None:
    db, genesis = chain
    where = ("--db", str(db), "--genesis", str(genesis))
    status, out, err = run(capsys, "chain", "checkpoint", *where, "--height", "2")
    assert status == 0, err
    data = json.loads(out)
    with SqliteChainStore(db, readonly=True) as store:
        block = store.get(2)
    assert block is not None
    assert data["height"] == 2 and data["block"] == block.block.hash().hex()
    assert data["timestamp_ms"] == block.block.timestamp_ms
    assert check_checkpoint(data, load_genesis(genesis)).startswith("block 2 ")
    status, _, err = run(capsys, "chain", "checkpoint", *where, "--height", str(BLOCKS + 1))
    assert status == 1 and f"height {BLOCKS + 1} is not a block of this chain" in err
