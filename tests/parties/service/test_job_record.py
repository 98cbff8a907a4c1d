"""A job record's parts: input commitments, output tags and digest, views, the agreement rule."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import queue
import threading
from typing import cast

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from parties.jobs.spec import InputSpec, JobSpec, now_ms
from parties.service import wire_pb2
from parties.service.dataplane import DataPlane
from parties.service.frames import DATA, Frame
from parties.service.job_record import (
    JobView,
    agree,
    assemble,
    digest_of_replies,
    input_commitment,
    output_digest,
    output_tag,
)
from protocols.local_data import RowData
from protocols.registry import JobContext
from smpc.chain.encoding import encode
from smpc.chain.errors import RecordError
from smpc.chain.keys import public_bytes
from smpc.chain.records import Failure, JobRecord, commitment

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


def test_aggregates_computed_in_a_database_are_what_a_party_commits_to() -> None:
    rows = np.array([[1.0, 4.0], [3.0, np.nan], [5.0, 8.0]])
    data = RowData(("x", "y"), rows)  # stands for a source's aggregates: the same interface
    counted, sums = data.sums()
    ctx = JobContext(
        params={},
        parties=PARTIES,
        party="a",
        columns=("x", "y"),
        values=np.zeros((0, 2)),
        data=data,
    )
    commit, salt = input_commitment("job1", ctx)
    used = np.array([counted.rows, counted.dropped, *sums])
    assert used.tolist() == [2, 1, 6.0, 12.0]
    tag = encode(["smpc/job-record/input/v1", "job1", "a", ["x", "y"], [4], "aggregates"])
    assert commit == commitment(tag, salt, used.astype("<f8").tobytes())


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
        view("c", Failure("c", "local-data")),
    ]
    assert agree(aborted) == ("aborted", Failure("c", "local-data"), b"")
    assert agree(list(reversed(aborted))) == agree(aborted)
    # Only consequences: the first party by name names it.
    echoes = [view("b", Failure("a", "timed out")), view("a", Failure("c", "party unreachable"))]
    assert agree(echoes) == ("aborted", Failure("c", "party unreachable"), b"")


class FakePlane:
    """Mailboxes between in-process parties, shaped like the data plane's job-message calls."""

    def __init__(self, name: str, network: dict[str, FakePlane]) -> None:
        self.name = name
        self.network = network
        self.boxes: dict[tuple[str, str], queue.SimpleQueue] = {}
        network[name] = self

    def box(self, job: str, peer: str) -> queue.SimpleQueue:
        return self.boxes.setdefault((job, peer), queue.SimpleQueue())

    def send(self, peer: str, frame: Frame) -> None:
        self.network[peer].box(frame.job, self.name).put(frame)

    def receive(self, job: str, peer: str, timeout: float | None) -> Frame:
        return self.box(job, peer).get(timeout=timeout)

    def unreachable_for(self, peer: str) -> float:
        return 0.0

    def close_job(self, job: str) -> None:
        self.boxes = {k: v for k, v in self.boxes.items() if k[0] != job}


def spec() -> JobSpec:
    return JobSpec(
        federation="testfed",
        protocol="stats-count",
        protocol_version="3",
        analyst="analyst",
        parties=PARTIES,
        inputs={p: InputSpec(("x",)) for p in PARTIES},
        outputs={"count": ("analyst",)},
        deadline_ms=now_ms() + 60_000,
    )


def run_parties(job: JobSpec, names, keys, public, views, seconds=5.0):
    network: dict[str, FakePlane] = {}
    meshes = {p: FakePlane(p, network) for p in PARTIES}
    roles = dict.fromkeys(PARTIES, "hospital")
    out: dict[str, JobRecord] = {}

    def one(p: str) -> None:
        mesh = cast(DataPlane, meshes[p])
        out[p] = assemble(mesh, job, b"{}", roles, views[p], keys[p], public, seconds=seconds)

    threads = [threading.Thread(target=one, args=(p,)) for p in names]
    for t in threads:
        t.start()
    return out, meshes, threads


def signed_view(v: JobView, key_or_signature: Ed25519PrivateKey | bytes) -> bytes:
    """The first-round message of a party (a signature made up, or of the view's bytes)."""
    if isinstance(key_or_signature, bytes):
        return encode({"view": v.encode(), "signature": key_or_signature})
    return encode({"view": v.encode(), "signature": key_or_signature.sign(v.encode())})


def test_the_parties_assemble_one_record_signed_by_each() -> None:
    job = spec()
    keys = {p: Ed25519PrivateKey.generate() for p in PARTIES}
    public = {p: public_bytes(k) for p, k in keys.items()}
    views = {p: view(p) for p in PARTIES}
    out, _, threads = run_parties(job, PARTIES, keys, public, views)
    for t in threads:
        t.join(timeout=10)
    records = [out[p] for p in PARTIES]
    assert all(r == records[0] for r in records)
    record = records[0]
    assert record.status == "finished" and [c.party for c in record.contributions] == list(PARTIES)
    record.verify_signatures(public)
    assert record.output_digest == output_digest({p: views[p].output_tag for p in PARTIES})


def test_a_bad_view_or_signature_leaves_that_party_out() -> None:
    job = spec()
    keys = {p: Ed25519PrivateKey.generate() for p in PARTIES}
    public = {p: public_bytes(k) for p, k in keys.items()}
    views = {p: view(p) for p in PARTIES}
    out, meshes, threads = run_parties(job, ("a", "b"), keys, public, views, seconds=1.0)
    rogue = meshes["c"]
    box = f"{job.job_id}/record"
    bad = dataclasses.replace(views["c"], sent={**views["c"].sent, "zed": "0" * 64})
    for peer in ("a", "b"):  # a view naming a stranger, then a signature of nothing
        for round_, payload in ((1, signed_view(bad, keys["c"])), (2, bytes(64))):
            rogue.send(
                peer,
                Frame(DATA, box, "record", round_, payload=payload),
            )
    for t in threads:
        t.join(timeout=10)
    assert (
        [c.party for c in out["a"].contributions]
        == ["a", "b"]
        == [c.party for c in out["b"].contributions]
    )
    out["a"].verify_signatures(public)
    # A well-formed view whose signature does not verify is left out too.
    out, meshes, threads = run_parties(job, ("a", "b"), keys, public, views, seconds=1.0)
    for peer in ("a", "b"):
        for round_, payload in ((1, signed_view(views["c"], bytes(64))), (2, bytes(64))):
            meshes["c"].send(
                peer,
                Frame(DATA, box, "record", round_, payload=payload),
            )
    for t in threads:
        t.join(timeout=10)
    assert [c.party for c in out["a"].contributions] == ["a", "b"]


def test_an_aborted_job_takes_a_second_round_to_agree_on_its_failure() -> None:
    job = spec()
    keys = {p: Ed25519PrivateKey.generate() for p in PARTIES}
    public = {p: public_bytes(k) for p, k in keys.items()}
    views = {
        "a": view("a"),  # finished here before hearing of the failure
        "b": view("b", Failure("b", "local-data")),
        "c": view("c", Failure("b", "party aborted")),
    }
    out, _, threads = run_parties(job, PARTIES, keys, public, views)
    for t in threads:
        t.join(timeout=10)
    records = [out[p] for p in PARTIES]
    assert all(r == records[0] for r in records)
    record = records[0]
    assert (record.status, record.failure) == ("aborted", Failure("b", "local-data"))
    assert [c.party for c in record.contributions] == list(PARTIES)
    record.verify_signatures(public)
