"""The mesh refuses what the architecture says it must, and keeps serving."""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading

import grpc
import pytest

from parties.config import dns_name
from parties.service import mesh as mesh_module
from parties.service import wire_pb2, wire_pb2_grpc
from parties.service.mesh import CHUNK_BYTES, UNOPENED_JOB_BYTES, Mesh, Rejection


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


def _linked(make_federation):
    """Two running meshes, hospital-a and hospital-c, linked to each other."""
    members = {m.name: m for m in make_federation(["hospital-a", "hospital-c"])}
    return Mesh(members["hospital-a"]), Mesh(members["hospital-c"])


def _sync(a: Mesh, c: Mesh) -> None:
    """Return once c has filed everything a sent before (on a job c has opened)."""
    with contextlib.suppress(queue.Empty):
        c.receive("probe", "hospital-a", timeout=0)
    a.send("hospital-c", wire_pb2.Envelope(job="probe", sender="hospital-a", last=True))
    assert isinstance(c.receive("probe", "hospital-a", timeout=10), wire_pb2.Envelope)


def test_a_job_not_opened_here_may_hold_only_a_little(make_federation) -> None:
    first, second = _linked(make_federation)
    with first as a, second as c:
        assert a.wait_connected(10) and c.wait_connected(10)
        for _ in range(3):
            a.send(
                "hospital-c",
                wire_pb2.Envelope(job="early", sender="hospital-a", payload=bytes(40_000)),
            )
        _sync(a, c)
        kept = c.receive("early", "hospital-a", timeout=1)
        refused = c.receive("early", "hospital-a", timeout=1)
        assert isinstance(kept, wire_pb2.Envelope)  # within the limit
        assert isinstance(refused, Rejection) and "before it started here" in refused.reason
        assert f"limit of {UNOPENED_JOB_BYTES}" in refused.reason
        with pytest.raises(queue.Empty):  # the third was dropped
            c.receive("early", "hospital-a", timeout=0.2)


def test_only_the_newest_unopened_jobs_are_kept(make_federation, monkeypatch) -> None:
    monkeypatch.setattr(mesh_module, "UNOPENED_JOBS", 4)
    first, second = _linked(make_federation)
    with first as a, second as c:
        assert a.wait_connected(10) and c.wait_connected(10)
        for i in range(10):
            a.abort_job(f"j{i}", ["hospital-c"], "refused")
        _sync(a, c)
        assert set(c._mailboxes) == {"j6", "j7", "j8", "j9", "probe"}
        kept = c.receive("j9", "hospital-a", timeout=1)
        assert isinstance(kept, Rejection) and kept.kind == "party aborted"
