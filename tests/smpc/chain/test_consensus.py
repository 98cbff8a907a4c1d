"""Chain agreement between replicas over a simulated network: finality, round change, catch-up."""

from __future__ import annotations

import dataclasses
from collections import deque

import pytest

from smpc.chain.block import Block, quorum
from smpc.chain.consensus import COMMIT_GRACE_MS, Outbox, Replica, recipients
from smpc.chain.encoding import encode
from smpc.chain.errors import ChainEncodingError
from smpc.chain.messages import (
    Batch,
    Commit,
    Gossip,
    Message,
    Proposal,
    RoundChange,
    SealVote,
    SyncReply,
    SyncRequest,
    decode_message,
    encode_batch,
    encode_message,
)
from smpc.chain.store import MemorySealLog, MemoryStore
from smpc.chain.verify import replay, verify_chain

ROUND_MS = 1_000


class Network:
    """Replicas h0..h{n-1} exchanging encoded messages; nodes can be down, links cut."""

    def __init__(self, kit, n: int) -> None:
        self.kit = kit.ChainKit(n)
        self.consent = kit.consent
        self.now = kit.GENESIS_MS + 10_000_000
        self.names = list(self.kit.keys)
        self.stores = {name: MemoryStore() for name in self.names}
        self.logs = {name: MemorySealLog() for name in self.names}
        self.replicas = {name: self._replica(name) for name in self.names}
        self.down: set[str] = set()
        self.cut: set[tuple[str, str]] = set()  # (sender, receiver) links that drop
        self.queue: deque[tuple[str, str, bytes]] = deque()
        self.lost: set[tuple[str, type]] = set()  # (receiver, kind of message) that drop
        self.sent: list[tuple[str, str, Message]] = []  # (sender, receiver, message), as sent

    def _replica(self, name: str) -> Replica:
        return Replica(
            name,
            self.kit.genesis,
            self.stores[name],
            self.kit.keys[name],
            self.logs[name],
            lambda: self.now,
            round_ms=ROUND_MS,
            jobs=self.kit.jobs,
        )

    def send(self, sender: str, outbox: Outbox) -> None:
        for dest, message in outbox:
            for target in recipients(dest, [n for n in self.names if n != sender]):
                self.sent.append((sender, target, message))
                self.queue.append((sender, target, encode_message(message)))

    def run(self) -> None:
        while self.queue:
            sender, target, data = self.queue.popleft()
            if {sender, target} & self.down or (sender, target) in self.cut:
                continue
            message = decode_message(data)
            if (target, type(message)) in self.lost:
                continue
            self.send(target, self.replicas[target].handle(sender, message))

    def submit(self, name: str, record: bytes) -> None:
        self.send(name, self.replicas[name].submit(record))
        self.run()

    def advance(self, ms: int) -> None:
        self.now += ms
        for name in self.names:
            if name not in self.down:
                self.send(name, self.replicas[name].tick())
        self.run()

    def restart(self, name: str) -> None:
        self.down.discard(name)
        self.replicas[name] = self._replica(name)
        self.send(name, self.replicas[name].catch_up())
        self.run()

    def heights(self) -> dict[str, int]:
        return {n: r.state.height for n, r in self.replicas.items() if n not in self.down}

    def record(self, i: int) -> bytes:
        return self.consent(i).encode()


@pytest.mark.parametrize("n", [3, 5])
def test_a_submitted_record_is_final_in_the_same_block_at_every_node(kit, n: int) -> None:
    net = Network(kit, n)
    net.submit("h0", net.record(1))
    assert set(net.heights().values()) == {1}
    heads = {net.stores[name].head().block.hash() for name in net.names}
    assert len(heads) == 1
    for name in net.names:
        entry = net.stores[name].get(1)
        assert entry.block.records == (net.record(1),)
        assert len(entry.seals) >= quorum(n)
        verify_chain(net.stores[name], net.kit.genesis, net.now, jobs=net.kit.jobs)
        assert not net.replicas[name].pending


def test_records_from_many_nodes_each_land_in_exactly_one_block(kit) -> None:
    net = Network(kit, 3)
    for i in range(12):
        net.submit(net.names[i % 3], net.record(i))
    net.submit("h1", net.record(3))  # a record already final is not put on the chain again
    store = net.stores["h2"]
    on_chain = [r for entry in store.iterate() for r in entry.block.records]
    assert sorted(on_chain) == sorted(net.record(i) for i in range(12))
    assert len(set(net.heights().values())) == 1


def test_the_round_changes_when_the_proposer_is_down_and_it_catches_up_later(kit) -> None:
    net = Network(kit, 3)
    net.down.add("h1")  # the proposer of height 1, round 0
    net.submit("h0", net.record(1))
    assert net.heights() == {"h0": 0, "h2": 0}
    net.advance(ROUND_MS + 1)  # round 1: h2 proposes after the round changes
    assert net.heights() == {"h0": 1, "h2": 1}
    assert net.stores["h0"].get(1).block.round == 1
    net.submit("h2", net.record(2))
    net.restart("h1")
    assert net.heights() == {"h0": 2, "h1": 2, "h2": 2}
    verify_chain(net.stores["h1"], net.kit.genesis, net.now, jobs=net.kit.jobs)


def test_a_block_one_node_sealed_before_the_proposer_died_is_proposed_again(kit) -> None:
    net = Network(kit, 4)  # quorum 3: with h1 down every live node must seal the same block
    for other in ("h0", "h3"):
        net.cut.add(("h1", other))
    for other in net.names:
        net.cut.add(("h2", other))  # h2's seal is lost too
    net.submit("h0", net.record(1))  # every node holds it; h1 proposes, only h2 hears it
    sealed = net.logs["h2"].sealed(1)
    assert sealed is not None and net.heights()["h2"] == 0
    net.down.add("h1")
    net.cut.clear()
    net.advance(ROUND_MS + 1)
    assert set(net.heights().values()) == {1}
    final = net.stores["h0"].get(1).block
    assert final.hash() == sealed and final.round == 0  # the same block, from round 0


def _commits(net: Network) -> list[tuple[str, str]]:
    return [(s, t) for s, t, m in net.sent if isinstance(m, Commit)]


@pytest.mark.parametrize("n", [3, 4])
def test_no_commit_goes_to_an_authority_whose_seal_was_heard(kit, n: int) -> None:
    net = Network(kit, n)
    net.submit("h0", net.record(1))
    assert set(net.heights().values()) == {1}
    assert all(net.logs[name].sealed(1) is not None for name in net.names)
    net.advance(COMMIT_GRACE_MS + 1)  # every seal was heard: nothing held back is sent
    assert _commits(net) == []


def test_a_commit_goes_after_the_grace_to_an_authority_not_heard_from(kit) -> None:
    net = Network(kit, 3)
    net.lost.add(("h2", SealVote))  # h2 hears no seal ...
    net.cut.update({("h2", "h0"), ("h2", "h1")})  # ... and nobody hears h2's
    net.submit("h0", net.record(1))
    assert net.heights() == {"h0": 1, "h1": 1, "h2": 0}
    assert _commits(net) == []
    net.advance(COMMIT_GRACE_MS + 1)  # well before a round change
    assert sorted(_commits(net)) == [("h0", "h2"), ("h1", "h2")]
    assert net.heights() == {"h0": 1, "h1": 1, "h2": 1}
    assert not [m for _, _, m in net.sent if isinstance(m, RoundChange)]
    verify_chain(net.stores["h2"], net.kit.genesis, net.now, jobs=net.kit.jobs)


def test_a_sealer_that_lost_the_other_seals_is_answered_with_the_final_block(kit) -> None:
    net = Network(kit, 3)
    net.lost.add(("h2", SealVote))  # h2 seals the block but hears no other seal
    net.submit("h0", net.record(1))
    sealed = net.logs["h2"].sealed(1)
    assert net.heights() == {"h0": 1, "h1": 1, "h2": 0} and sealed is not None
    net.lost.clear()
    net.advance(ROUND_MS + 1)  # h2's round change is answered with block 1
    assert set(net.heights().values()) == {1}
    assert [t for _, t, m in net.sent if isinstance(m, SyncReply)] == ["h2", "h2"]
    assert net.stores["h2"].get(1).block.hash() == sealed
    verify_chain(net.stores["h2"], net.kit.genesis, net.now, jobs=net.kit.jobs)


def test_the_proposer_sends_no_gossip_and_the_proposal_leaves_the_record_pending(kit) -> None:
    net = Network(kit, 3)
    net.cut.update({("h1", "h0"), ("h1", "h2")})  # h1 proposes height 1; nothing of it arrives
    net.submit("h1", net.record(1))
    assert not [m for s, _, m in net.sent if s == "h1" and isinstance(m, Gossip)]
    proposal = next(m for s, _, m in net.sent if s == "h1" and isinstance(m, Proposal))
    node = net.replicas["h0"]
    node.handle("h1", proposal)  # as gossip would have, it leaves the record pending here
    assert list(node.pending.values()) == [net.record(1)]


def _honest(net: Network) -> tuple[Replica, int]:
    target = net.replicas["h0"]
    return target, len(target.rejected)


def test_forged_blocks_are_refused_with_the_reason_and_the_node_stays_honest(kit) -> None:
    net = Network(kit, 3)
    k = net.kit
    node, before = _honest(net)
    minority = k.forge([net.record(5)], signers=[0])
    node.handle("h1", Commit(minority.block, minority.seals))
    wrong = k.forge([net.record(5)], proposer=0)  # round 0 of height 1 belongs to h1
    node.handle("h1", Proposal(wrong.block))
    good = k.forge([net.record(5)])
    bad_seal = good.seals[0].__class__(good.seals[0].authority, bytes(64))
    node.handle("h1", Commit(good.block, (bad_seal, *good.seals[1:])))
    node.handle("outsider", Gossip(net.record(6)))
    reasons = node.rejected[before:]
    assert len(reasons) == 4
    assert "below the quorum" in reasons[0]
    assert "proposer" in reasons[1]
    assert "does not verify" in reasons[2]
    assert "outsider is not an authority" in reasons[3]
    assert node.state.height == 0
    net.submit("h0", net.record(1))  # the honest chain still goes on
    assert set(net.heights().values()) == {1}


def test_a_proposal_repeating_a_final_record_is_refused(kit) -> None:
    net = Network(kit, 3)
    net.submit("h0", net.record(1))
    node = net.replicas["h0"]
    k = net.kit
    k.state = node.state  # forge on top of the nodes' chain
    repeat = k.forge([net.record(1)])
    node.handle("h2", Proposal(repeat.block))  # height 2 round 0 belongs to h2
    assert "repeats a record of block 1" in node.rejected[-1]
    assert node.state.height == 1


def test_messages_round_trip_and_malformed_bytes_are_refused(kit) -> None:
    net = Network(kit, 3)
    net.submit("h0", net.record(1))
    entry = net.stores["h0"].get(1)
    block: Block = entry.block
    messages: list[Message] = [
        Proposal(block),
        SealVote(1, block.hash(), entry.seals[0]),
        Commit(block, tuple(entry.seals)),
        RoundChange(2, 1, block),
        RoundChange(2, 1, None),
        SyncRequest(0),
        SyncReply((Commit(block, tuple(entry.seals)),)),
        Gossip(net.record(2)),
    ]
    for message in messages:
        assert decode_message(encode_message(message)) == message
    for junk in (b"", b"\x00garbage", encode_message(SyncRequest(0))[:-1]):
        with pytest.raises(ChainEncodingError):
            decode_message(junk)
    with pytest.raises(ChainEncodingError, match="over the limit"):
        decode_message(bytes(65 << 20))


def test_batches_round_trip_and_malformed_batches_are_refused(kit) -> None:
    net = Network(kit, 3)
    net.submit("h0", net.record(1))
    entry = net.stores["h0"].get(1)
    proposal, vote = Proposal(entry.block), SealVote(1, entry.block.hash(), entry.seals[0])
    data = encode_batch([encode_message(proposal), encode_message(vote)])
    assert decode_message(data) == Batch((proposal, vote))
    with pytest.raises(ChainEncodingError, match="at least two"):
        encode_batch([encode_message(vote)])
    one = encode(["batch", [encode_message(vote)]])
    nested = encode(["batch", [data, encode_message(vote)]])
    not_bytes = encode(["batch", [1, 2]])
    bad_item = encode(["batch", [encode_message(vote), b"\x01junk"]])
    for junk in (one, nested, not_bytes):
        with pytest.raises(ChainEncodingError, match="a batch"):
            decode_message(junk)
    with pytest.raises(ChainEncodingError):
        decode_message(bad_item)


# -- what a node takes in ---------------------------------------------------------


def forged(kit, net: Network) -> dict[str, tuple[bytes, str]]:
    return kit.forged_records(net.kit)


def test_forged_records_are_refused_with_the_reason_never_proposed_nor_final(kit) -> None:
    net = Network(kit, 3)
    records = forged(kit, net)
    for name, (data, reason) in records.items():
        for node in net.names:  # gossiped by another authority, and submitted locally
            replica = net.replicas[node]
            sender = "h1" if node != "h1" else "h0"
            before = len(replica.rejected)
            net.send(node, replica.handle(sender, Gossip(data)))
            net.submit(node, data)
            assert len(replica.rejected) == before + 2, name
            assert all(reason in r for r in replica.rejected[before:]), name
            assert replica.pending == {}, name
    net.run()
    assert set(net.heights().values()) == {0}  # nothing was proposed
    net.submit("h0", net.record(1))
    assert set(net.heights().values()) == {1}
    for name in net.names:
        verify_chain(net.stores[name], net.kit.genesis, net.now, jobs=net.kit.jobs)
        final = net.stores[name].get(1).block.records
        assert final == (net.record(1),)


def test_a_proposal_holding_a_forged_record_is_refused_by_every_honest_node(kit) -> None:
    net = Network(kit, 3)
    for name, (data, _) in forged(kit, net).items():
        block = net.kit.forge([net.record(1), data]).block  # h1 proposes height 1, round 0
        for node in ("h0", "h2"):
            replica = net.replicas[node]
            replica.handle("h1", Proposal(block))
            assert "sent an invalid block: block 1: records: record 1 (" in replica.rejected[-1]
            assert replica.authority.log.sealed(1) is None, name  # it sealed nothing
            assert replica.pending == {}, name  # nor took the good record from it
    assert set(net.heights().values()) == {0}


def test_two_records_of_one_job_make_one_final_and_the_other_is_dropped(kit) -> None:
    net = Network(kit, 3)
    names = ["h0", "h1", "h2"]
    both = kit.job("job-1", names, net.kit.keys)
    fewer = dataclasses.replace(both, contributions=both.contributions[:2])
    net.submit("h0", both.encode())
    net.submit("h2", fewer.encode())  # the job is final already: refused with the reason
    assert "already recorded" in net.replicas["h2"].rejected[-1]
    net.advance(ROUND_MS + 1)
    assert set(net.heights().values()) == {1}
    assert all(not r.pending for r in net.replicas.values())
    for name in net.names:
        assert net.stores[name].get(1).block.records == (both.encode(),)


def test_pending_records_of_one_job_are_proposed_once_and_the_rest_dropped(kit) -> None:
    net = Network(kit, 3)
    names = ["h0", "h1", "h2"]
    both = kit.job("job-2", names, net.kit.keys)
    fewer = dataclasses.replace(both, contributions=both.contributions[:2])
    net.down.add("h1")  # the proposer of height 1 is away while both records arrive
    net.submit("h0", both.encode())
    net.submit("h2", fewer.encode())
    assert {len(net.replicas[n].pending) for n in ("h0", "h2")} == {2}
    net.advance(ROUND_MS + 1)  # round 1: h2 proposes one record of the job, not both
    assert net.heights() == {"h0": 1, "h2": 1}
    block = net.stores["h0"].get(1).block
    assert len(block.records) == 1
    assert all(not net.replicas[n].pending for n in ("h0", "h2"))
    assert any("dropped pending record" in r for r in net.replicas["h0"].rejected)


def test_a_follower_is_voted_in_and_an_authority_voted_out_follows(kit) -> None:
    net = Network(kit, 3)
    k = net.kit
    k.add_key("h3")
    net.names.append("h3")
    net.stores["h3"], net.logs["h3"] = MemoryStore(), MemorySealLog()
    net.replicas["h3"] = net._replica("h3")  # not in the genesis: it starts as a follower
    assert not net.replicas["h3"].is_authority
    net.submit("h0", net.record(1))
    assert net.heights() == {"h0": 1, "h1": 1, "h2": 1, "h3": 1}  # it follows the commits
    assert net.stores["h3"].get(1).seals == net.stores["h0"].get(1).seals
    # the follower's own messages other than sync are refused
    before = len(net.replicas["h0"].rejected)
    net.submit("h3", net.record(2))
    assert net.heights()["h0"] == 1
    assert "h3 is not an authority" in net.replicas["h0"].rejected[before]
    net.submit("h1", k.vote("add", "h3", ["h0", "h1"], epoch=0).encode())
    assert all(r.is_authority for r in net.replicas.values())
    assert {len(r.state.authorities) for r in net.replicas.values()} == {4}
    net.submit("h3", net.record(3))
    (height,) = set(net.heights().values())
    on_chain = [r for e in net.stores["h2"].iterate() for r in e.block.records]
    # as an authority its gossip is taken: the record it kept as a follower lands too
    assert net.record(2) in on_chain and net.record(3) in on_chain
    assert len(net.stores["h2"].get(height).seals) >= quorum(4)
    net.submit("h2", k.vote("remove", "h0", ["h1", "h2", "h3"], epoch=1).encode())
    assert not net.replicas["h0"].is_authority
    net.down.add("h1")  # three authorities left, quorum 2: one may be down
    net.submit("h3", net.consent(4, "h2").encode())  # h0 signs no record any more
    net.advance(ROUND_MS + 1)
    (last,) = set(net.heights().values())
    assert last > height + 1
    assert net.consent(4, "h2").encode() in net.stores["h0"].get(last).block.records  # h0 follows
    for name in ("h0", "h2", "h3"):
        verify_chain(net.stores[name], k.genesis, net.now, jobs=k.jobs)
        state = replay(net.stores[name], k.genesis, net.now, jobs=k.jobs)
        assert [a.name for a in state.authorities] == ["h1", "h2", "h3"]
    assert all(s.authority < 3 for s in net.stores["h0"].get(last).seals)
