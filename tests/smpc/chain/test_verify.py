"""Tampering with a sealed chain is detected, and named by height and field.

Each test builds an honest chain through the public API, changes one thing in
a copy of the stored blocks (or forges a block with raw seals, skipping the
Authority's checks), and expects :func:`verify_chain` to name the block and
the field at fault.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from types import SimpleNamespace

import pytest

from smpc.chain import verify
from smpc.chain.block import Block, Seal, make_seal
from smpc.chain.errors import ChainVerificationError
from smpc.chain.ledger import SealedBlock, verify_chain
from smpc.chain.records import AuthorityVote, JobRecord


def flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def expect_fault(
    chain: SimpleNamespace,
    entries: Sequence[SealedBlock] | None,
    height: int,
    field: str,
    reason: str = "",
    conflicting: Sequence[tuple[Block, Sequence[Seal]]] = (),
) -> ChainVerificationError:
    store = chain.store if entries is None else chain.store_of(entries)
    with pytest.raises(ChainVerificationError) as info:
        verify_chain(store, chain.genesis, chain.now, conflicting=conflicting, jobs=chain.jobs)
    error = info.value
    assert (error.height, error.field) == (height, field), str(error)
    assert f"block {height}" in str(error) and field in str(error)
    assert reason in error.reason
    return error


@pytest.fixture
def chain(kit: SimpleNamespace) -> SimpleNamespace:
    """Four authorities, five blocks, every block sealed by all four (quorum is 3)."""
    c = kit.ChainKit(4)
    for height in range(1, 6):
        c.add_block([kit.consent(10 * height + i) for i in range(2)])
    verify_chain(c.store, c.genesis, c.now, jobs=c.jobs)
    return c


def replaced(entries: list[SealedBlock], height: int, **changes: object) -> list[SealedBlock]:
    """A copy of ``entries`` with block ``height``'s block fields or seals changed."""
    out = list(entries)
    entry = out[height - 1]
    seals = changes.pop("seals", entry.seals)
    block = dataclasses.replace(entry.block, **changes)  # type: ignore[arg-type]
    out[height - 1] = SealedBlock(block, seals)  # type: ignore[arg-type]
    return out


# -- bytes flipped -------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 9, 60, -1])
def test_a_flipped_byte_in_a_record(chain: SimpleNamespace, position: int) -> None:
    entries = chain.entries()
    records = list(entries[1].block.records)
    records[0] = flip(records[0], position % len(records[0]))
    expect_fault(chain, replaced(entries, 2, records=tuple(records)), 2, "records")


def test_a_flipped_byte_in_a_seal(chain: SimpleNamespace) -> None:
    entries = chain.entries()
    seals = list(entries[2].seals)
    seals[1] = Seal(seals[1].authority, flip(seals[1].signature, 10))
    expect_fault(chain, replaced(entries, 3, seals=tuple(seals)), 3, "seals", "does not verify")


def test_a_flipped_byte_in_a_committed_parent_seal(chain: SimpleNamespace) -> None:
    entries = chain.entries()
    seals = list(entries[3].block.parent_seals)
    seals[0] = Seal(seals[0].authority, flip(seals[0].signature, 3))
    expect_fault(chain, replaced(entries, 4, parent_seals=tuple(seals)), 4, "parent_seals")


def test_a_flipped_byte_in_a_parent_hash(chain: SimpleNamespace) -> None:
    entries = chain.entries()
    parent = flip(entries[3].block.parent, 31)
    expect_fault(chain, replaced(entries, 4, parent=parent), 4, "parent")


def test_a_flipped_byte_in_a_merkle_root(chain: SimpleNamespace) -> None:
    entries = chain.entries()
    root = flip(entries[1].block.merkle_root, 0)
    expect_fault(chain, replaced(entries, 2, merkle_root=root), 2, "merkle_root")


def test_a_record_repeated_from_an_earlier_block(kit: SimpleNamespace) -> None:
    c = kit.ChainKit(3)
    c.add_block([kit.consent(1)])
    forged = c.forge([kit.consent(1).encode()])
    expect_fault(c, [*c.entries(), forged], 2, "records", "repeats a record of block 1")


def test_a_job_recorded_twice(kit: SimpleNamespace) -> None:
    c = kit.ChainKit(3)
    signers = dict(c.keys)
    c.add_block([kit.job("job-x", list(c.keys), signers)])
    again = dataclasses.replace(kit.job("job-x", list(c.keys), signers), protocol="sum")
    again = again.signed_by("h0", c.keys["h0"]).signed_by("h1", c.keys["h1"])
    again = again.signed_by("h2", c.keys["h2"])
    forged = c.forge([again.encode()])
    expect_fault(c, [*c.entries(), forged], 2, "records", "already recorded")


def test_a_job_contribution_signed_by_the_wrong_hospital(kit: SimpleNamespace) -> None:
    c = kit.ChainKit(3)
    record = kit.job("job-y", list(c.keys), {"h0": c.keys["h1"]})
    forged = c.forge([record.encode()])
    expect_fault(c, [forged], 1, "records", "h0's signature")


# -- blocks moved or missing ---------------------------------------------------


def test_reordered_blocks(chain: SimpleNamespace) -> None:
    entries = chain.entries()
    entries[2], entries[3] = entries[3], entries[2]
    expect_fault(chain, entries, 4, "height", "expected height 3")


def test_a_dropped_block(chain: SimpleNamespace) -> None:
    entries = chain.entries()
    del entries[1]
    expect_fault(chain, entries, 3, "height", "expected height 2")


def test_a_dropped_first_block(chain: SimpleNamespace) -> None:
    expect_fault(chain, chain.entries()[1:], 2, "height", "expected height 1")


# -- seals and quorum ----------------------------------------------------------


def test_a_dropped_seal_below_quorum(kit: SimpleNamespace) -> None:
    c = kit.ChainKit(4)
    c.add_block([kit.consent(1)])
    c.add_block([kit.consent(2)], signers=[0, 2, 3])  # exactly the quorum of 3
    c.add_block([kit.consent(3)])
    verify_chain(c.store, c.genesis, c.now, jobs=c.jobs)
    entries = c.entries()
    short = replaced(entries, 2, seals=entries[1].seals[1:])
    expect_fault(c, short, 2, "seals", "below the quorum of 3 of 4")


def test_a_dropped_seal_above_quorum_breaks_the_next_block(chain: SimpleNamespace) -> None:
    entries = chain.entries()
    expect_fault(chain, replaced(entries, 3, seals=entries[2].seals[1:]), 4, "parent_seals")


def test_a_dropped_seal_of_the_head_above_quorum_still_verifies(chain: SimpleNamespace) -> None:
    entries = chain.entries()
    verify_chain(
        chain.store_of(replaced(entries, 5, seals=entries[4].seals[1:])), chain.genesis, chain.now
    )


def test_a_block_below_quorum(chain: SimpleNamespace) -> None:
    forged = chain.forge([], signers=[0, 3])
    expect_fault(chain, [*chain.entries(), forged], 6, "seals", "below the quorum")


def test_a_block_sealed_by_a_non_authority(kit: SimpleNamespace, chain: SimpleNamespace) -> None:
    chain.add_key("mallory")
    forged = chain.forge([], signers=[0, 1])
    # Mallory signs as a fifth authority, and as authority 2 with her own key.
    as_new = chain.seal_as(4, forged.block, "mallory")
    expect_fault(
        chain,
        [*chain.entries(), SealedBlock(forged.block, (*forged.seals, as_new))],
        6,
        "seals",
        "there are 4 authorities",
    )
    as_member = chain.seal_as(2, forged.block, "mallory")
    expect_fault(
        chain,
        [*chain.entries(), SealedBlock(forged.block, (*forged.seals, as_member))],
        6,
        "seals",
        "authority 2 does not verify",
    )


def test_a_seal_counted_twice(chain: SimpleNamespace) -> None:
    forged = chain.forge([], signers=[0, 1])
    doubled = SealedBlock(forged.block, (*forged.seals, forged.seals[1]))
    expect_fault(chain, [*chain.entries(), doubled], 6, "seals", "without repeats")


def test_equivocation_is_detected(chain: SimpleNamespace) -> None:
    stored = chain.entries()[2].block
    other = dataclasses.replace(stored, timestamp_ms=stored.timestamp_ms + 1)
    key = chain.keys["h1"]
    conflicting = [(other, [make_seal(key, 1, other.hash())])]
    error = expect_fault(chain, None, 3, "seals", "equivocation", conflicting)
    assert "authority 1 (h1)" in error.reason


def test_conflicting_blocks_without_a_double_seal_are_not_equivocation(
    kit: SimpleNamespace,
) -> None:
    c = kit.ChainKit(4)
    c.add_block([], signers=[0, 1, 2])
    stored = c.entries()[0].block
    other = dataclasses.replace(stored, timestamp_ms=stored.timestamp_ms + 1)
    # Authority 3 did not seal the stored block; a forged "seal" by 1 does not verify.
    honest = make_seal(c.keys["h3"], 3, other.hash())
    bogus = make_seal(c.keys["h3"], 1, other.hash())
    verify_chain(c.store, c.genesis, c.now, conflicting=[(other, [honest, bogus]), (stored, [])])


# -- proposer and time -----------------------------------------------------------


def test_a_wrong_proposer(chain: SimpleNamespace) -> None:
    forged = chain.forge([], proposer=0, round=0)  # height 6 round 0 belongs to 6 % 4 = 2
    expect_fault(chain, [*chain.entries(), forged], 6, "proposer", "belongs to authority 2")


def test_a_later_round_moves_the_proposer(chain: SimpleNamespace) -> None:
    forged = chain.forge([], proposer=0, round=2)
    verify_chain(chain.store_of([*chain.entries(), forged]), chain.genesis, chain.now)


def test_a_timestamp_before_the_parent(chain: SimpleNamespace) -> None:
    forged = chain.forge([], timestamp_ms=chain.state.head_timestamp_ms - 1)
    expect_fault(chain, [*chain.entries(), forged], 6, "timestamp", "earlier than the parent")


def test_a_first_block_before_the_genesis(kit: SimpleNamespace) -> None:
    c = kit.ChainKit(3)
    forged = c.forge([], timestamp_ms=kit.GENESIS_MS - 1)
    expect_fault(c, [forged], 1, "timestamp")


def test_a_timestamp_too_far_ahead(chain: SimpleNamespace) -> None:
    at_limit = chain.forge([], timestamp_ms=chain.now + 30_000)
    verify_chain(chain.store_of([*chain.entries(), at_limit]), chain.genesis, chain.now)
    beyond = chain.forge([], timestamp_ms=chain.now + 30_001)
    expect_fault(chain, [*chain.entries(), beyond], 6, "timestamp", "30000 ms ahead")


# -- authority-set changes -----------------------------------------------------------


def test_an_added_authority_counts_only_after_its_vote_is_final(kit: SimpleNamespace) -> None:
    c = kit.ChainKit(3)
    c.add_block([kit.consent(1)])
    c.add_key("h3")
    vote = c.vote("add", "h3", ["h0", "h2"])  # 2 of 3 is the quorum
    before = c.entries()

    # In the block holding the vote, the newcomer's seal does not count.
    early = c.forge([vote.encode()], signers=[1])
    with_new = SealedBlock(early.block, (*early.seals, c.seal_as(3, early.block, "h3")))
    expect_fault(c, [*before, with_new], 2, "seals", "there are 3 authorities")

    # Once the block holding the vote is sealed by a quorum, the set changes.
    c.add_block([vote], signers=[0, 1, 2])
    assert [a.name for a in c.state.authorities] == ["h0", "h1", "h2", "h3"]
    assert c.state.epoch == 1

    # From the next block on, n = 4: proposer rotates over four, quorum is three.
    old_rule = c.forge([], proposer=3 % 3)
    expect_fault(c, [*c.entries(), old_rule], 3, "proposer", "of 4")
    two_old = c.forge([], signers=[0, 1])
    expect_fault(c, [*c.entries(), two_old], 3, "seals", "quorum of 3 of 4")
    c.add_block([kit.consent(3)], signers=[1, 2, 3])
    c.add_block([kit.consent(4)])
    verify_chain(c.store, c.genesis, c.now, jobs=c.jobs)


def test_a_vote_block_that_is_not_final_changes_nothing(kit: SimpleNamespace) -> None:
    c = kit.ChainKit(3)
    c.add_key("h3")
    vote = c.vote("add", "h3", ["h0", "h1"])
    unfinal = c.forge([vote.encode()], signers=[0])
    expect_fault(c, [unfinal], 1, "seals", "below the quorum of 2 of 3")


def test_a_removed_authority_seals_its_own_removal_but_nothing_after(kit: SimpleNamespace) -> None:
    c = kit.ChainKit(4)
    vote = c.vote("remove", "h3", ["h0", "h1", "h2"])
    c.add_block([vote])  # sealed by all four, h3 included
    assert [a.name for a in c.state.authorities] == ["h0", "h1", "h2"]
    late = c.forge([], signers=[0])
    late = SealedBlock(late.block, (*late.seals, make_seal(c.keys["h3"], 3, late.block.hash())))
    expect_fault(c, [*c.entries(), late], 2, "seals", "there are 3 authorities")
    c.add_block([], signers=[0, 2])
    verify_chain(c.store, c.genesis, c.now, jobs=c.jobs)


@pytest.mark.parametrize(
    ("voters", "epoch", "reason"),
    [
        (["h0"], 0, "1 votes, quorum is 2"),
        (["h0", "mallory"], 0, "non-authority"),
        (["h0", "h1"], 1, "epoch 1, not 0"),
    ],
)
def test_invalid_votes(kit: SimpleNamespace, voters: list[str], epoch: int, reason: str) -> None:
    c = kit.ChainKit(3)
    c.add_key("h3")
    c.add_key("mallory")
    vote = c.vote("add", "h3", voters, epoch)
    expect_fault(c, [c.forge([vote.encode()])], 1, "records", reason)


def test_a_vote_cannot_be_replayed(kit: SimpleNamespace) -> None:
    c = kit.ChainKit(3)
    c.add_key("h3")
    c.add_block([c.vote("add", "h3", ["h0", "h1"])])
    c.add_block([c.vote("remove", "h3", ["h0", "h1", "h2"], epoch=1)], signers=[0, 1, 2])
    replay_vote = c.vote("add", "h3", ["h0", "h1"], epoch=0)
    assert isinstance(replay_vote, AuthorityVote)
    expect_fault(c, [*c.entries(), c.forge([replay_vote.encode()])], 3, "records")
    c.add_block([c.vote("add", "h3", ["h0", "h1"], epoch=2)])
    verify_chain(c.store, c.genesis, c.now, jobs=c.jobs)


# -- who vouches for each record ----------------------------------------------------

FORGED = (
    "unsigned consent",
    "consent signed by another hospital",
    "consent of a non-authority",
    "vote with a bad signature",
    "job id not of its signed job",
    "bad analyst signature",
    "job signed by a hospital",
    "contribution signed by the wrong key",
    "hospital listed as a model owner",
    "parties not those of the signed job",
    "job record signed by no hospital",
)


@pytest.mark.parametrize("name", FORGED)
def test_a_block_holding_a_forged_record_is_refused_naming_it(
    kit: SimpleNamespace, name: str
) -> None:
    c = kit.ChainKit(3)
    c.add_block([kit.consent(1)])
    data, reason = kit.forged_records(c)[name]
    error = expect_fault(c, [*c.entries(), c.forge([kit.consent(2).encode(), data])], 2, "records")
    assert reason in error.reason and "record 1 (" in error.reason


def test_the_forged_records_are_the_ones_listed(kit: SimpleNamespace) -> None:
    assert tuple(kit.forged_records(kit.ChainKit(3))) == FORGED


def test_signed_records_of_every_kind_verify(kit: SimpleNamespace) -> None:
    c = kit.ChainKit(3)
    c.add_key("h3")
    keys = {n: c.keys[n] for n in ("h0", "h1")}
    owner = kit.job("job-m", ["h0", "h1", "owner"], keys, roles={"owner": "model-owner"})
    pair = kit.job("job-n", ["h1", "h2"], {n: c.keys[n] for n in ("h1", "h2")})
    c.add_block([kit.consent(1, "h2"), owner, pair])
    c.add_block([c.vote("add", "h3", ["h0", "h1"])])
    verify_chain(c.store, c.genesis, c.now, jobs=c.jobs)


def test_without_a_signed_job_check_a_job_record_is_refused(kit: SimpleNamespace) -> None:
    c = kit.ChainKit(3)
    c.add_block([kit.job("job-z", ["h0", "h1"], {n: c.keys[n] for n in ("h0", "h1")})])
    with pytest.raises(ChainVerificationError, match="no check of analysts' signed jobs"):
        verify_chain(c.store, c.genesis, c.now)


# -- what a state remembers ------------------------------------------------------


def test_a_record_is_decoded_and_its_signatures_verified_once_per_state(
    kit: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taking a record in, checking a block holding it and applying that block decode the
    record and verify its contributions' signatures once; the block still becomes final."""
    c = kit.ChainKit(3)
    data = kit.job("job-memo", list(c.keys), dict(c.keys)).encode()
    calls = {"decode": 0, "signatures": 0}
    decode, check = verify.decode_record, JobRecord.verify_signatures

    def counted_decode(raw: bytes) -> object:
        calls["decode"] += 1
        return decode(raw)

    def counted_check(record: JobRecord, keys: object) -> None:
        calls["signatures"] += 1
        check(record, keys)  # type: ignore[arg-type]

    monkeypatch.setattr(verify, "decode_record", counted_decode)
    monkeypatch.setattr(JobRecord, "verify_signatures", counted_check)
    assert c.state.admissible(data, c.now) is None
    assert c.state.admissible(data, c.now) is None
    c.add_block([data])  # propose, three seals (each checks the block), apply
    assert calls == {"decode": 1, "signatures": 1}
    assert c.state.height == 1


def test_checks_on_the_state_still_run_for_a_remembered_record(kit: SimpleNamespace) -> None:
    """A record that passed once is refused once its job is on the chain."""
    c = kit.ChainKit(3)
    data = kit.job("job-again", list(c.keys), dict(c.keys)).encode()
    assert c.state.admissible(data, c.now) is None
    c.add_block([data])
    problem = c.state.admissible(data, c.now)
    assert problem is not None and "repeats a record of block 1" in problem
