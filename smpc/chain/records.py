"""The records a block carries: job outcomes, consent changes, authority votes.

Each record is a frozen dataclass whose ``encode()`` is the canonical encoding
(:mod:`smpc.chain.encoding`) of a map with a ``kind`` key; :func:`decode_record`
inverts it and re-checks every rule, so a record read back from a block is as
trustworthy as one built in memory. A record's identity is the SHA-256 of its
encoding (:func:`record_id`).

What goes on the chain is public to every holder of a copy. A job record holds
hashes, commitments and names, never a share or an input value; a consent
record holds a keyed hash of the patient identifier, never the identifier.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from smpc.chain.encoding import Value, decode, encode, encode_joined
from smpc.chain.errors import ChainEncodingError, RecordError
from smpc.chain.keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, signature_valid

DIGEST_SIZE = 32
SALT_SIZE = 32
ROLES: tuple[str, ...] = ("hospital", "dealer", "analyst", "model-owner")
STATUSES: tuple[str, ...] = ("finished", "aborted")
CONSENT_ACTIONS: tuple[str, ...] = ("grant", "revoke")
CONSENT_SCOPES: tuple[str, ...] = ("all", "statistics", "model-training", "model-inference")
"""The fixed list of purposes a patient can consent to; ``all`` covers every other one."""
VOTE_ACTIONS: tuple[str, ...] = ("add", "remove")

_COMMIT_DOMAIN = b"smpc/chain/input-commitment/v1"
_JOB_SIGN_DOMAIN = "smpc/chain/job-contribution/v1"
_VOTE_SIGN_DOMAIN = "smpc/chain/authority-vote/v1"
_CONSENT_SIGN_DOMAIN = "smpc/chain/consent/v1"
_DIGEST_DOMAIN = "smpc/chain/output-digest/v1"
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def commitment(tag: bytes, salt: bytes, values: bytes) -> bytes:
    """A party's salted input commitment: SHA-256 over a domain, ``tag``, ``salt``, ``values``.

    ``salt`` is 32 random bytes the party keeps, so the commitment hides even a
    low-entropy input; lengths are framed, so no two (tag, values) pairs collide.
    """
    if len(salt) != SALT_SIZE:
        raise RecordError(f"salt must be {SALT_SIZE} random bytes, got {len(salt)}")
    h = hashlib.sha256(_COMMIT_DOMAIN)
    h.update(struct.pack(">I", len(tag)) + tag)
    h.update(salt)
    h.update(struct.pack(">Q", len(values)))
    h.update(values)
    return h.digest()


def output_digest(tags: Mapping[str, bytes]) -> bytes:
    """SHA-256 over every party's output tag, by party name: a finished job's output digest."""
    return hashlib.sha256(encode([_DIGEST_DOMAIN, dict(sorted(tags.items()))])).digest()


def record_id(data: bytes) -> bytes:
    """The identity of an encoded record: SHA-256 of its bytes."""
    return hashlib.sha256(data).digest()


# -- small checks ----------------------------------------------------------------


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise RecordError(message)


def _name(value: object, what: str) -> str:
    _check(isinstance(value, str) and value != "", f"{what} must be a non-empty string")
    return str(value)


def _sized(value: object, size: int, what: str) -> bytes:
    _check(isinstance(value, bytes) and len(value) == size, f"{what} must be {size} bytes")
    return cast(bytes, value)


def _one_of(value: object, allowed: tuple[str, ...], what: str) -> str:
    _check(value in allowed, f"{what} {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _sorted_unique(items: list[str], what: str) -> None:
    _check(items == sorted(set(items)), f"{what} must be sorted by name without repeats")


def _fields(value: Value, kind: str, names: tuple[str, ...]) -> dict[str, Any]:
    _check(isinstance(value, dict), f"a {kind} record must be a map")
    fields = cast(dict[str, Any], value)
    expected = {"kind", *names}
    _check(set(fields) == expected, f"a {kind} record has fields {sorted(expected)}")
    return fields


def _hex_map(value: object, what: str) -> tuple[tuple[str, str], ...]:
    _check(isinstance(value, dict), f"{what} must be a map of peer to hex digest")
    return tuple((str(k), v) for k, v in cast(dict[str, str], value).items())


# -- job record -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Party:
    """A member taking part in a job, and its role in it."""

    name: str
    role: str

    def __post_init__(self) -> None:
        _name(self.name, "party name")
        _one_of(self.role, ROLES, "role")


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a job was aborted: only the party blamed and the kind of failure, no detail."""

    party: str
    kind: str

    def __post_init__(self) -> None:
        _name(self.party, "failure party")
        _name(self.kind, "failure kind")


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one party vouches for: its input commitment and its view of every channel.

    ``sent`` maps each peer to the hex SHA-256 of what this party sent it,
    ``received`` to what it received from it; an auditor compares i's ``sent[j]``
    with j's ``received[i]``. ``output_tag`` is the party's HMAC of the output
    shares it returned (empty unless the job finished); the record's output
    digest is :func:`output_digest` over every party's tag. ``signature`` is the
    party's Ed25519 signature of :meth:`JobRecord.signing_message` (empty until
    signed). ``patients`` is a hospital's commitment to the patients whose rows
    it used (:mod:`smpc.chain.patients`), empty for a party without a patient
    column; it is encoded only when present, so records from before the field
    keep their encoding and signatures.
    """

    party: str
    input_commitment: bytes
    sent: tuple[tuple[str, str], ...]
    received: tuple[tuple[str, str], ...]
    signature: bytes = b""
    output_tag: bytes = b""
    patients: bytes = b""

    def __post_init__(self) -> None:
        _name(self.party, "contributing party")
        _sized(self.input_commitment, DIGEST_SIZE, "input commitment")
        for label, view in (("sent", self.sent), ("received", self.received)):
            peers = [peer for peer, _ in view]
            _sorted_unique(peers, f"{self.party}'s {label} hashes")
            for peer, digest in view:
                _check(peer != self.party, f"{self.party} lists a channel to itself")
                _check(
                    isinstance(digest, str) and _HEX_DIGEST.fullmatch(digest) is not None,
                    f"{self.party}'s {label} hash for {peer} must be 64 lowercase hex digits",
                )
        _check(
            self.signature == b"" or len(self.signature) == SIGNATURE_SIZE,
            f"{self.party}'s signature must be {SIGNATURE_SIZE} bytes",
        )
        _check(
            isinstance(self.output_tag, bytes) and len(self.output_tag) in (0, DIGEST_SIZE),
            f"{self.party}'s output tag must be empty or {DIGEST_SIZE} bytes",
        )
        _check(
            isinstance(self.patients, bytes) and len(self.patients) in (0, DIGEST_SIZE),
            f"{self.party}'s patients commitment must be empty or {DIGEST_SIZE} bytes",
        )

    def value(self, with_signature: bool = True) -> Value:
        body: dict[str, Value] = {
            "party": self.party,
            "input_commitment": self.input_commitment,
            "sent": dict(self.sent),
            "received": dict(self.received),
            "output_tag": self.output_tag,
        }
        if self.patients:
            body["patients"] = self.patients
        if with_signature:
            body["signature"] = self.signature
        return body

    @classmethod
    def from_value(cls, value: Value) -> Contribution:
        _check(isinstance(value, dict), "a contribution must be a map")
        f = cast(dict[str, Any], value)
        names = {"party", "input_commitment", "sent", "received", "signature", "output_tag"}
        _check(
            set(f) in (names, names | {"patients"}),
            f"a contribution has fields {sorted(names)} and, for a hospital, patients",
        )
        _check(f.get("patients", b"x") != b"", "an empty patients commitment is left out")
        return cls(
            party=f["party"],
            input_commitment=f["input_commitment"],
            sent=_hex_map(f["sent"], "sent"),
            received=_hex_map(f["received"], "received"),
            signature=f["signature"],
            output_tag=f["output_tag"],
            patients=f.get("patients", b""),
        )


@dataclass(frozen=True, slots=True)
class JobRecord:
    """The outcome of one job, as committed to the chain.

    ``job_id`` is the id the parties agreed on; ``signed_job`` the analyst's
    signed job bytes. ``parties`` are sorted by name (party index = position).
    ``outputs`` maps each revealed output to its recipients; ``output_digest``
    is an HMAC of the outputs under a key only the recipients hold (empty for an
    aborted job, which reveals nothing). An aborted job names a :class:`Failure`.
    """

    job_id: str
    signed_job: bytes
    protocol: str
    protocol_version: str
    parties: tuple[Party, ...]
    outputs: tuple[tuple[str, tuple[str, ...]], ...]
    output_digest: bytes
    status: str
    failure: Failure | None
    contributions: tuple[Contribution, ...]

    KIND = "job"

    def __post_init__(self) -> None:
        _name(self.job_id, "job id")
        _check(isinstance(self.signed_job, bytes) and self.signed_job != b"", "signed job empty")
        _name(self.protocol, "protocol")
        _name(self.protocol_version, "protocol version")
        names = [p.name for p in self.parties]
        _check(len(names) > 0, "a job needs at least one party")
        _sorted_unique(names, "parties")
        _sorted_unique([out for out, _ in self.outputs], "outputs")
        for out, recipients in self.outputs:
            _check(len(recipients) > 0, f"output {out} names no recipient")
            _sorted_unique(list(recipients), f"recipients of {out}")
            for recipient in recipients:
                _name(recipient, "recipient")
        _one_of(self.status, STATUSES, "status")
        if self.status == "finished":
            _check(self.failure is None, "a finished job has no failure")
            _sized(self.output_digest, DIGEST_SIZE, "output digest")
        else:
            _check(self.failure is not None, "an aborted job names its failure")
            _check(self.output_digest == b"", "an aborted job reveals no output digest")
        contributors = [c.party for c in self.contributions]
        _sorted_unique(contributors, "contributions")
        for c in self.contributions:
            _check(c.party in names, f"contribution by {c.party}, who is not a party")
            for peer, _ in (*c.sent, *c.received):
                _check(peer in names, f"{c.party} lists a channel with non-party {peer}")

    def _common(self) -> dict[str, Value]:
        failure = self.failure
        return {
            "job_id": self.job_id,
            "signed_job": self.signed_job,
            "protocol": self.protocol,
            "protocol_version": self.protocol_version,
            "parties": [[p.name, p.role] for p in self.parties],
            "outputs": {out: list(recipients) for out, recipients in self.outputs},
            "output_digest": self.output_digest,
            "status": self.status,
            "failure": None if failure is None else [failure.party, failure.kind],
        }

    def value(self) -> Value:
        return {
            "kind": self.KIND,
            **self._common(),
            "contributions": [c.value() for c in self.contributions],
        }

    def encode(self) -> bytes:
        return encode(self.value())

    def contribution(self, party: str) -> Contribution:
        for c in self.contributions:
            if c.party == party:
                return c
        raise RecordError(f"job {self.job_id} has no contribution by {party}")

    def signing_message(self, party: str) -> bytes:
        """What ``party`` signs: the common fields but the digest, and its own contribution.

        The output digest is left out because a party cannot know it before the
        others' tags arrive; it is covered through the signed tags instead
        (:meth:`digest_matches_tags`), so one exchange of signed contributions
        assembles a finished job's record.
        """
        return self._signing_messages([self.contribution(party)])[party]

    def _signing_messages(self, contributions: Sequence[Contribution]) -> dict[str, bytes]:
        """:meth:`signing_message` of each of ``contributions``' parties, by party.

        The domain and common fields, the larger part, are encoded once for all
        (:func:`encode_joined` gives the same bytes as encoding each list whole).
        """
        common = self._common()
        del common["output_digest"]
        shared = [encode(_JOB_SIGN_DOMAIN), encode(common)]
        return {
            c.party: encode_joined([*shared, encode(c.value(with_signature=False))])
            for c in contributions
        }

    def digest_matches_tags(self) -> bool:
        """Whether a finished job's output digest is the digest of its contributions' tags."""
        if self.status != "finished":
            return self.output_digest == b""
        return self.output_digest == output_digest(
            {c.party: c.output_tag for c in self.contributions}
        )

    def signed_by(self, party: str, key: Ed25519PrivateKey) -> JobRecord:
        """A copy with ``party``'s contribution signed by ``key``."""
        signature = key.sign(self.signing_message(party))
        contributions = tuple(
            replace(c, signature=signature) if c.party == party else c for c in self.contributions
        )
        return replace(self, contributions=contributions)

    def verify_signatures(self, keys: Mapping[str, bytes]) -> None:
        """Check the signature of every contributor listed in ``keys`` (name -> raw key)."""
        signed = [c for c in self.contributions if c.party in keys]
        messages = self._signing_messages(signed)
        for c in signed:
            if not signature_valid(keys[c.party], c.signature, messages[c.party]):
                raise RecordError(f"job {self.job_id}: {c.party}'s signature does not verify")

    def transcript_hashes(self) -> dict[tuple[str, str], str]:
        """Per-channel hashes {(sender, receiver): hex} as each sender reported them."""
        return {(c.party, peer): h for c in self.contributions for peer, h in c.sent}

    def channel_mismatches(self) -> list[tuple[str, str]]:
        """Channels (i, j) where i's "sent to j" differs from j's "received from i"."""
        received = {(peer, c.party): h for c in self.contributions for peer, h in c.received}
        sent = self.transcript_hashes()
        return sorted(k for k in sent.keys() & received.keys() if sent[k] != received[k])

    @classmethod
    def from_value(cls, value: Value) -> JobRecord:
        names = (*cls._common_names(), "contributions")
        f = _fields(value, cls.KIND, names)
        parties = f["parties"]
        outputs = f["outputs"]
        failure = f["failure"]
        _check(isinstance(parties, tuple), "parties must be a list")
        _check(isinstance(outputs, dict), "outputs must be a map")
        _check(isinstance(f["contributions"], tuple), "contributions must be a list")
        _check(failure is None or isinstance(failure, tuple), "failure must be a list or none")
        for p in parties:
            _check(isinstance(p, tuple) and len(p) == 2, "each party is [name, role]")
        for recipients in outputs.values():
            _check(isinstance(recipients, tuple), "recipients must be a list")
        if failure is not None:
            _check(len(failure) == 2, "failure is [party, kind]")
        return cls(
            job_id=f["job_id"],
            signed_job=f["signed_job"],
            protocol=f["protocol"],
            protocol_version=f["protocol_version"],
            parties=tuple(Party(*p) for p in parties),
            outputs=tuple((k, v) for k, v in outputs.items()),
            output_digest=f["output_digest"],
            status=f["status"],
            failure=None if failure is None else Failure(*failure),
            contributions=tuple(Contribution.from_value(c) for c in f["contributions"]),
        )

    @staticmethod
    def _common_names() -> tuple[str, ...]:
        return (
            "job_id",
            "signed_job",
            "protocol",
            "protocol_version",
            "parties",
            "outputs",
            "output_digest",
            "status",
            "failure",
        )


# -- consent ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A patient's consent granted or revoked at a hospital, for one scope.

    ``patient_key`` is HMAC-SHA256 of the patient identifier under a secret the
    hospital never puts on the chain; destroying that secret makes its records
    unlinkable to anyone. ``signature`` is the hospital's Ed25519 signature of
    :meth:`signing_message` (empty until signed), so each record is attributable.
    """

    action: str
    hospital: str
    patient_key: bytes
    scope: str
    time_ms: int
    signature: bytes = b""

    KIND = "consent"

    def __post_init__(self) -> None:
        _one_of(self.action, CONSENT_ACTIONS, "consent action")
        _name(self.hospital, "hospital")
        _sized(self.patient_key, DIGEST_SIZE, "patient key")
        _one_of(self.scope, CONSENT_SCOPES, "consent scope")
        _check(
            isinstance(self.time_ms, int) and not isinstance(self.time_ms, bool),
            "time_ms must be an integer",
        )
        _check(0 <= self.time_ms < 2**63, "time_ms must be milliseconds since 1970 (UTC)")
        _check(
            self.signature == b"" or len(self.signature) == SIGNATURE_SIZE,
            f"{self.hospital}'s consent signature must be {SIGNATURE_SIZE} bytes",
        )

    def _body(self) -> dict[str, Value]:
        return {
            "action": self.action,
            "hospital": self.hospital,
            "patient_key": self.patient_key,
            "scope": self.scope,
            "time_ms": self.time_ms,
        }

    def value(self) -> Value:
        return {"kind": self.KIND, **self._body(), "signature": self.signature}

    def encode(self) -> bytes:
        return encode(self.value())

    def signing_message(self) -> bytes:
        """What the hospital signs: every field but the signature."""
        return encode([_CONSENT_SIGN_DOMAIN, self._body()])

    def signed_by(self, key: Ed25519PrivateKey) -> ConsentRecord:
        """A copy signed by the hospital's chain key ``key``."""
        return replace(self, signature=key.sign(self.signing_message()))

    def signature_valid(self, public_key: bytes) -> bool:
        """Whether the record is signed by ``public_key`` (the hospital's raw chain key)."""
        return signature_valid(public_key, self.signature, self.signing_message())

    @classmethod
    def from_value(cls, value: Value) -> ConsentRecord:
        names = ("action", "hospital", "patient_key", "scope", "time_ms", "signature")
        f = _fields(value, cls.KIND, names)
        return cls(**{name: f[name] for name in names})


# -- authority votes ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vote:
    """One authority's signature on an :class:`AuthorityVote`, named by its public key."""

    voter: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _sized(self.voter, PUBLIC_KEY_SIZE, "voter public key")
        _sized(self.signature, SIGNATURE_SIZE, "vote signature")


@dataclass(frozen=True, slots=True)
class AuthorityVote:
    """A change of the authority set: add or remove one hospital's chain key.

    ``epoch`` is the number of changes the set has seen before this one, so an
    old vote cannot be replayed against a later set. The change needs votes from
    ceil(2n/3) current authorities and takes effect after its block is final.
    """

    action: str
    name: str
    public_key: bytes
    epoch: int
    votes: tuple[Vote, ...]

    KIND = "authority-vote"

    def __post_init__(self) -> None:
        _one_of(self.action, VOTE_ACTIONS, "vote action")
        _name(self.name, "authority name")
        _sized(self.public_key, PUBLIC_KEY_SIZE, "authority public key")
        _check(isinstance(self.epoch, int) and 0 <= self.epoch < 2**63, "epoch must be >= 0")
        voters = [v.voter for v in self.votes]
        _check(voters == sorted(set(voters)), "votes must be sorted by voter without repeats")

    def signing_message(self) -> bytes:
        """What each voting authority signs."""
        return encode([_VOTE_SIGN_DOMAIN, self.action, self.name, self.public_key, self.epoch])

    def valid_voters(self) -> set[bytes]:
        """The voters whose signatures verify (membership is checked by the caller)."""
        message = self.signing_message()
        return {v.voter for v in self.votes if signature_valid(v.voter, v.signature, message)}

    def value(self) -> Value:
        return {
            "kind": self.KIND,
            "action": self.action,
            "name": self.name,
            "public_key": self.public_key,
            "epoch": self.epoch,
            "votes": [[v.voter, v.signature] for v in self.votes],
        }

    def encode(self) -> bytes:
        return encode(self.value())

    @classmethod
    def from_value(cls, value: Value) -> AuthorityVote:
        f = _fields(value, cls.KIND, ("action", "name", "public_key", "epoch", "votes"))
        votes = f["votes"]
        _check(isinstance(votes, tuple), "votes must be a list")
        for v in votes:
            _check(isinstance(v, tuple) and len(v) == 2, "each vote is [voter, signature]")
        return cls(
            f["action"], f["name"], f["public_key"], f["epoch"], tuple(Vote(*v) for v in votes)
        )


Record = JobRecord | ConsentRecord | AuthorityVote
_KINDS: dict[str, type[JobRecord] | type[ConsentRecord] | type[AuthorityVote]] = {
    JobRecord.KIND: JobRecord,
    ConsentRecord.KIND: ConsentRecord,
    AuthorityVote.KIND: AuthorityVote,
}


def decode_record(data: bytes) -> Record:
    """The record whose encoding is ``data``; raises ChainEncodingError or RecordError."""
    value = decode(data)
    if not isinstance(value, dict) or value.get("kind") not in _KINDS:
        raise RecordError("not a record: expected a map whose kind is job, consent or vote")
    try:
        record = _KINDS[str(value["kind"])].from_value(value)
    except (TypeError, AttributeError) as exc:
        raise RecordError(f"malformed {value['kind']} record: {exc}") from exc
    if record.encode() != bytes(data):
        raise ChainEncodingError("record bytes are not the canonical encoding of the record")
    return record
