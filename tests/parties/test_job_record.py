"""A job record's parts: input commitments, output tags and digest, views, the agreement rule."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest

from parties import wire_pb2
from parties.job_record import (
    JobView,
    agree,
    digest_of_replies,
    input_commitment,
    output_digest,
    output_tag,
)
from protocols.registry import JobContext
from smpc.chain.encoding import encode
from smpc.chain.errors import RecordError
from smpc.chain.records import Failure, commitment

PARTIES = ("a", "b", "c")


def view(party: str, failure: Failure | None = None) -> JobView:
    peers = [p for p in PARTIES if p != party]
    return JobView(
        party=party,
        input_commitment=hashlib.sha256(party.encode()).digest(),
        sent={p: hashlib.sha256(f"{party}>{p}".encode()).hexdigest() for p in peers},
        received={p: hashlib.sha256(f"{p}>{party}".encode()).hexdigest() for p in peers},
        output_tag=b"" if failure else hashlib.sha256(b"tag" + party.encode()).digest(),
        failure=failure,
    )


def test_the_input_commitment_covers_the_exact_values_with_a_fresh_salt() -> None:
    values = np.array([[1.5, 2.0], [3.25, np.nan]])
    ctx = JobContext(params={}, parties=PARTIES, party="a", columns=("x", "y"), values=values)
    commit, salt = input_commitment("job1", ctx)
    tag = encode(["smpc/job-record/input/v1", "job1", "a", ["x", "y"], [2, 2]])
    assert commit == commitment(tag, salt, values.astype("<f8").tobytes())
    again, other_salt = input_commitment("job1", ctx)
    assert other_salt != salt and again != commit
    fewer = JobContext(params={}, parties=PARTIES, party="a", columns=("x", "y"), values=values[:1])
    assert commitment(tag, salt, fewer.values.tobytes()) != commit


def tensor(name: str, data: bytes) -> wire_pb2.Tensor:
    return wire_pb2.Tensor(name=name, dtype="<u8", shape=[len(data) // 8], frac_bits=0, data=data)


def test_output_tags_are_keyed_and_the_digest_covers_every_party() -> None:
    key = bytes(range(32))
    shares = [tensor("sum", (7).to_bytes(8, "little")), tensor("count", (3).to_bytes(8, "little"))]
    tag = output_tag(key, shares)
    assert tag == output_tag(key, list(reversed(shares)))  # by output name
    assert tag != output_tag(bytes(32), shares)
    assert tag != output_tag(key, [shares[0], tensor("count", (4).to_bytes(8, "little"))])
    assert len(tag) == 32 and tag != hmac.new(key, b"", hashlib.sha256).digest()
    replies = {
        p: wire_pb2.SubmitReply(party=p, ok=True, outputs=shares, output_key=bytes([i]) * 32)
        for i, p in enumerate(PARTIES)
    }
    tags = {p: output_tag(r.output_key, r.outputs) for p, r in replies.items()}
    assert digest_of_replies(replies) == output_digest(tags)
    assert output_digest(tags) != output_digest({**tags, "c": bytes(32)})


def test_views_round_trip_and_malformed_views_are_refused() -> None:
    v = view("b", Failure("c", "timed out"))
    assert JobView.decode(v.encode()) == v
    good = view("a")
    assert JobView.decode(good.encode()) == good
    for broken in (
        JobView("a", bytes(31), good.sent, good.received, good.output_tag, None),
        JobView("a", good.input_commitment, {"a": "0" * 64}, good.received, b"", None),
        JobView("a", good.input_commitment, good.sent, good.received, b"short", None),
    ):
        with pytest.raises(RecordError):
            JobView.decode(broken.encode())
    with pytest.raises(RecordError, match="fields"):
        JobView.decode(encode({"party": "a"}))


def test_every_party_derives_the_same_outcome_from_the_same_views() -> None:
    views = [view(p) for p in PARTIES]
    status, failure, digest = agree(views)
    assert (status, failure) == ("finished", None)
    assert digest == output_digest({v.party: v.output_tag for v in views})
    assert agree(list(reversed(views))) == agree(views)
    # The root cause beats the failures that only report it, whoever reports first.
    aborted = [
        view("a", Failure("c", "party aborted")),
        view("b", Failure("c", "party aborted")),
        view("c", Failure("c", "refused: cohort-too-small")),
    ]
    assert agree(aborted) == ("aborted", Failure("c", "refused: cohort-too-small"), b"")
    assert agree(list(reversed(aborted))) == agree(aborted)
    # Only consequences: the first party by name names it.
    echoes = [view("b", Failure("a", "timed out")), view("a", Failure("c", "party unreachable"))]
    assert agree(echoes) == ("aborted", Failure("c", "party unreachable"), b"")
