"""Mutual-TLS credentials and peer identity for party processes.

Every member holds a key and a certificate from the federation CA whose URI
SAN is ``smpc://<federation>/<role>/<name>`` and whose DNS SAN is
``<name>.<federation>.smpc``. A server requires a client certificate from the
federation CA and reads the client's identity from the TLS auth context (the
URI SAN), never from a request field. A client checks the server by its DNS
SAN (gRPC's Python client can only match a server by host name, through the
``grpc.ssl_target_name_override`` option).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence

import grpc

from parties.config import ConfigError, MemberConfig, parse_identity
from smpc.errors import PeerAuthenticationError

log = logging.getLogger(__name__)

_URI_PREFIX = b"smpc://"


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
    """The authenticated name of the peer on this call, or PeerAuthenticationError.

    The identity must be a URI SAN of this federation naming a configured
    peer with the role the configuration gives it.
    """
    auth = context.auth_context()
    if auth.get("transport_security_type") != [b"ssl"]:
        raise PeerAuthenticationError("the peer did not use TLS")
    uris = [v for v in auth.get("x509_subject_alternative_name", []) if v.startswith(_URI_PREFIX)]
    return identity_name(uris, member)


def identity_name(uris: Sequence[bytes | str], member: MemberConfig) -> str:
    """The configured peer named by a verified certificate's ``smpc://`` URI SANs.

    There must be exactly one, of this federation, naming a configured peer
    with the role the configuration gives it; else PeerAuthenticationError.
    """
    found = [u.encode() if isinstance(u, str) else u for u in uris]
    found = [u for u in found if u.startswith(_URI_PREFIX)]
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
