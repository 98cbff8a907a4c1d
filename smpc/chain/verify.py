"""Verification of a chain from its genesis, block by block.

:class:`ChainState` is the state after the blocks applied so far: head hash,
head seals, the authority set in force for the next block, and what records and
jobs were already seen. :meth:`ChainState.apply` checks one sealed block against
it and advances it, so a verifier and an authority about to seal (see
``smpc.chain.ledger.Authority``) apply the same rules. Every violation raises
:class:`~smpc.chain.errors.ChainVerificationError` naming height, field, reason.

Rules (proof of authority in the manner of QBFT): heights are consecutive from
1; each block names its parent's hash and repeats the seals stored with the
parent; timestamps never go back and are at most 30 s ahead of the verifier's
clock; the proposer of (height, round) is authority (height + round) mod n; the
records decode, appear once, and hash to the Merkle root; the block carries
valid seals from at least ceil(2n/3) distinct authorities. An authority-set
vote in block h is checked against the set in force at h and changes the set
from block h+1, i.e. only once h is final.

Every record is also checked for who vouches for it (:meth:`ChainState.admissible`
runs the same checks on a record before a node takes it in):

- a consent record is signed by the chain key of the hospital it names;
- an authority vote's signatures verify against the voters it names, all of
  them current authorities, at least ceil(2n/3), for the current epoch;
- a job record carries its analyst's signed job, and the signed job checks
  out: its signature and certificate, its id (SHA-256 of the signed spec
  bytes) equal to the record's job id, and its protocol, version, parties and
  outputs equal to the record's. Each party that is an authority is a
  hospital and its contribution is signed by its chain key; any other party
  is a model owner (it has no chain key) and its contribution is unsigned; at
  least one hospital's signed contribution is present.

A state remembers what it decoded and which signature checks passed, by
record id (:mod:`smpc.chain.memo`): a node checks each record when it takes
it in, proposes it, receives and seals the proposal, and applies the final
block, and decoding, re-encoding and verifying the same bytes each time cost
more CPU than the job the record describes. What depends on the state (the
record already on the chain, the time, the authority set) is checked every
time.

``smpc.chain`` knows neither the job format nor certificates: the check of a
signed job is a :data:`SignedJobCheck` the caller passes in (``parties`` gives
one that verifies against the federation CA pinned in the genesis). Without
one, every job record is refused, so nothing unverified is taken as final.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from smpc.chain.block import (
    BLOCK_VERSION,
    MAX_FUTURE_MS,
    Block,
    Seal,
    proposer_index,
    quorum,
    seal_valid,
)
from smpc.chain.errors import ChainEncodingError, ChainVerificationError, RecordError
from smpc.chain.genesis import AuthorityKey, Genesis
from smpc.chain.memo import Memo
from smpc.chain.merkle import merkle_root
from smpc.chain.records import (
    AuthorityVote,
    ConsentRecord,
    JobRecord,
    Record,
    decode_record,
    record_id,
)
from smpc.chain.store import ChainStore


@dataclass(frozen=True, slots=True)
class SignedJobFacts:
    """What an analyst's signed job states, once its signature is checked.

    ``job_id`` is the hex SHA-256 of the signed spec bytes; ``parties`` are
    sorted by name and ``outputs`` map each output (by name) to its sorted
    recipients, as a job record lists them.
    """

    job_id: str
    protocol: str
    protocol_version: str
    parties: tuple[str, ...]
    outputs: tuple[tuple[str, tuple[str, ...]], ...]


SignedJobCheck = Callable[[bytes, int], SignedJobFacts]
"""Checks a job record's ``signed_job`` bytes at a time (ms UTC); raises RecordError if bad."""


@dataclass
class ChainState:
    """The chain as verified so far; ``authorities`` is the set in force for the next block."""

    genesis: Genesis
    height: int
    head_hash: bytes
    head_timestamp_ms: int
    head_seals: tuple[Seal, ...]
    authorities: tuple[AuthorityKey, ...]
    epoch: int = 0
    records_seen: dict[bytes, int] = field(default_factory=dict)
    jobs_seen: dict[str, int] = field(default_factory=dict)
    sets_by_height: dict[int, tuple[AuthorityKey, ...]] = field(default_factory=dict)
    hashes_by_height: dict[int, tuple[bytes, tuple[Seal, ...]]] = field(default_factory=dict)
    jobs: SignedJobCheck | None = None
    decoded: Memo[Record] = field(default_factory=lambda: Memo(1024), repr=False, compare=False)
    """The records decoded last, by record id (a thousand records: a few MB at most)."""
    signed: Memo[bool] = field(default_factory=Memo, repr=False, compare=False)
    """(record id, authority set) of records whose signatures verified against that set."""

    @classmethod
    def start(cls, genesis: Genesis, jobs: SignedJobCheck | None = None) -> ChainState:
        """The state of a chain that holds only ``genesis``; ``jobs`` checks signed jobs."""
        return cls(
            genesis, 0, genesis.hash(), genesis.created_ms, (), genesis.authorities, jobs=jobs
        )

    def admissible(self, data: bytes, now_ms: int) -> str | None:
        """Why record ``data`` may not go into the next block, or None if it may.

        The checks a block's records get, on this record alone, at ``now_ms``.
        """
        height = self.height + 1
        try:
            records = self._decode_records(height, [data], now_ms, alone=True)
            self._votes_applied(height, records, alone=True)
        except ChainVerificationError as exc:
            return exc.reason
        return None

    def check_block(self, block: Block, now_ms: int) -> None:
        """Check ``block`` as the next block, all but its own seals; raise on the first fault."""
        self._check(block, now_ms, None)

    def _check(
        self, block: Block, now_ms: int, seals: Sequence[Seal] | None
    ) -> tuple[list[Record], tuple[AuthorityKey, ...], int]:
        # ``seals``, when given, only sharpen the blame for a Merkle mismatch: if
        # they seal the header, the records were altered; otherwise the root was.
        h = block.height
        expected = self.height + 1
        if block.version != BLOCK_VERSION:
            self._fail(h, "version", f"version {block.version} is not {BLOCK_VERSION}")
        if h != expected:
            self._fail(h, "height", f"expected height {expected} after block {self.height}")
        if block.parent != self.head_hash:
            self._fail(h, "parent", f"parent hash is not the hash of block {self.height}")
        if block.parent_seals != self.head_seals:
            self._fail(h, "parent_seals", f"differ from the seals stored with block {self.height}")
        if block.timestamp_ms < self.head_timestamp_ms:
            self._fail(h, "timestamp", "earlier than the parent block's timestamp")
        if block.timestamp_ms > now_ms + MAX_FUTURE_MS:
            self._fail(h, "timestamp", f"more than {MAX_FUTURE_MS} ms ahead of the clock")
        n = len(self.authorities)
        if block.proposer != proposer_index(h, block.round, n):
            self._fail(
                h,
                "proposer",
                f"authority {block.proposer} proposed, but round {block.round} belongs to "
                f"authority {proposer_index(h, block.round, n)} of {n}",
            )
        records = self._decode_records(h, block.records, block.timestamp_ms)
        if merkle_root(block.records) != block.merkle_root:
            if seals is not None and self._seal_problem(block, seals) is None:
                self._fail(h, "records", "a record was altered: they no longer match the root")
            self._fail(h, "merkle_root", "does not match the block's records")
        return (records, *self._votes_applied(h, records))

    def apply(self, block: Block, seals: Sequence[Seal], now_ms: int) -> None:
        """Check ``block`` and its ``seals`` as the next final block, then advance."""
        records, authorities, epoch = self._check(block, now_ms, seals)
        problem = self._seal_problem(block, seals)
        if problem is not None:
            self._fail(block.height, "seals", problem)
        for data in block.records:
            self.records_seen[record_id(data)] = block.height
        for record in records:
            if isinstance(record, JobRecord):
                self.jobs_seen[record.job_id] = block.height
        self.sets_by_height[block.height] = self.authorities
        self.hashes_by_height[block.height] = (block.hash(), tuple(seals))
        self.height = block.height
        self.head_hash = block.hash()
        self.head_timestamp_ms = block.timestamp_ms
        self.head_seals = tuple(seals)
        self.authorities = authorities
        self.epoch = epoch

    def adopt_head_seals(self, head: Block, seals: Sequence[Seal]) -> None:
        """Take another valid quorum of seals for the head block (not yet committed to).

        Nodes may finish the same block with different quorums; the next block
        commits to one of them, which every node then stores with the head.
        """
        h = self.height
        if h == 0 or head.hash() != self.head_hash:
            self._fail(h + 1, "parent_seals", "seal a block that is not this chain's head")
        problem = self._seal_problem(head, seals, self.sets_by_height[h])
        if problem is not None:
            self._fail(h + 1, "parent_seals", problem)
        self.head_seals = tuple(seals)
        self.hashes_by_height[h] = (self.head_hash, self.head_seals)

    def check_equivocation(self, block: Block, seals: Sequence[Seal]) -> None:
        """Raise if ``seals`` show an authority that sealed ``block`` and the stored block too."""
        h = block.height
        stored = self.hashes_by_height.get(h)
        if stored is None or stored[0] == block.hash():
            return
        stored_hash, stored_seals = stored
        members = self.sets_by_height[h]
        for seal in seals:
            if seal.authority >= len(members):
                continue
            key = members[seal.authority].public_key
            if not seal_valid(seal, key, block.hash()):
                continue
            for other in stored_seals:
                if other.authority == seal.authority and seal_valid(other, key, stored_hash):
                    name = members[seal.authority].name
                    self._fail(
                        h,
                        "seals",
                        f"equivocation: authority {seal.authority} ({name}) sealed two "
                        "different blocks at this height",
                    )

    # -- internals ---------------------------------------------------------------

    @staticmethod
    def _fail(height: int, what: str, reason: str) -> NoReturn:
        raise ChainVerificationError(height, what, reason)

    def _seal_problem(
        self, block: Block, seals: Sequence[Seal], members: Sequence[AuthorityKey] | None = None
    ) -> str | None:
        members = self.authorities if members is None else members
        indices = [s.authority for s in seals]
        if indices != sorted(set(indices)):
            return "seals must be sorted by authority index without repeats"
        block_hash = block.hash()
        for seal in seals:
            if seal.authority >= len(members):
                return f"seal by index {seal.authority}, but there are {len(members)} authorities"
            if not seal_valid(seal, members[seal.authority].public_key, block_hash):
                return f"seal by authority {seal.authority} does not verify"
        need = quorum(len(members))
        if len(seals) < need:
            return f"{len(seals)} seals, below the quorum of {need} of {len(members)}"
        return None

    def _decode_records(
        self, h: int, datas: Sequence[bytes], at_ms: int, *, alone: bool = False
    ) -> list[Record]:
        # ``alone``: one record on its own, named "the record" rather than by index.
        records: list[Record] = []
        ids: set[bytes] = set()
        jobs: set[str] = set()
        for i, data in enumerate(datas):
            name = "the record" if alone else f"record {i}"
            rid = record_id(data)
            try:
                record = self.decode(data, rid)
            except (ChainEncodingError, RecordError) as exc:
                self._fail(h, "records", f"{name} does not decode: {exc}")
            if rid in ids or rid in self.records_seen:
                earlier = self.records_seen.get(rid, h)
                self._fail(h, "records", f"{name} repeats a record of block {earlier}")
            ids.add(rid)
            if isinstance(record, JobRecord):
                where = f"{name} (job {record.job_id})"
                if record.job_id in jobs or record.job_id in self.jobs_seen:
                    self._fail(h, "records", f"{where}: the job is already recorded")
                jobs.add(record.job_id)
                problem = self._job_problem(record, rid, at_ms)
            elif isinstance(record, ConsentRecord):
                where = f"{name} (consent of {record.hospital})"
                problem = self._consent_problem(record, rid)
            else:
                where, problem = "", None  # votes: see _votes_applied
            if problem is not None:
                self._fail(h, "records", f"{where}: {problem}")
            records.append(record)
        return records

    def decode(self, data: bytes, rid: bytes | None = None) -> Record:
        """The record encoded as ``data`` (whose id is ``rid``), decoded once per state.

        Raises ChainEncodingError or RecordError as :func:`decode_record` does.
        """
        rid = record_id(data) if rid is None else rid
        record = self.decoded.get(rid)
        if record is None:
            record = decode_record(data)
            self.decoded.put(rid, record)
        return record

    def _consent_problem(self, record: ConsentRecord, rid: bytes) -> str | None:
        keys = {a.name: a.public_key for a in self.authorities}
        if record.hospital not in keys:
            return f"{record.hospital} is not a hospital with a chain key"
        if self.signed.get((rid, self.authorities)):
            return None
        if not record.signature_valid(keys[record.hospital]):
            return f"not signed by {record.hospital}'s chain key"
        self.signed.put((rid, self.authorities), True)
        return None

    def _job_problem(self, record: JobRecord, rid: bytes, at_ms: int) -> str | None:
        if self.jobs is None:
            return "no check of analysts' signed jobs was given, so it cannot be verified"
        try:
            facts = self.jobs(record.signed_job, at_ms)
        except RecordError as exc:
            return f"the signed job does not verify: {exc}"
        if facts.job_id != record.job_id:
            return f"the signed job's id is {facts.job_id}, not the record's"
        stated = (
            record.protocol,
            record.protocol_version,
            tuple(p.name for p in record.parties),
            record.outputs,
        )
        if stated != (facts.protocol, facts.protocol_version, facts.parties, facts.outputs):
            return "its protocol, version, parties or outputs differ from the signed job's"
        keys = {a.name: a.public_key for a in self.authorities}
        roles = {p.name: p.role for p in record.parties}
        for name, role in roles.items():
            expected = "hospital" if name in keys else "model-owner"
            if role != expected:
                return f"{name} is listed as a {role}, but can only be a {expected} here"
        if not self.signed.get((rid, self.authorities)):
            try:
                record.verify_signatures(keys)  # each hospital's contribution, by its chain key
            except RecordError as exc:
                return str(exc)
            self.signed.put((rid, self.authorities), True)
        for c in record.contributions:
            if c.party not in keys and c.signature != b"":
                return f"{c.party} has no chain key, so its contribution must be unsigned"
        if not any(c.party in keys for c in record.contributions):
            return "no hospital of the job signed the record"
        return None

    def _votes_applied(
        self, height: int, records: Iterable[Record], *, alone: bool = False
    ) -> tuple[tuple[AuthorityKey, ...], int]:
        # Votes are cast by the set in force for this block; several votes in one
        # block change the pending set one after another, each a new epoch.
        voting = {a.public_key for a in self.authorities}
        need = quorum(len(self.authorities))
        members, epoch = self.authorities, self.epoch
        for i, record in enumerate(records):
            if not isinstance(record, AuthorityVote):
                continue
            name = "the record" if alone else f"record {i}"
            where = f"{name} ({record.action} {record.name})"
            if record.epoch != epoch:
                self._fail(height, "records", f"{where} is for epoch {record.epoch}, not {epoch}")
            voters = record.valid_voters() & voting
            if len(voters) != len(record.votes):
                self._fail(height, "records", f"{where}: a vote is invalid or by a non-authority")
            if len(voters) < need:
                self._fail(height, "records", f"{where}: {len(voters)} votes, quorum is {need}")
            if record.action == "add":
                keys = {a.public_key for a in members}
                if record.public_key in keys or record.name in {a.name for a in members}:
                    self._fail(height, "records", f"{where}: already an authority")
                members = (*members, AuthorityKey(record.name, record.public_key))
            else:
                target = AuthorityKey(record.name, record.public_key)
                if target not in members or len(members) == 1:
                    self._fail(height, "records", f"{where}: not a removable authority")
                members = tuple(a for a in members if a != target)
            epoch += 1
        return members, epoch


def replay(
    store: ChainStore, genesis: Genesis, now_ms: int, *, jobs: SignedJobCheck | None = None
) -> ChainState:
    """Verify every block of ``store`` from ``genesis`` and return the resulting state.

    ``jobs`` checks the analysts' signed jobs in job records (without it, a job
    record makes its block invalid).
    """
    state = ChainState.start(genesis, jobs)
    for entry in store.iterate():
        state.apply(entry.block, entry.seals, now_ms)
    return state


def verify_chain(
    store: ChainStore,
    genesis: Genesis,
    now_ms: int,
    *,
    conflicting: Iterable[tuple[Block, Sequence[Seal]]] = (),
    jobs: SignedJobCheck | None = None,
) -> None:
    """Check ``store`` from ``genesis``; raise ChainVerificationError on the first fault.

    ``now_ms`` is the verifier's clock (ms since 1970, UTC); ``jobs`` checks
    signed jobs, as for :func:`replay`. ``conflicting``
    are other sealed blocks the verifier has seen (e.g. from peers): a valid
    seal on one by an authority that also sealed the stored block at that
    height is equivocation and is reported.
    """
    state = replay(store, genesis, now_ms, jobs=jobs)
    for block, seals in conflicting:
        state.check_equivocation(block, seals)
