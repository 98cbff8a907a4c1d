"""A party process's links to its peers: one mutually authenticated gRPC stream per pair.

For every pair of members the one whose name sorts first dials; the single
bidirectional stream carries both directions for every job. Inbound messages
are checked (the ``sender`` field must equal the TLS-authenticated peer, chunks
are at most 1 MiB, a job's inbound bytes are capped) and sorted into one
mailbox per (job, peer), from which the job's :class:`GrpcTransport` reads. A
rejected message never reaches a mailbox; the job that was its target sees a
:class:`Rejection` naming the authenticated peer and the reason, and the
process keeps serving.

Mailboxes are bounded. A job is *opened* here once a reader asks for it (its
transport, or its record exchange); until then a peer may send it only what
an honest peer sends before this party joins (its hello, an abort, its record
view), at most :data:`UNOPENED_JOB_BYTES`, for at most :data:`UNOPENED_SECONDS`,
and for at most :data:`UNOPENED_JOBS` jobs at once (the oldest go first). A
closed job's late messages are dropped. Submissions run at most
``policy.max_running_jobs`` at once, on threads apart from those that keep the
links, chain messages and health checks going.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc

from parties.config import MemberConfig, PeerConfig, dns_name
from parties.federation import certificate_expiry_warning
from parties.service import tls, wire_pb2, wire_pb2_grpc
from smpc.errors import PeerAuthenticationError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
MAX_FRAME_BYTES = CHUNK_BYTES + (64 << 10)  # a chunk plus its envelope fields
DEFAULT_JOB_BYTES = 8 << 30
ABORT_KIND_CHARS = 200  # the longest failure kind an abort message carries

UNOPENED_SECONDS = 60.0
"""How long messages for a job not opened here are kept (a peer gives up far sooner)."""
UNOPENED_JOB_BYTES = 64 << 10
"""What a job not opened here may hold: a hello, an abort and a record view fit many times."""
UNOPENED_JOBS = 1024
"""Jobs not opened here that may hold messages at once; beyond, the oldest are dropped."""
CLOSED_JOBS = 4096
"""Closed jobs remembered (each for UNOPENED_SECONDS) so that their late messages are dropped."""

_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
_SIZES = [
    ("grpc.max_receive_message_length", MAX_FRAME_BYTES),
    ("grpc.max_send_message_length", MAX_FRAME_BYTES),
]
_SERVER_OPTIONS = [
    *_KEEPALIVE,
    *_SIZES,
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
]


@dataclass(frozen=True)
class Rejection:
    """Stands in a mailbox for a message that was refused or never came: who, why, what kind."""

    peer: str
    reason: str
    kind: str = "malformed message"


ABORT = "abort"  # purpose of the message a failing party sends every peer of its job


class _Link:
    """The outbound queue towards one peer, drained by whichever stream is current."""

    def __init__(self, peer: PeerConfig) -> None:
        self.peer = peer
        self.outbound: queue.SimpleQueue[wire_pb2.Envelope] = queue.SimpleQueue()
        self.connected = threading.Event()
        self.down_since: float | None = time.monotonic()  # None while a stream is up
        self._generation = 0
        self._lock = threading.Lock()

    def new_stream(self) -> int:
        with self._lock:
            self._generation += 1
            return self._generation

    def current(self, generation: int) -> bool:
        return self._generation == generation

    def drain(self, generation: int, stopping: threading.Event) -> Iterator[wire_pb2.Envelope]:
        """Yield queued messages while this stream is the link's current one."""
        while not stopping.is_set() and self.current(generation):
            try:
                yield self.outbound.get(timeout=0.25)
            except queue.Empty:
                continue


class Mesh:
    """Links to every peer of one member, over gRPC with mutual TLS."""

    def __init__(
        self,
        member: MemberConfig,
        *,
        max_job_bytes: int = DEFAULT_JOB_BYTES,
        on_submit: Callable[[wire_pb2.SubmitRequest, str], wire_pb2.SubmitReply] | None = None,
        on_chain: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.member = member
        self.name = member.name
        self.max_job_bytes = max_job_bytes
        self.on_submit = on_submit
        self.on_chain = on_chain
        self._chain_stubs: dict[str, tuple[grpc.Channel, wire_pb2_grpc.PartyStub]] = {}
        self._active: set[str] = set()  # jobs running here: told at once when a peer drops
        # Streams join the computing parties; the dealer and analysts use their own calls.
        self._links = {p.name: _Link(p) for p in member.computing_peers}
        self._mailboxes: dict[str, dict[str, queue.SimpleQueue[object]]] = {}  # job -> peer -> box
        self._job_bytes: dict[str, int] = {}
        self._opened: set[str] = set()  # jobs a reader here asked for
        self._unopened: OrderedDict[str, float] = (
            OrderedDict()
        )  # job -> when its first message came
        self._closed: OrderedDict[str, float] = OrderedDict()  # job -> when it was closed
        self._evicted = 0
        self.clock: Callable[[], float] = time.monotonic
        """The clock mailbox expiry reads (monotonic seconds)."""
        self.job_slots = threading.BoundedSemaphore(member.policy.max_running_jobs)
        """One per submitted job running here; a submission finding none is refused."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: grpc.Server | None = None
        self._threads: list[threading.Thread] = []
        self.bound_port: int | None = None

    # -- life cycle -------------------------------------------------------------
    def start(self) -> Mesh:
        """Serve on the member's address and dial every peer whose name sorts after ours.

        Warns (in the log) when this member's certificate expires within 30 days.
        """
        warning = certificate_expiry_warning(self.member.tls.cert)
        if warning is not None:
            log.warning("%s: %s", self.name, warning)
        # A thread for each peer's stream and each peer's chain call, one per running job,
        # and spares for health checks and refused submissions: jobs cannot starve the rest.
        workers = 2 * len(self._links) + self.member.policy.max_running_jobs + 4
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers), options=_SERVER_OPTIONS
        )
        wire_pb2_grpc.add_PartyServicer_to_server(_Servicer(self), server)
        self.bound_port = server.add_secure_port(
            self.member.address, tls.server_credentials(self.member)
        )
        if self.bound_port == 0:
            raise OSError(f"{self.name}: cannot listen on {self.member.address}")
        server.start()
        self._server = server
        for link in self._links.values():
            if self.name < link.peer.name:
                thread = threading.Thread(
                    target=self._dial, args=(link,), name=f"dial-{link.peer.name}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self, grace: float = 1.0) -> None:
        """Close every stream and stop serving."""
        self._stopping.set()
        if self._server is not None:
            self._server.stop(grace).wait()
        for thread in self._threads:
            thread.join(timeout=grace + 1)
        with self._lock:
            for channel, _ in self._chain_stubs.values():
                channel.close()
            self._chain_stubs.clear()

    def chain_send(self, peer: str, data: bytes, timeout: float = 2.0) -> None:
        """One chain message to ``peer``, over a channel kept per peer; raises if undelivered."""
        with self._lock:
            entry = self._chain_stubs.get(peer)
            if entry is None:
                target = self.member.peer(peer)
                options = [
                    *_KEEPALIVE,
                    *_SIZES,
                    ("grpc.ssl_target_name_override", dns_name(self.member.federation, peer)),
                    ("grpc.initial_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 1000),
                ]
                channel = grpc.secure_channel(
                    target.address, tls.channel_credentials(self.member), options
                )
                entry = self._chain_stubs[peer] = (channel, wire_pb2_grpc.PartyStub(channel))
        # Waits for a peer that is (re)starting, up to the timeout, instead of failing at once.
        entry[1].Chain(wire_pb2.ChainMessage(data=data), timeout=timeout, wait_for_ready=True)

    def __enter__(self) -> Mesh:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_connected(self, timeout: float) -> bool:
        """True once a stream to every peer is up."""
        deadline = time.monotonic() + timeout
        for link in self._links.values():
            if not link.connected.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    # -- messages ---------------------------------------------------------------
    def send(self, peer: str, envelope: wire_pb2.Envelope) -> None:
        """Queue a message for ``peer``; it leaves on the pair's current stream."""
        self._link(peer).outbound.put(envelope)

    def unreachable_for(self, peer: str) -> float:
        """Seconds since the stream to ``peer`` went down (0 while it is up)."""
        since = self._link(peer).down_since
        return 0.0 if since is None else time.monotonic() - since

    def receive(self, job: str, peer: str, timeout: float | None) -> wire_pb2.Envelope | Rejection:
        """The next message (or rejection) from ``peer`` for ``job``; queue.Empty on timeout.

        Asking opens the job here: its mailboxes stay until :meth:`close_job`.
        """
        with self._lock:
            self._open(job)
            box = self._box(job, peer)
        return box.get(timeout=timeout)  # type: ignore[return-value]

    def open_job(self, job: str) -> None:
        """Mark a job as running here: if a peer's stream drops, the job hears of it at once."""
        with self._lock:
            self._open(job)
            self._active.add(job)

    def abort_job(self, job: str, peers: Iterable[str], kind: str) -> None:
        """Tell the job's other parties that it failed here (the kind only, never data)."""
        for peer in peers:
            if peer != self.name and peer in self._links:
                self.send(
                    peer,
                    wire_pb2.Envelope(
                        job=job,
                        sender=self.name,
                        purpose=ABORT,
                        last=True,
                        payload=kind.encode()[:ABORT_KIND_CHARS],
                    ),
                )

    def close_job(self, job: str) -> None:
        """Forget a job's mailboxes and byte count; its late messages are dropped."""
        with self._lock:
            self._forget(job)
            self._closed[job] = self.clock()
            self._closed.move_to_end(job)
            while len(self._closed) > CLOSED_JOBS:
                self._closed.popitem(last=False)

    def _link(self, peer: str) -> _Link:
        link = self._links.get(peer)
        if link is None:
            raise PeerAuthenticationError(
                f"{peer!r} is not a computing party linked with {self.name}"
            )
        return link

    # Helpers below run under self._lock.
    def _box(self, job: str, peer: str) -> queue.SimpleQueue[object]:
        boxes = self._mailboxes.setdefault(job, {})
        box = boxes.get(peer)
        if box is None:
            box = boxes[peer] = queue.SimpleQueue()
        return box

    def _open(self, job: str) -> None:
        self._opened.add(job)
        self._unopened.pop(job, None)
        self._closed.pop(job, None)

    def _forget(self, job: str) -> None:
        self._active.discard(job)
        self._opened.discard(job)
        self._unopened.pop(job, None)
        self._mailboxes.pop(job, None)
        self._job_bytes.pop(job, None)

    def _expire(self) -> None:
        """Drop unopened jobs' messages and closed jobs' ids older than UNOPENED_SECONDS."""
        horizon = self.clock() - UNOPENED_SECONDS
        for entries in (self._unopened, self._closed):
            while entries and next(iter(entries.values())) < horizon:
                job, _ = entries.popitem(last=False)
                if entries is self._unopened:
                    self._forget(job)

    def _hold_unopened(self, job: str) -> None:
        """Count a job that is not opened here, dropping the oldest beyond UNOPENED_JOBS."""
        if job in self._unopened:
            return
        while len(self._unopened) >= UNOPENED_JOBS:
            oldest, _ = self._unopened.popitem(last=False)
            self._forget(oldest)
            self._evicted += 1
            if self._evicted % 100 == 1:
                log.warning(
                    "%s: messages for %d jobs never opened here were dropped (limit %d jobs)",
                    self.name,
                    self._evicted,
                    UNOPENED_JOBS,
                )
        self._unopened[job] = self.clock()

    def deliver(self, peer: str, envelope: wire_pb2.Envelope) -> None:
        """Check a message that arrived from the authenticated ``peer`` and file it."""
        job = envelope.job
        reason = None
        item: wire_pb2.Envelope | Rejection = envelope
        if envelope.sender != peer:
            reason = f"sender field {envelope.sender!r} differs from the authenticated peer"
        elif envelope.purpose == ABORT:
            kind = envelope.payload[:ABORT_KIND_CHARS].decode(errors="replace")
            item = Rejection(peer, f"it aborted the job: {kind}", "party aborted")
        elif len(envelope.payload) > CHUNK_BYTES:
            reason = f"chunk of {len(envelope.payload)} bytes exceeds {CHUNK_BYTES}"
        with self._lock:
            self._expire()
            if job in self._closed:
                return  # the job ended here; a late message has no reader
            opened = job in self._opened
            limit = self.max_job_bytes if opened else min(UNOPENED_JOB_BYTES, self.max_job_bytes)
            before = self._job_bytes.get(job, 0)
            if before > limit:
                return  # already refused for its size; the job fails on that
            self._job_bytes[job] = total = before + envelope.ByteSize()
            if reason is None and total > limit:
                reason = f"job exceeded its limit of {limit} inbound bytes"
                if not opened:
                    reason += " before it started here"
            if not opened:
                self._hold_unopened(job)
            self._box(job, peer).put(item if reason is None else Rejection(peer, reason))
        if reason is not None:
            log.warning(
                "%s: rejected a message from %s for job %s: %s", self.name, peer, job, reason
            )

    def _peer_lost(self, peer: str) -> None:
        with self._lock:
            for job in self._active:
                self._box(job, peer).put(Rejection(peer, "its stream closed", "party unreachable"))

    # -- streams ----------------------------------------------------------------
    def _dial(self, link: _Link) -> None:
        peer = link.peer
        options = [
            *_KEEPALIVE,
            *_SIZES,
            ("grpc.ssl_target_name_override", dns_name(self.member.federation, peer.name)),
        ]
        backoff = 0.05
        while not self._stopping.is_set():
            channel = grpc.secure_channel(
                peer.address, tls.channel_credentials(self.member), options
            )
            generation = link.new_stream()
            try:
                grpc.channel_ready_future(channel).result(timeout=2.0)
                responses = wire_pb2_grpc.PartyStub(channel).Link(
                    link.drain(generation, self._stopping)
                )
                link.connected.set()
                link.down_since = None
                backoff = 0.05
                for envelope in responses:
                    self.deliver(peer.name, envelope)
            except grpc.FutureTimeoutError:
                pass
            except grpc.RpcError as exc:
                if not self._stopping.is_set():
                    log.warning("%s: stream to %s ended: %s", self.name, peer.name, exc.code())
            finally:
                if link.connected.is_set():
                    self._peer_lost(peer.name)
                    link.down_since = time.monotonic()
                link.connected.clear()
                link.new_stream()  # retire this stream's drain
                channel.close()
            self._stopping.wait(backoff)
            backoff = min(2.0, backoff * 2)

    def accept(
        self, peer: str, requests: Iterator[wire_pb2.Envelope]
    ) -> Iterator[wire_pb2.Envelope]:
        """Serve the stream a peer dialed: read in a thread, answer from the link's queue."""
        link = self._link(peer)
        generation = link.new_stream()
        link.connected.set()
        link.down_since = None

        def read() -> None:
            try:
                for envelope in requests:
                    self.deliver(peer, envelope)
            except grpc.RpcError:
                pass
            finally:
                if link.current(generation):
                    link.connected.clear()
                    link.down_since = time.monotonic()
                    link.new_stream()
                    self._peer_lost(peer)

        threading.Thread(target=read, name=f"read-{peer}", daemon=True).start()
        return link.drain(generation, self._stopping)


class _Servicer(wire_pb2_grpc.PartyServicer):
    """Thin servicer: authenticate the peer from TLS, hand the stream to the mesh."""

    def __init__(self, mesh: Mesh) -> None:
        self._mesh = mesh
        self.member = mesh.member

    def Link(self, request_iterator, context):  # noqa: N802 - gRPC's method name
        member = self._mesh.member
        try:
            peer = tls.peer_name(context, member)
            self._mesh._link(peer)  # only computing parties link: not the dealer or an analyst
            if not peer < member.name:
                raise PeerAuthenticationError(f"{peer!r} must wait for {member.name!r} to dial")
        except PeerAuthenticationError as exc:
            log.warning("%s: refused a stream from %s: %s", member.name, context.peer(), exc)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        return self._mesh.accept(peer, request_iterator)

    @tls.authenticated("a job submission")
    def Submit(self, request, context, caller):  # noqa: N802 - gRPC's method name
        member = self.member
        if self._mesh.on_submit is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{member.name} does not run jobs")
        slots = self._mesh.job_slots
        if not slots.acquire(blocking=False):
            limit = member.policy.max_running_jobs
            log.warning(
                "%s: refused a job from %s: %d jobs already running", member.name, caller, limit
            )
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{member.name} runs at most {limit} jobs at once; submit again when one ends",
            )
        try:
            return self._mesh.on_submit(request, caller)
        finally:
            slots.release()

    @tls.authenticated("a chain message")
    def Chain(self, request, context, caller):  # noqa: N802 - gRPC's method name
        if self._mesh.on_chain is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{self.member.name} runs no chain node")
        self._mesh.on_chain(caller, request.data)
        return wire_pb2.ChainAck()

    @tls.authenticated("a health check")
    def Health(self, request, context, caller):  # noqa: N802 - gRPC's method name
        member = self.member
        return wire_pb2.HealthReply(
            name=member.name, federation=member.federation, status="serving"
        )
