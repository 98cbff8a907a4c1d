"""The dealer as a service: seeds for every party, corrections for party 0, ahead of use.

A computing party calls ``Provision`` once per job with the analyst-signed job
and the plan of its own dry run. The dealer checks the job's signature, that
the caller (read from its TLS certificate) computes in the job, that every
party's plan is the same, and that no party provisions a job twice. It then
sends the caller its seed; to the job's first party it streams every
correction in plan order, in chunks of at most 1 MiB, as fast as the party
reads them, so that no online round ever waits on a dealer round trip.

Trust: the dealer knows every seed of the job. It never receives inputs or
shares, and must be run by an organisation that holds no patient data.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import numpy as np

from parties.config import MemberConfig, dns_name
from parties.jobs.spec import JobRejected, SignedJob, verify_job
from parties.service import tls, wire_pb2, wire_pb2_grpc
from parties.service.mesh import CHUNK_BYTES
from smpc.errors import PeerAuthenticationError, PeerTimeoutError, SMPCError
from smpc.preprocessing import CorrectionFeed, Dealer, Plan
from smpc.preprocessing.ahead import Ahead
from smpc.preprocessing.dealer import seeded_count
from smpc.preprocessing.source import component_shapes

log = logging.getLogger(__name__)

# Correction chunks stay within a frame; a request carries the whole plan, which for
# a job of many small steps (tens of thousands of items) can exceed one.
_PLAN_BYTES = 32 << 20
_OPTIONS = [
    ("grpc.max_receive_message_length", _PLAN_BYTES),
    ("grpc.max_send_message_length", _PLAN_BYTES),
]


class _DealerJob:
    def __init__(self, dealer: Dealer, plan_json: str, parties: tuple[str, ...]) -> None:
        self.dealer = dealer
        self.plan_json = plan_json
        self.parties = parties
        self.provisioned: set[str] = set()


class DealerService(wire_pb2_grpc.DealerServicer):
    """Provisions jobs for the computing parties of one federation."""

    def __init__(self, member: MemberConfig) -> None:
        self.member = member
        self._jobs: dict[str, _DealerJob] = {}
        self._done: set[str] = set()
        self._lock = threading.Lock()

    def Provision(self, request, context):  # noqa: N802 - gRPC's method name
        try:
            caller = tls.peer_name(context, self.member)
            signed = SignedJob.from_json(request.signed_job)
            spec = verify_job(signed, self.member)
            job = self._register(signed.job_id, spec.parties, caller, request.plan)
        except (PeerAuthenticationError, JobRejected, SMPCError, ValueError) as exc:
            log.warning("dealer: refused provisioning for %s: %s", context.peer(), exc)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        index = sorted(spec.parties).index(caller)
        log.info("dealer: job %s: provisioning %s", signed.job_id, caller)
        yield wire_pb2.ProvisionChunk(seed=job.dealer.seed_for(index))
        if index == 0:
            yield from _correction_chunks(job.dealer)
        self._finish(signed.job_id, caller)

    def Health(self, request, context):  # noqa: N802 - gRPC's method name
        return wire_pb2.HealthReply(
            name=self.member.name, federation=self.member.federation, status="serving"
        )

    def _register(
        self, job_id: str, parties: tuple[str, ...], caller: str, plan_json: str
    ) -> _DealerJob:
        if caller not in parties:
            raise PeerAuthenticationError(f"{caller} does not compute in job {job_id}")
        with self._lock:
            if job_id in self._done:
                raise JobRejected(job_id, "replay", "the job was already provisioned")
            job = self._jobs.get(job_id)
            if job is None:
                plan = Plan.from_json(plan_json)
                dealer = Dealer(self.member.federation, job_id, len(parties), plan)
                job = self._jobs[job_id] = _DealerJob(dealer, plan_json, parties)
            if job.plan_json != plan_json:
                raise JobRejected(job_id, "plan-mismatch", f"{caller}'s plan differs")
            if caller in job.provisioned:
                raise JobRejected(job_id, "replay", f"{caller} was already provisioned")
            job.provisioned.add(caller)
            return job

    def _finish(self, job_id: str, caller: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.provisioned == set(job.parties):
                del self._jobs[job_id]
                self._done.add(job_id)


def _correction_chunks(dealer: Dealer) -> Iterator[wire_pb2.ProvisionChunk]:
    for item in range(len(dealer.plan)):
        for component, array in enumerate(dealer.corrections(item)):
            raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
            count = max(1, -(-raw.nbytes // CHUNK_BYTES))
            for chunk in range(count):
                yield wire_pb2.ProvisionChunk(
                    item=item,
                    component=component,
                    chunk=chunk,
                    last=chunk == count - 1,
                    payload=raw[chunk * CHUNK_BYTES : (chunk + 1) * CHUNK_BYTES].tobytes(),
                )


def serve(member: MemberConfig, *, workers: int = 8) -> grpc.Server:
    """Start the dealer service on the member's address (mutual TLS)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=_OPTIONS)
    wire_pb2_grpc.add_DealerServicer_to_server(DealerService(member), server)
    if server.add_secure_port(member.address, tls.server_credentials(member)) == 0:
        raise OSError(f"dealer: cannot listen on {member.address}")
    server.start()
    return server


class DealerLink:
    """A party's long-lived channel to the federation's dealer; one stream per job."""

    def __init__(self, member: MemberConfig) -> None:
        dealer = next((p for p in member.peers if p.role == "dealer"), None)
        if dealer is None:
            raise SMPCError(f"{member.name}: no dealer is configured")
        self.name = dealer.name
        options = [
            *_OPTIONS,
            ("grpc.ssl_target_name_override", dns_name(member.federation, dealer.name)),
        ]
        self._channel = grpc.secure_channel(
            dealer.address, tls.channel_credentials(member), options
        )

    def provision(
        self, job: str, signed_job: bytes, plan: Plan, *, timeout: float
    ) -> DealerConnection:
        """Ask for this party's seed (and, at party 0, the corrections) for one job."""
        stream = wire_pb2_grpc.DealerStub(self._channel).Provision(
            wire_pb2.ProvisionRequest(signed_job=signed_job, plan=plan.to_json()),
            timeout=timeout,
            wait_for_ready=True,  # a dealer that is down makes the job wait, then fail
        )
        return DealerConnection(stream, self.name, job, plan)

    def close(self) -> None:
        self._channel.close()


class DealerConnection:
    """A party's provisioning for one job: its seed now, party 0's corrections as they come."""

    def __init__(
        self, stream: Iterator[wire_pb2.ProvisionChunk], dealer: str, job: str, plan: Plan
    ) -> None:
        self._stream = stream
        self.plan = plan
        try:
            first = next(stream)
        except grpc.RpcError as exc:
            self.close()
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise PeerTimeoutError(
                    job, dealer, "dealer unavailable", exc.details() or ""
                ) from None
            raise SMPCError(f"job {job}: the dealer refused the job: {exc.details()}") from None
        self.seed = first.seed

    def feed(self) -> CorrectionFeed:
        """Party 0's corrections, read from the stream on a background thread."""
        return _StreamFeed(self)

    def close(self) -> None:
        """End this job's stream (the channel stays for the next job)."""
        cancel = getattr(self._stream, "cancel", None)
        if cancel is not None:
            cancel()


class _StreamFeed(CorrectionFeed):
    def __init__(self, conn: DealerConnection) -> None:
        self._conn = conn
        self._ahead = Ahead(self._read_item, len(conn.plan), "dealer-stream")

    def _read_item(self, index: int) -> list[np.ndarray]:
        request = self._conn.plan[index]
        shapes = component_shapes(request)[seeded_count(request.kind) :]
        parts = []
        for component, shape in enumerate(shapes):
            out = np.empty(shape, dtype=np.uint64)
            raw = out.reshape(-1).view(np.uint8)
            offset = 0
            while True:
                chunk = next(self._conn._stream)
                if (chunk.item, chunk.component) != (index, component):
                    raise SMPCError(f"the dealer sent item {chunk.item} where {index} was due")
                size = len(chunk.payload)
                if offset + size > raw.nbytes:
                    raise SMPCError("the dealer sent more correction bytes than the plan holds")
                raw[offset : offset + size] = np.frombuffer(chunk.payload, dtype=np.uint8)
                offset += size
                if chunk.last:
                    break
            if offset != raw.nbytes:
                raise SMPCError("the dealer sent fewer correction bytes than the plan holds")
            parts.append(out)
        return parts

    def corrections(self, index: int) -> list[np.ndarray]:
        return self._ahead.get(index)
