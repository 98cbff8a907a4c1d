"""The dealer as a service: seeds for every party, corrections for party 0, ahead of use.

A computing party calls ``Provision`` once per job with the analyst-signed job
and the plan of its own dry run. The dealer checks the job's signature, that
the caller (read from its TLS certificate) computes in the job, that every
party's plan is the same, and that no party provisions a job twice. It then
sends the caller its seed; to the job's first party it streams every
correction in plan order, as fast as the party reads them, so that no online
round ever waits on a dealer round trip. The corrections travel as one byte
stream (each item's arrays in order, raw little-endian) cut into messages of
at most 1 MiB or 2 ms of the dealer's work, the first of which also carries
the seed: a job of a few small items is provisioned in one message; a large
plan's seed goes alone, before any correction is computed, so that the
party expands its own shares while the dealer works. (One
message per correction array cost about 1 ms each on the dealer's side: a
10-round count job spent 4-8 ms waiting for its provisioning.)

The dealer refuses a job past its deadline or longer-lived than its policy
allows, and forgets a job at its deadline: one that some party never
provisions does not stay in memory, and a replay after the deadline is refused
as expired. At most :data:`PENDING_JOBS` jobs wait for their parties at once.

Trust: the dealer knows every seed of the job. It never receives inputs or
shares, and must be run by an organisation that holds no patient data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
import grpc.experimental
import numpy as np

from parties.config import MemberConfig, dns_name
from parties.jobs.spec import JobRejected, JobSpec, SignedJob, check_deadline, now_ms, verify_job
from parties.service import tls, wire_pb2, wire_pb2_grpc
from parties.service.mesh import CHUNK_BYTES
from smpc.errors import PeerAuthenticationError, PeerTimeoutError, SMPCError
from smpc.jobs import SeenJobs
from smpc.preprocessing import CorrectionFeed, Dealer, Plan
from smpc.preprocessing.ahead import Ahead
from smpc.preprocessing.plan import AHEAD_WORDS
from smpc.preprocessing.source import component_shapes
from smpc.preprocessing.streams import seeded_count

log = logging.getLogger(__name__)

# Correction chunks stay within a frame; a request carries the whole plan, which for
# a job of many small steps (tens of thousands of items) can exceed one.
_PLAN_BYTES = 32 << 20
_OPTIONS = [
    ("grpc.max_receive_message_length", _PLAN_BYTES),
    ("grpc.max_send_message_length", _PLAN_BYTES),
]
# A party retries a dealer that is down (or restarting) at least once a second.
_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

PENDING_JOBS = 1024
"""Jobs provisioned by some but not all of their parties that the dealer holds at once."""

DEALER_UNAVAILABLE = "dealer unavailable"

FLUSH_S = 0.002
"""The longest the dealer works on corrections before it sends what it has."""

CONNECT_S = 60.0
"""How long a party's first call to the dealer waits for a dealer still starting."""


class _DealerJob:
    def __init__(self, dealer: Dealer, plan_json: str, signed_job: bytes, spec: JobSpec) -> None:
        self.dealer = dealer
        self.plan_json = plan_json
        self.signed_job = signed_job
        """The signed job as its first party sent it, verified then."""
        self.spec = spec
        self.parties = spec.parties
        self.deadline_ms = spec.deadline_ms
        self.provisioned: set[str] = set()


class DealerService(wire_pb2_grpc.DealerServicer):
    """Provisions jobs for the computing parties of one federation."""

    def __init__(self, member: MemberConfig) -> None:
        self.member = member
        self._jobs: dict[str, _DealerJob] = {}
        self._done = SeenJobs()  # jobs every party provisioned, until their deadline
        self._lock = threading.Lock()
        self.clock_ms: Callable[[], int] = now_ms
        """Wall-clock milliseconds, against which job deadlines are checked."""

    @tls.authenticated("provisioning")
    def Provision(self, request, context, caller):  # noqa: N802 - gRPC's method name
        try:
            signed, spec = self._verified(request.signed_job)
            job = self._register(signed.job_id, spec, caller, request.plan, request.signed_job)
        except (PeerAuthenticationError, JobRejected, SMPCError, ValueError) as exc:
            log.warning("dealer: refused provisioning for %s: %s", context.peer(), exc)
            busy = isinstance(exc, JobRejected) and exc.kind == "dealer-busy"
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if busy else grpc.StatusCode.PERMISSION_DENIED
            context.abort(code, str(exc))
        index = sorted(spec.parties).index(caller)
        log.info("dealer: job %s: provisioning %s", signed.job_id, caller)
        try:
            seed = job.dealer.seed_for(index)
            if index == 0:
                yield from _correction_chunks(job.dealer, seed)
            else:
                yield wire_pb2.ProvisionChunk(seed=seed, last=True)
        finally:  # the caller holds its seed: provisioned, even if it stopped reading
            self._finish(signed.job_id)

    @tls.authenticated("a health check")
    def Health(self, request, context, caller):  # noqa: N802 - gRPC's method name
        return wire_pb2.HealthReply(
            name=self.member.name, federation=self.member.federation, status="serving"
        )

    def _verified(self, signed_job: bytes) -> tuple[SignedJob, JobSpec]:
        """The signed job and its spec, its signature checked (JobRejected if it fails).

        Checked once per job: a request carrying exactly the bytes that the
        job's first party sent and that were verified then, moments ago, takes
        that spec (the deadline is checked again for every request); any other
        bytes are verified on their own. Each party used to cost the dealer a
        full verification of the same job.
        """
        signed = SignedJob.from_json(signed_job)
        with self._lock:
            job = self._jobs.get(signed.job_id)
        if job is not None and job.signed_job == signed_job:
            return signed, job.spec
        return signed, verify_job(signed, self.member)

    def _register(
        self, job_id: str, spec: JobSpec, caller: str, plan_json: str, signed_job: bytes
    ) -> _DealerJob:
        parties = spec.parties
        if caller not in parties:
            raise PeerAuthenticationError(f"{caller} does not compute in job {job_id}")
        now = self.clock_ms()
        check_deadline(spec, self.member, now)
        with self._lock:
            self._expire(now)
            if job_id in self._done:
                raise JobRejected(job_id, "replay", "the job was already provisioned")
            job = self._jobs.get(job_id)
            if job is None:
                if len(self._jobs) >= PENDING_JOBS:
                    raise JobRejected(
                        job_id,
                        "dealer-busy",
                        f"{PENDING_JOBS} jobs already wait for their parties; submit it later",
                    )
                plan = Plan.from_json(plan_json)
                dealer = Dealer(self.member.federation, job_id, len(parties), plan)
                job = _DealerJob(dealer, plan_json, signed_job, spec)
                self._jobs[job_id] = job
            if job.plan_json != plan_json:
                raise JobRejected(job_id, "plan-mismatch", f"{caller}'s plan differs")
            if caller in job.provisioned:
                raise JobRejected(job_id, "replay", f"{caller} was already provisioned")
            job.provisioned.add(caller)
            return job

    def _finish(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.provisioned == set(job.parties):
                del self._jobs[job_id]
                self._done.admit(job_id, until_ms=job.deadline_ms)

    def _expire(self, now: int) -> None:
        """Forget jobs past their deadline; no party may use them any more (under the lock)."""
        for job_id in [j for j, job in self._jobs.items() if job.deadline_ms <= now]:
            del self._jobs[job_id]
        self._done.forget_expired(now)


def _correction_chunks(dealer: Dealer, seed: bytes) -> Iterator[wire_pb2.ProvisionChunk]:
    """The seed, then every correction of the plan as one byte stream.

    A message goes out when it holds :data:`CHUNK_BYTES`, or once the dealer
    has worked :data:`FLUSH_S` on what it holds: a plan of many small items
    (each costs the dealer its arithmetic) starts the party at once
    instead of after the whole plan. The first message carries the seed
    (alone for a plan of more than :data:`~smpc.preprocessing.plan.AHEAD_WORDS`), the final one
    says ``last``.
    """
    pending: list[bytes] = []
    size = chunk = 0
    since = time.monotonic()

    def message(last: bool = False) -> wire_pb2.ProvisionChunk:
        return wire_pb2.ProvisionChunk(
            seed=seed if chunk == 0 else b"", chunk=chunk, last=last, payload=b"".join(pending)
        )

    if dealer.plan.words > AHEAD_WORDS:  # the party expands its seed meanwhile
        yield message()
        chunk, since = 1, time.monotonic()

    for item in range(len(dealer.plan)):
        for array in dealer.corrections(item):
            raw = np.ascontiguousarray(array, dtype="<u8").reshape(-1).view(np.uint8).data
            while raw.nbytes:
                take = min(raw.nbytes, CHUNK_BYTES - size)
                pending.append(raw[:take].tobytes())
                size += take
                raw = raw[take:]
                if size == CHUNK_BYTES:
                    yield message()
                    pending, size, chunk, since = [], 0, chunk + 1, time.monotonic()
        if item + 1 < len(dealer.plan) and time.monotonic() - since > FLUSH_S:
            yield message()
            pending, size, chunk, since = [], 0, chunk + 1, time.monotonic()
    yield message(last=True)


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
        self.party = member.name
        options = [
            *_OPTIONS,
            *_RECONNECT,
            ("grpc.ssl_target_name_override", dns_name(member.federation, dealer.name)),
            # The reader of a stream drives it: otherwise each job's call started the
            # channel's polling thread anew (about 3 ms before the request left).
            (grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1),
        ]
        self._channel = grpc.secure_channel(
            dealer.address, tls.channel_credentials(member), options
        )

    def connect(self, timeout: float = CONNECT_S) -> threading.Thread:
        """Open the channel now, on a thread of its own: a health call that waits for a dealer
        still starting (retried per the channel's backoff) for up to ``timeout`` seconds.

        Otherwise the channel connects on the first job's provisioning, which
        then waits for a TCP and a TLS handshake that no later job waits for.
        """
        thread = threading.Thread(target=self._health, args=(timeout,), name="dealer-connect")
        thread.daemon = True
        thread.start()
        return thread

    def _health(self, timeout: float) -> None:
        try:
            wire_pb2_grpc.DealerStub(self._channel).Health(
                wire_pb2.HealthRequest(), timeout=timeout, wait_for_ready=True
            )
        except grpc.RpcError as exc:  # the first job waits for it again, and says so if it fails
            log.info("%s: the dealer %s did not answer yet: %s", self.party, self.name, exc.code())
        except ValueError:  # the channel was closed while the call waited: the node stopped
            pass

    def provision(
        self, job: str, signed_job: bytes, plan: Plan, *, timeout: float, wait: bool = True
    ) -> DealerConnection:
        """Ask for this party's seed (and, at party 0, the corrections) for one job.

        With ``wait`` the dealer's answer is read now (a refusal raises here);
        otherwise the request is on its way and the answer is read when the
        seed is first needed (:meth:`DealerConnection.wait`).
        """
        stream = wire_pb2_grpc.DealerStub(self._channel).Provision(
            wire_pb2.ProvisionRequest(signed_job=signed_job, plan=plan.to_json()),
            timeout=timeout,
            wait_for_ready=True,  # a dealer that is down makes the job wait, then fail
        )
        connection = DealerConnection(stream, self.name, job, plan)
        if wait:
            connection.wait()
        return connection

    def close(self) -> None:
        self._channel.close()


class DealerConnection:
    """A party's provisioning for one job: its seed now, party 0's corrections as they come.

    A dealer that is unreachable, or whose stream breaks before it is done, fails
    the job with :class:`PeerTimeoutError` of kind ``dealer unavailable`` naming
    the dealer; a dealer that refuses the job, with the dealer's reason.
    """

    def __init__(
        self, stream: Iterator[wire_pb2.ProvisionChunk], dealer: str, job: str, plan: Plan
    ) -> None:
        self._stream = stream
        self.dealer = dealer
        self.job = job
        self.plan = plan
        self._seed = b""
        self._chunk: wire_pb2.ProvisionChunk | None = None
        self._offset = 0  # the correction bytes not read yet: _chunk.payload[_offset:]

    def wait(self) -> wire_pb2.ProvisionChunk:
        """The message being read, after reading the dealer's first (with the seed) if not
        yet done; raises if the dealer refused the job (SMPCError) or cannot be reached
        (``dealer unavailable``). The first call must come before a feed reads the stream."""
        if self._chunk is None:
            try:
                self._chunk = next(self._stream)
                self._seed = self._chunk.seed
            except grpc.RpcError as exc:
                self.close()
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise self._unavailable(exc) from None
                raise SMPCError(
                    f"job {self.job}: the dealer refused the job: {exc.details()}"
                ) from None
            except StopIteration:
                raise self._unavailable(None) from None
        return self._chunk

    @property
    def seed(self) -> bytes:
        """This party's seed for the job (waits for the dealer's first message)."""
        self.wait()
        return self._seed

    def read_into(self, out: memoryview) -> None:
        """Fill ``out`` with the next correction bytes of the stream, in order."""
        self.wait()
        filled = 0
        while filled < out.nbytes:
            chunk = self.wait()
            if self._offset == len(chunk.payload):
                if chunk.last:
                    raise SMPCError("the dealer sent fewer correction bytes than the plan holds")
                following = self.next_chunk()
                if following.chunk != chunk.chunk + 1:
                    raise SMPCError(
                        f"the dealer sent chunk {following.chunk} where {chunk.chunk + 1} was due"
                    )
                self._chunk, self._offset = following, 0
                continue
            take = min(out.nbytes - filled, len(chunk.payload) - self._offset)
            out[filled : filled + take] = chunk.payload[self._offset : self._offset + take]
            filled += take
            self._offset += take

    def check_done(self) -> None:
        """Raise unless the stream ended exactly where the plan's corrections do."""
        chunk = self.wait()
        if not chunk.last or self._offset != len(chunk.payload):
            raise SMPCError("the dealer sent more correction bytes than the plan holds")

    def next_chunk(self) -> wire_pb2.ProvisionChunk:
        """The stream's next message; ``dealer unavailable`` if it broke or ended."""
        try:
            return next(self._stream)
        except grpc.RpcError as exc:
            raise self._unavailable(exc) from None
        except StopIteration:
            raise self._unavailable(None) from None

    def _unavailable(self, exc: grpc.RpcError | None) -> PeerTimeoutError:
        if exc is None:
            detail = "its stream ended early"
        else:
            detail = f"its stream failed: {exc.code().name}: {exc.details() or ''}"
        return PeerTimeoutError(self.job, self.dealer, DEALER_UNAVAILABLE, detail)

    def feed(self, *, ahead: bool = True) -> CorrectionFeed:
        """Party 0's corrections, read from the stream on a background thread (``ahead``) or
        when asked for, in plan order."""
        return _StreamFeed(self, ahead=ahead)

    def close(self) -> None:
        """End this job's stream (the channel stays for the next job)."""
        cancel = getattr(self._stream, "cancel", None)
        if cancel is not None:
            cancel()


class _StreamFeed(CorrectionFeed):
    def __init__(self, conn: DealerConnection, *, ahead: bool) -> None:
        self._conn = conn
        self._ahead = Ahead(self._read_item, len(conn.plan), "dealer-stream") if ahead else None
        self._next = 0

    def _read_item(self, index: int) -> list[np.ndarray]:
        request = self._conn.plan[index]
        shapes = component_shapes(request)[seeded_count(request.kind) :]
        parts = []
        for shape in shapes:
            out = np.empty(shape, dtype=np.uint64)
            self._conn.read_into(out.reshape(-1).view(np.uint8).data)
            parts.append(out)
        if index == len(self._conn.plan) - 1:
            self._conn.check_done()
        return parts

    def corrections(self, index: int) -> list[np.ndarray]:
        if self._ahead is not None:
            return self._ahead.get(index)
        if index != self._next:
            raise SMPCError(f"correction {index} asked for where {self._next} is next")
        self._next += 1
        return self._read_item(index)
