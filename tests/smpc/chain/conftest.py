"""A small in-memory federation of chain authorities for the ledger tests.

:class:`ChainKit` builds honest chains through the public API (``Authority``
proposes and seals, ``ChainState`` advances) and, for tamper tests, forges
blocks and seals directly with :func:`make_seal`, bypassing every check.

Job records carry real signed jobs: a throwaway federation CA (pinned in the
kit's genesis) certifies an analyst, who signs each job as ``parties`` does,
and the kit's chains check them with the party layer's own signed-job check.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from parties.jobs.spec import SIGNATURE_TAG, JobSpec, SignedJob
from parties.ledger.job_check import job_check
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
FEDERATION = "testfed"
ANALYST = "analyst"
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def key(label: str) -> Ed25519PrivateKey:
    """A deterministic Ed25519 key, so failures reproduce."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def authority_key(name: str) -> Ed25519PrivateKey:
    """The chain key of the kit's hospital ``name``."""
    return key(f"authority {name}")


def consent(i: int, hospital: str = "h0", *, signed: bool = True) -> ConsentRecord:
    """A grant at ``hospital``, signed by its chain key unless ``signed`` is False."""
    patient = hashlib.sha256(f"patient {i}".encode()).digest()
    record = ConsentRecord("grant", hospital, patient, "statistics", GENESIS_MS + i)
    return record.signed_by(authority_key(hospital)) if signed else record


@dataclass(frozen=True)
class Certified:
    """An EC P-256 key and its certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _certify(
    subject: str, issuer: Certified | None, uri: str | None, federation: str = FEDERATION
) -> Certified:
    """A CA certificate (no ``issuer``) or a member certificate with URI SAN ``uri``.

    Keys, serials and ECDSA signatures are derived from the names, so every
    process (the store tests' child processes too) makes the same genesis.
    """
    label = f"{federation} {subject} {uri}".encode()
    secret = int.from_bytes(hashlib.sha256(label).digest()) % _P256_ORDER
    key = ec.derive_private_key(secret, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{federation} {subject}")])
    start = dt.datetime.fromtimestamp(GENESIS_MS / 1000 - 86_400, tz=dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name if issuer is None else issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(label).digest()[:16]) >> 1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if uri is not None:
        san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)])
        builder = builder.add_extension(san, critical=False)
    signer = key if issuer is None else issuer.key
    return Certified(key, builder.sign(signer, hashes.SHA256(), ecdsa_deterministic=True))


@functools.cache
def federation_ca() -> Certified:
    """The kit's federation CA (one per test session)."""
    return _certify("federation CA", None, None)


@functools.cache
def member_cert(role: str, name: str, ca: Certified | None = None) -> Certified:
    """A certificate for ``smpc://testfed/<role>/<name>``, issued by ``ca`` (default: the kit's)."""
    issuer = federation_ca() if ca is None else ca
    return _certify(name, issuer, f"smpc://{FEDERATION}/{role}/{name}")


def sign(spec: JobSpec, signer: Certified | None = None) -> bytes:
    """The envelope of ``spec`` signed by ``signer`` (default: the kit's analyst), as recorded."""
    signer = member_cert("analyst", ANALYST) if signer is None else signer
    canonical = spec.canonical()
    ecdsa = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    signature = signer.key.sign(SIGNATURE_TAG + canonical, ecdsa)
    pem = signer.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return SignedJob(canonical, pem, signature).to_json().encode()


def job_spec(label: str, names: Sequence[str]) -> JobSpec:
    """The analyst's job among ``names``; ``label`` fixes its nonce, so its id is reproducible."""
    return JobSpec(
        federation=FEDERATION,
        protocol="mean",
        protocol_version="1.0",
        analyst=ANALYST,
        parties=tuple(names),
        inputs={},
        outputs={"mean": (ANALYST,)},
        deadline_ms=GENESIS_MS + 86_400_000,
        created_ms=GENESIS_MS,
        nonce=hashlib.sha256(label.encode()).hexdigest()[:32],
    )


def job(
    label: str,
    names: Sequence[str],
    signers: Mapping[str, Ed25519PrivateKey],
    *,
    roles: Mapping[str, str] | None = None,
) -> JobRecord:
    """A finished job among ``names`` with consistent channel hashes, signed by ``signers``.

    The record carries the analyst's signed job labelled ``label``; parties
    are hospitals unless ``roles`` says otherwise.
    """
    names = sorted(names)
    spec = job_spec(label, names)
    job_id = spec.job_id
    roles = roles or {}

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
        signed_job=sign(spec),
        protocol=spec.protocol,
        protocol_version=spec.protocol_version,
        parties=tuple(Party(n, roles.get(n, "hospital")) for n in names),
        outputs=tuple(spec.outputs.items()),
        output_digest=hashlib.sha256(job_id.encode()).digest(),
        status="finished",
        failure=None,
        contributions=contributions,
    )
    for name, k in signers.items():
        record = record.signed_by(name, k)
    return record


def _signed_by_all(record: JobRecord, keys: Mapping[str, Ed25519PrivateKey]) -> JobRecord:
    for c in record.contributions:
        if c.party in keys:
            record = record.signed_by(c.party, keys[c.party])
    return record


def forged_records(kit: ChainKit) -> dict[str, tuple[bytes, str]]:
    """Records every honest node must refuse, by name: (encoding, part of the reason).

    ``kit`` needs hospitals h0, h1, h2; it gets keys for h3 and mallory.
    """
    keys = kit.keys
    names = ["h0", "h1", "h2"]
    kit.add_key("h3")
    mallory = kit.add_key("mallory")
    out: dict[str, tuple[bytes, str]] = {}
    out["unsigned consent"] = (consent(1, "h1", signed=False).encode(), "not signed by h1's")
    other = consent(2, "h1", signed=False).signed_by(keys["h0"])
    out["consent signed by another hospital"] = (other.encode(), "not signed by h1's")
    outsider = consent(3, "mallory", signed=False).signed_by(mallory)
    out["consent of a non-authority"] = (outsider.encode(), "not a hospital with a chain key")
    vote = kit.vote("add", "h3", ["h0", "h1"])
    bad = tuple(
        Vote(v.voter, keys["h1"].sign(b"something else"))
        if v.voter == public_bytes(keys["h1"])
        else v
        for v in vote.votes
    )
    out["vote with a bad signature"] = (replace(vote, votes=bad).encode(), "a vote is invalid")
    unsigned = job("job-a", names, {})
    wrong_id = replace(unsigned, job_id=job_spec("job-b", names).job_id)
    out["job id not of its signed job"] = (
        _signed_by_all(wrong_id, keys).encode(),
        "the signed job's id is",
    )
    spec = job_spec("job-c", names)
    envelope = SignedJob.from_json(unsigned.signed_job)  # job-a's signature, on job-c's spec
    tampered = replace(envelope, spec_bytes=spec.canonical()).to_json().encode()
    bad_sig = replace(job("job-c", names, {}), signed_job=tampered)
    out["bad analyst signature"] = (_signed_by_all(bad_sig, keys).encode(), "bad-signature")
    hospital = member_cert("hospital", "h0")
    by_hospital = replace(
        job("job-d", names, {}), signed_job=sign(job_spec("job-d", names), hospital)
    )
    out["job signed by a hospital"] = (_signed_by_all(by_hospital, keys).encode(), "not an analyst")
    wrong_key = job("job-e", names, {"h0": keys["h1"], "h1": keys["h1"], "h2": keys["h2"]})
    out["contribution signed by the wrong key"] = (wrong_key.encode(), "h0's signature")
    owner = job("job-f", names, {"h1": keys["h1"], "h2": keys["h2"]}, roles={"h0": "model-owner"})
    out["hospital listed as a model owner"] = (owner.encode(), "can only be a hospital")
    full = job("job-g", names, {})
    alone = replace(
        full,
        parties=(Party("h0", "hospital"),),
        contributions=(replace(full.contribution("h0"), sent=(), received=()),),
    )
    out["parties not those of the signed job"] = (
        _signed_by_all(alone, keys).encode(),
        "differ from the signed job's",
    )
    nobody = replace(job("job-h", names, {}), contributions=())
    out["job record signed by no hospital"] = (nobody.encode(), "no hospital of the job signed")
    return out


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
        self.keys = {f"h{i}": authority_key(f"h{i}") for i in range(n)}
        ca = federation_ca().cert.public_bytes(serialization.Encoding.DER)
        self.genesis = Genesis.from_dict(
            {
                "version": 2,
                "federation": FEDERATION,
                "consent_mode": "opt-in",
                "created_ms": GENESIS_MS,
                "federation_ca": ca.hex(),
                "hospitals": [
                    {"name": name, "chain_public_key": public_bytes(k).hex()}
                    for name, k in self.keys.items()
                ],
            }
        )
        self.jobs = job_check(self.genesis)
        self.authorities = {public_bytes(k): Authority(k) for k in self.keys.values()}
        self.store = MemoryStore()
        self.state = ChainState.start(self.genesis, self.jobs)
        self.now = GENESIS_MS + 10_000_000

    def add_key(self, name: str) -> Ed25519PrivateKey:
        """A key for a hospital that may later be voted in."""
        k = self.keys[name] = authority_key(name)
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
        job_spec=job_spec,
        forged_records=forged_records,
        sign=sign,
        member_cert=member_cert,
        federation_ca=federation_ca,
        certify=_certify,
        key=key,
        GENESIS_MS=GENESIS_MS,
    )
