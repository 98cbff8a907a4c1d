"""One analyst cannot starve a hospital's service, and non-parties cannot join its data plane.

Real party processes over gRPC + mutual TLS: a burst of jobs sent to one
hospital only, a job whose deadline lies years ahead, a job one of whose
parties never hears of it, and an analyst's certificate dialling a
hospital's data plane (mutual TLS sockets).
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import subprocess
import sys
import time

import grpc
import pytest

from parties.client import Client, JobFailed
from parties.config import dns_name, load_config, write_config
from parties.jobs.spec import JobSpec, SignedJob, sign_job
from parties.local.launcher import LocalDeployment
from parties.service import tls, wire_pb2, wire_pb2_grpc
from parties.service.frames import FrameReader, PeerClosed

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
JOIN_S = 1.5
"""The hospitals' join timeout here: short, so a job missing a party fails fast."""


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    """Three hospitals (with a short join timeout) and the dealer, as processes."""
    deployment = LocalDeployment(tmp_path_factory.mktemp("limits"), HOSPITALS, name="limits")
    for name in HOSPITALS:
        member = deployment.members[name]
        policy = dataclasses.replace(member.policy, join_timeout_seconds=JOIN_S)
        write_config(dataclasses.replace(member, policy=policy), member.config_path)
        deployment.members[name] = load_config(member.config_path)
    try:
        deployment.start_all()
        yield deployment
    finally:
        deployment.close()


@pytest.fixture
def client(fed: LocalDeployment):
    c = Client(fed.members["analyst"])
    yield c
    c.close()


def _count_job(client: Client, deadline_s: float = 20.0) -> JobSpec:
    return client.job(
        "stats-count", "3", inputs={h: ["mean_radius"] for h in HOSPITALS}, deadline_s=deadline_s
    )


def _signed(client: Client, spec: JobSpec) -> SignedJob:
    return sign_job(spec, client.member.tls.key, client.member.tls.cert)


def _submit_to(client: Client, party: str, signed: SignedJob, timeout: float = 30.0):
    """Send a signed job to one party only; a future of its reply."""
    request = wire_pb2.SubmitRequest(signed_job=signed.to_json().encode())
    return client._stub(party).Submit.future(request, timeout=timeout)


def _total(fed: LocalDeployment) -> int:
    return sum(len(rows) for rows in fed.rows.values())


def _health(fed: LocalDeployment) -> subprocess.CompletedProcess[str]:
    config = str(fed.members["analyst"].config_path)
    return subprocess.run(
        [sys.executable, "-m", "parties.cli", "health", "--config", config, "--timeout", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_burst_to_one_hospital_leaves_health_and_the_next_job_serving(fed, client) -> None:
    burst = [
        _submit_to(client, "hospital-a", _signed(client, _count_job(client))) for _ in range(9)
    ]
    time.sleep(0.5)  # the burst is in: every job it admitted waits for peers that never come
    health = _health(fed)
    assert health.returncode == 0, health.stdout
    assert "hospital-a" in health.stdout and "serving" in health.stdout
    outcomes = []
    for call in burst:
        try:
            outcomes.append(call.result(timeout=JOIN_S + 20).failure_kind)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "jobs at once" in exc.details()
            outcomes.append("busy")
    assert set(outcomes) == {"peer did not join", "busy"}
    assert client.submit(_count_job(client)).outputs["count"][0] == _total(fed)


def test_a_deadline_years_ahead_is_refused_at_admission(client) -> None:
    job = _count_job(client, deadline_s=3 * 365 * 24 * 3600.0)
    with pytest.raises(JobFailed) as refused:
        client.submit(job)
    assert refused.value.kind == "refused: lifetime-too-long"
    assert "600" in str(refused.value)  # names the limit to stay within


def test_a_job_whose_peer_never_joins_fails_within_the_join_timeout(client) -> None:
    signed = _signed(client, _count_job(client))
    start = time.monotonic()
    calls = {p: _submit_to(client, p, signed) for p in ("hospital-a", "hospital-b")}
    replies = {p: call.result() for p, call in calls.items()}
    elapsed = time.monotonic() - start
    for party, reply in replies.items():
        assert not reply.ok and reply.failure_kind == "peer did not join", reply.failure
        assert signed.job_id in reply.failure and "party hospital-c" in reply.failure, party
    assert elapsed < JOIN_S + 5  # not the job's 20 s deadline


def test_an_analysts_certificate_cannot_join_the_data_plane(fed) -> None:
    analyst, target = fed.members["analyst"], fed.members["hospital-b"]
    options = [("grpc.ssl_target_name_override", dns_name(target.federation, target.name))]
    with grpc.secure_channel(target.address, tls.channel_credentials(analyst), options) as channel:
        health = wire_pb2_grpc.PartyStub(channel).Health(wire_pb2.HealthRequest(), timeout=10)
    assert health.data_port > 0
    host = target.address.rpartition(":")[0]
    raw = socket.create_connection((host, health.data_port), timeout=10)
    sock = tls.socket_context(analyst, server=False).wrap_socket(raw)
    with sock, pytest.raises((OSError, ssl.SSLError, PeerClosed)):
        FrameReader().read(sock, limit=1)  # no greeting: the connection is closed
    time.sleep(0.2)
    log = (fed.root / "hospital-b.log").read_text()
    assert "refused a connection" in log and "'analyst' is not a computing party" in log
