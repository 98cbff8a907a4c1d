"""Party nodes in one process: admission refusals and a malformed message from a peer."""

from __future__ import annotations

import dataclasses
import socket
import threading
from concurrent import futures

import numpy as np
import pytest

from parties.client import Client, JobFailed
from parties.data.errors import DataSourceError
from parties.jobs.spec import LOCAL_DATA_REASON, JobRejected, JobSpec, SignedJob, sign_job
from parties.ledger.chain_node import ChainNode
from parties.service import node as node_module
from parties.service import socket_transport, wire_pb2
from parties.service.dataplane import DataPlane
from parties.service.dealer_service import serve
from parties.service.mesh import Mesh
from parties.service.node import PartyNode, plan_key, public_failure
from protocols.context import JobContext
from protocols.disclosure import PolicyRefused, StatisticsInputError, StatisticsParamsError
from protocols.model import LogisticModel
from protocols.registry import UnknownProtocolError
from smpc.errors import FixedPointRangeError, ProtocolAbort, ShapeMismatchError
from smpc.runtime import dry_run

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")


@pytest.fixture(scope="module")
def fed(federation_files):
    return federation_files


class Nodes:
    """Three in-process nodes and a dealer; policies may be changed per test."""

    def __init__(self, fed, *, patient_id: str | None = None, **policy_changes) -> None:
        self.fed = fed
        self.dealer = serve(fed.members["dealer"])
        self.nodes = []
        for name in HOSPITALS:
            member = fed.members[name]
            policy = dataclasses.replace(member.policy, **policy_changes)
            data = dataclasses.replace(member.data, patient_id=patient_id)
            changed = dataclasses.replace(member, policy=policy, data=data)
            self.nodes.append(PartyNode(changed).start())
        for node in self.nodes:
            assert node.plane.wait_connected(10)
        self.client = Client(fed.members["analyst"])

    def close(self) -> None:
        self.client.close()
        for node in self.nodes:
            node.stop(0)
        self.dealer.stop(0)


@pytest.fixture
def nodes(fed):
    made: list[Nodes] = []

    def make(**changes) -> Nodes:
        made.append(Nodes(fed, **changes))
        return made[-1]

    yield make
    for n in made:
        n.close()


def _count_job(client: Client, where: str | None = None, **changes) -> JobSpec:
    job = client.job("stats-count", "3", inputs={h: (["mean_radius"], where) for h in HOSPITALS})
    return dataclasses.replace(job, **changes) if changes else job


def _refusal(n: Nodes, signed: SignedJob, spec: JobSpec) -> JobFailed:
    with pytest.raises(JobFailed) as err:
        n.client.submit_signed(signed, spec)
    assert spec.job_id in str(err.value) or signed.job_id in str(err.value)
    return err.value


@pytest.mark.parametrize("how", ["flipped bit", "no signature"])
def test_an_unsigned_or_tampered_job_is_refused(nodes, how: str) -> None:
    n = nodes()
    spec = _count_job(n.client)
    signed = sign_job(spec, n.client.member.tls.key, n.client.member.tls.cert)
    flipped = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    forged = dataclasses.replace(signed, signature=b"" if how == "no signature" else flipped)
    assert "bad-signature" in _refusal(n, forged, spec).kind


def test_a_job_signed_by_a_hospital_is_refused(nodes, fed) -> None:
    n = nodes()
    spec = _count_job(n.client)
    hospital = fed.members["hospital-a"].tls
    signed = sign_job(spec, hospital.key, hospital.cert)
    assert "bad-signature" in _refusal(n, signed, spec).kind


@pytest.mark.parametrize(
    ("policy", "kind"),
    [
        ({"analysts": ()}, "unknown-analyst"),
        ({"protocols": {"stats-mean": "2"}}, "protocol-not-allowed"),
        ({"protocols": {"stats-count": "1"}}, "protocol-version"),
        ({"recipients": ("hospital-a",)}, "recipient-not-allowed"),
    ],
)
def test_jobs_outside_a_partys_policy_are_refused(nodes, policy, kind) -> None:
    n = nodes(**policy)
    spec = _count_job(n.client)
    signed = sign_job(spec, n.client.member.tls.key, n.client.member.tls.cert)
    assert kind in _refusal(n, signed, spec).kind


def test_a_contribution_below_the_minimum_is_refused_without_revealing_its_size(nodes, fed) -> None:
    n = nodes()
    spec = _count_job(n.client, where="mean_radius > 26")  # a handful of rows at most
    tiny = {
        h: sum(float(r[fed.header.index("mean_radius")]) > 26 for r in fed.rows[h])
        for h in HOSPITALS
    }
    assert min(tiny.values()) < 5  # the oracle: someone's cohort is too small
    signed = sign_job(spec, n.client.member.tls.key, n.client.member.tls.cert)
    error = _refusal(n, signed, spec)
    assert error.kind == "local-data"
    for count in set(tiny.values()):
        assert f" {count} " not in str(error) and f"({count})" not in str(error)


def test_consent_that_leaves_everyone_out_is_named_in_the_hospitals_log_only(
    nodes, fed, caplog
) -> None:
    n = nodes(patient_id="id")  # the federation's default mode is opt-in; nobody granted
    spec = _count_job(n.client)
    signed = sign_job(spec, n.client.member.tls.key, n.client.member.tls.cert)
    with caplog.at_level("INFO", logger=node_module.__name__):
        error = _refusal(n, signed, spec)
    assert error.kind == "local-data"
    assert LOCAL_DATA_REASON in str(error) and "consent" not in str(error).lower()
    rows = len(fed.rows["hospital-a"])  # the oracle: every row of its CSV is selected
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("hospital-a:")]
    assert any(
        "contribution below the minimum cohort size: 0 rows after filter and consent, minimum 5;"
        f" consent excluded {rows} of {rows} selected rows (consent mode opt-in:"
        in line
        and "smpc consent grant" in line
        for line in logged
    ), logged


def test_a_malformed_message_aborts_the_job_and_the_next_job_runs(nodes, fed, monkeypatch) -> None:
    n = nodes()
    real_send = socket_transport.SocketTransport._send

    def short_beaver(self, env, payload):  # hospital-b sends one element too few
        if self.plane.name == "hospital-b" and env.purpose == "input":
            payload = payload[:-1]
        return real_send(self, env, payload)

    monkeypatch.setattr(socket_transport.SocketTransport, "_send", short_beaver)
    with pytest.raises(JobFailed) as err:
        n.client.submit(_count_job(n.client))
    assert "malformed message" in str(err.value) and "hospital-b" in str(err.value)
    monkeypatch.undo()
    outcome = n.client.submit(_count_job(n.client))
    assert int(outcome.outputs["count"][0]) == len(fed.column("mean_radius"))
    assert np.isfinite(outcome.seconds)


def test_a_failure_that_may_depend_on_data_goes_out_as_the_one_fixed_reason() -> None:
    job = "0" * 64
    from_data = [
        DataSourceError("column 'x' holds a value that is not a number at data row 3"),
        FixedPointRangeError("a value is outside the fixed-point range"),
        ShapeMismatchError("input has shape (40, 2), the job declares (1, 2)"),
        ValueError("the label column must hold only 0 and 1"),
    ]
    assert {public_failure(e) for e in from_data} == {("local-data", LOCAL_DATA_REASON)}
    refused = JobRejected(job, "unknown-analyst", "analyst 'x' is not accepted here")
    assert public_failure(refused) == ("refused: unknown-analyst", refused.reason)
    abort = ProtocolAbort(job, "hospital-b", "party aborted", "it aborted the job: local-data")
    assert public_failure(abort) == ("party aborted", "party hospital-b: party aborted")
    missing = UnknownProtocolError("protocol 'x' is not installed here")
    assert public_failure(missing) == ("UnknownProtocolError", str(missing))
    forbidden = PolicyRefused("this party's policy does not permit a minimum or maximum")
    assert public_failure(forbidden) == ("PolicyRefused", str(forbidden))
    misfit = StatisticsParamsError("params.bits must be an integer from 1 to 32")
    assert public_failure(misfit) == ("StatisticsParamsError", str(misfit))
    # a data failure raised as a statistics input error stays hidden
    assert public_failure(StatisticsInputError("column 'x' row 4: value out of range")) == (
        "local-data",
        LOCAL_DATA_REASON,
    )


def test_a_repeated_job_shape_reuses_its_plan_and_a_new_shape_plans_again(
    nodes, fed, monkeypatch
) -> None:
    n = nodes()
    planned: list[int] = []

    def counted_dry_run(*args, **kwargs):
        planned.append(kwargs["party"])
        return dry_run(*args, **kwargs)

    monkeypatch.setattr(node_module, "dry_run", counted_dry_run)
    columns = ["mean_radius", "mean_texture"]
    oracle = np.stack([fed.column(c) for c in columns], axis=1)

    first = n.client.statistics("mean", columns[:1])
    assert sorted(planned) == [0, 1, 2]  # every party planned once
    again = n.client.statistics("mean", columns[:1])
    assert again["job"] != first["job"]
    assert sorted(planned) == [0, 1, 2]  # the same shape: no dry run anywhere
    for summary in (first, again):
        np.testing.assert_allclose(summary["mean"], oracle[:, :1].mean(axis=0), atol=1e-3)

    wider = n.client.statistics("mean", columns)  # another shape plans again
    assert sorted(planned) == [0, 0, 1, 1, 2, 2]
    np.testing.assert_allclose(wider["mean"], oracle.mean(axis=0), atol=1e-3)
    fewer = n.client.statistics("mean", columns[:1], where="mean_radius > 12")
    assert len(planned) == 9  # fewer rows at each party: its shape differs too
    kept = oracle[oracle[:, 0] > 12, :1]
    np.testing.assert_allclose(fewer["mean"], kept.mean(axis=0), atol=1e-3)
    assert all(len(node.plans) == 3 for node in n.nodes)


def _leaves(key: object) -> list[object]:
    """Everything a plan key holds that is not a tuple."""
    if isinstance(key, tuple):
        return [leaf for part in key for leaf in _leaves(part)]
    return [key]


def test_a_plan_key_holds_shapes_and_names_never_a_real_number(fed) -> None:
    """Inputs that differ only in their numbers share a plan; another row count, column,
    text column or model layout does not; no real number (or array) is kept in the key."""
    spec = _count_job(Client(fed.members["analyst"]))
    rng = np.random.default_rng(11)
    names = ("age", "weight", "dose")

    def model() -> LogisticModel:
        return LogisticModel(
            coef=rng.normal(size=3),
            intercept=float(rng.normal()),
            feature_names=names,
            scaler_mean=rng.normal(size=3),
            scaler_scale=rng.uniform(1, 2, size=3),
        )

    def key(rows: int = 7, columns: tuple[str, ...] = names, **extra: object) -> object:
        ctx = JobContext(
            params={},
            parties=spec.parties,
            party=spec.parties[0],
            columns=columns,
            values=rng.normal(size=(rows, len(columns))),
            selections={p: columns for p in spec.parties},
            **extra,  # type: ignore[arg-type]
        )
        return plan_key(spec, ctx, 0, 16)

    sites = {"site": np.array(["north", "south", "east"])}
    same = [key(), key(), key(model=model()), key(model=model()), key(text=sites)]
    assert same[0] == same[1] and same[2] == same[3]
    assert key(text={"site": np.array(["west", "north", "west"])}) == same[4]
    others = [key(rows=8), key(columns=("age", "weight", "height")), key(text={"other": []})]
    distinct = [same[0], same[2], same[4], *others]
    assert len(set(distinct)) == len(distinct)
    for k in distinct:
        assert not any(isinstance(v, float | np.floating | np.ndarray) for v in _leaves(k))
    # a list that mixes names with numbers, and any mapping, is walked element by element
    mixed = node_module._layout(["age", 2.5, {"w": np.zeros((2, 3)), "n": 4}])
    assert mixed == ("seq", "age", "float", ("map", ("n", 4), ("w", ("array", "<f8", (2, 3)))))


def test_a_peer_running_another_job_is_named_and_the_next_job_runs(nodes, fed) -> None:
    """Frames are filed by the job they name: another job's messages are never read here."""
    n = nodes(join_timeout_seconds=1.0)
    key, cert = n.client.member.tls.key, n.client.member.tls.cert
    ours, theirs = _count_job(n.client), _count_job(n.client)  # the same job, two ids
    assert ours.job_id != theirs.job_id
    sent = {
        h: sign_job(theirs if h == "hospital-c" else ours, key, cert).to_json().encode()
        for h in HOSPITALS
    }
    with futures.ThreadPoolExecutor(len(HOSPITALS)) as pool:
        calls = {
            h: pool.submit(n.client._stub(h).Submit, wire_pb2.SubmitRequest(signed_job=job))
            for h, job in sent.items()
        }
        replies = {h: call.result(timeout=60) for h, call in calls.items()}
    for h in ("hospital-a", "hospital-b"):
        assert not replies[h].ok
        assert replies[h].job == ours.job_id
        assert replies[h].failure_kind == "peer did not join"
        assert replies[h].failure.endswith("party hospital-c: peer did not join")
    assert not replies["hospital-c"].ok and replies["hospital-c"].job == theirs.job_id
    outcome = n.client.submit(_count_job(n.client))
    assert int(outcome.outputs["count"][0]) == len(fed.column("mean_radius"))


def test_the_reply_waits_for_the_kept_record_not_for_the_chain(nodes, fed, monkeypatch) -> None:
    release, handed = threading.Event(), threading.Event()
    real_submit = ChainNode.submit

    def slow_submit(self, record: bytes) -> bytes:  # a block being proposed and sealed
        handed.set()
        release.wait(60)
        return real_submit(self, record)

    monkeypatch.setattr(ChainNode, "submit", slow_submit)
    n = nodes()
    pool = futures.ThreadPoolExecutor(1)
    try:  # the chain is held up until the end
        outcome = pool.submit(n.client.submit, _count_job(n.client)).result(timeout=20)
        assert int(outcome.outputs["count"][0]) == len(fed.column("mean_radius"))
        for reply in outcome.replies.values():  # the rounds are a part of the party's time
            assert 0 < reply.online_seconds < reply.seconds
        for node in n.nodes:  # committed before the reply, so a crash now loses nothing
            assert node.records.job_record(outcome.job) is not None
            assert node.records.notes(outcome.job) is not None
        assert handed.wait(10)
    finally:
        release.set()
        pool.shutdown()


def test_a_fixed_data_port_is_where_the_data_plane_listens_and_health_says_so(fed) -> None:
    member = fed.members["hospital-a"]
    host = member.address.rpartition(":")[0]
    with socket.socket() as probe:  # a port free just now
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    fixed = dataclasses.replace(member, data_port=port)
    with PartyNode(fixed) as node, Mesh(fed.members["hospital-b"]) as peer:
        assert node.plane.port == port
        assert peer.locate("hospital-a") == (host, port)
        with socket.create_connection((host, port), timeout=5):
            pass
        with pytest.raises(OSError, match=f"cannot listen for the data plane on {host}:{port}"):
            DataPlane(fixed, port=port).start()  # taken: the error names the address
