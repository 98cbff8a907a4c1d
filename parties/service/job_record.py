"""A job's record, assembled at every party when the job ends (finished or aborted).

Each computing party knows its own part of the record: its salted input
commitment, its transcript hashes per channel, the tag of the output shares it
returned, and how the job ended for it. The parties assemble the record over
their data plane, on a mailbox of its own (the job's id plus ``/record``), so it
works after an abort too; once assembled, both the job's and the record's
mailboxes are closed, so late messages for either are dropped:

1. every party sends its :class:`JobView`, signed with its Ed25519 chain key
   as part of the record it expects (the outcome as it saw it; the output
   digest is not signed, the party's own output tag is). From the views it
   heard, each party derives the common fields by one deterministic rule
   (:func:`agree`): finished only if every view says so, otherwise aborted
   with the root failure (one that is not merely the consequence of another,
   by party name), and for a finished job the digest of every party's tag.
   When every party finished, every signature already fits: one round.
2. only when some party expected another outcome (an aborted job), every
   party signs the agreed record and sends that signature.

A contribution whose signature does not verify against the genesis key is
left out, and so is a party that does not answer within
:data:`EXCHANGE_SECONDS` (dead, or cut off). Model owners hold no chain key, so
their contributions are unsigned; the hospitals' signed views of the same
channels vouch for them.

Output digest: each party draws a fresh 32-byte key per job and tags the
output shares it returns to the analyst with HMAC-SHA256 under that key; the
key travels only in its reply to the analyst. The record's digest is SHA-256
over every party's tag, so the analyst (who gets every share and every key)
can check it with :func:`digest_of_replies`, and nobody else can test a guess
of the outputs against it. Outputs a protocol hands to computing parties
itself (e.g. each hospital's own labels) are listed in the record, but not
covered by the digest.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from parties.jobs.spec import JobSpec
from parties.service import wire_pb2
from parties.service.dataplane import DataPlane
from parties.service.frames import DATA, Frame
from parties.service.mailboxes import Rejection
from protocols.registry import JobContext
from smpc.chain.encoding import Value, decode, encode
from smpc.chain.errors import ChainEncodingError, RecordError
from smpc.chain.keys import signature_valid
from smpc.chain.records import (
    DIGEST_SIZE,
    SALT_SIZE,
    Contribution,
    Failure,
    JobRecord,
    Party,
    commitment,
    output_digest,
)
from smpc.transcript import Transcript

log = logging.getLogger(__name__)

EXCHANGE_SECONDS = 5.0
"""How long a party waits for each peer's view and signature."""

CONSEQUENCES = frozenset({"party aborted", "party unreachable", "timed out"})
"""Failure kinds that only report another party's failure; the root cause is preferred."""

PURPOSE = "record"
_VIEW_ROUND, _SIGNATURE_ROUND = 1, 2
_INPUT_TAG = "smpc/job-record/input/v1"
_OUTPUT_TAG = "smpc/job-record/output/v1"


def mailbox(job_id: str) -> str:
    """The data plane's mailbox of a job's record exchange, apart from the job's own."""
    return f"{job_id}/record"


# -- what one party contributes ---------------------------------------------------


def input_commitment(job_id: str, ctx: JobContext) -> tuple[bytes, bytes]:
    """(commitment, salt) over the exact values this party used (after filter and consent).

    A hospital commits to its selected rows, a model owner to its weights and
    bias; a hospital whose database computed a statistic's local aggregates
    commits to those aggregates, the only values of its that entered the job
    (the tag says so). The 32-byte salt is fresh and stays with the party.
    """
    salt = secrets.token_bytes(SALT_SIZE)
    values = ctx.values
    fields: list[Value] = [_INPUT_TAG, job_id, ctx.party, list(ctx.columns)]
    if ctx.model is not None:
        weights, bias = ctx.model.folded()
        values = np.append(np.asarray(weights, dtype=np.float64).ravel(), bias)
    elif ctx.data is not None:  # computed in the database: the aggregates are what it used
        values = ctx.data.answered()
        fields.append("aggregates")
    data = np.ascontiguousarray(values, dtype="<f8").tobytes()
    tag = encode([*fields[:4], list(values.shape), *fields[4:]])
    return commitment(tag, salt, data), salt


def output_tag(key: bytes, tensors: Sequence[wire_pb2.Tensor]) -> bytes:
    """HMAC-SHA256 under ``key`` of the output shares a party returns, by output name."""
    items: list[Value] = [
        [t.name, t.dtype, list(t.shape), t.frac_bits, t.data]
        for t in sorted(tensors, key=lambda t: t.name)
    ]
    return hmac.new(key, encode([_OUTPUT_TAG, items]), hashlib.sha256).digest()


def digest_of_replies(replies: Mapping[str, wire_pb2.SubmitReply]) -> bytes:
    """What the analyst computes from the replies it got: equals the record's output digest."""
    return output_digest(
        {party: output_tag(r.output_key, r.outputs) for party, r in replies.items()}
    )


@dataclass(frozen=True)
class JobView:
    """One party's account of a job, before anyone signs: its contribution and outcome.

    ``failure`` is None when the job finished here; ``output_tag`` is empty
    unless it did.
    """

    party: str
    input_commitment: bytes
    sent: dict[str, str]
    received: dict[str, str]
    output_tag: bytes
    failure: Failure | None
    patients: bytes = b""

    def encode(self) -> bytes:
        failure = self.failure
        return encode(
            {
                "patients": self.patients,
                "party": self.party,
                "input_commitment": self.input_commitment,
                "sent": self.sent,
                "received": self.received,
                "output_tag": self.output_tag,
                "failure": None if failure is None else [failure.party, failure.kind],
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> JobView:
        """Parse a peer's view; raises RecordError or ChainEncodingError if it is not one."""
        value = decode(data)
        names = {"party", "input_commitment", "sent", "received", "output_tag", "failure"}
        names |= {"patients"}
        if not isinstance(value, dict) or set(value) != names:
            raise RecordError(f"a job view has exactly the fields {sorted(names)}")
        f = cast(dict[str, Any], value)
        failure = f["failure"]
        if failure is not None and not (isinstance(failure, tuple) and len(failure) == 2):
            raise RecordError("a view's failure is [party, kind] or none")
        tag = f["output_tag"]
        if not isinstance(tag, bytes) or len(tag) not in (0, DIGEST_SIZE):
            raise RecordError(f"an output tag is empty or {DIGEST_SIZE} bytes")
        for key in ("sent", "received"):
            if not isinstance(f[key], dict):
                raise RecordError(f"a view's {key} hashes are a map")
        view = cls(
            party=f["party"],
            input_commitment=f["input_commitment"],
            sent=dict(f["sent"]),
            received=dict(f["received"]),
            output_tag=tag,
            failure=None if failure is None else Failure(*failure),
            patients=f["patients"],
        )
        view.contribution()  # the contribution's own checks
        return view

    def contribution(self) -> Contribution:
        return Contribution(
            party=self.party,
            input_commitment=self.input_commitment,
            sent=tuple(sorted(self.sent.items())),
            received=tuple(sorted(self.received.items())),
            output_tag=self.output_tag,
            patients=self.patients,
        )


def view_of(
    party: str,
    parties: Sequence[str],
    transcript: Transcript,
    input_commit: bytes,
    tag: bytes,
    failure: Failure | None,
    patients: bytes = b"",
) -> JobView:
    """A party's view from its transcript (indices mapped to the job's party names).

    ``patients`` is a hospital's commitment to the patients it used (or empty).
    """
    digests = transcript.digests()
    return JobView(
        party=party,
        input_commitment=input_commit,
        sent={parties[i]: h for i, h in digests["sent"].items()},
        received={parties[i]: h for i, h in digests["received"].items()},
        output_tag=tag if failure is None else b"",
        failure=failure,
        patients=patients,
    )


def agree(views: Sequence[JobView]) -> tuple[str, Failure | None, bytes]:
    """(status, failure, output digest) that every party derives from the same views."""
    failures = [v.failure for v in sorted(views, key=lambda v: v.party) if v.failure is not None]
    if failures:
        root = sorted(failures, key=lambda f: f.kind in CONSEQUENCES)[0]
        return "aborted", root, b""
    return "finished", None, output_digest({v.party: v.output_tag for v in views})


# -- the exchange -------------------------------------------------------------------


def assemble(
    plane: DataPlane,
    spec: JobSpec,
    signed_job: bytes,
    roles: Mapping[str, str],
    mine: JobView,
    key: Ed25519PrivateKey | None,
    chain_keys: Mapping[str, bytes],
    *,
    seconds: float = EXCHANGE_SECONDS,
) -> JobRecord:
    """Exchange signed views with the job's other parties; the record as assembled here.

    ``roles`` maps each party to its role, ``chain_keys`` each hospital to its
    raw Ed25519 public key (from the genesis); ``key`` is this party's chain
    key (None for a model owner, whose contribution stays unsigned).
    """
    job_id, me = spec.job_id, plane.name
    box = mailbox(job_id)
    peers = [p for p in spec.parties if p != me]
    base = JobRecord(
        job_id=job_id,
        signed_job=signed_job,
        protocol=spec.protocol,
        protocol_version=spec.protocol_version,
        parties=tuple(Party(p, roles[p]) for p in spec.parties),
        outputs=tuple(spec.outputs.items()),
        output_digest=b"" if mine.failure else bytes(DIGEST_SIZE),
        status="aborted" if mine.failure else "finished",
        failure=mine.failure,
        contributions=(mine.contribution(),),
    )
    try:
        # Round 1: the view, signed as if every party saw the job end as this one did.
        signed, mine_signature = _signed_view(base, mine, key)
        _send_all(plane, box, peers, _VIEW_ROUND, signed)
        views, signatures = {me: mine}, {}
        for peer, data in _receive_all(plane, box, peers, _VIEW_ROUND, seconds).items():
            try:
                views[peer], signatures[peer] = _read_view(data, peer, spec)
            except (RecordError, ChainEncodingError) as exc:
                log.warning("%s: job %s: %s sent a bad view: %s", me, job_id, peer, exc)
        status, failure, digest = agree(list(views.values()))
        record = replace(
            base,
            output_digest=digest,
            status=status,
            failure=failure,
            contributions=tuple(views[p].contribution() for p in sorted(views)),
        )
        if key is not None:
            # What a party signs leaves out the digest and the other contributions: if the
            # outcome is the one this party's view expected, its signature fits already.
            if (status, failure) == (base.status, base.failure):
                record = _with_own_signature(record, me, mine_signature)
            else:
                record = record.signed_by(me, key)
        # Round 2, only when some party guessed the outcome wrong (an aborted job):
        # everyone signs the outcome agreed from the views.
        if any(v.failure != failure for v in views.values()):
            _send_all(plane, box, peers, _SIGNATURE_ROUND, record.contribution(me).signature)
            heard = [p for p in peers if p in views]
            signatures = _receive_all(plane, box, heard, _SIGNATURE_ROUND, seconds)
    finally:
        # The job has ended here: messages still coming for it or its record are dropped.
        plane.close_job(box)
        plane.close_job(job_id)
    return _with_signatures(record, signatures, chain_keys, me)


def _signed_view(
    base: JobRecord, mine: JobView, key: Ed25519PrivateKey | None
) -> tuple[bytes, bytes]:
    """The view as sent, and this party's signature of ``base`` in it (empty without a key)."""
    signature = b"" if key is None else base.signed_by(mine.party, key).contributions[0].signature
    return encode({"view": mine.encode(), "signature": signature}), signature


def _with_own_signature(record: JobRecord, me: str, signature: bytes) -> JobRecord:
    contributions = tuple(
        replace(c, signature=signature) if c.party == me else c for c in record.contributions
    )
    return replace(record, contributions=contributions)


def _read_view(data: bytes, peer: str, spec: JobSpec) -> tuple[JobView, bytes]:
    value = decode(data)
    if not isinstance(value, dict) or set(value) != {"view", "signature"}:
        raise RecordError("a signed view is a map of view and signature")
    signature = value["signature"]
    view_bytes = value["view"]
    if not isinstance(signature, bytes) or not isinstance(view_bytes, bytes):
        raise RecordError("a signed view holds bytes")
    view = JobView.decode(view_bytes)
    if view.party != peer:
        raise RecordError(f"the view names {view.party!r}")
    strangers = (set(view.sent) | set(view.received)) - set(spec.parties)
    if strangers:
        raise RecordError(f"the view names non-parties {sorted(strangers)}")
    return view, signature


def _with_signatures(
    record: JobRecord, signatures: Mapping[str, bytes], chain_keys: Mapping[str, bytes], me: str
) -> JobRecord:
    """Keep each contribution whose signature verifies (or that has no key to verify with)."""
    kept = []
    for c in record.contributions:
        if c.party == me:
            kept.append(c)
            continue
        signature = signatures.get(c.party, b"")
        public = chain_keys.get(c.party)
        if public is None and signature == b"":
            kept.append(c)  # a member without a chain key (a model owner)
        elif public is not None and signature_valid(
            public, signature, record.signing_message(c.party)
        ):
            kept.append(replace(c, signature=signature))
        else:
            log.warning(
                "%s: job %s: %s's record signature is missing or does not verify; left out",
                me,
                record.job_id,
                c.party,
            )
    return replace(record, contributions=tuple(kept))


def _send_all(
    plane: DataPlane, box: str, peers: Sequence[str], round_: int, payload: bytes
) -> None:
    for peer in peers:
        plane.send(peer, Frame(DATA, box, PURPOSE, round_, length=len(payload), payload=payload))


def _receive_all(
    plane: DataPlane, box: str, peers: Sequence[str], round_: int, seconds: float
) -> dict[str, bytes]:
    """Each peer's payload of ``round_``; a peer silent until the deadline is left out."""
    deadline = time.monotonic() + seconds
    heard: dict[str, bytes] = {}
    for peer in peers:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or plane.unreachable_for(peer) > 1.0:
                break
            try:
                item = plane.receive(box, peer, min(left, 0.25))
            except queue.Empty:
                continue
            if isinstance(item, Rejection):
                break
            if item.round == round_ and item.purpose == PURPOSE:
                heard[peer] = bytes(item.payload)
                break
    return heard
