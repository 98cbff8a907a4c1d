"""Mutual-TLS credentials and peer identity for party processes.

Every member holds a key and a certificate from the federation CA whose URI
SAN is ``smpc://<federation>/<role>/<name>`` and whose DNS SAN is
``<name>.<federation>.smpc``. A server requires a client certificate from the
federation CA and reads the client's identity from the TLS auth context (the
URI SAN), never from a request field. A client checks the server by its DNS
SAN (gRPC's Python client can only match a server by host name, through the
``grpc.ssl_target_name_override`` option).

:func:`peer_name` is the one place that reads a peer's identity;
:func:`authenticated` applies it to a servicer method, refusing the call
before the method runs.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

import grpc

from parties.config import ConfigError, MemberConfig, parse_identity
from smpc.errors import PeerAuthenticationError

log = logging.getLogger(__name__)

_URI_PREFIX = b"smpc://"


class Servicer(Protocol):
    """A gRPC servicer serving one member."""

    member: MemberConfig


S = TypeVar("S", bound=Servicer)
Req = TypeVar("Req")
Reply = TypeVar("Reply")


def server_credentials(member: MemberConfig) -> grpc.ServerCredentials:
    """Server credentials that demand a client certificate from the federation CA."""
    tls = member.tls
    return grpc.ssl_server_credentials(
        [(tls.key.read_bytes(), tls.cert.read_bytes())],
        root_certificates=tls.ca_cert.read_bytes(),
        require_client_auth=True,
    )


def channel_credentials(member: MemberConfig) -> grpc.ChannelCredentials:
    """Client credentials: trust only the federation CA, present our own certificate."""
    tls = member.tls
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca_cert.read_bytes(),
        private_key=tls.key.read_bytes(),
        certificate_chain=tls.cert.read_bytes(),
    )


def socket_context(member: MemberConfig, *, server: bool) -> ssl.SSLContext:
    """A TLS 1.3-only context for the data plane's sockets: the member's certificate, the
    federation CA as the only trust root, and a certificate required of the other side.

    Host names are not checked: the peer's identity is its URI SAN, which the
    caller reads from the verified certificate with :func:`identity_name`.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    if not server:
        ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(member.tls.ca_cert))
    ctx.load_cert_chain(str(member.tls.cert), str(member.tls.key))
    if server:
        ctx.num_tickets = 0  # connections are long-lived; no session resumption
    return ctx


def peer_name(context: grpc.ServicerContext, member: MemberConfig) -> str:
    """The authenticated name of the peer on this call, or PeerAuthenticationError."""
    auth = context.auth_context()
    if auth.get("transport_security_type") != [b"ssl"]:
        raise PeerAuthenticationError("the peer did not use TLS")
    return peer_from_sans(auth.get("x509_subject_alternative_name", []), member)


def peer_from_sans(sans: Iterable[bytes | str], member: MemberConfig) -> str:
    """The configured peer named by a verified certificate's SANs, or PeerAuthenticationError.

    Exactly one SAN must be an ``smpc://`` URI; it must be of this federation
    and name a configured peer with the role the configuration gives it. Used
    by the gRPC services and the data plane's sockets alike.
    """
    found = [v.encode() if isinstance(v, str) else v for v in sans]
    found = [v for v in found if v.startswith(_URI_PREFIX)]
    if len(found) != 1:
        raise PeerAuthenticationError("the peer's certificate has no single smpc:// URI SAN")
    try:
        federation, role, name = parse_identity(found[0].decode())
    except (ConfigError, UnicodeDecodeError) as exc:
        raise PeerAuthenticationError(f"the peer's identity is malformed: {exc}") from None
    if federation != member.federation:
        raise PeerAuthenticationError(f"the peer belongs to federation {federation!r}")
    peer = next((p for p in member.peers if p.name == name), None)
    if peer is None:
        raise PeerAuthenticationError(f"{name!r} is not a configured peer")
    if peer.role != role:
        raise PeerAuthenticationError(f"{name!r} presented role {role!r}, configured {peer.role!r}")
    return name


def authenticated(
    what: str,
) -> Callable[
    [Callable[[S, Req, grpc.ServicerContext, str], Reply]],
    Callable[[S, Req, grpc.ServicerContext], Reply],
]:
    """Decorate a servicer method to receive the caller's authenticated name as ``caller``.

    A caller that :func:`peer_name` does not accept is logged as ``refused
    <what> from <address>`` and aborted with UNAUTHENTICATED before the
    method runs.
    """

    def wrap(
        method: Callable[[S, Req, grpc.ServicerContext, str], Reply],
    ) -> Callable[[S, Req, grpc.ServicerContext], Reply]:
        @functools.wraps(method)
        def handler(self: S, request: Req, context: grpc.ServicerContext) -> Reply:
            member = self.member
            try:
                caller = peer_name(context, member)
            except PeerAuthenticationError as exc:
                log.warning("%s: refused %s from %s: %s", member.name, what, context.peer(), exc)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
                raise  # not reached: abort raises
            return method(self, request, context, caller)

        return handler

    return wrap
