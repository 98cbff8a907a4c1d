"""The SQLite chain store and seal log: round trip, WAL, refusals, and crashes of a real process."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from parties.ledger.chain_store import SqliteChainStore, SqliteSealLog, StoredBlockError
from smpc.chain.block import encode_seals, quorum
from smpc.chain.errors import ChainStoreError, ChainVerificationError, EquivocationError
from smpc.chain.ledger import Authority, MemoryStore, SealedBlock
from smpc.chain.verify import replay, verify_chain

REPO = Path(__file__).resolve().parents[3]
KIT_PATH = REPO / "tests" / "smpc" / "chain" / "conftest.py"


def load_kit() -> ModuleType:
    """The ledger tests' ChainKit module, loaded by path (a conftest cannot be imported)."""
    spec = importlib.util.spec_from_file_location("chain_kit_for_parties", KIT_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ck = load_kit()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sample_chain(blocks: int = 12, n: int = 4) -> Any:
    """A ChainKit whose memory store holds consent, job and vote records and varied seal sets."""
    kit = ck.ChainKit(n)
    names = list(kit.keys)
    for h in range(1, blocks + 1):
        records = [ck.consent(10 * h + j, names[j % n]) for j in range(h % 3)]
        if h % 4 == 0:
            records.append(ck.job(f"job-{h}", names[:3], {m: kit.keys[m] for m in names[:3]}))
        signers = None if h % 2 else range(quorum(n))
        kit.add_block(records, round=h % 2, signers=signers)
    kit.add_key("h9")
    kit.add_block([kit.vote("add", "h9", names)])
    kit.add_block([ck.consent(99_999)])
    return kit


def copy_into(path: Path, entries: Iterable[SealedBlock]) -> SqliteChainStore:
    store = SqliteChainStore(path)
    for entry in entries:
        store.append(entry.block, entry.seals)
    return store


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the store ----------------------------------------------------------------------


def test_round_trip_equals_the_memory_store(tmp_path: Path) -> None:
    kit = sample_chain()
    memory: MemoryStore = kit.store
    copy_into(tmp_path / "chain.db", memory.iterate()).close()
    with SqliteChainStore(tmp_path / "chain.db") as store:
        assert list(store.iterate()) == list(memory.iterate())
        top = memory.head()
        assert top is not None
        assert store.head() == top
        assert store.height() == top.block.height
        for h in (0, 1, 7, top.block.height, top.block.height + 1):
            assert store.get(h) == memory.get(h)
        verify_chain(store, kit.genesis, now_ms(), jobs=kit.jobs)


def test_empty_store_holds_only_the_genesis(tmp_path: Path) -> None:
    with SqliteChainStore(tmp_path / "chain.db") as store:
        assert store.head() is None
        assert store.get(1) is None
        assert list(store.iterate()) == []
        assert store.height() == 0


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "chain.db"
    with SqliteChainStore(path) as store:
        assert store.journal_mode() == "wal"
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_append_refuses_any_height_but_the_next(tmp_path: Path) -> None:
    entries = list(sample_chain(4).store.iterate())
    with SqliteChainStore(tmp_path / "chain.db") as store:
        with pytest.raises(ChainStoreError, match="next block is height 1, not 2"):
            store.append(entries[1].block, entries[1].seals)
        store.append(entries[0].block, entries[0].seals)
        for wrong in (entries[0], entries[2], entries[3]):
            with pytest.raises(ChainStoreError, match="next block is height 2"):
                store.append(wrong.block, wrong.seals)
        assert [e.block.height for e in store.iterate()] == [1]


def test_opening_never_modifies_a_store(tmp_path: Path) -> None:
    path = tmp_path / "chain.db"
    copy_into(path, sample_chain(5).store.iterate()).close()
    before = file_digest(path)
    for readonly in (False, True):
        with SqliteChainStore(path, readonly=readonly) as store:
            assert len(list(store.iterate())) == 7
        assert file_digest(path) == before


def test_a_file_of_something_else_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE patients (id INTEGER)")
    raw.commit()
    raw.close()
    before = file_digest(path)
    with pytest.raises(ChainStoreError, match="not a chain file"):
        SqliteChainStore(path)
    assert file_digest(path) == before
    (tmp_path / "text.db").write_text("not a database at all, just some text " * 40)
    with pytest.raises(ChainStoreError, match="not an SQLite database"):
        SqliteChainStore(tmp_path / "text.db")


def test_read_only_store_neither_creates_nor_appends(tmp_path: Path) -> None:
    with pytest.raises(ChainStoreError, match="no chain database"):
        SqliteChainStore(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()
    entries = list(sample_chain(2).store.iterate())
    SqliteChainStore(tmp_path / "chain.db").close()
    with (
        SqliteChainStore(tmp_path / "chain.db", readonly=True) as store,
        pytest.raises(ChainStoreError, match="read-only"),
    ):
        store.append(entries[0].block, entries[0].seals)


@pytest.mark.parametrize(
    ("column", "field"),
    [("block", "block"), ("seals", "seals"), ("hash", "hash"), ("height", "height")],
)
def test_a_damaged_row_names_its_height_and_field(tmp_path: Path, column: str, field: str) -> None:
    path = tmp_path / "chain.db"
    entries = list(sample_chain(4).store.iterate())
    copy_into(path, entries).close()
    raw = sqlite3.connect(path)
    if column == "height":  # block 3's row moved to height 9
        raw.execute("UPDATE blocks SET height = 9 WHERE height = 3")
        where = 9
    else:
        value = raw.execute(f"SELECT {column} FROM blocks WHERE height = 3").fetchone()[0]
        damaged = bytearray(value)
        damaged[0] ^= 0x01  # the leading type tag of an encoding
        raw.execute(f"UPDATE blocks SET {column} = ? WHERE height = 3", (bytes(damaged),))
        where = 3
    raw.commit()
    raw.close()
    with SqliteChainStore(path, readonly=True) as store, pytest.raises(StoredBlockError) as err:
        list(store.iterate())
    assert (err.value.height, err.value.field) == (where, field)


# -- the seal log -------------------------------------------------------------------


def test_seal_log_remembers_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "sealed.db"
    with SqliteSealLog(path) as log:
        assert log.sealed(1) is None
        log.remember(1, b"\x01" * 32)
        log.remember(1, b"\x01" * 32)  # the same block again is fine
        log.remember(2, b"\x02" * 32)
        raw_sync = log._file.execute("PRAGMA synchronous").fetchone()[0]
        assert raw_sync == 2  # FULL
    with SqliteSealLog(path) as log:
        assert log.sealed(1) == b"\x01" * 32
        assert log.sealed(2) == b"\x02" * 32
        with pytest.raises(ChainStoreError, match="different block is already sealed"):
            log.remember(2, b"\x03" * 32)
        assert log.sealed(2) == b"\x02" * 32


def test_authority_with_a_reopened_seal_log_refuses_a_second_block(tmp_path: Path) -> None:
    kit = ck.ChainKit(3)
    member_key = kit.keys["h1"]
    block = kit.member(1).propose(kit.state, [ck.consent(1)], kit.next_timestamp(), round=0)
    with SqliteSealLog(tmp_path / "sealed.db") as log:
        Authority(member_key, log).seal(block, kit.state, kit.now)
    rival = kit.member(1).propose(kit.state, [ck.consent(2)], kit.next_timestamp(), round=0)
    with SqliteSealLog(tmp_path / "sealed.db") as log:
        restarted = Authority(member_key, log)
        assert restarted.seal(block, kit.state, kit.now).authority == 1
        with pytest.raises(EquivocationError):
            restarted.seal(rival, kit.state, kit.now)


# -- crashes of a real process ------------------------------------------------------

APPENDER = textwrap.dedent(
    """
    import importlib.util, sys
    kit_path, db = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location("chain_kit", kit_path)
    ck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ck)
    from parties.ledger.chain_store import SqliteChainStore
    from smpc.chain.verify import replay

    kit = ck.ChainKit(3)
    kit.store = SqliteChainStore(db)
    kit.state = replay(kit.store, kit.genesis, kit.now, jobs=kit.jobs)
    names = list(kit.keys)
    first = True
    while True:
        h = kit.state.height + 1
        records = [ck.consent(8 * h + j, names[j % 3]) for j in range(6)]
        if h % 5 == 0:
            records.append(ck.job(f"job-{h}", names, kit.keys))
        kit.add_block(records, signers=None if h % 2 else (0, 2))
        if first:
            print("appending", h, flush=True)
            first = False
    """
)

SEALER = textwrap.dedent(
    """
    import sys, time
    from parties.ledger.chain_store import SqliteSealLog
    log = SqliteSealLog(sys.argv[1])
    log.remember(int(sys.argv[2]), bytes.fromhex(sys.argv[3]))
    print("remembered", flush=True)
    time.sleep(60)
    """
)


def child(script: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_a_process_killed_mid_append_leaves_a_verifiable_prefix(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    script = tmp_path / "appender.py"
    script.write_text(APPENDER)
    db = tmp_path / "chain.db"
    fresh = ck.ChainKit(3)
    genesis, jobs = fresh.genesis, fresh.jobs
    heights = [0]
    for attempt in range(4):
        proc = child(script, str(KIT_PATH), str(db))
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("appending"):
            proc.kill()
            pytest.fail(f"appender did not start: {line!r} {proc.communicate()[1]}")
        time.sleep(rng.uniform(0.02, 0.6))
        kill(proc)
        note = f"seed {seed}, kill {attempt + 1}"
        raw = sqlite3.connect(db)
        try:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok", note
            rows = [r[0] for r in raw.execute("SELECT height FROM blocks ORDER BY height")]
        finally:
            raw.close()
        assert rows == list(range(1, len(rows) + 1)), note
        with SqliteChainStore(db, readonly=True) as store:
            verify_chain(store, genesis, now_ms(), jobs=jobs)
            state = replay(store, genesis, now_ms(), jobs=jobs)
        assert state.height == len(rows) > heights[-1], note
        heights.append(state.height)


def test_a_remembered_seal_survives_a_kill(tmp_path: Path) -> None:
    script = tmp_path / "sealer.py"
    script.write_text(SEALER)
    digest = hashlib.sha256(b"block 7").digest()
    proc = child(script, str(tmp_path / "sealed.db"), "7", digest.hex())
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "remembered", proc.stderr
    kill(proc)
    with SqliteSealLog(tmp_path / "sealed.db") as log:
        assert log.sealed(7) == digest
        with pytest.raises(ChainStoreError):
            log.remember(7, hashlib.sha256(b"another block 7").digest())


def test_encode_seals_is_what_the_row_holds(tmp_path: Path) -> None:
    entries = list(sample_chain(2).store.iterate())
    copy_into(tmp_path / "chain.db", entries).close()
    raw = sqlite3.connect(tmp_path / "chain.db")
    try:
        rows = raw.execute(
            "SELECT height, hash, block, seals FROM blocks ORDER BY height"
        ).fetchall()
    finally:
        raw.close()
    for (height, digest, data, seals), entry in zip(rows, entries, strict=True):
        assert height == entry.block.height
        assert digest == entry.block.hash()
        assert data == entry.block.encode()
        assert seals == encode_seals(entry.seals)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_head_takes_another_quorum_of_seals_and_still_verifies(tmp_path: Path, kind) -> None:
    kit = ck.ChainKit(4)
    kit.add_block([ck.consent(1)])
    head = kit.add_block([ck.consent(2)], signers=range(quorum(4)))
    store = kit.store if kind == "memory" else copy_into(tmp_path / "c.db", kit.entries())
    other = tuple(kit.seal_as(i, head) for i in range(1, 4))  # another quorum of 3
    store.replace_head_seals(other)
    assert store.head().seals == other and store.get(1).seals == kit.entries()[0].seals
    verify_chain(store, kit.genesis, now_ms(), jobs=kit.jobs)


def test_replacing_the_head_seals_leaves_appends_synced(tmp_path: Path) -> None:
    """The replacement skips its own sync; the store's setting holds for what follows."""
    kit = ck.ChainKit(4)
    kit.add_block([ck.consent(1)])
    head = kit.add_block([ck.consent(2)], signers=range(quorum(4)))
    store = copy_into(tmp_path / "c.db", kit.entries())
    store.replace_head_seals(tuple(kit.seal_as(i, head) for i in range(1, 4)))
    assert store._file.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
    with SqliteChainStore(tmp_path / "empty.db") as empty:
        with pytest.raises(ChainStoreError, match="no block"):
            empty.replace_head_seals(())  # a failed replacement restores the setting too
        assert empty._file.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_a_minority_of_parent_seals_is_refused_as_the_heads_seals() -> None:
    kit = ck.ChainKit(4)
    head = kit.add_block([ck.consent(1)])
    with pytest.raises(ChainVerificationError, match="below the quorum"):
        kit.state.adopt_head_seals(head, (kit.seal_as(0, head),))
