"""Honest chains verify; genesis parsing; the Authority proposes in turn and never equivocates."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from smpc.chain.block import Block
from smpc.chain.errors import ChainError, ChainStoreError, ChainVerificationError, EquivocationError
from smpc.chain.keys import public_bytes
from smpc.chain.ledger import (
    Authority,
    ChainState,
    Genesis,
    GenesisError,
    MemorySealLog,
    MemoryStore,
    replay,
    verify_chain,
)
from smpc.chain.records import decode_record


@pytest.mark.parametrize("n", [3, 4, 5])
def test_an_honest_chain_verifies(kit: SimpleNamespace, n: int) -> None:
    chain = kit.ChainKit(n)
    names = sorted(chain.keys)
    for height in range(1, 8):
        records = [kit.consent(10 * height + i) for i in range(height % 3)]
        if height % 2:
            signers = {name: chain.keys[name] for name in names[:3]}
            records.append(kit.job(f"job-{height}", names[:3], signers))
        chain.add_block(records, round=height % 2)
    quorum_only = list(range(n))[-((2 * n + 2) // 3) :]
    chain.add_block([kit.consent(999)], signers=quorum_only)

    verify_chain(chain.store, chain.genesis, chain.now, jobs=chain.jobs)
    state = replay(chain.store, chain.genesis, chain.now, jobs=chain.jobs)
    head = chain.store.head()
    assert head is not None and state.height == head.block.height == 8
    assert state.head_hash == head.block.hash()
    # Blocks survive their byte encoding, and their records decode.
    for entry in chain.store.iterate():
        assert Block.decode(entry.block.encode()) == entry.block
        for data in entry.block.records:
            assert decode_record(data).encode() == data


def test_an_empty_chain_verifies(kit: SimpleNamespace) -> None:
    chain = kit.ChainKit(3)
    verify_chain(MemoryStore(), chain.genesis, chain.now)


def test_memory_store_appends_only_the_next_height(kit: SimpleNamespace) -> None:
    chain = kit.ChainKit(3)
    chain.add_block()
    entry = chain.store.get(1)
    assert entry is not None
    with pytest.raises(ChainStoreError, match="height 2"):
        chain.store.append(entry.block, entry.seals)
    assert chain.store.get(2) is None and chain.store.get(0) is None


def test_genesis_from_federation_dict(kit: SimpleNamespace) -> None:
    keys = [kit.key("x"), kit.key("y")]
    data = {
        "version": 1,
        "federation": "fed",
        "consent_mode": "opt-out",
        "created_ms": 5,
        "hospitals": [
            {"name": "x", "chain_public_key": public_bytes(keys[0]).hex()},
            {"name": "y", "chain_public_key": public_bytes(keys[1]).hex()},
        ],
    }
    genesis = Genesis.from_dict(data)
    assert [a.name for a in genesis.authorities] == ["x", "y"]
    assert genesis.authorities[1].public_key == public_bytes(keys[1])
    assert genesis.hash() != Genesis.from_dict({**data, "created_ms": 6}).hash()
    bad_cases = [
        {**data, "version": 2},
        {**data, "consent_mode": "maybe"},
        {**data, "hospitals": []},
        {**data, "hospitals": [data["hospitals"][0]] * 2},  # type: ignore[index]
        {**data, "hospitals": [{"name": "x", "chain_public_key": "zz"}]},
        {**data, "hospitals": [{"name": "x", "chain_public_key": "ab"}]},
        {**data, "created_ms": -1},
        {k: v for k, v in data.items() if k != "federation"},
    ]
    for bad in bad_cases:
        with pytest.raises(GenesisError):
            Genesis.from_dict(bad)


def test_authority_proposes_only_in_its_turn(kit: SimpleNamespace) -> None:
    chain = kit.ChainKit(4)
    assert chain.member(1).propose(chain.state, [], chain.next_timestamp()).proposer == 1
    assert chain.member(3).propose(chain.state, [], chain.next_timestamp(), round=2).round == 2
    with pytest.raises(ChainError, match="authority 2's turn"):
        chain.member(0).propose(chain.state, [], chain.next_timestamp(), round=1)
    outsider = Authority(kit.key("outsider"))
    with pytest.raises(ChainError, match="not an authority"):
        outsider.propose(chain.state, [], chain.next_timestamp())


def test_authority_never_seals_two_blocks_at_one_height(kit: SimpleNamespace) -> None:
    chain = kit.ChainKit(4)
    log = MemorySealLog()
    sealer = Authority(chain.keys["h2"], log)
    proposer = chain.member(1)
    first = proposer.propose(chain.state, [kit.consent(1)], chain.next_timestamp())
    second = proposer.propose(chain.state, [kit.consent(2)], chain.next_timestamp())
    seal = sealer.seal(first, chain.state, chain.now)
    assert log.sealed(1) == first.hash()
    assert sealer.seal(first, chain.state, chain.now) == seal
    with pytest.raises(EquivocationError, match="height 1"):
        sealer.seal(second, chain.state, chain.now)
    # A later round at the same height is still the same height.
    later = chain.member(2).propose(chain.state, [], chain.next_timestamp(), round=1)
    with pytest.raises(EquivocationError):
        sealer.seal(later, chain.state, chain.now)
    # The refusal survives a restart that keeps the log.
    with pytest.raises(EquivocationError):
        Authority(chain.keys["h2"], log).seal(second, chain.state, chain.now)


def test_authority_records_before_it_signs(kit: SimpleNamespace) -> None:
    class FailingLog(MemorySealLog):
        def remember(self, height: int, block_hash: bytes) -> None:
            raise OSError("disk full")

    chain = kit.ChainKit(3)
    block = chain.member(1).propose(chain.state, [], chain.next_timestamp())
    with pytest.raises(OSError, match="disk full"):
        Authority(chain.keys["h0"], FailingLog()).seal(block, chain.state, chain.now)


def test_authority_checks_a_block_before_sealing(kit: SimpleNamespace) -> None:
    chain = kit.ChainKit(3)
    chain.add_block()
    stale = ChainState.start(chain.genesis, chain.jobs)
    block = chain.member(2).propose(chain.state, [], chain.next_timestamp())
    with pytest.raises(ChainVerificationError) as info:
        chain.member(0).seal(block, stale, chain.now)
    assert (info.value.height, info.value.field) == (2, "height")
    future = chain.member(2).propose(chain.state, [], chain.now + 60_000)
    with pytest.raises(ChainVerificationError, match="timestamp"):
        chain.member(0).seal(future, chain.state, chain.now)
