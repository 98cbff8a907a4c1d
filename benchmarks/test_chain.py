"""Chain benchmarks: verifying a 10^4-block proof-of-authority chain, and sealing one block.

Scenario: a federation of 5 hospitals, all chain authorities (quorum 4). A
chain of 10^4 blocks, each holding one consent record and sealed by exactly a
quorum (4 authorities, the proposer among them), is built once per module
with raw Ed25519 signatures (no checks while building, a few seconds).

- verify: :func:`smpc.chain.verify.verify_chain` from the genesis over the
  whole chain, held in a ``MemoryStore`` and in a ``SqliteChainStore`` (one
  process, one core; SQLite adds reading and decoding the rows). Each block
  costs 4 Ed25519 verifications, SHA-256 of header and records, and decoding.
  Target: at least 1,000 blocks/s. ``extra_info`` records blocks/s.
- append-and-seal: one block in memory, as the authorities run it: the
  proposer proposes, every authority checks and seals it (its seal log in
  memory), the store appends it and the state applies it (verifying the seals).

Trust model: none at stake; these time the ledger's checks, not a protocol.

Run::

    .venv/bin/python -m pytest benchmarks/test_chain.py --benchmark-enable --benchmark-only -q
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pytest_benchmark.fixture import BenchmarkFixture

from parties.ledger.chain_store import SqliteChainStore
from smpc.chain.block import Block, make_seal, proposer_index, quorum
from smpc.chain.keys import public_bytes
from smpc.chain.ledger import Authority, ChainState, Genesis, MemoryStore, verify_chain
from smpc.chain.records import ConsentRecord

BLOCKS = 10_000
AUTHORITIES = 5
TARGET_BLOCKS_PER_S = 1_000


@dataclass
class Chain:
    genesis: Genesis
    keys: list[Ed25519PrivateKey]
    store: MemoryStore
    build_seconds: float
    fill_seconds: float = 0.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _genesis(keys: list[Ed25519PrivateKey], created_ms: int) -> Genesis:
    return Genesis.from_dict(
        {
            "version": 1,
            "federation": "bench",
            "consent_mode": "opt-out",
            "created_ms": created_ms,
            "hospitals": [
                {"name": f"hospital-{i}", "chain_public_key": public_bytes(k).hex()}
                for i, k in enumerate(keys)
            ],
        }
    )


def _consent(i: int, key: Ed25519PrivateKey) -> bytes:
    """A consent grant at hospital-0, signed by its chain ``key`` as verification requires."""
    patient = hashlib.sha256(f"bench patient {i}".encode()).digest()
    record = ConsentRecord("grant", "hospital-0", patient, "statistics", 1_600_000_000_000)
    return record.signed_by(key).encode()


@pytest.fixture(scope="module")
def chain() -> Chain:
    """BLOCKS blocks sealed by a quorum each; built with raw signatures, unchecked."""
    start = time.perf_counter()
    keys = [
        Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"bench {i}".encode()).digest())
        for i in range(AUTHORITIES)
    ]
    created = _now_ms() - 2 * BLOCKS * 1_000
    genesis = _genesis(keys, created)
    store = MemoryStore()
    parent, parent_seals = genesis.hash(), ()
    need = quorum(AUTHORITIES)
    for h in range(1, BLOCKS + 1):
        proposer = proposer_index(h, 0, AUTHORITIES)
        block = Block.create(
            h, parent, parent_seals, created + h * 1_000, proposer, 0, [_consent(h, keys[0])]
        )
        digest = block.hash()
        signers = sorted((proposer + j) % AUTHORITIES for j in range(need))
        seals = tuple(make_seal(keys[i], i, digest) for i in signers)
        store.append(block, seals)
        parent, parent_seals = digest, seals
    return Chain(genesis, keys, store, time.perf_counter() - start)


@pytest.fixture(scope="module")
def sqlite_store(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> SqliteChainStore:
    """The same chain in an SQLite store (``synchronous=NORMAL`` to fill it quickly)."""
    path = tmp_path_factory.mktemp("chain") / "chain.db"
    start = time.perf_counter()
    with SqliteChainStore(path, synchronous="NORMAL") as store:
        for entry in chain.store.iterate():
            store.append(entry.block, entry.seals)
    chain.fill_seconds = time.perf_counter() - start
    return SqliteChainStore(path, readonly=True)


def _record_rate(benchmark: BenchmarkFixture, chain: Chain, store_kind: str) -> None:
    stats = benchmark.stats
    seconds = stats.stats.median if stats is not None else float("nan")
    benchmark.extra_info.update(
        blocks=BLOCKS,
        authorities=AUTHORITIES,
        seals_per_block=quorum(AUTHORITIES),
        records_per_block=1,
        store=store_kind,
        blocks_per_s=BLOCKS / seconds,
        target_blocks_per_s=TARGET_BLOCKS_PER_S,
        build_seconds=chain.build_seconds,
        sqlite_fill_seconds=chain.fill_seconds if store_kind == "sqlite" else None,
    )


def test_verify_chain_memory(benchmark: BenchmarkFixture, chain: Chain) -> None:
    benchmark.group = "chain verify"
    now = _now_ms()
    benchmark.pedantic(verify_chain, args=(chain.store, chain.genesis, now), rounds=3, iterations=1)
    _record_rate(benchmark, chain, "memory")


def test_verify_chain_sqlite(
    benchmark: BenchmarkFixture, chain: Chain, sqlite_store: SqliteChainStore
) -> None:
    benchmark.group = "chain verify"
    now = _now_ms()
    benchmark.pedantic(
        verify_chain, args=(sqlite_store, chain.genesis, now), rounds=3, iterations=1
    )
    _record_rate(benchmark, chain, "sqlite")


def test_append_and_seal_memory(benchmark: BenchmarkFixture, chain: Chain) -> None:
    benchmark.group = "chain append"
    genesis = _genesis(chain.keys, _now_ms() - 10_000_000)
    authorities = [Authority(k) for k in chain.keys]
    state = ChainState.start(genesis)
    store = MemoryStore()
    now = _now_ms()

    def one_block() -> None:
        h = state.height + 1
        proposer = authorities[proposer_index(h, 0, AUTHORITIES)]
        block = proposer.propose(state, [_consent(h, chain.keys[0])], state.head_timestamp_ms + 1)
        seals = [a.seal(block, state, now) for a in authorities]
        store.append(block, seals)
        state.apply(block, seals, now)

    benchmark.pedantic(one_block, rounds=200, iterations=1, warmup_rounds=5)
    benchmark.extra_info.update(
        authorities=AUTHORITIES,
        seals_per_block=AUTHORITIES,
        records_per_block=1,
        store="memory",
        steps="propose, 5 x (check + seal), append, apply",
    )
