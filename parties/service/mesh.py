"""A party process's control plane: gRPC with mutual TLS for submissions, chain messages
and health checks.

A job's rounds do not travel here: they use the data plane
(:mod:`parties.service.dataplane`), whose port this member's Health reply
reports, so that a peer dialling it learns where to connect (:meth:`Mesh.locate`).
Submissions run at most ``policy.max_running_jobs`` at once, on threads apart
from those that keep chain messages and health checks going. Work that a
submission leaves for after its reply (:func:`after_reply`) runs once gRPC
has sent the reply, so it never delays the caller.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent import futures

import grpc

from parties.config import MemberConfig, dns_name
from parties.federation import certificate_expiry_warning
from parties.service import tls, wire_pb2, wire_pb2_grpc

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
MAX_FRAME_BYTES = CHUNK_BYTES + (64 << 10)  # a chunk plus its envelope fields
DEFAULT_JOB_BYTES = 8 << 30
ABORT_KIND_CHARS = 200  # the longest failure kind an abort message carries

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


_AFTER_REPLY: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "after_reply", default=None
)


def after_reply(action: Callable[[], None]) -> None:
    """Run ``action`` once the reply to the job submission this thread serves has been sent;
    at once on a thread that serves none.

    ``action`` then runs on gRPC's own thread, so it must be quick (e.g. put
    work on a queue). It runs when the call ends in any way, also when the
    caller gave up; not at all if the server stops first.
    """
    pending = _AFTER_REPLY.get()
    if pending is None:
        action()
    else:
        pending.append(action)


class Mesh:
    """One member's gRPC service and its calls to peers, with mutual TLS."""

    def __init__(
        self,
        member: MemberConfig,
        *,
        on_submit: Callable[[wire_pb2.SubmitRequest, str], wire_pb2.SubmitReply] | None = None,
        on_chain: Callable[[str, bytes], None] | None = None,
        on_health: Callable[[str], None] | None = None,
    ) -> None:
        self.member = member
        self.name = member.name
        self.on_submit = on_submit
        self.on_chain = on_chain
        self.on_health = on_health
        """Told the caller's name at each health check (a peer that asks is up)."""
        self.data_port = 0
        """The port of this member's data plane, reported by Health (0: none)."""
        self._stubs: dict[str, tuple[grpc.Channel, wire_pb2_grpc.PartyStub]] = {}
        self.job_slots = threading.BoundedSemaphore(member.policy.max_running_jobs)
        """One per submitted job running here; a submission finding none is refused."""
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.bound_port: int | None = None

    # -- life cycle -------------------------------------------------------------
    def start(self) -> Mesh:
        """Serve on the member's address.

        Warns (in the log) when this member's certificate expires within 30 days.
        """
        warning = certificate_expiry_warning(self.member.tls.cert)
        if warning is not None:
            log.warning("%s: %s", self.name, warning)
        # A thread for each peer's chain call, one per running job, and spares for health
        # checks and refused submissions: jobs cannot starve the rest.
        workers = len(self.member.peers) + self.member.policy.max_running_jobs + 4
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
        return self

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving and close the channels to peers."""
        if self._server is not None:
            self._server.stop(grace).wait()
        with self._lock:
            for channel, _ in self._stubs.values():
                channel.close()
            self._stubs.clear()

    def chain_send(self, peer: str, data: bytes, timeout: float = 2.0) -> None:
        """One chain message to ``peer``, over a channel kept per peer; raises if undelivered."""
        # Waits for a peer that is (re)starting, up to the timeout, instead of failing at once.
        self._stub(peer).Chain(
            wire_pb2.ChainMessage(data=data), timeout=timeout, wait_for_ready=True
        )

    def locate(self, peer: str, timeout: float = 2.0, *, wait: bool = True) -> tuple[str, int]:
        """Where ``peer``'s data plane listens, as its Health reply says; OSError if nowhere.

        With ``wait`` a peer not up yet is waited for (up to ``timeout``);
        without, a peer that refuses the connection fails at once.
        """
        try:
            reply = self._stub(peer).Health(
                wire_pb2.HealthRequest(), timeout=timeout, wait_for_ready=wait
            )
        except grpc.RpcError as exc:
            raise OSError(f"{peer} did not answer a health check: {exc.code()}") from None
        if reply.name != peer or not reply.data_port:
            raise OSError(f"{peer} reports no data plane")
        return self.member.peer(peer).address.rpartition(":")[0].strip("[]"), reply.data_port

    def _stub(self, peer: str) -> wire_pb2_grpc.PartyStub:
        """A stub on a channel kept per peer (the server checked by its DNS SAN)."""
        with self._lock:
            entry = self._stubs.get(peer)
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
                entry = self._stubs[peer] = (channel, wire_pb2_grpc.PartyStub(channel))
        return entry[1]

    def __enter__(self) -> Mesh:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Servicer(wire_pb2_grpc.PartyServicer):
    """Thin servicer: authenticate the caller from TLS, hand the call to the mesh."""

    def __init__(self, mesh: Mesh) -> None:
        self._mesh = mesh
        self.member = mesh.member

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
        later = []  # work for after the reply (after_reply)
        token = _AFTER_REPLY.set(later)
        try:
            return self._mesh.on_submit(request, caller)
        finally:
            _AFTER_REPLY.reset(token)
            slots.release()
            for action in later:
                if not context.add_callback(action):  # the call has already ended
                    action()

    @tls.authenticated("a chain message")
    def Chain(self, request, context, caller):  # noqa: N802 - gRPC's method name
        if self._mesh.on_chain is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{self.member.name} runs no chain node")
        self._mesh.on_chain(caller, request.data)
        return wire_pb2.ChainAck()

    @tls.authenticated("a health check")
    def Health(self, request, context, caller):  # noqa: N802 - gRPC's method name
        member = self.member
        if self._mesh.on_health is not None:
            self._mesh.on_health(caller)
        return wire_pb2.HealthReply(
            name=member.name,
            federation=member.federation,
            status="serving",
            data_port=self._mesh.data_port,
        )
