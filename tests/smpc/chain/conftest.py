"""A small in-memory federation of chain authorities for the ledger tests.

:class:`ChainKit` builds honest chains through the public API (``Authority``
proposes and seals, ``ChainState`` advances) and, for tamper tests, forges
blocks and seals directly with :func:`make_seal`, bypassing every check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from smpc.chain.block import Block, Seal, make_seal, proposer_index
from smpc.chain.keys import public_bytes
from smpc.chain.ledger import (
    Authority,
    ChainState,
    ChainStore,
    Genesis,
    MemoryStore,
    SealedBlock,
)
from smpc.chain.records import (
    AuthorityVote,
    ConsentRecord,
    Contribution,
    JobRecord,
    Party,
    Record,
    Vote,
)

GENESIS_MS = 1_700_000_000_000
STEP_MS = 1_000


def key(label: str) -> Ed25519PrivateKey:
    """A deterministic Ed25519 key, so failures reproduce."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def consent(i: int, hospital: str = "h0") -> ConsentRecord:
    patient = hashlib.sha256(f"patient {i}".encode()).digest()
    return ConsentRecord("grant", hospital, patient, "statistics", GENESIS_MS + i)


def job(job_id: str, names: Sequence[str], signers: dict[str, Ed25519PrivateKey]) -> JobRecord:
    """A finished job among ``names`` with consistent channel hashes, signed by ``signers``."""
    names = sorted(names)

    def digest(i: str, j: str) -> str:
        return hashlib.sha256(f"{job_id}:{i}->{j}".encode()).hexdigest()

    contributions = tuple(
        Contribution(
            party=me,
            input_commitment=hashlib.sha256(f"{job_id}:{me}:input".encode()).digest(),
            sent=tuple((p, digest(me, p)) for p in names if p != me),
            received=tuple((p, digest(p, me)) for p in names if p != me),
        )
        for me in names
    )
    record = JobRecord(
        job_id=job_id,
        signed_job=f"signed {job_id}".encode(),
        protocol="mean",
        protocol_version="1.0",
        parties=tuple(Party(n, "hospital") for n in names),
        outputs=(("mean", ("analyst",)),),
        output_digest=hashlib.sha256(job_id.encode()).digest(),
        status="finished",
        failure=None,
        contributions=contributions,
    )
    for name, k in signers.items():
        record = record.signed_by(name, k)
    return record


class ListStore(ChainStore):
    """A store that holds whatever list it is given: for reordered or dropped blocks."""

    def __init__(self, entries: Sequence[SealedBlock]) -> None:
        self.entries = list(entries)

    def append(self, block: Block, seals: Sequence[Seal]) -> None:
        self.entries.append(SealedBlock(block, tuple(seals)))

    def get(self, height: int) -> SealedBlock | None:
        return next((e for e in self.entries if e.block.height == height), None)

    def head(self) -> SealedBlock | None:
        return self.entries[-1] if self.entries else None

    def iterate(self) -> Iterator[SealedBlock]:
        return iter(self.entries)

    def replace_head_seals(self, seals: Sequence[Seal]) -> None:
        self.entries[-1] = SealedBlock(self.entries[-1].block, tuple(seals))


class ChainKit:
    """n authorities named h0..h{n-1}, a genesis, a store and the verified state."""

    def __init__(self, n: int) -> None:
        self.keys = {f"h{i}": key(f"authority h{i}") for i in range(n)}
        self.genesis = Genesis.from_dict(
            {
                "version": 1,
                "federation": "testfed",
                "consent_mode": "opt-in",
                "created_ms": GENESIS_MS,
                "hospitals": [
                    {"name": name, "chain_public_key": public_bytes(k).hex()}
                    for name, k in self.keys.items()
                ],
            }
        )
        self.authorities = {public_bytes(k): Authority(k) for k in self.keys.values()}
        self.store = MemoryStore()
        self.state = ChainState.start(self.genesis)
        self.now = GENESIS_MS + 10_000_000

    def add_key(self, name: str) -> Ed25519PrivateKey:
        """A key for a hospital that may later be voted in."""
        k = self.keys[name] = key(f"authority {name}")
        self.authorities[public_bytes(k)] = Authority(k)
        return k

    def member(self, index: int) -> Authority:
        """The Authority object of member ``index`` in the set in force for the next block."""
        return self.authorities[self.state.authorities[index].public_key]

    def next_timestamp(self) -> int:
        return self.state.head_timestamp_ms + STEP_MS

    def add_block(
        self,
        records: Sequence[bytes | Record] = (),
        *,
        round: int = 0,
        signers: Sequence[int] | None = None,
    ) -> Block:
        """Propose, seal, store and apply an honest block; ``signers`` default to everyone."""
        n = len(self.state.authorities)
        proposer = self.member(proposer_index(self.state.height + 1, round, n))
        block = proposer.propose(self.state, records, self.next_timestamp(), round)
        chosen = range(n) if signers is None else signers
        seals = sorted(
            (self.member(i).seal(block, self.state, self.now) for i in chosen),
            key=lambda s: s.authority,
        )
        self.store.append(block, seals)
        self.state.apply(block, seals, self.now)
        return block

    def forge(
        self,
        records: Sequence[bytes] = (),
        *,
        round: int = 0,
        proposer: int | None = None,
        timestamp_ms: int | None = None,
        signers: Sequence[int] | None = None,
    ) -> SealedBlock:
        """The next block built and sealed with no checks (not stored, state unchanged)."""
        n = len(self.state.authorities)
        height = self.state.height + 1
        block = Block.create(
            height,
            self.state.head_hash,
            self.state.head_seals,
            self.next_timestamp() if timestamp_ms is None else timestamp_ms,
            proposer_index(height, round, n) if proposer is None else proposer,
            round,
            list(records),
        )
        chosen = range(n) if signers is None else signers
        return SealedBlock(block, tuple(self.seal_as(i, block) for i in sorted(chosen)))

    def seal_as(self, index: int, block: Block, key_name: str | None = None) -> Seal:
        """A raw seal claiming authority ``index``, signed by that member or by ``key_name``."""
        if key_name is None:
            k = self.keys[self.state.authorities[index].name]
        else:
            k = self.keys[key_name]
        return make_seal(k, index, block.hash())

    def vote(self, action: str, name: str, voters: Sequence[str], epoch: int = 0) -> AuthorityVote:
        """An authority vote on ``name``'s key, signed by the named voters."""
        public = public_bytes(self.keys[name])
        unsigned = AuthorityVote(action, name, public, epoch, ())
        message = unsigned.signing_message()
        votes = sorted(
            (Vote(public_bytes(self.keys[v]), self.keys[v].sign(message)) for v in voters),
            key=lambda v: v.voter,
        )
        return AuthorityVote(action, name, public, epoch, tuple(votes))

    def entries(self) -> list[SealedBlock]:
        return list(self.store.iterate())

    @staticmethod
    def store_of(entries: Sequence[SealedBlock]) -> ListStore:
        """A store holding exactly ``entries``, in that order."""
        return ListStore(entries)


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, as a fixture (test modules cannot import a conftest)."""
    return SimpleNamespace(
        ChainKit=ChainKit,
        ListStore=ListStore,
        consent=consent,
        job=job,
        key=key,
        GENESIS_MS=GENESIS_MS,
    )
