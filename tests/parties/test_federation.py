"""Federation set-up: CA, member certificates, chain keys, genesis, configs, renewal."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
import stat
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from parties.config import DataConfig, MemberConfig, load_config
from parties.federation import (
    FederationError,
    add_member,
    canonical_json,
    certificate_expiry_warning,
    data_source,
    init_federation,
    renew,
)

HOSPITALS = ("alpha", "beta", "gamma")
ROSTER = [
    ("alpha", "hospital"),
    ("beta", "hospital"),
    ("gamma", "hospital"),
    ("dealer", "dealer"),
    ("ana", "analyst"),
    ("mo", "model-owner"),
]
NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def fed_dir(tmp_path: Path) -> Path:
    return tmp_path / "fed"


@pytest.fixture
def members(fed_dir: Path) -> list[MemberConfig]:
    return init_federation("demo", HOSPITALS, ["ana"], ["mo"], fed_dir, base_port=40000)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _key(path: Path) -> object:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _ca(fed_dir: Path) -> x509.Certificate:
    return _cert(fed_dir / "ca" / "ca.pem")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _public_der(key: object) -> bytes:
    """DER of a public key, or of a private key's public half."""
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _san(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.UniformResourceIdentifier), san.get_values_for_type(
        x509.DNSName
    )


# -- the CA ------------------------------------------------------------------------


def test_ca_is_a_self_signed_p256_ca_for_ten_years(
    members: list[MemberConfig], fed_dir: Path
) -> None:
    ca = _ca(fed_dir)
    ca.verify_directly_issued_by(ca)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign
    key = _key(fed_dir / "ca" / "ca-key.pem")
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert _public_der(key) == _public_der(ca.public_key())
    years = (ca.not_valid_after_utc - ca.not_valid_before_utc).days / 365
    assert 9.9 < years < 10.1


# -- member certificates -------------------------------------------------------------


def test_every_member_has_a_ca_signed_certificate_naming_it(
    members: list[MemberConfig], fed_dir: Path
) -> None:
    ca = _ca(fed_dir)
    ca_public = ca.public_key()
    assert isinstance(ca_public, ec.EllipticCurvePublicKey)
    assert [(m.name, m.role) for m in members] == ROSTER
    for member in members:
        cert = _cert(member.tls.cert)
        assert cert.signature_hash_algorithm is not None
        ca_public.verify(
            cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
        )
        assert cert.issuer == ca.subject
        uris, dns = _san(cert)
        assert uris == [f"smpc://demo/{member.role}/{member.name}"] == [member.identity]
        assert dns == [f"{member.name}.demo.smpc"]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        key = _key(member.tls.key)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
        assert _public_der(key) == _public_der(cert.public_key())
        assert member.tls.ca_cert.read_bytes() == (fed_dir / "ca" / "ca.pem").read_bytes()


def test_member_certificates_last_about_a_year(members: list[MemberConfig]) -> None:
    now = dt.datetime.now(dt.UTC)
    for member in members:
        cert = _cert(member.tls.cert)
        assert cert.not_valid_before_utc <= now
        lifetime = cert.not_valid_after_utc - now
        assert dt.timedelta(days=364) < lifetime <= dt.timedelta(days=365)


def test_serials_differ(members: list[MemberConfig]) -> None:
    serials = {_cert(m.tls.cert).serial_number for m in members}
    assert len(serials) == len(members)


# -- private keys ------------------------------------------------------------------------


def _private_key_files(fed_dir: Path) -> list[Path]:
    return sorted(p for p in fed_dir.rglob("*.pem") if b"PRIVATE KEY" in p.read_bytes())


def test_private_keys_are_owner_only(members: list[MemberConfig], fed_dir: Path) -> None:
    keys = _private_key_files(fed_dir)
    assert len(keys) == 1 + len(members) + len(HOSPITALS)
    assert all(_mode(p) == 0o600 for p in keys), {p: oct(_mode(p)) for p in keys}
    assert _mode(fed_dir / "ca") == 0o700


def test_private_keys_are_owner_only_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        init_federation("demo", ["alpha", "beta"], [], [], tmp_path / "fed")
    finally:
        os.umask(old)
    keys = _private_key_files(tmp_path / "fed")
    assert keys and all(_mode(p) == 0o600 for p in keys)


def test_chain_keys_are_distinct_ed25519_keys_listed_in_the_genesis(
    members: list[MemberConfig], fed_dir: Path
) -> None:
    text = (fed_dir / "genesis.json").read_text()
    genesis = json.loads(text)
    assert text == canonical_json(genesis)
    listed = {entry["name"]: entry["chain_public_key"] for entry in genesis["hospitals"]}
    assert list(listed) == sorted(HOSPITALS)
    seen = set()
    for member in members:
        if member.role != "hospital":
            assert member.chain_key is None
            assert not (fed_dir / member.name / "chain-key.pem").exists()
            continue
        assert member.chain_key is not None
        key = _key(member.chain_key)
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        assert listed[member.name] == raw.hex()
        seen.add(raw)
    assert len(seen) == len(HOSPITALS)


def test_genesis_records_federation_consent_and_time(tmp_path: Path) -> None:
    before = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    init_federation("demo", ["alpha", "beta"], [], [], tmp_path / "a")
    init_federation("demo", ["alpha", "beta"], [], [], tmp_path / "b", consent="opt-out")
    after = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    a = json.loads((tmp_path / "a" / "genesis.json").read_text())
    b = json.loads((tmp_path / "b" / "genesis.json").read_text())
    assert (a["federation"], a["consent_mode"], b["consent_mode"]) == ("demo", "opt-in", "opt-out")
    assert before <= a["created_ms"] <= after
    assert a["hospitals"] != b["hospitals"]


def test_genesis_time_is_in_utc_milliseconds(tmp_path: Path) -> None:
    init_federation("demo", ["alpha", "beta"], [], [], tmp_path / "fed", now=NOW)
    genesis = json.loads((tmp_path / "fed" / "genesis.json").read_text())
    assert genesis["created_ms"] == calendar.timegm((2030, 6, 1, 12, 0, 0)) * 1000


# -- configs ---------------------------------------------------------------------


def test_configs_round_trip_through_load_config(members: list[MemberConfig], fed_dir: Path) -> None:
    for member in members:
        assert member.config_path == fed_dir.resolve() / f"{member.name}.toml"
        assert load_config(member.config_path) == member


def test_every_member_lists_every_other_at_a_distinct_address(
    members: list[MemberConfig],
) -> None:
    addresses = [m.address for m in members]
    assert addresses == [f"127.0.0.{i + 1}:{40000 + i}" for i in range(len(members))]
    for member in members:
        others = {p.name: p for p in member.peers}
        assert set(others) == {m.name for m in members} - {member.name}
        for other in members:
            if other is not member:
                assert others[other.name] == other.as_peer()
    assert [p.name for p in members[0].computing_peers] == ["beta", "gamma", "mo"]


def test_default_policy(members: list[MemberConfig]) -> None:
    for member in members:
        assert member.policy.analysts == ("ana",)
        # every installed protocol, pinned at its installed version
        from protocols.registry import installed

        assert member.policy.protocols == {n: p.version for n, p in installed().items()}
        assert set(member.policy.recipients) == {m.name for m in members}
        assert member.policy.min_cell_size == 5
        assert member.data.kind == "none"


def test_the_folder_can_be_moved(members: list[MemberConfig], fed_dir: Path) -> None:
    moved = fed_dir.parent / "moved"
    fed_dir.rename(moved)
    member = load_config(moved / "alpha.toml")
    assert member.tls.key == moved.resolve() / "alpha" / "tls-key.pem"
    assert member.tls.key.exists() and member.genesis.exists()


# -- refusing bad requests -----------------------------------------------------------


def test_existing_federation_is_not_overwritten(members: list[MemberConfig], fed_dir: Path) -> None:
    before = (fed_dir / "alpha" / "tls-key.pem").read_bytes()
    with pytest.raises(FederationError, match="force"):
        init_federation("demo", HOSPITALS, [], [], fed_dir)
    assert (fed_dir / "alpha" / "tls-key.pem").read_bytes() == before


def test_force_replaces_only_the_federation(members: list[MemberConfig], fed_dir: Path) -> None:
    (fed_dir / "notes.txt").write_text("keep me")
    (fed_dir / "settings.toml").write_text("mine = true\n")
    old_key = (fed_dir / "alpha" / "tls-key.pem").read_bytes()
    again = init_federation("demo2", ["alpha", "delta"], [], [], fed_dir, force=True)
    assert [m.name for m in again] == ["alpha", "delta", "dealer"]
    assert (fed_dir / "notes.txt").read_text() == "keep me"
    assert (fed_dir / "settings.toml").read_text() == "mine = true\n"
    assert (fed_dir / "alpha" / "tls-key.pem").read_bytes() != old_key
    assert not (fed_dir / "gamma.toml").exists() and not (fed_dir / "gamma").exists()
    assert sorted(p.name for p in fed_dir.glob("*.toml")) == [
        "alpha.toml",
        "dealer.toml",
        "delta.toml",
        "settings.toml",
    ]
    assert add_member(fed_dir, "ben", "analyst").peer("delta")  # settings.toml is not a member


def test_force_does_not_empty_a_folder_that_holds_no_federation(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(FederationError, match="holds no federation"):
        init_federation("demo", ["alpha", "beta"], [], [], tmp_path, force=True)
    assert (tmp_path / "mine.txt").exists()


def test_an_empty_existing_folder_is_fine(tmp_path: Path) -> None:
    assert len(init_federation("demo", ["alpha", "beta"], [], [], tmp_path)) == 3


@pytest.mark.parametrize(
    ("hospitals", "analysts", "says"),
    [
        (["alpha", "alpha"], [], "used twice"),
        (["alpha", "dealer"], [], "dealer's name"),
        (["alpha", "beta"], ["alpha"], "used twice"),
        (["alpha", "ca"], [], "reserved"),
        (["alpha"], [], "two computing parties"),
        ([], ["ana"], "at least one hospital"),
    ],
)
def test_bad_member_lists_are_refused(
    tmp_path: Path, hospitals: list[str], analysts: list[str], says: str
) -> None:
    with pytest.raises(FederationError, match=says):
        init_federation("demo", hospitals, analysts, [], tmp_path / "fed")
    assert not (tmp_path / "fed").exists()


def test_bad_consent_and_ports_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FederationError, match="consent"):
        init_federation("demo", ["alpha", "beta"], [], [], tmp_path / "f", consent="maybe")
    with pytest.raises(FederationError, match="port"):
        init_federation("demo", ["alpha", "beta"], [], [], tmp_path / "f", base_port=65534)


@pytest.mark.parametrize(
    ("spec", "kind", "name", "table"),
    [
        ("a.csv", "csv", "a.csv", None),
        ("A.CSV", "csv", "A.CSV", None),
        ("records.db#patients", "sqlite", "records.db", "patients"),
        ("records.sqlite3#visits", "sqlite", "records.sqlite3", "visits"),
        ("sqlite:export.bin#patients", "sqlite", "export.bin", "patients"),
        ("csv:export.txt", "csv", "export.txt", None),
        ("model.npz", "model", "model.npz", None),
        ("sub/csv:odd.csv", "csv", "sub/csv:odd.csv", None),
    ],
)
def test_data_source_takes_the_kind_from_a_prefix_or_the_extension(
    spec: str, kind: str, name: str, table: str | None, tmp_path: Path
) -> None:
    assert data_source(spec, tmp_path) == DataConfig(kind, tmp_path / name, table)


def test_data_source_paths_are_relative_to_the_current_folder_unless_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert data_source("in/a.csv").path == tmp_path / "in" / "a.csv"
    assert data_source(f"{tmp_path / 'b.csv'}", tmp_path / "elsewhere").path == tmp_path / "b.csv"
    assert data_source("weights", default_kind="model") == DataConfig("model", tmp_path / "weights")


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("notes.txt", "cannot tell the kind"),
        ("records.db", "needs its table"),
        ("a.csv#t", "has no table"),
        ("none:a.csv", "takes no file"),
        ("csv:", "names no file"),
    ],
)
def test_data_source_refuses_what_it_cannot_read(spec: str, says: str) -> None:
    with pytest.raises(FederationError, match=says):
        data_source(spec)


def test_policy_options_apply_to_every_member_and_unknown_ones_are_refused(
    tmp_path: Path,
) -> None:
    members = init_federation(
        "demo",
        ["alpha", "beta"],
        ["ana"],
        [],
        tmp_path / "fed",
        policy={"query_budget": 20, "allow_min_max": True},
    )
    for member in members:
        on_disk = load_config(member.config_path).policy
        assert (on_disk.query_budget, on_disk.allow_min_max, on_disk.min_cell_size) == (20, True, 5)
    with pytest.raises(FederationError, match="unknown policy option analysts"):
        init_federation("demo", ["a", "b"], [], [], tmp_path / "f2", policy={"analysts": ()})
    assert not (tmp_path / "f2").exists()


# -- add-member -------------------------------------------------------------------


def test_add_member_issues_a_certificate_and_updates_every_peer(
    members: list[MemberConfig], fed_dir: Path
) -> None:
    newcomer = add_member(fed_dir, "ben", "analyst")
    assert load_config(fed_dir / "ben.toml") == newcomer
    cert = _cert(newcomer.tls.cert)
    cert.verify_directly_issued_by(_ca(fed_dir))
    assert _san(cert) == (["smpc://demo/analyst/ben"], ["ben.demo.smpc"])
    assert _mode(newcomer.tls.key) == 0o600
    assert newcomer.chain_key is None
    assert {p.name for p in newcomer.peers} == {m.name for m in members}
    assert newcomer.address not in {m.address for m in members}
    assert newcomer.policy.analysts == ("ana", "ben")
    for member in members:
        updated = load_config(member.config_path)
        assert updated.peer("ben") == newcomer.as_peer()
        assert updated.policy == member.policy  # accepting ben is each member's decision
        assert updated.peers[:-1] == member.peers


def test_add_hospital_gets_a_chain_key_but_leaves_the_genesis(
    members: list[MemberConfig], fed_dir: Path
) -> None:
    genesis = (fed_dir / "genesis.json").read_bytes()
    newcomer = add_member(fed_dir, "delta", "hospital")
    assert newcomer.chain_key is not None
    assert isinstance(_key(newcomer.chain_key), ed25519.Ed25519PrivateKey)
    assert _mode(newcomer.chain_key) == 0o600
    assert (fed_dir / "genesis.json").read_bytes() == genesis
    assert "delta" in [p.name for p in load_config(fed_dir / "alpha.toml").computing_peers]


def test_add_member_refuses_duplicates_a_second_dealer_and_missing_ca_key(
    members: list[MemberConfig], fed_dir: Path
) -> None:
    with pytest.raises(FederationError, match="already has a member named 'beta'"):
        add_member(fed_dir, "beta", "analyst")
    with pytest.raises(FederationError, match="already has a dealer"):
        add_member(fed_dir, "dealer2", "dealer")
    (fed_dir / "ca" / "ca-key.pem").rename(fed_dir.parent / "offline.pem")
    with pytest.raises(FederationError, match="offline"):
        add_member(fed_dir, "ben", "analyst")
    assert not (fed_dir / "ben.toml").exists()


def test_add_member_needs_a_federation(tmp_path: Path) -> None:
    with pytest.raises(FederationError, match="no federation"):
        add_member(tmp_path, "ben", "analyst")


# -- renew ----------------------------------------------------------------------------


def test_renew_reissues_for_the_same_key(members: list[MemberConfig], fed_dir: Path) -> None:
    alpha = members[0]
    assert alpha.chain_key is not None
    old = _cert(alpha.tls.cert)
    key_bytes = alpha.tls.key.read_bytes()
    chain_bytes = alpha.chain_key.read_bytes()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=200)
    path = renew(fed_dir, "alpha", now=later)
    new = _cert(path)
    assert path == alpha.tls.cert
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc > old.not_valid_after_utc
    assert new.not_valid_after_utc - later <= dt.timedelta(days=365)
    assert _public_der(new.public_key()) == _public_der(old.public_key())
    assert _san(new) == _san(old)
    new.verify_directly_issued_by(_ca(fed_dir))
    assert alpha.tls.key.read_bytes() == key_bytes
    assert alpha.chain_key.read_bytes() == chain_bytes
    assert _mode(alpha.tls.key) == 0o600


def test_renew_an_unknown_member(members: list[MemberConfig], fed_dir: Path) -> None:
    with pytest.raises(FederationError, match=r"no member named 'zeta'.*alpha"):
        renew(fed_dir, "zeta")


# -- expiry warning ---------------------------------------------------------------------


def test_expiry_warning(members: list[MemberConfig]) -> None:
    path = members[0].tls.cert
    expiry = _cert(path).not_valid_after_utc
    assert certificate_expiry_warning(path) is None
    assert certificate_expiry_warning(path, now=expiry - dt.timedelta(days=31)) is None
    soon = certificate_expiry_warning(path, now=expiry - dt.timedelta(days=10, hours=1))
    assert soon is not None and "expires in 10 days" in soon and "renew" in soon
    assert "less than a day" in str(
        certificate_expiry_warning(path, now=expiry - dt.timedelta(hours=1))
    )
    gone = certificate_expiry_warning(path, now=expiry + dt.timedelta(seconds=1))
    assert gone is not None and "expired" in gone


# -- the certificates work for gRPC mutual TLS ---------------------------------------------


def _who(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b"\n".join(context.auth_context().get("x509_subject_alternative_name", []))


def _serve(member: MemberConfig) -> tuple[grpc.Server, int]:
    handler = grpc.method_handlers_generic_handler(
        "t.T", {"Who": grpc.unary_unary_rpc_method_handler(_who)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    credentials = grpc.ssl_server_credentials(
        [(member.tls.key.read_bytes(), member.tls.cert.read_bytes())],
        root_certificates=member.tls.ca_cert.read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


def _call(client: MemberConfig, port: int, server_dns: str) -> bytes:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=client.tls.ca_cert.read_bytes(),
        private_key=client.tls.key.read_bytes(),
        certificate_chain=client.tls.cert.read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", server_dns)]
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options) as channel:
        return channel.unary_unary("/t.T/Who")(b"", timeout=5)


def test_certificates_authenticate_both_sides_of_grpc(
    members: list[MemberConfig], tmp_path: Path
) -> None:
    alpha, beta = members[0], members[1]
    server, port = _serve(alpha)
    try:
        sans = _call(beta, port, alpha.dns_name).split(b"\n")
        assert b"smpc://demo/hospital/beta" in sans
        with pytest.raises(grpc.RpcError):  # alpha's certificate does not name gamma
            _call(beta, port, "gamma.demo.smpc")
        foreign = init_federation("other", ["alpha", "beta"], [], [], tmp_path / "other")
        with pytest.raises(grpc.RpcError):  # a client from another CA is refused
            _call(foreign[1], port, alpha.dns_name)
    finally:
        server.stop(None)
