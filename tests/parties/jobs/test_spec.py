"""Jobs: canonical encoding, analyst signatures, verification and admission refusals."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from parties.config import MemberConfig
from parties.federation import init_federation
from parties.jobs.spec import (
    DEFAULT_SCOPE,
    LOCAL_DATA_REASON,
    REJECTION_KINDS,
    SIGNATURE_TAG,
    InputSpec,
    JobFormatError,
    JobRejected,
    JobSpec,
    LocalDataError,
    SignedJob,
    admit,
    check_cohort,
    now_ms,
    sign_job,
    verify_job,
    warm_verification,
)
from smpc.errors import JobReplayError, SMPCError
from smpc.jobs import SeenJobs

PROTOCOL = "stats.mean"
VERSION = "1.2.0"
HOUR_MS = 3_600_000


def _with_policy(member: MemberConfig, **changes: object) -> MemberConfig:
    """``member`` with its policy changed and ``PROTOCOL`` pinned at ``VERSION``."""
    changes.setdefault("protocols", {PROTOCOL: VERSION})
    return replace(member, policy=replace(member.policy, **changes))


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, MemberConfig]:
    """Hospitals alpha, beta, gamma, the dealer, analysts 'analyst' and 'bob', by name."""
    out = tmp_path_factory.mktemp("jobs") / "testfed"
    members = init_federation(
        "testfed", ["alpha", "beta", "gamma"], ["analyst", "bob"], [], out, base_port=0
    )
    return {m.name: _with_policy(m) for m in members}


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, MemberConfig]:
    """A second federation with the same name and member names, but its own CA."""
    out = tmp_path_factory.mktemp("foreign") / "testfed"
    members = init_federation("testfed", ["alpha", "beta"], ["analyst"], [], out, base_port=0)
    return {m.name: m for m in members}


def make_spec(**changes: object) -> JobSpec:
    fields: dict[str, object] = {
        "federation": "testfed",
        "protocol": PROTOCOL,
        "protocol_version": VERSION,
        "analyst": "analyst",
        "parties": ("beta", "alpha"),
        "inputs": {
            "alpha": InputSpec(columns=("age", "bmi"), where="age >= 65"),
            "beta": InputSpec(columns=("age", "bmi")),
        },
        "params": {"bins": [0, 10, 20], "scale": 0.5, "label": "Zürich"},
        "outputs": {"mean": ("analyst",)},
        "deadline_ms": now_ms() + HOUR_MS // 12,
    }
    fields.update(changes)
    return JobSpec(**fields)  # type: ignore[arg-type]


def sign_as(member: MemberConfig, spec: JobSpec) -> SignedJob:
    return sign_job(spec, member.tls.key, member.tls.cert)


def raw_signature(member: MemberConfig, data: bytes) -> bytes:
    """Sign arbitrary bytes (with the job tag) using ``member``'s TLS key."""
    key = serialization.load_pem_private_key(member.tls.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.sign(SIGNATURE_TAG + data, ec.ECDSA(hashes.SHA256()))


def refusal(
    signed: SignedJob, member: MemberConfig, registry: SeenJobs | None = None, **kw: object
) -> JobRejected:
    with pytest.raises(JobRejected) as info:
        admit(signed, member, registry or SeenJobs(), **kw)  # type: ignore[arg-type]
    assert info.value.job_id == signed.job_id
    assert str(info.value).startswith(f"job {signed.job_id} refused ({info.value.kind}): ")
    return info.value


# -- the spec and its encoding --------------------------------------------------------


def test_parties_are_sorted_and_index_is_position() -> None:
    spec = make_spec()
    assert spec.parties == ("alpha", "beta")
    assert spec.party_index("alpha") == 0
    assert spec.party_index("beta") == 1
    with pytest.raises(JobFormatError):
        spec.party_index("gamma")


def test_canonical_encoding_is_stable() -> None:
    spec = make_spec()
    again = JobSpec.from_json(spec.to_json())
    assert again == spec
    assert again.canonical() == spec.canonical()
    assert again.job_id == spec.job_id
    assert spec.job_id == hashlib.sha256(spec.canonical()).hexdigest()
    text = spec.canonical().decode("utf-8")
    assert text == json.dumps(
        json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert "Zürich" in text  # UTF-8, not \u escapes
    # the text kept since construction is the encoding of the fields as they are now
    fresh = json.dumps(spec.to_plain(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert spec.to_json() == fresh


def test_fresh_nonce_gives_a_fresh_id() -> None:
    first = make_spec(deadline_ms=10_000_000_000_000, created_ms=1_000)
    second = make_spec(deadline_ms=10_000_000_000_000, created_ms=1_000)
    assert first.nonce != second.nonce
    assert len(first.nonce) == 32
    assert first.job_id != second.job_id
    assert replace(second, nonce=first.nonce).job_id == first.job_id


def test_times_are_integers_and_params_finite() -> None:
    with pytest.raises(JobFormatError):
        make_spec(deadline_ms=float(now_ms() + HOUR_MS))
    with pytest.raises(JobFormatError):
        make_spec(created_ms=True)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(JobFormatError, match="NaN or infinite"):
            make_spec(params={"nested": [1, {"x": bad}]})
    with pytest.raises(JobFormatError):
        make_spec(params={"when": object()})
    plain = json.loads(make_spec().to_json())
    plain["deadline_ms"] = float(plain["deadline_ms"])
    with pytest.raises(JobFormatError):
        JobSpec.from_json(json.dumps(plain))
    with pytest.raises(JobFormatError, match="NaN"):
        JobSpec.from_json(make_spec().to_json().replace('"scale":0.5', '"scale":NaN'))


def test_from_json_is_strict() -> None:
    text = make_spec().to_json()
    plain = json.loads(text)
    with pytest.raises(JobFormatError, match="twice"):
        JobSpec.from_json(text[:-1] + ',"nonce":"' + "0" * 32 + '"}')
    with pytest.raises(JobFormatError, match="unknown extra"):
        JobSpec.from_json(json.dumps({**plain, "extra": 1}))
    with pytest.raises(JobFormatError, match="missing nonce"):
        JobSpec.from_json(json.dumps({k: v for k, v in plain.items() if k != "nonce"}))
    with pytest.raises(JobFormatError, match="version"):
        JobSpec.from_json(json.dumps({**plain, "version": 2}))
    with pytest.raises(JobFormatError):
        JobSpec.from_json(b"\xff not utf-8")
    with pytest.raises(JobFormatError):
        JobSpec.from_json("[1, 2]")


def test_spec_checks_its_fields() -> None:
    with pytest.raises(JobFormatError, match="two computing parties"):
        make_spec(parties=("alpha",), inputs={})
    with pytest.raises(JobFormatError, match="twice"):
        make_spec(parties=("alpha", "alpha", "beta"))
    with pytest.raises(JobFormatError, match="not one of the parties"):
        make_spec(inputs={"gamma": InputSpec(columns=("age",))})
    with pytest.raises(JobFormatError, match="no recipients"):
        make_spec(outputs={"mean": ()})
    with pytest.raises(JobFormatError, match="later than created_ms"):
        make_spec(created_ms=5_000, deadline_ms=5_000)
    with pytest.raises(JobFormatError, match="nonce"):
        make_spec(nonce="ABC")
    with pytest.raises(JobFormatError):
        InputSpec(columns="age")
    with pytest.raises(JobFormatError, match="twice"):
        InputSpec(columns=("age", "age"))


def test_signed_job_round_trips(fed: dict[str, MemberConfig]) -> None:
    signed = sign_as(fed["analyst"], make_spec())
    again = SignedJob.from_json(signed.to_json())
    assert again == signed
    assert again.job_id == signed.job_id
    assert verify_job(again, fed["alpha"]) == _spec_of(signed)
    with pytest.raises(JobFormatError):
        SignedJob.from_json('{"version":1,"spec":"{}","certificate":"x","signature":"zz"}')
    with pytest.raises(JobFormatError):
        SignedJob.from_json("not json")


def _spec_of(signed: SignedJob) -> JobSpec:
    return JobSpec.from_json(signed.spec_bytes)


# -- verification -----------------------------------------------------------------------


def test_verify_and_admit_accept(fed: dict[str, MemberConfig]) -> None:
    spec = make_spec()
    signed = sign_as(fed["analyst"], spec)
    assert signed.job_id == spec.job_id
    assert verify_job(signed, fed["alpha"]) == spec
    for name in ("alpha", "beta", "dealer"):
        ledger = SeenJobs()
        assert admit(signed, fed[name], ledger, own_rows=5) == spec
        assert spec.job_id in ledger
    assert admit(spec, fed["beta"], SeenJobs()) == spec


@pytest.mark.parametrize("where", [0, 40, -2])
def test_tampered_spec_is_refused(fed: dict[str, MemberConfig], where: int) -> None:
    signed = sign_as(fed["analyst"], make_spec())
    data = bytearray(signed.spec_bytes)
    data[where] ^= 0x01
    tampered = replace(signed, spec_bytes=bytes(data))
    assert refusal(tampered, fed["alpha"]).kind == "bad-signature"


def test_unsigned_job_is_refused(fed: dict[str, MemberConfig]) -> None:
    signed = sign_as(fed["analyst"], make_spec())
    for signature in (b"", b"\x30\x00", bytes(70)):
        assert refusal(replace(signed, signature=signature), fed["alpha"]).kind == "bad-signature"


def test_hospital_cannot_sign_as_analyst(fed: dict[str, MemberConfig]) -> None:
    spec = make_spec()
    own_cert = sign_as(fed["beta"], spec)
    error = refusal(own_cert, fed["alpha"])
    assert error.kind == "bad-signature"
    assert "hospital 'beta'" in error.reason
    analyst_cert = SignedJob(
        spec_bytes=spec.canonical(),
        certificate_pem=fed["analyst"].tls.cert.read_text(),
        signature=raw_signature(fed["beta"], spec.canonical()),
    )
    assert refusal(analyst_cert, fed["alpha"]).kind == "bad-signature"


def test_sign_job_refuses_a_key_that_is_not_the_certificates(
    fed: dict[str, MemberConfig],
) -> None:
    with pytest.raises(ValueError, match="does not belong"):
        sign_job(make_spec(), fed["beta"].tls.key, fed["analyst"].tls.cert)


def test_analyst_cannot_sign_for_another_analyst(fed: dict[str, MemberConfig]) -> None:
    signed = sign_as(fed["bob"], make_spec(analyst="analyst"))
    error = refusal(signed, fed["alpha"])
    assert error.kind == "bad-signature"
    assert "'bob' signed" in error.reason


def test_foreign_ca_is_refused(
    fed: dict[str, MemberConfig], foreign: dict[str, MemberConfig]
) -> None:
    signed = sign_as(foreign["analyst"], make_spec())
    error = refusal(signed, fed["alpha"])
    assert error.kind == "bad-signature"
    assert "federation CA" in error.reason


def test_warm_verification_keeps_the_ca_and_still_refuses_a_foreign_signer(
    fed: dict[str, MemberConfig], foreign: dict[str, MemberConfig]
) -> None:
    warm_verification(fed["alpha"])  # its own certificate, from its CA
    # a member whose certificate is not from its CA (the TLS layer reports that) still warms
    warm_verification(
        replace(fed["alpha"], tls=replace(fed["alpha"].tls, cert=foreign["alpha"].tls.cert))
    )
    signed = sign_as(foreign["analyst"], make_spec())
    assert refusal(signed, fed["alpha"]).kind == "bad-signature"
    assert verify_job(sign_as(fed["analyst"], make_spec()), fed["alpha"]).analyst == "analyst"


def test_expired_certificate_is_refused(fed: dict[str, MemberConfig]) -> None:
    later = now_ms() + 2 * 365 * 24 * HOUR_MS
    signed = sign_as(fed["analyst"], make_spec(deadline_ms=later + HOUR_MS))
    with pytest.raises(JobRejected, match="not valid now") as info:
        verify_job(signed, fed["alpha"], now_ms=later)
    assert info.value.kind == "bad-signature"


def test_job_for_another_federation_is_refused(fed: dict[str, MemberConfig]) -> None:
    signed = sign_as(fed["analyst"], make_spec(federation="otherfed"))
    assert refusal(signed, fed["alpha"]).kind == "bad-signature"


def test_non_canonical_spec_is_refused(fed: dict[str, MemberConfig]) -> None:
    spec = make_spec()
    loose = json.dumps(json.loads(spec.to_json()), indent=1).encode("utf-8")
    assert JobSpec.from_json(loose) == spec
    signed = SignedJob(
        spec_bytes=loose,
        certificate_pem=fed["analyst"].tls.cert.read_text(),
        signature=raw_signature(fed["analyst"], loose),
    )
    assert refusal(signed, fed["alpha"]).kind == "malformed"


# -- admission ------------------------------------------------------------------------


def test_analyst_not_in_policy(fed: dict[str, MemberConfig]) -> None:
    member = _with_policy(fed["alpha"], analysts=("bob",))
    error = refusal(sign_as(fed["analyst"], make_spec()), member)
    assert error.kind == "unknown-analyst"


def test_protocol_not_allowed(fed: dict[str, MemberConfig]) -> None:
    member = _with_policy(fed["alpha"], protocols={"logreg.infer": VERSION})
    assert refusal(sign_as(fed["analyst"], make_spec()), member).kind == "protocol-not-allowed"


def test_protocol_version_must_match_exactly(fed: dict[str, MemberConfig]) -> None:
    for version in ("1.2.1", "1.2", "1.2.0 "):
        signed = sign_as(fed["analyst"], make_spec(protocol_version=version))
        error = refusal(signed, fed["alpha"])
        assert error.kind == "protocol-version"
        assert "'1.2.0'" in error.reason


def test_recipient_not_allowed(fed: dict[str, MemberConfig]) -> None:
    member = _with_policy(fed["alpha"], recipients=("analyst",))
    signed = sign_as(fed["analyst"], make_spec(outputs={"mean": ("analyst", "bob")}))
    error = refusal(signed, member)
    assert error.kind == "recipient-not-allowed"
    assert "bob" in error.reason


def test_not_a_party(fed: dict[str, MemberConfig]) -> None:
    signed = sign_as(fed["analyst"], make_spec())
    assert refusal(signed, fed["gamma"]).kind == "not-a-party"
    stranger = sign_as(fed["analyst"], make_spec(parties=("alpha", "beta", "zeta")))
    error = refusal(stranger, fed["alpha"])
    assert error.kind == "not-a-party"
    assert "zeta" in error.reason
    dealer_as_party = sign_as(fed["analyst"], make_spec(parties=("alpha", "dealer"), inputs={}))
    assert refusal(dealer_as_party, fed["alpha"]).kind == "not-a-party"


def test_expired_deadline(fed: dict[str, MemberConfig]) -> None:
    spec = make_spec()
    signed = sign_as(fed["analyst"], spec)
    assert refusal(signed, fed["alpha"], now_ms=spec.deadline_ms).kind == "expired"
    assert admit(signed, fed["alpha"], SeenJobs(), now_ms=spec.deadline_ms - 1) == spec


def test_seconds_left_until_the_deadline() -> None:
    spec = make_spec(created_ms=1_000, deadline_ms=61_000)
    assert spec.seconds_left(1_000) == 60.0
    assert spec.seconds_left(62_500) == -1.5
    later = make_spec()
    assert 0 < later.seconds_left() <= (later.deadline_ms - now_ms()) / 1000 + 1


def test_a_job_that_may_live_past_the_policy_limit_is_refused(
    fed: dict[str, MemberConfig],
) -> None:
    alpha = fed["alpha"]
    limit_ms = alpha.policy.max_job_seconds * 1000
    now = now_ms()
    years = sign_as(fed["analyst"], make_spec(created_ms=now, deadline_ms=now + 3 * 8760 * HOUR_MS))
    error = refusal(years, alpha, now_ms=now)
    assert error.kind == "lifetime-too-long" and f"at most {limit_ms // 1000} s" in error.reason
    # created in the future, so the lifetime from creation looks short: counted from now too
    later = now + 24 * HOUR_MS
    future = sign_as(fed["analyst"], make_spec(created_ms=later, deadline_ms=later + 60_000))
    assert refusal(future, alpha, now_ms=now).kind == "lifetime-too-long"
    at_limit = make_spec(created_ms=now, deadline_ms=now + limit_ms)
    assert admit(sign_as(fed["analyst"], at_limit), alpha, SeenJobs(), now_ms=now) == at_limit
    over = sign_as(fed["analyst"], make_spec(created_ms=now, deadline_ms=now + limit_ms + 1))
    assert refusal(over, alpha, now_ms=now).kind == "lifetime-too-long"


def test_replayed_id_is_refused(fed: dict[str, MemberConfig]) -> None:
    signed = sign_as(fed["analyst"], make_spec())
    ledger = SeenJobs()
    admit(signed, fed["alpha"], ledger)
    assert refusal(signed, fed["alpha"], ledger).kind == "replay"
    assert len(ledger) == 1
    registry = SeenJobs()
    admit(signed, fed["alpha"], registry)
    assert refusal(signed, fed["alpha"], registry).kind == "replay"


def test_a_refused_job_does_not_use_up_its_id(fed: dict[str, MemberConfig]) -> None:
    signed = sign_as(fed["analyst"], make_spec())
    ledger = SeenJobs()
    member = _with_policy(fed["alpha"], analysts=("bob",))
    assert refusal(signed, member, ledger).kind == "unknown-analyst"
    assert signed.job_id not in ledger
    admit(signed, fed["alpha"], ledger)


def test_small_contribution_is_refused_with_the_one_data_reason(
    fed: dict[str, MemberConfig],
) -> None:
    signed = sign_as(fed["analyst"], make_spec())
    member = _with_policy(fed["alpha"], min_cell_size=11)
    messages = set()
    for rows in (0, 3, 7, 10):
        with pytest.raises(LocalDataError) as error:
            admit(signed, member, SeenJobs(), own_rows=rows)
        messages.add(str(error.value))
    assert messages == {f"job {signed.job_id}: {LOCAL_DATA_REASON}"}
    assert admit(signed, member, SeenJobs(), own_rows=11) == _spec_of(signed)
    check_cohort(_spec_of(signed), member, 11)
    with pytest.raises(LocalDataError):
        check_cohort(_spec_of(signed), member, 10)


def test_a_scope_other_than_the_protocols_is_refused(fed: dict[str, MemberConfig]) -> None:
    signed = sign_as(fed["analyst"], make_spec(scope="statistics"))
    error = refusal(signed, fed["alpha"], scope="model-inference")
    assert error.kind == "scope"
    assert admit(signed, fed["alpha"], SeenJobs(), scope="statistics") == _spec_of(signed)


def test_probabilities_need_the_members_permission(fed: dict[str, MemberConfig]) -> None:
    spec = make_spec(
        reveal_probabilities=True, outputs={"labels": ("alpha",), "probabilities": ("alpha",)}
    )
    signed = sign_as(fed["analyst"], spec)
    assert refusal(signed, fed["alpha"]).kind == "probabilities-not-allowed"
    allowed = _with_policy(fed["alpha"], allow_probabilities=True)
    assert admit(signed, allowed, SeenJobs()) == _spec_of(signed)


def test_revealing_probabilities_needs_their_recipients() -> None:
    with pytest.raises(JobFormatError, match="probabilities' recipients"):
        make_spec(reveal_probabilities=True, outputs={"labels": ("alpha",)})


class _Counter:
    """A budget of ``limit`` jobs, counted in memory."""

    def __init__(self, limit: int) -> None:
        self.limit, self.charged = limit, []

    def charge(self, analyst: str, job: str, now_ms: int) -> bool:
        if len(self.charged) >= self.limit:
            return False
        self.charged.append((analyst, job))
        return True


def test_a_used_up_budget_refuses_and_is_charged_last(fed: dict[str, MemberConfig]) -> None:
    member = _with_policy(fed["alpha"], query_budget=1)
    budget = _Counter(member.policy.query_budget)
    first, second = (sign_as(fed["analyst"], make_spec()) for _ in range(2))
    admit(first, member, SeenJobs(), budget=budget)
    assert budget.charged == [("analyst", first.job_id)]
    error = refusal(second, member, budget=budget)
    assert error.kind == "budget"
    assert error.reason.endswith("query budget of 1 jobs per 86400 s")
    # a job refused by an earlier check is not charged
    unused = _Counter(5)
    outsider = _with_policy(fed["alpha"], analysts=("bob",))
    assert refusal(second, outsider, budget=unused).kind == "unknown-analyst"
    assert unused.charged == []


def test_rejection_is_an_smpc_error(fed: dict[str, MemberConfig]) -> None:
    error = refusal(sign_as(fed["analyst"], make_spec()), fed["gamma"])
    assert isinstance(error, SMPCError)
    assert error.kind in REJECTION_KINDS
    with pytest.raises(ValueError):
        JobRejected("0" * 64, "", "x")


def test_ledger_refuses_repeats() -> None:
    ledger = SeenJobs()
    ledger.admit("a" * 64)
    with pytest.raises(JobReplayError):
        ledger.admit("a" * 64)
    assert "a" * 64 in ledger
    assert "b" * 64 not in ledger


def test_a_job_names_its_scope_from_the_fixed_list() -> None:
    assert make_spec().scope == DEFAULT_SCOPE == "statistics"
    spec = make_spec(scope="model-inference")
    assert JobSpec.from_json(spec.canonical()) == spec
    assert '"scope":"model-inference"' in spec.to_json()
    assert replace(spec, scope="statistics").job_id != spec.job_id  # the scope is signed
    for scope in ("research", "all", ""):
        with pytest.raises(JobFormatError, match=f"scope {scope!r} is not one of statistics"):
            make_spec(scope=scope)
