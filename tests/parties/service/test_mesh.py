"""The gRPC mesh (control plane) refuses what the architecture says it must, and keeps serving."""

from __future__ import annotations

import dataclasses
import threading

import grpc
import pytest

from parties.config import dns_name
from parties.service import wire_pb2, wire_pb2_grpc
from parties.service.mesh import Mesh, after_reply


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


def test_every_call_from_an_unknown_name_is_refused(make_federation, tmp_path, caplog) -> None:
    from parties.federation import add_member

    c = _pair(make_federation)["hospital-c"]
    newcomer = add_member(tmp_path / "testfed", "hospital-0", "hospital")  # c's config predates it
    with Mesh(c):
        channel = _dial(newcomer, c)
        stub = wire_pb2_grpc.PartyStub(channel)
        calls = {
            "a job submission": lambda: stub.Submit(wire_pb2.SubmitRequest(), timeout=3),
            "a chain message": lambda: stub.Chain(wire_pb2.ChainMessage(), timeout=3),
            "a health check": lambda: stub.Health(wire_pb2.HealthRequest(), timeout=3),
        }
        for what, call in calls.items():
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "not a configured peer" in (err.value.details() or "")
            logged = [r.getMessage() for r in caplog.records if f"refused {what}" in r.getMessage()]
            assert logged and "hospital-0" in logged[0]
        channel.close()


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


def _limited(member, **limits):
    return dataclasses.replace(member, policy=dataclasses.replace(member.policy, **limits))


def test_submissions_beyond_the_limit_are_refused_while_health_answers(make_federation) -> None:
    members = _pair(make_federation)
    a, c = members["hospital-a"], _limited(members["hospital-c"], max_running_jobs=2)
    release = threading.Event()
    running = threading.Semaphore(0)

    def hold(request, caller):  # a job that waits for peers that never come
        running.release()
        release.wait(10)
        return wire_pb2.SubmitReply(ok=False)

    with Mesh(c, on_submit=hold):
        channel = _dial(a, c)
        stub = wire_pb2_grpc.PartyStub(channel)
        held = [stub.Submit.future(wire_pb2.SubmitRequest(), timeout=10) for _ in range(2)]
        assert running.acquire(timeout=5) and running.acquire(timeout=5)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Submit(wire_pb2.SubmitRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "at most 2 jobs at once" in refused.value.details()
        assert stub.Health(wire_pb2.HealthRequest(), timeout=2).status == "serving"
        release.set()
        assert all(not call.result(timeout=10).ok for call in held)
        # a slot frees when a job ends
        assert not stub.Submit(wire_pb2.SubmitRequest(), timeout=5).ok
        channel.close()


def test_health_reports_where_the_data_plane_listens(make_federation) -> None:
    members = _pair(make_federation)
    a, c = members["hospital-a"], members["hospital-c"]
    with Mesh(c) as server, Mesh(a) as client:
        server.data_port = 40_123
        host = c.address.rpartition(":")[0]
        assert client.locate("hospital-c") == (host, 40_123)
        server.data_port = 0
        with pytest.raises(OSError, match="no data plane"):
            client.locate("hospital-c")


def test_work_left_for_after_the_reply_runs_once_the_caller_has_it(make_federation) -> None:
    """``after_reply`` work waits for the caller's reply: run any earlier, it would hold the
    reply until its own wait gave up, and would see no reply."""
    members = _pair(make_federation)
    a, c = members["hospital-a"], members["hospital-c"]
    replied = threading.Event()
    saw_reply: list[bool] = []
    ran = threading.Event()

    def after() -> None:
        saw_reply.append(replied.wait(5))
        ran.set()

    def job(request, caller):
        after_reply(after)
        return wire_pb2.SubmitReply(ok=True)

    with Mesh(c, on_submit=job):
        channel = _dial(a, c)
        assert wire_pb2_grpc.PartyStub(channel).Submit(wire_pb2.SubmitRequest(), timeout=10).ok
        replied.set()
        assert ran.wait(10)
        channel.close()
    assert saw_reply == [True]
    outside: list[int] = []
    after_reply(lambda: outside.append(1))  # no submission served here: at once
    assert outside == [1]
