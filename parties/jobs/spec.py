"""Jobs: what an analyst asks the federation to compute, signed, verified and admitted.

A job is a :class:`JobSpec` in one canonical JSON encoding (sorted keys, no
insignificant whitespace, UTF-8, times as integer milliseconds UTC; floats only
inside ``params``). Its id is the hex SHA-256 of those bytes, so parties can
compare ids before round 1. A fresh random ``nonce`` makes two otherwise equal
jobs distinct, so a repeated id is always a replay.

The analyst signs ``SIGNATURE_TAG + canonical bytes`` with the EC P-256 key of
its federation TLS certificate (ECDSA with SHA-256); the :class:`SignedJob`
envelope carries the exact signed bytes, the certificate and the signature.

A party runs :func:`verify_job` (who signed it) and then :func:`admit` (whether
its policy accepts it) before any computation. Every refusal raises
:class:`JobRejected` with a ``kind`` from :data:`REJECTION_KINDS`; messages name
the job id and the reason, never an input value or a row count.

Not covered here: certificate revocation (a leaked analyst key is valid until
its certificate expires) and persistence of seen job ids across restarts
(:class:`smpc.jobs.SeenJobs` lives in memory; a party node also refuses the ids kept
in its records file, see ``parties.service.node``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from parties.config import COMPUTING_ROLES, ConfigError, MemberConfig, check_name, parse_identity
from smpc.chain.records import CONSENT_SCOPES
from smpc.errors import JobReplayError, SMPCError

JOB_FORMAT_VERSION = 1
"""The ``version`` field of the spec and envelope encodings; others are refused."""

SIGNATURE_TAG = b"smpc/job/v1\n"
"""Prefix of the signed message, so a job signature can never pass for another object's."""

REJECTION_KINDS: tuple[str, ...] = (
    "malformed",
    "bad-signature",
    "unknown-analyst",
    "protocol-not-allowed",
    "protocol-version",
    "recipient-not-allowed",
    "not-a-party",
    "expired",
    "lifetime-too-long",
    "replay",
    "scope",
    "probabilities-not-allowed",
    "budget",
    "bad-request",
)
"""The kinds of refusal raised by this module."""

CLOCK_SKEW_MS = 30_000
"""How far ahead of this member's clock an analyst's clock may run."""

JOB_SCOPES: tuple[str, ...] = tuple(s for s in CONSENT_SCOPES if s != "all")
"""What a job may be for; a hospital uses the rows of patients who consent to it."""

DEFAULT_SCOPE = "statistics"

LOCAL_DATA_REASON = (
    "this party cannot use its selected rows for the job; its operator's log names the cause"
)
"""The one reason a party gives for any failure that depends on its data.

A small contribution, an unparsable or out-of-range value, a shape that does
not match the job, a missing pseudonym: each depends on which rows a filter
kept, so each answer must read the same, or a filter that selects one patient
only when a condition holds turns the answer into a test of that patient's
value. The detail (column, row, range; never a value) goes to the party's own
log only.
"""

_NONCE = re.compile(r"[0-9a-f]{32}")
_PROTOCOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_OUTPUT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_SPEC_KEYS = frozenset(
    {
        "version",
        "federation",
        "protocol",
        "protocol_version",
        "analyst",
        "parties",
        "inputs",
        "params",
        "outputs",
        "reveal_probabilities",
        "deadline_ms",
        "nonce",
        "created_ms",
        "scope",
    }
)
_ENVELOPE_KEYS = frozenset({"version", "spec", "certificate", "signature"})
_INPUT_KEYS = frozenset({"columns", "where"})


class JobFormatError(SMPCError, ValueError):
    """A job spec or envelope is not well formed: a missing, unknown or badly typed field."""


class JobRejected(SMPCError):
    """A member refuses a job; ``kind`` is a short tag such as those in :data:`REJECTION_KINDS`.

    The message names the job id and the reason, never an input value. Other
    services (the dealer) may use kinds of their own.
    """

    def __init__(self, job_id: str, kind: str, reason: str) -> None:
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"a rejection kind must be a non-empty string, got {kind!r}")
        self.job_id = job_id
        self.kind = kind
        self.reason = reason
        super().__init__(f"job {job_id} refused ({kind}): {reason}")


class LocalDataError(SMPCError):
    """A party cannot use its selected rows for a job; the cause stays in its own log.

    Its message is always :data:`LOCAL_DATA_REASON`, whatever the cause, so it
    can go to the analyst, the peers and the chain.
    """

    kind = "local-data"

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id}: {LOCAL_DATA_REASON}")


def now_ms() -> int:
    """The current time in integer milliseconds since the Unix epoch (UTC)."""
    return time.time_ns() // 1_000_000


def new_nonce() -> str:
    """16 random bytes in hex, from the operating system's CSPRNG."""
    return secrets.token_hex(16)


# -- the job spec -----------------------------------------------------------------


@dataclass(frozen=True)
class InputSpec:
    """One party's input: the columns it contributes and an optional row filter."""

    columns: tuple[str, ...]
    where: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.columns, str) or not isinstance(self.columns, list | tuple):
            raise JobFormatError(f"input columns must be a list of names, got {self.columns!r}")
        columns = tuple(self.columns)
        for column in columns:
            if not isinstance(column, str) or not column:
                raise JobFormatError(f"input column {column!r} is not a non-empty string")
        if len(set(columns)) != len(columns):
            raise JobFormatError("an input column is listed twice")
        object.__setattr__(self, "columns", columns)
        if self.where is not None and not (isinstance(self.where, str) and self.where):
            raise JobFormatError(f"input filter {self.where!r} is not a non-empty string or None")

    def to_plain(self) -> dict[str, Any]:
        """The JSON object for this input."""
        return {"columns": list(self.columns), "where": self.where}


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """What an analyst asks to compute: protocol, parties, inputs, public params, recipients.

    ``parties`` are the computing parties, kept sorted (a party's index in the
    job is its position there); ``inputs`` maps some of them to what they
    contribute; ``outputs`` maps each declared output to its recipients.
    ``nonce`` and ``created_ms`` default to fresh values, so building the same
    request twice gives two different job ids.
    """

    federation: str
    protocol: str
    protocol_version: str
    analyst: str
    parties: tuple[str, ...]
    inputs: dict[str, InputSpec]
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, tuple[str, ...]]
    reveal_probabilities: bool = False
    deadline_ms: int
    nonce: str = field(default_factory=new_nonce)
    created_ms: int = field(default_factory=now_ms)
    scope: str = DEFAULT_SCOPE

    def __post_init__(self) -> None:
        _name(self.federation, "federation name")
        _name(self.analyst, "analyst name")
        if not isinstance(self.protocol, str) or _PROTOCOL.fullmatch(self.protocol) is None:
            raise JobFormatError(f"protocol name {self.protocol!r} is not valid")
        if not isinstance(self.protocol_version, str) or not self.protocol_version.strip():
            raise JobFormatError("protocol_version must be a non-empty string")
        parties = _name_tuple(self.parties, "parties")
        if len(parties) < 2:
            raise JobFormatError("a job needs at least two computing parties")
        object.__setattr__(self, "parties", tuple(sorted(parties)))
        object.__setattr__(self, "inputs", self._checked_inputs())
        object.__setattr__(self, "params", _checked_params(self.params))
        object.__setattr__(self, "outputs", self._checked_outputs())
        if not isinstance(self.reveal_probabilities, bool):
            raise JobFormatError("reveal_probabilities must be true or false")
        if self.reveal_probabilities and "probabilities" not in self.outputs:
            raise JobFormatError(
                "reveal_probabilities needs outputs to name the probabilities' recipients"
            )
        _millis(self.created_ms, "created_ms")
        _millis(self.deadline_ms, "deadline_ms")
        if self.deadline_ms <= self.created_ms:
            raise JobFormatError("deadline_ms must be later than created_ms")
        if self.scope not in JOB_SCOPES:
            raise JobFormatError(
                f"scope {self.scope!r} is not one of {', '.join(JOB_SCOPES)}; a job names"
                " the purpose its hospitals check consent for"
            )
        if not isinstance(self.nonce, str) or _NONCE.fullmatch(self.nonce) is None:
            raise JobFormatError("nonce must be 32 lowercase hex digits (16 random bytes)")
        self.to_json()  # every spec can be encoded: no lone surrogates in any string

    def _checked_inputs(self) -> dict[str, InputSpec]:
        if not isinstance(self.inputs, Mapping):
            raise JobFormatError("inputs must map party names to InputSpec")
        inputs: dict[str, InputSpec] = {}
        for party in sorted(self.inputs, key=str):
            spec = self.inputs[party]
            if party not in self.parties:
                raise JobFormatError(f"inputs name {party!r}, which is not one of the parties")
            if not isinstance(spec, InputSpec):
                raise JobFormatError(f"inputs[{party!r}] must be an InputSpec")
            inputs[party] = spec
        return inputs

    def _checked_outputs(self) -> dict[str, tuple[str, ...]]:
        if not isinstance(self.outputs, Mapping) or not self.outputs:
            raise JobFormatError("outputs must map at least one output name to its recipients")
        outputs: dict[str, tuple[str, ...]] = {}
        for name in sorted(self.outputs, key=str):
            if not isinstance(name, str) or _OUTPUT.fullmatch(name) is None:
                raise JobFormatError(f"output name {name!r} is not valid")
            recipients = _name_tuple(self.outputs[name], f"outputs[{name!r}]")
            if not recipients:
                raise JobFormatError(f"output {name!r} has no recipients")
            outputs[name] = tuple(sorted(recipients))
        return outputs

    @property
    def recipients(self) -> frozenset[str]:
        """Every member that receives some output of this job."""
        return frozenset(r for names in self.outputs.values() for r in names)

    def seconds_left(self, now: int | None = None) -> float:
        """Seconds from ``now`` (milliseconds UTC; default: the clock) to the deadline.

        Negative once the deadline has passed.
        """
        return (self.deadline_ms - _now(now)) / 1000

    def party_index(self, name: str) -> int:
        """The index of party ``name`` in this job (its position in the sorted parties)."""
        if name not in self.parties:
            raise JobFormatError(f"{name!r} is not a party of job {self.job_id}")
        return self.parties.index(name)

    def to_plain(self) -> dict[str, Any]:
        """The JSON object that is encoded and signed (with the format version)."""
        return {
            "version": JOB_FORMAT_VERSION,
            "federation": self.federation,
            "protocol": self.protocol,
            "protocol_version": self.protocol_version,
            "analyst": self.analyst,
            "parties": list(self.parties),
            "inputs": {party: spec.to_plain() for party, spec in self.inputs.items()},
            "params": self.params,
            "outputs": {name: list(names) for name, names in self.outputs.items()},
            "reveal_probabilities": self.reveal_probabilities,
            "deadline_ms": self.deadline_ms,
            "nonce": self.nonce,
            "created_ms": self.created_ms,
            "scope": self.scope,
        }

    def to_json(self) -> str:
        """The canonical JSON text of this spec."""
        return self._text

    def canonical(self) -> bytes:
        """The canonical UTF-8 bytes: what is hashed into the id and what the analyst signs."""
        return self._bytes

    @functools.cached_property
    def job_id(self) -> str:
        """Hex SHA-256 of the canonical bytes."""
        return hashlib.sha256(self._bytes).hexdigest()

    # A spec is encoded once, when it is made (the encoding is part of its check): a party
    # asked for the id or the bytes a dozen times per job, about 1 ms of encoding each
    # job. The fields are never changed after construction (the dataclass is frozen and
    # nothing writes into its dicts), so the text made then stays the spec's text.
    @functools.cached_property
    def _text(self) -> str:
        return _canonical(self.to_plain())

    @functools.cached_property
    def _bytes(self) -> bytes:
        return self._text.encode("utf-8")

    @classmethod
    def from_json(cls, data: str | bytes) -> JobSpec:
        """Parse a spec; unknown or missing fields, duplicate keys and bad types are refused.

        Any JSON layout is read; :func:`verify_job` additionally requires the
        signed bytes to be exactly the canonical encoding.
        """
        raw = _load_object(data, "job spec")
        _check_keys(raw, _SPEC_KEYS, "job spec")
        _check_version(raw["version"], "job spec")
        for key in ("inputs", "outputs", "params"):
            if not isinstance(raw[key], dict):
                raise JobFormatError(f"job spec field {key!r} must be a JSON object")
        inputs = {}
        for party, value in raw["inputs"].items():
            if not isinstance(value, dict):
                raise JobFormatError(f"inputs[{party!r}] must be a JSON object")
            _check_keys(value, _INPUT_KEYS, f"inputs[{party!r}]")
            inputs[party] = InputSpec(columns=value["columns"], where=value["where"])
        return cls(
            federation=raw["federation"],
            protocol=raw["protocol"],
            protocol_version=raw["protocol_version"],
            analyst=raw["analyst"],
            parties=raw["parties"],
            inputs=inputs,
            params=raw["params"],
            outputs=raw["outputs"],
            reveal_probabilities=raw["reveal_probabilities"],
            deadline_ms=raw["deadline_ms"],
            nonce=raw["nonce"],
            created_ms=raw["created_ms"],
            scope=raw["scope"],
        )


# -- signing ------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedJob:
    """A job as it travels: the exact signed spec bytes, the signer's certificate, the signature.

    Nothing here is trusted until :func:`verify_job` has checked it.
    """

    spec_bytes: bytes
    certificate_pem: str
    signature: bytes

    @functools.cached_property
    def job_id(self) -> str:
        """Hex SHA-256 of the signed spec bytes (equal to the spec's id once verified)."""
        return hashlib.sha256(self.spec_bytes).hexdigest()

    def to_json(self) -> str:
        """The envelope as canonical JSON; the spec is carried verbatim as a string."""
        return _canonical(
            {
                "version": JOB_FORMAT_VERSION,
                "spec": self.spec_bytes.decode("utf-8"),
                "certificate": self.certificate_pem,
                "signature": self.signature.hex(),
            }
        )

    @classmethod
    def from_json(cls, data: str | bytes) -> SignedJob:
        """Parse an envelope; raises JobFormatError if it is not one (checks no signature)."""
        raw = _load_object(data, "signed job")
        _check_keys(raw, _ENVELOPE_KEYS, "signed job")
        _check_version(raw["version"], "signed job")
        spec, cert, sig = raw["spec"], raw["certificate"], raw["signature"]
        if not (isinstance(spec, str) and isinstance(cert, str) and isinstance(sig, str)):
            raise JobFormatError("spec, certificate and signature must be strings")
        try:
            spec_bytes = spec.encode("utf-8")
            signature = bytes.fromhex(sig)
        except (UnicodeEncodeError, ValueError):
            raise JobFormatError("the spec is not UTF-8 or the signature is not hex") from None
        return cls(spec_bytes=spec_bytes, certificate_pem=cert, signature=signature)


def sign_job(spec: JobSpec, key_path: str | Path, cert_path: str | Path) -> SignedJob:
    """Sign ``spec`` with an EC P-256 private key whose certificate is at ``cert_path``.

    Only checks that the key belongs to the certificate; whether the certificate
    may sign this job is for :func:`verify_job` at each party to decide.
    """
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{key_path} does not hold an EC P-256 private key")
    pem = Path(cert_path).read_text(encoding="ascii")
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        raise ValueError(f"the key in {key_path} does not belong to the certificate {cert_path}")
    canonical = spec.canonical()
    signature = key.sign(SIGNATURE_TAG + canonical, ec.ECDSA(hashes.SHA256()))
    return SignedJob(spec_bytes=canonical, certificate_pem=pem, signature=signature)


def verify_job(signed: SignedJob, member: MemberConfig, now_ms: int | None = None) -> JobSpec:
    """Check who signed a job and return its spec, or raise JobRejected.

    The certificate must be issued by ``member``'s federation CA, valid at
    ``now_ms``, and name ``smpc://<this federation>/analyst/<spec.analyst>``;
    the signature must cover the tag and the exact canonical spec bytes.
    """
    path = Path(member.tls.ca_cert)
    stat = path.stat()
    ca = _federation_ca(path, stat.st_mtime_ns, stat.st_size)
    return verify_signed_job(signed, ca, member.federation, now_ms)


def warm_verification(member: MemberConfig) -> None:
    """Run every step of :func:`verify_job` once on material that is no job's, before any job.

    Reads ``member``'s federation CA (kept, as for a job) and checks this
    member's own certificate against it; signs a fixed text with a throwaway
    P-256 key and verifies it. The crypto library sets up each algorithm on
    first use: without this the first job paid 4-12 ms that later jobs do not.
    A certificate these checks refuse is not an error here: the member's TLS
    connections report it, naming the peer.
    """
    path = Path(member.tls.ca_cert)
    stat = path.stat()
    ca = _federation_ca(path, stat.st_mtime_ns, stat.st_size)
    try:
        own = x509.load_pem_x509_certificate(Path(member.tls.cert).read_bytes())
        own.verify_directly_issued_by(ca)
        own.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    text, ecdsa = b"smpc/warm-up", ec.ECDSA(hashes.SHA256())
    key.public_key().verify(key.sign(text, ecdsa), text, ecdsa)


@functools.lru_cache(maxsize=8)
def _federation_ca(path: Path, mtime_ns: int, size: int) -> x509.Certificate:
    """The CA certificate in ``path``, read again only when the file changes."""
    return x509.load_pem_x509_certificate(path.read_bytes())


@functools.lru_cache(maxsize=64)
def _issued_by(pem: str, ca: x509.Certificate) -> x509.Certificate:
    """A signer's certificate, parsed and checked to be issued by ``ca``, once per pair.

    Every job of an analyst carries the same certificate; parsing it and
    checking the CA's signature on it took about half of a job's verification
    at each party and at the dealer. Its validity period, identity and the
    job's own signature are still checked for every job. Raises ValueError,
    TypeError, UnicodeEncodeError or InvalidSignature (never cached).
    """
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    cert.verify_directly_issued_by(ca)
    return cert


def verify_signed_job(
    signed: SignedJob, ca: x509.Certificate, federation: str, now_ms: int | None = None
) -> JobSpec:
    """:func:`verify_job` against a given CA and federation (e.g. those pinned in the genesis)."""
    job_id = signed.job_id
    when = _now(now_ms)
    _, role, signer = _check_certificate(signed, ca, federation, when)
    if role != "analyst":
        _reject(job_id, "bad-signature", f"the job is signed by {role} {signer!r}, not an analyst")
    try:
        spec = JobSpec.from_json(signed.spec_bytes)
    except JobFormatError as exc:
        _reject(job_id, "malformed", str(exc))
    if spec.canonical() != signed.spec_bytes:
        _reject(job_id, "malformed", "the signed spec is not in canonical encoding")
    if spec.federation != federation:
        _reject(job_id, "bad-signature", f"the job is for federation {spec.federation!r}")
    if spec.analyst != signer:
        _reject(
            job_id, "bad-signature", f"the job names analyst {spec.analyst!r} but {signer!r} signed"
        )
    return spec


def signer_validity_ms(signed: SignedJob, ca: x509.Certificate) -> tuple[int, int]:
    """The times (ms UTC, inclusive) at which both the signer's certificate and ``ca`` are
    valid: the only part of :func:`verify_signed_job` that depends on the time asked.

    For a job that verified; raises as :func:`_issued_by` for one that did not.
    """
    cert = _issued_by(signed.certificate_pem, ca)
    starts = [_to_ms(c.not_valid_before_utc.timestamp()) for c in (cert, ca)]
    ends = [_to_ms(c.not_valid_after_utc.timestamp()) for c in (cert, ca)]
    return max(starts), min(ends)


def _check_certificate(
    signed: SignedJob, ca: x509.Certificate, federation: str, when: int
) -> tuple[str, str, str]:
    """Chain, validity, identity and signature checks; returns the signer's identity."""
    job_id = signed.job_id
    try:
        cert = _issued_by(signed.certificate_pem, ca)
    except (ValueError, TypeError, InvalidSignature, UnicodeEncodeError):
        try:  # which check failed: reading the certificate, or its issuer's signature
            x509.load_pem_x509_certificate(signed.certificate_pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            _reject(job_id, "bad-signature", "the signer's certificate is not a PEM certificate")
        _reject(job_id, "bad-signature", "the signer's certificate is not from the federation CA")
    for which, c in (("signer's", cert), ("federation CA", ca)):
        start = _to_ms(c.not_valid_before_utc.timestamp())
        end = _to_ms(c.not_valid_after_utc.timestamp())
        if not start <= when <= end:
            _reject(job_id, "bad-signature", f"the {which} certificate is not valid now")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if is_ca:
        _reject(job_id, "bad-signature", "the job is signed with a CA certificate")
    identity = _identity(cert, job_id)
    if identity[0] != federation:
        _reject(job_id, "bad-signature", f"the signer belongs to federation {identity[0]!r}")
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        _reject(job_id, "bad-signature", "the signer's key is not EC P-256")
    try:
        public.verify(
            signed.signature, SIGNATURE_TAG + signed.spec_bytes, ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        _reject(job_id, "bad-signature", "the signature does not match the spec and certificate")
    return identity


def _identity(cert: x509.Certificate, job_id: str) -> tuple[str, str, str]:
    """The single smpc:// URI SAN of a certificate, parsed."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = list(san.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        uris = []
    ours = [u for u in uris if u.startswith("smpc://")]
    if len(ours) != 1:
        _reject(job_id, "bad-signature", "the signer's certificate has no single smpc:// identity")
    try:
        return parse_identity(ours[0])
    except ConfigError:
        _reject(job_id, "bad-signature", "the signer's certificate identity is malformed")


# -- admission ----------------------------------------------------------------------


class JobIdRegistry(Protocol):
    """Anything that records job ids and raises JobReplayError on a repeat."""

    def admit(self, job: str) -> None: ...


class QueryCounter(Protocol):
    """Anything that counts an analyst's admitted jobs: False once the budget is used."""

    def charge(self, analyst: str, job: str, now_ms: int) -> bool: ...


def admit(
    job: SignedJob | JobSpec,
    member: MemberConfig,
    registry: JobIdRegistry,
    *,
    own_rows: int | None = None,
    now_ms: int | None = None,
    scope: str | None = None,
    budget: QueryCounter | None = None,
) -> JobSpec:
    """Run this member's admission checks and record the job id; return the spec.

    A :class:`SignedJob` is verified first; a :class:`JobSpec` is taken as
    already verified by :func:`verify_job`. Checks, in order: analyst,
    protocol and pinned version, the protocol's consent ``scope`` (when
    given), recipients, probabilities, party membership (for hospitals and
    model owners), deadline, own contribution size (when ``own_rows`` is
    given), the replay check, and last the analyst's query ``budget`` (when
    given), so only a job that passes everything else uses up its id and
    the budget. None of these reads a row of data: a party runs them all
    before it selects its rows, so their answer cannot depend on a patient.
    """
    when = _now(now_ms)
    spec = verify_job(job, member, when) if isinstance(job, SignedJob) else job
    job_id = spec.job_id
    policy = member.policy
    if spec.analyst not in policy.analysts:
        _reject(job_id, "unknown-analyst", f"analyst {spec.analyst!r} is not accepted here")
    if spec.protocol not in policy.protocols:
        _reject(job_id, "protocol-not-allowed", f"protocol {spec.protocol!r} is not accepted here")
    pinned = policy.protocols[spec.protocol]
    if spec.protocol_version != pinned:
        _reject(
            job_id,
            "protocol-version",
            f"protocol {spec.protocol!r} version {spec.protocol_version!r} is not the pinned"
            f" version {pinned!r}",
        )
    if scope is not None and spec.scope != scope:
        _reject(
            job_id,
            "scope",
            f"protocol {spec.protocol!r} runs under consent scope {scope!r}, not {spec.scope!r}",
        )
    refused = sorted(spec.recipients - set(policy.recipients))
    if refused:
        _reject(
            job_id, "recipient-not-allowed", f"recipients not accepted here: {', '.join(refused)}"
        )
    if spec.reveal_probabilities and not policy.allow_probabilities:
        _reject(
            job_id,
            "probabilities-not-allowed",
            "this member's policy does not permit revealing probabilities (allow_probabilities)",
        )
    _check_parties(spec, member)
    check_deadline(spec, member, when)
    if own_rows is not None:
        check_cohort(spec, member, own_rows)
    try:
        registry.admit(job_id)
    except JobReplayError:
        _reject(job_id, "replay", "this job id was already admitted")
    if budget is not None and not budget.charge(spec.analyst, job_id, when):
        _reject(
            job_id,
            "budget",
            f"analyst {spec.analyst!r} has used this member's query budget of"
            f" {policy.query_budget} jobs per {policy.query_window_s} s",
        )
    return spec


def check_deadline(spec: JobSpec, member: MemberConfig, when: int) -> None:
    """Refuse a job past its deadline, or one that may live longer than this member allows.

    The limit (``policy.max_job_seconds``) bounds how long one job may hold a
    party's threads and memory; it applies from the job's creation and from
    now (allowing for clocks up to :data:`CLOCK_SKEW_MS` apart).
    """
    if spec.deadline_ms <= when:
        _reject(spec.job_id, "expired", "the job's deadline has passed")
    limit = member.policy.max_job_seconds
    lifetime = max(spec.deadline_ms - spec.created_ms, spec.deadline_ms - when - CLOCK_SKEW_MS)
    if lifetime > limit * 1000:
        _reject(
            spec.job_id,
            "lifetime-too-long",
            f"the job may run for {lifetime / 1000:.0f} s; {member.name} accepts at most"
            f" {limit} s: set a deadline within {limit} s of the job's creation",
        )


def check_cohort(spec: JobSpec, member: MemberConfig, own_rows: int) -> None:
    """Refuse a contribution below the minimum with the one reason every data failure gives.

    Usable on its own when rows are counted only after :func:`admit`.
    """
    if not isinstance(own_rows, int) or isinstance(own_rows, bool) or own_rows < 0:
        raise TypeError("own_rows must be a non-negative int")
    if own_rows < member.policy.min_cell_size:
        raise LocalDataError(spec.job_id)


def _check_parties(spec: JobSpec, member: MemberConfig) -> None:
    """Computing members must be parties; every party must be a computing member."""
    computing = {p.name for p in member.computing_peers}
    if member.role in COMPUTING_ROLES:
        computing.add(member.name)
        if member.name not in spec.parties:
            _reject(spec.job_id, "not-a-party", f"{member.name!r} is not one of the job's parties")
    unknown = [p for p in spec.parties if p not in computing]
    if unknown:
        _reject(
            spec.job_id,
            "not-a-party",
            f"not computing members of this federation: {', '.join(unknown)}",
        )


# -- small helpers ------------------------------------------------------------------


def _reject(job_id: str, kind: str, reason: str) -> NoReturn:
    raise JobRejected(job_id, kind, reason)


def _now(value: int | None) -> int:
    if value is None:
        return now_ms()
    _millis(value, "now_ms")
    return value


def _to_ms(seconds: float) -> int:
    return round(seconds * 1000)


def _millis(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise JobFormatError(f"{what} must be a non-negative integer of milliseconds")
    return value


def _name(value: object, what: str) -> str:
    try:
        return check_name(value, what)
    except ConfigError as exc:
        raise JobFormatError(exc.message) from None


def _name_tuple(values: object, what: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise JobFormatError(f"{what} must be a list of member names")
    names = tuple(_name(v, f"{what} entry") for v in values)
    if len(set(names)) != len(names):
        raise JobFormatError(f"{what} lists a name twice")
    return names


def _checked_params(params: object) -> dict[str, Any]:
    """A JSON-compatible copy of ``params``: finite floats, string keys, lists for tuples."""
    if not isinstance(params, Mapping):
        raise JobFormatError("params must be a JSON object")
    try:
        return _plain(params, "params")
    except RecursionError:
        raise JobFormatError("params are nested too deeply") from None


def _plain(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JobFormatError(f"{where} holds a NaN or infinite number")
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise JobFormatError(f"{where} has a non-string key {key!r}")
            out[key] = _plain(item, f"{where}.{key}")
        return out
    raise JobFormatError(f"{where} holds a {type(value).__name__}, which JSON cannot carry")


def _canonical(value: object) -> str:
    """Sorted keys, no spaces, non-ASCII kept as is (encoded as UTF-8 by the caller)."""
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JobFormatError("a string in the job is not valid Unicode") from None
    return text


def _load_object(data: str | bytes, what: str) -> dict[str, Any]:
    """Strict JSON: an object, no duplicate keys, no NaN/Infinity, UTF-8 bytes."""
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise JobFormatError(f"the {what} is not UTF-8") from None
    try:
        raw = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise JobFormatError(f"the {what} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise JobFormatError(f"the {what} is not a JSON object")
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JobFormatError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise JobFormatError(f"{name} is not allowed in a job")


def _check_version(value: object, what: str) -> None:
    if type(value) is not int or value != JOB_FORMAT_VERSION:
        raise JobFormatError(f"{what} format version {value!r} is not {JOB_FORMAT_VERSION}")


def _check_keys(raw: Mapping[str, Any], expected: frozenset[str], what: str) -> None:
    missing = sorted(expected - raw.keys())
    unknown = sorted(raw.keys() - expected)
    if missing or unknown:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unknown {', '.join(unknown)}"] if unknown else []
        raise JobFormatError(f"the {what} has {'; '.join(parts)}")


def _public_der(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
