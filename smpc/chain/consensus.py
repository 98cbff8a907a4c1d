"""Agreement on the next block between the authorities' nodes, without the network.

A :class:`Replica` is one hospital's chain node as a state machine: it takes
events (a record submitted here, a message from a peer, the clock ticking) and
returns the messages to send, so the rules can be tested with a simulated
network and the party layer only moves bytes. Every block it stores is final
and fully verified (:meth:`ChainState.apply`); every message it refuses is
counted in ``rejected`` with the reason, and logged.

The rules, proof of authority in the manner of QBFT, for crash faults:

- **Taking records in.** A record submitted here or gossiped by an authority
  is kept pending only if it passes the checks a block's records get
  (:meth:`ChainState.admissible`: signatures of the hospital, voters or
  parties it names, the analyst's signed job); a refused one is logged with
  the reason and counted in ``rejected``. The records of a valid proposal
  are kept pending too: the proposal reached every authority and passed the
  same checks there (:meth:`ChainState.check_block`), so a node whose own
  proposal carries a record it was just handed does not gossip it as well.
  After each final block, pending records that no longer pass (e.g. another
  record of the same job became final) are dropped the same way.
- **Proposing.** The proposer of (height, round) is authority
  (height + round) mod n. In round 0 it proposes as soon as it holds pending
  records. A record is in at most one final block: proposals skip records
  already on the chain, and verification refuses repeats. Pending records
  are checked again at the block's time; a block holds at most one record
  per job and one authority vote (a vote names the epoch it changes).
- **Sealing.** A node seals any valid block for the next height (its proposer
  matching its own round) unless it has sealed a different one there; it
  stores the sealed hash before the seal leaves (``Authority.seal``). With
  ceil(2n/3) seals the block is final, and the node that sees the quorum
  sends the block with its seals (a commit) to the others. Followers get it
  at once. An authority that sealed the block holds it and is sent every
  seal by its signer, so it finishes the block itself: the commit goes, after
  :data:`COMMIT_GRACE_MS`, only to the authorities that have not shown by then
  that they sealed it (their seal vote) or finished it (their commit). Should
  a seal still be lost, a round change (below) is answered with the blocks.
- **Round change.** When the next height is not final within the round's
  time while work is pending, a node moves to the next round and tells the
  others, with the block it sealed at that height, if any. The new round's
  proposer waits for a quorum of such messages; if any reports a sealed
  block, it proposes that block again (the one of the highest round), so a
  block some sealed can still become final; otherwise a new one. Two quorums
  share an authority, and an authority seals one block per height, so two
  different blocks cannot both be final at one height.
- **Catching up.** A message for a height beyond the next makes the node ask
  the sender for the blocks it lacks, and a round change for a height final
  here is answered with the final blocks from that height on; the node
  verifies each before storing it.
- **Followers.** A hospital whose chain key is not in the set in force (one
  about to be voted in, or one voted out) runs a follower: it asks for and
  verifies final blocks (sync, commits), but never proposes, seals or
  changes round. Authorities answer its sync requests and take the final
  blocks it passes on (checked on their seals); every other message of a
  non-authority is refused, its gossip too. The follower becomes an
  authority the moment a final block puts its key in the set, and a follower
  again when one takes it out.

Liveness: with n authorities, n - ceil(2n/3) may be down or silent (0 of 2,
1 of 3 to 5, 2 of 6 to 8). Safety needs fewer than ceil(2n/3) colluding:
a colluding quorum can seal a different history.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from smpc.chain.block import Block, Seal, proposer_index, quorum, seal_valid
from smpc.chain.errors import ChainError, ChainVerificationError, EquivocationError
from smpc.chain.genesis import Genesis
from smpc.chain.ledger import Authority
from smpc.chain.messages import (
    Commit,
    Gossip,
    Message,
    Proposal,
    RoundChange,
    SealVote,
    SyncReply,
    SyncRequest,
)
from smpc.chain.records import AuthorityVote, JobRecord, record_id
from smpc.chain.store import ChainStore, SealLog
from smpc.chain.verify import SignedJobCheck, replay

log = logging.getLogger(__name__)
_FROM_ANYONE = (SyncRequest, SyncReply, Commit)
"""Messages a non-authority may send: a request for blocks, or final blocks (checked on seals)."""

MAX_RECORDS_PER_BLOCK = 1000
COMMIT_GRACE_MS = 200
"""How long a node that finished a block waits for the other authorities' seals before it
sends the commit to those it has not heard from (well under a round's time)."""
MAX_SYNC_BLOCKS = 200
"""Blocks per catch-up reply; the node asks again until it is level."""


@dataclass(frozen=True)
class AllBut:
    """Every other node except ``names``, which hold what is sent already."""

    names: frozenset[str]


Outbox = list[tuple[str | AllBut | None, Message]]
"""Messages to send: (peer name, message); None for every other node, AllBut for all but some."""


def recipients(dest: str | AllBut | None, peers: Sequence[str]) -> list[str]:
    """Those of ``peers`` (every other node) that a message addressed to ``dest`` goes to."""
    if isinstance(dest, str):
        return [dest] if dest in peers else []
    skip = dest.names if dest is not None else frozenset()
    return [p for p in peers if p not in skip]


@dataclass
class _Height:
    """What a node knows about the height it is trying to finalise."""

    round: int = 0
    started_ms: int = 0
    blocks: dict[bytes, Block] = field(default_factory=dict)
    votes: dict[bytes, dict[int, Seal]] = field(default_factory=dict)
    changes: dict[int, dict[int, Block | None]] = field(default_factory=dict)
    proposed: set[int] = field(default_factory=set)


@dataclass
class _LateCommit:
    """A commit held back for the authorities in ``waiting`` until ``due_ms``."""

    commit: Commit
    waiting: set[str]
    due_ms: int


class Replica:
    """One authority's chain node: pending records, the height in progress, the store."""

    def __init__(
        self,
        name: str,
        genesis: Genesis,
        store: ChainStore,
        key: Ed25519PrivateKey,
        seal_log: SealLog,
        clock: Callable[[], int],
        *,
        round_ms: int = 2000,
        jobs: SignedJobCheck | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.clock = clock
        self.round_ms = round_ms
        self.state = replay(store, genesis, clock(), jobs=jobs)
        self.authority = Authority(key, seal_log)
        self.pending: dict[bytes, bytes] = {}
        self.rejected: list[str] = []
        self._next = _Height(started_ms=clock())
        self._late: _LateCommit | None = None

    @property
    def is_authority(self) -> bool:
        """Whether this node's key is in the authority set in force for the next block."""
        return self.authority.public_key in {a.public_key for a in self.state.authorities}

    # -- events -------------------------------------------------------------------
    def catch_up(self) -> Outbox:
        """On start: ask every authority for the final blocks this node lacks."""
        return [(None, SyncRequest(self.state.height))]

    def submit(self, record: bytes) -> Outbox:
        """A record to put on the chain: if it passes the checks, kept pending and gossiped."""
        rid = record_id(record)
        if rid in self.state.records_seen or rid in self.pending:
            return []
        if not self._take(self.name, rid, record):
            return []
        out = self.tick()
        if any(isinstance(m, Proposal) and record in m.block.records for _, m in out):
            return out  # the proposal takes the record to every node (see _on_proposal)
        return [(None, Gossip(record)), *out]

    def tick(self) -> Outbox:
        """Propose when it is this node's turn; change round when the height is late."""
        now = self.clock()
        out: Outbox = self._late_commit(now)
        h = self._next
        if not self.is_authority:
            return out
        busy = bool(self.pending or h.blocks)
        if busy and now - h.started_ms > self.round_ms * (1 + h.round):
            h.round += 1
            h.started_ms = now
            sealed = self._sealed_here()
            h.changes.setdefault(h.round, {})[self._index()] = sealed
            out.append((None, RoundChange(self.state.height + 1, h.round, sealed)))
        return out + self._maybe_propose(now)

    def handle(self, sender: str, message: Message) -> Outbox:
        """A message from ``sender`` (its identity from the TLS channel)."""
        index = self._authority_index(sender)
        if index is None and not isinstance(message, _FROM_ANYONE):
            return self._reject(sender, "is not an authority of this chain")
        now = self.clock()
        try:
            if isinstance(message, Gossip):
                return self._on_gossip(sender, message)
            if isinstance(message, Proposal):
                return self._on_proposal(sender, message.block, now)
            if isinstance(message, SealVote):
                return self._on_seal(sender, message, now)
            if isinstance(message, Commit):
                return self._on_commit(sender, message, now)
            if isinstance(message, RoundChange) and index is not None:
                return self._on_round_change(sender, index, message, now)
            if isinstance(message, SyncRequest):
                return self._on_sync_request(sender, message)
            if isinstance(message, SyncReply):
                return self._on_sync_reply(sender, message, now)
        except ChainVerificationError as exc:
            return self._reject(sender, f"sent an invalid block: {exc}")
        except ChainError as exc:
            return self._reject(sender, str(exc))
        return self._reject(sender, f"sent an unknown message {type(message).__name__}")

    # -- message handlers ---------------------------------------------------------
    def _on_gossip(self, sender: str, message: Gossip) -> Outbox:
        rid = record_id(message.record)
        if rid not in self.state.records_seen and rid not in self.pending:
            self._take(sender, rid, message.record)
        return self._maybe_propose(self.clock())

    def _on_proposal(self, sender: str, block: Block, now: int) -> Outbox:
        target = self.state.height + 1
        if block.height < target:
            return []
        if block.height > target:
            return [(sender, SyncRequest(self.state.height))]
        self._follow_parent_seals(block)
        self.state.check_block(block, now)
        block_hash = block.hash()
        self._next.blocks[block_hash] = block
        for data in block.records:  # as if gossiped: check_block ran admissible's checks
            self.pending.setdefault(record_id(data), data)
        if not self.is_authority:
            return []  # a follower waits for the commit
        try:
            seal = self.authority.seal(block, self.state, now)
        except EquivocationError:
            return self._finalise_if_sealed(block_hash, now)  # sealed another; keep counting
        self._next.votes.setdefault(block_hash, {})[seal.authority] = seal
        return [
            (None, SealVote(block.height, block_hash, seal)),
            *self._finalise_if_sealed(block_hash, now),
        ]

    def _on_seal(self, sender: str, vote: SealVote, now: int) -> Outbox:
        target = self.state.height + 1
        if vote.height < target:
            self._heard_final(sender, vote.height, vote.block_hash)
            return []
        if vote.height > target:
            return [(sender, SyncRequest(self.state.height))]
        members = self.state.authorities
        seal = vote.seal
        if seal.authority >= len(members) or not seal_valid(
            seal, members[seal.authority].public_key, vote.block_hash
        ):
            return self._reject(
                sender, f"sent a seal for height {vote.height} that does not verify"
            )
        self._next.votes.setdefault(vote.block_hash, {})[seal.authority] = seal
        return self._finalise_if_sealed(vote.block_hash, now)

    def _on_commit(self, sender: str, commit: Commit, now: int) -> Outbox:
        target = self.state.height + 1
        if commit.block.height < target:
            self.state.check_equivocation(commit.block, commit.seals)
            self._heard_final(sender, commit.block.height, commit.block.hash())
            return []
        if commit.block.height > target:
            return [(sender, SyncRequest(self.state.height))]
        self._append(commit.block, commit.seals, now)
        return self._maybe_propose(now)

    def _on_round_change(self, sender: str, index: int, change: RoundChange, now: int) -> Outbox:
        target = self.state.height + 1
        if change.height < target:
            # The sender is still at a height final here (e.g. a seal or commit for it
            # was lost): the final blocks it lacks, as for a sync request.
            return self._on_sync_request(sender, SyncRequest(change.height - 1))
        if change.height > target:
            return [(sender, SyncRequest(self.state.height))]
        h = self._next
        if change.sealed is not None:
            self._follow_parent_seals(change.sealed)
            self.state.check_block(change.sealed, now)
            h.blocks[change.sealed.hash()] = change.sealed
        h.changes.setdefault(change.round, {})[index] = change.sealed
        out: Outbox = []
        n = len(self.state.authorities)
        if change.round > h.round and len(h.changes[change.round]) > n - quorum(n):
            # More than the tolerated number of silent nodes moved on: so does this one.
            h.round, h.started_ms = change.round, now
            sealed = self._sealed_here()
            if self.is_authority:
                h.changes[change.round][self._index()] = sealed
                out.append((None, RoundChange(target, change.round, sealed)))
        return out + self._maybe_propose(now)

    def _on_sync_request(self, sender: str, request: SyncRequest) -> Outbox:
        stop = min(self.state.height, request.after + MAX_SYNC_BLOCKS)
        blocks = []
        for height in range(request.after + 1, stop + 1):
            entry = self.store.get(height)
            if entry is None:
                break
            blocks.append(Commit(entry.block, tuple(entry.seals)))
        return [(sender, SyncReply(tuple(blocks)))] if blocks else []

    def _on_sync_reply(self, sender: str, reply: SyncReply, now: int) -> Outbox:
        before = self.state.height
        for commit in reply.blocks:
            if commit.block.height == self.state.height + 1:
                self._append(commit.block, commit.seals, now)
        if len(reply.blocks) == MAX_SYNC_BLOCKS and self.state.height > before:
            return [(sender, SyncRequest(self.state.height))]
        return self._maybe_propose(now)

    # -- internals ----------------------------------------------------------------
    def _index(self) -> int:
        return self.authority.index(self.state)

    def _authority_index(self, name: str) -> int | None:
        for i, member in enumerate(self.state.authorities):
            if member.name == name:
                return i
        return None

    def _sealed_here(self) -> Block | None:
        sealed = self.authority.log.sealed(self.state.height + 1)
        return None if sealed is None else self._next.blocks.get(sealed)

    def _maybe_propose(self, now: int) -> Outbox:
        h = self._next
        height = self.state.height + 1
        n = len(self.state.authorities)
        if not self.is_authority:
            return []
        me = self._index()
        if proposer_index(height, h.round, n) != me or h.round in h.proposed:
            return []
        if h.round == 0:
            if not self.pending:
                return []
            block = self._new_block(now, 0)
        else:
            reports = h.changes.get(h.round, {})
            if len(reports) < quorum(n):
                return []
            sealed = [b for b in reports.values() if b is not None]
            block = max(sealed, key=lambda b: b.round) if sealed else self._new_block(now, h.round)
        h.proposed.add(h.round)
        return [(None, Proposal(block)), *self._on_proposal(self.name, block, now)]

    def _new_block(self, now: int, round: int) -> Block:
        timestamp = max(now, self.state.head_timestamp_ms)
        self._drop_refused(timestamp)
        records: list[bytes] = []
        jobs: set[str] = set()
        voted = False
        for data in self.pending.values():
            if len(records) == MAX_RECORDS_PER_BLOCK:
                break
            record = self.state.decode(data)  # checked when it was taken in
            if isinstance(record, JobRecord):
                if record.job_id in jobs:
                    continue  # another party's record of the job; one per block
                jobs.add(record.job_id)
            if isinstance(record, AuthorityVote):
                if voted:
                    continue  # the next vote is for the epoch after this one
                voted = True
            records.append(data)
        return self.authority.propose(self.state, records, timestamp, round)

    def _finalise_if_sealed(self, block_hash: bytes, now: int) -> Outbox:
        votes = self._next.votes.get(block_hash, {})
        block = self._next.blocks.get(block_hash)
        if block is None or len(votes) < quorum(len(self.state.authorities)):
            return []
        seals = tuple(votes[i] for i in sorted(votes))
        members = {a.name for a in self.state.authorities}  # before the block may change them
        sealers = {self.state.authorities[i].name for i in votes}  # indices checked in _on_seal
        self._append(block, seals, now)
        commit = Commit(block, seals)
        # Followers at once; authorities only if not heard from (see the module docstring).
        out: Outbox = [*self._late_commit(None), (AllBut(frozenset(members)), commit)]
        self._late = _LateCommit(commit, members - sealers - {self.name}, now + COMMIT_GRACE_MS)
        return out + self._maybe_propose(now)

    def _heard_final(self, sender: str, height: int, block_hash: bytes) -> None:
        """``sender`` sealed or finished the block held back for it: it needs no commit."""
        late = self._late
        if late is not None and (height, block_hash) == (
            late.commit.block.height,
            late.commit.block.hash(),
        ):
            late.waiting.discard(sender)

    def _late_commit(self, now: int | None) -> Outbox:
        """The held-back commit for those still waiting, once due (at once for None)."""
        late = self._late
        if late is None or (now is not None and now < late.due_ms):
            return []
        self._late = None
        return [(name, late.commit) for name in sorted(late.waiting)]

    def _follow_parent_seals(self, block: Block) -> None:
        """Store the head's seals that ``block`` commits to, if they are another valid quorum."""
        if (
            block.height == self.state.height + 1
            and block.parent == self.state.head_hash
            and block.parent_seals != self.state.head_seals
            and self.state.height > 0
        ):
            head = self.store.get(self.state.height)
            if head is not None:
                self.state.adopt_head_seals(head.block, block.parent_seals)
                self.store.replace_head_seals(block.parent_seals)

    def _append(self, block: Block, seals: tuple[Seal, ...], now: int) -> None:
        """Verify ``block`` as the next final block, store it, and start the next height."""
        self._follow_parent_seals(block)
        self.state.apply(block, seals, now)  # checks everything before it changes anything
        self.store.append(block, seals)
        for data in block.records:
            self.pending.pop(record_id(data), None)
        self._next = _Height(started_ms=now)
        log.info("%s: block %d final with %d seals", self.name, block.height, len(seals))
        self._drop_refused(now)

    def _drop_refused(self, at_ms: int) -> None:
        """Drop pending records that no longer pass (e.g. their job became final meanwhile)."""
        for rid, data in list(self.pending.items()):
            problem = self.state.admissible(data, at_ms)
            if problem is not None:
                del self.pending[rid]
                self._reject(self.name, f"dropped pending record {rid.hex()[:12]}: {problem}")

    def _take(self, sender: str, rid: bytes, data: bytes) -> bool:
        """Keep ``data`` pending if it passes the checks; else refuse it with the reason."""
        problem = self.state.admissible(data, self.clock())
        if problem is not None:
            self._reject(sender, f"sent record {rid.hex()[:12]}: {problem}")
            return False
        self.pending[rid] = data
        return True

    def _reject(self, sender: str, reason: str) -> Outbox:
        message = f"{sender} {reason}"
        self.rejected.append(message)
        log.warning("%s: refused: %s", self.name, message)
        return []
