"""The mesh refuses what the architecture says it must, and keeps serving."""

from __future__ import annotations

import contextlib
import queue

import grpc
import pytest

from parties.config import dns_name
from parties.service import wire_pb2, wire_pb2_grpc
from parties.service.mesh import CHUNK_BYTES, Mesh, Rejection


def _pair(make_federation):
    members = make_federation(["hospital-a", "hospital-b", "hospital-c"])
    by_name = {m.name: m for m in members}
    return by_name


def _dial(member, target, credentials=None):
    """A raw client stream from ``member`` to ``target`` (the test plays a misbehaving peer)."""
    creds = credentials or grpc.ssl_channel_credentials(
        root_certificates=member.tls.ca_cert.read_bytes(),
        private_key=member.tls.key.read_bytes(),
        certificate_chain=member.tls.cert.read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", dns_name(target.federation, target.name))]
    return grpc.secure_channel(target.address, creds, options)


def _wait(mesh: Mesh, job: str, peer: str) -> object:
    return mesh.receive(job, peer, timeout=10)


def test_a_spoofed_sender_is_rejected_and_the_server_keeps_serving(make_federation) -> None:
    members = _pair(make_federation)
    a, c = members["hospital-a"], members["hospital-c"]
    with Mesh(c) as server:
        channel = _dial(a, c)
        outbound: queue.SimpleQueue = queue.SimpleQueue()

        def requests():
            while True:
                item = outbound.get()
                if item is None:
                    return
                yield item

        responses = wire_pb2_grpc.PartyStub(channel).Link(requests())
        outbound.put(wire_pb2.Envelope(job="j1", sender="hospital-b", payload=b"x", last=True))
        got = _wait(server, "j1", "hospital-a")
        assert isinstance(got, Rejection) and "differs from the authenticated peer" in got.reason
        outbound.put(wire_pb2.Envelope(job="j2", sender="hospital-a", payload=b"ok", last=True))
        honest = _wait(server, "j2", "hospital-a")
        assert isinstance(honest, wire_pb2.Envelope) and honest.payload == b"ok"
        with pytest.raises(queue.Empty):
            server.receive("j1", "hospital-b", timeout=0.2)  # nothing filed under the claimed name
        outbound.put(None)
        responses.cancel()
        channel.close()


def test_an_oversized_chunk_is_refused_with_a_clear_error(make_federation) -> None:
    members = _pair(make_federation)
    a, c = members["hospital-a"], members["hospital-c"]
    with Mesh(c) as server:
        channel = _dial(a, c)
        big = wire_pb2.Envelope(job="j", sender="hospital-a", payload=bytes(CHUNK_BYTES + 1))
        stream = wire_pb2_grpc.PartyStub(channel).Link(iter([big]))
        outcome = None
        try:
            for _ in stream:
                pass
        except grpc.RpcError as exc:
            outcome = exc
        received = None
        with contextlib.suppress(queue.Empty):
            received = server.receive("j", "hospital-a", timeout=1.0)
        # Either the frame limit stops it at the gRPC layer or the mesh rejects it; never filed.
        assert outcome is not None or isinstance(received, Rejection)
        assert not isinstance(received, wire_pb2.Envelope)
        health = wire_pb2_grpc.PartyStub(_dial(a, c)).Health(wire_pb2.HealthRequest(), timeout=5)
        assert health.status == "serving"
        channel.close()


def test_a_peer_that_is_not_allowed_to_dial_is_refused(make_federation) -> None:
    members = _pair(make_federation)
    a, c = members["hospital-a"], members["hospital-c"]
    with Mesh(a):
        channel = _dial(c, a)  # hospital-c sorts after hospital-a, so it must not dial
        stream = wire_pb2_grpc.PartyStub(channel).Link(iter([]))
        with pytest.raises(grpc.RpcError) as err:
            list(stream)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        channel.close()


def _refused(channel: grpc.Channel) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        wire_pb2_grpc.PartyStub(channel).Health(wire_pb2.HealthRequest(), timeout=3)
    channel.close()
    return err.value


def test_foreign_ca_certless_and_plaintext_clients_are_refused(make_federation) -> None:
    c = _pair(make_federation)["hospital-c"]
    stranger = {m.name: m for m in make_federation(["hospital-a", "hospital-b"], "otherfed")}
    with Mesh(c):
        foreign = stranger["hospital-a"].tls
        foreign_client = grpc.ssl_channel_credentials(
            root_certificates=c.tls.ca_cert.read_bytes(),  # trusts us, but its cert is not ours
            private_key=foreign.key.read_bytes(),
            certificate_chain=foreign.cert.read_bytes(),
        )
        assert _refused(_dial(c, c, foreign_client)).code() == grpc.StatusCode.UNAVAILABLE
        certless = grpc.ssl_channel_credentials(root_certificates=c.tls.ca_cert.read_bytes())
        assert _refused(_dial(c, c, certless)).code() == grpc.StatusCode.UNAVAILABLE
        assert _refused(grpc.insecure_channel(c.address)).code() == grpc.StatusCode.UNAVAILABLE


def test_a_valid_certificate_with_an_unknown_name_is_refused(
    make_federation, tmp_path, caplog
) -> None:
    from parties.federation import add_member

    c = _pair(make_federation)["hospital-c"]
    newcomer = add_member(tmp_path / "testfed", "hospital-0", "hospital")  # c's config predates it
    with Mesh(c):
        stream = wire_pb2_grpc.PartyStub(_dial(newcomer, c)).Link(iter([]))
        with pytest.raises(grpc.RpcError) as err:
            list(stream)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "not a configured peer" in (err.value.details() or "")
    refusals = [r.getMessage() for r in caplog.records if "refused a stream" in r.getMessage()]
    assert refusals and "hospital-0" in refusals[0]  # the refusal is logged with its reason


def test_a_member_warns_at_start_when_its_certificate_expires_soon(tmp_path, caplog) -> None:
    import datetime as dt

    from parties.federation import init_federation

    issued = dt.datetime.now(dt.UTC) - dt.timedelta(days=350)  # a one-year certificate
    members = init_federation(
        "oldfed", ["hospital-a", "hospital-b"], [], [], tmp_path / "f", base_port=0, now=issued
    )
    with Mesh(members[0]):
        pass
    warnings = [r.getMessage() for r in caplog.records if "expires in" in r.getMessage()]
    assert warnings and "smpc federation renew" in warnings[0]
    caplog.clear()
    fresh = init_federation(
        "newfed", ["hospital-a", "hospital-b"], [], [], tmp_path / "g", base_port=0
    )
    with Mesh(fresh[0]):
        pass
    assert not [r for r in caplog.records if "expires in" in r.getMessage()]


def test_a_job_past_its_inbound_byte_limit_is_refused(make_federation) -> None:
    members = _pair(make_federation)
    a, c = members["hospital-a"], members["hospital-c"]
    with Mesh(c, max_job_bytes=100) as server:
        channel = _dial(a, c)
        chunks = [
            wire_pb2.Envelope(job="j", sender="hospital-a", payload=bytes(60), chunk=i)
            for i in range(2)
        ]
        stream = wire_pb2_grpc.PartyStub(channel).Link(iter(chunks))
        first = server.receive("j", "hospital-a", timeout=10)
        second = server.receive("j", "hospital-a", timeout=10)
        assert isinstance(first, wire_pb2.Envelope)  # 60 bytes: within the limit
        assert isinstance(second, Rejection) and "limit of 100" in second.reason
        stream.cancel()
        channel.close()
