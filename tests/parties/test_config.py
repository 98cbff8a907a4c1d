"""Member configuration: identities, the frozen dataclasses, TOML reading and writing."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from parties.config import (
    ConfigError,
    DataConfig,
    InvalidIdentityError,
    MemberConfig,
    PeerConfig,
    PolicyConfig,
    TlsConfig,
    dns_name,
    identity_uri,
    load_config,
    parse_identity,
    write_config,
)
from smpc.errors import SMPCError, UnknownPartyError

NAMES = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)
ROLE = st.sampled_from(["hospital", "dealer", "analyst", "model-owner"])


def _peer(name: str, role: str, port: int, federation: str = "demo") -> PeerConfig:
    return PeerConfig(name, role, f"127.0.0.1:{port}", identity_uri(federation, role, name))


def _member(folder: Path, name: str = "alpha", role: str = "hospital") -> MemberConfig:
    """A config in ``folder`` with absolute paths, as load_config would return it."""
    folder = folder.resolve()
    everyone = [
        _peer("alpha", "hospital", 50051),
        _peer("beta", "hospital", 50052),
        _peer("dealer", "dealer", 50053),
        _peer("ana", "analyst", 50054),
        _peer("mo", "model-owner", 50055),
    ]
    me = next(p for p in everyone if p.name == name)
    return MemberConfig(
        federation="demo",
        name=name,
        role=role,
        address=me.address,
        tls=TlsConfig(
            folder / name / "ca.pem", folder / name / "cert.pem", folder / name / "k.pem"
        ),
        peers=tuple(p for p in everyone if p.name != name),
        policy=PolicyConfig(
            analysts=("ana",),
            protocols={"mean": "1.0", "logreg": "0.3"},
            recipients=("ana", "alpha"),
            min_cell_size=10,
            allow_min_max=True,
            allow_probabilities=True,
            query_budget=40,
            query_window_s=3600,
            max_job_seconds=120,
            max_running_jobs=2,
            join_timeout_seconds=2.5,
        ),
        data=DataConfig("sqlite", folder / "data" / "records.db", "patients"),
        chain_key=folder / name / "chain.pem" if role == "hospital" else None,
        genesis=folder / "genesis.json",
        config_path=folder / f"{name}.toml",
    )


def _raw(tmp_path: Path) -> dict[str, Any]:
    """A valid config as a TOML document (a dict), for mutation."""
    path = write_config(_member(tmp_path), tmp_path / "alpha.toml")
    with path.open("rb") as fh:
        return tomllib.load(fh)


def _load(tmp_path: Path, doc: dict[str, Any]) -> MemberConfig:
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(doc))
    return load_config(path)


# -- identities ------------------------------------------------------------------


@given(federation=NAMES, role=ROLE, name=NAMES)
def test_identity_uri_round_trips(federation: str, role: str, name: str) -> None:
    uri = identity_uri(federation, role, name)
    assert uri == f"smpc://{federation}/{role}/{name}"
    assert parse_identity(uri) == (federation, role, name)


def test_dns_name_is_name_dot_federation_dot_smpc() -> None:
    assert dns_name("demo", "alpha") == "alpha.demo.smpc"


@pytest.mark.parametrize(
    "name", ["", "Alpha", "al_pha", "al pha", "-alpha", "alpha-", "a" * 64, "é", "a.b", "a/b"]
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidIdentityError, match="lowercase letters"):
        identity_uri("demo", "hospital", name)
    with pytest.raises(InvalidIdentityError):
        identity_uri(name, "hospital", "alpha")


def test_longest_name_is_accepted() -> None:
    assert parse_identity(identity_uri("demo", "analyst", "a" * 63))[2] == "a" * 63


def test_bad_role_is_refused() -> None:
    with pytest.raises(InvalidIdentityError, match="hospital, dealer, analyst, model-owner"):
        identity_uri("demo", "nurse", "alpha")


@pytest.mark.parametrize(
    "uri",
    [
        "https://demo/hospital/alpha",
        "smpc:/demo/hospital/alpha",
        "smpc://demo/hospital",
        "smpc://demo/hospital/alpha/extra",
        "smpc://demo/hospital/alpha?x=1",
        "smpc://demo:443/hospital/alpha",
        "smpc://demo/hospital/alpha#f",
        "smpc://DEMO/hospital/alpha",
        "smpc://demo/Hospital/alpha",
        "smpc://demo//alpha",
        "smpc://demo/hospital/alpha/",
    ],
)
def test_parse_identity_is_strict(uri: str) -> None:
    with pytest.raises(InvalidIdentityError):
        parse_identity(uri)


def test_errors_belong_to_the_project_hierarchy() -> None:
    assert issubclass(ConfigError, SMPCError)
    assert issubclass(InvalidIdentityError, ConfigError)


# -- the dataclasses -------------------------------------------------------------


def test_configs_are_frozen(tmp_path: Path) -> None:
    member = _member(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        member.name = "beta"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        member.tls.key = tmp_path  # type: ignore[misc]


def test_member_helpers(tmp_path: Path) -> None:
    member = _member(tmp_path)
    assert member.identity == "smpc://demo/hospital/alpha"
    assert member.dns_name == "alpha.demo.smpc"
    assert member.home == tmp_path.resolve() / "alpha"
    assert member.peer("dealer").address == "127.0.0.1:50053"
    assert [p.name for p in member.computing_peers] == ["beta", "mo"]
    assert member.as_peer() == _peer("alpha", "hospital", 50051)


def test_unknown_peer_names_the_known_ones(tmp_path: Path) -> None:
    member = _member(tmp_path)
    with pytest.raises(UnknownPartyError, match=r"'zeta' is not a peer.*ana, beta, dealer, mo"):
        member.peer("zeta")
    with pytest.raises(UnknownPartyError, match="itself"):
        member.peer("alpha")


def test_policy_copies_its_protocol_table() -> None:
    table = {"mean": "1.0"}
    policy = PolicyConfig(("ana",), table, ("ana",))
    table["mean"] = "9.9"
    assert policy.protocols == {"mean": "1.0"}
    assert (policy.min_cell_size, policy.allow_min_max) == (5, False)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"kind": "xml"}, "kind"),
        ({"kind": "csv"}, "path"),
        ({"kind": "sqlite", "path": Path("x.db")}, "table"),
        ({"kind": "none", "path": Path("x.csv")}, "kind"),
    ],
)
def test_bad_data_config(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        DataConfig(**kwargs)
    assert info.value.key == key


def test_peer_identity_must_match_its_name_and_role() -> None:
    with pytest.raises(ConfigError, match="does not match") as info:
        PeerConfig("beta", "hospital", "127.0.0.1:1", "smpc://demo/analyst/beta")
    assert info.value.key == "identity"


def test_member_refuses_itself_or_duplicates_or_foreign_peers(tmp_path: Path) -> None:
    member = _member(tmp_path)
    with pytest.raises(ConfigError, match="itself"):
        dataclasses.replace(member, peers=(member.as_peer(),))
    with pytest.raises(ConfigError, match="twice"):
        dataclasses.replace(member, peers=(member.peers[0], member.peers[0]))
    foreign = _peer("beta", "hospital", 1, federation="other")
    with pytest.raises(ConfigError, match="federation 'other'"):
        dataclasses.replace(member, peers=(foreign,))
    with pytest.raises(ConfigError, match="chain key"):
        dataclasses.replace(member, chain_key=None)


# -- reading and writing -----------------------------------------------------------


@pytest.mark.parametrize(("name", "role"), [("alpha", "hospital"), ("dealer", "dealer")])
def test_write_then_load_round_trips(tmp_path: Path, name: str, role: str) -> None:
    member = _member(tmp_path, name, role)
    path = write_config(member, member.config_path)
    assert load_config(path) == member


def test_paths_are_written_relative_and_resolved_against_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = tmp_path / "fed"
    fed.mkdir()
    write_config(_member(fed), fed / "alpha.toml")
    text = (fed / "alpha.toml").read_text()
    assert 'cert = "alpha/cert.pem"' in text
    assert str(tmp_path) not in text
    moved = tmp_path / "moved"
    fed.rename(moved)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(Path("..") / "moved" / "alpha.toml")
    assert loaded.tls.cert == moved.resolve() / "alpha" / "cert.pem"
    assert loaded.data.path == moved.resolve() / "data" / "records.db"
    assert loaded.genesis == moved.resolve() / "genesis.json"
    assert loaded.config_path == moved.resolve() / "alpha.toml"


def test_paths_outside_the_folder_stay_absolute(tmp_path: Path) -> None:
    outside = tmp_path / "records.csv"
    member = dataclasses.replace(_member(tmp_path / "fed"), data=DataConfig("csv", outside))
    (tmp_path / "fed").mkdir()
    write_config(member, tmp_path / "fed" / "alpha.toml")
    assert load_config(tmp_path / "fed" / "alpha.toml").data.path == outside


def test_optional_keys_take_their_defaults(tmp_path: Path) -> None:
    doc = _raw(tmp_path)
    del doc["data"]
    for key in (
        "protocols",
        "min_cell_size",
        "allow_min_max",
        "allow_probabilities",
        "query_budget",
        "query_window_s",
        "max_job_seconds",
        "max_running_jobs",
        "join_timeout_seconds",
    ):
        doc["policy"].pop(key, None)
    member = _load(tmp_path, doc)
    assert member.data == DataConfig()
    assert member.policy.protocols == {}
    assert (member.policy.min_cell_size, member.policy.allow_min_max) == (5, False)
    assert member.policy.allow_probabilities is False
    assert (member.policy.query_budget, member.policy.query_window_s) == (1000, 86_400)
    limits = member.policy
    assert (limits.max_job_seconds, limits.max_running_jobs, limits.join_timeout_seconds) == (
        600,
        4,
        10.0,
    )


def _drop(*keys: str) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        table = doc
        for key in keys[:-1]:
            table = table[key]
        del table[keys[-1]]

    return edit


def _set(value: Any, *keys: str | int) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        table: Any = doc
        for key in keys[:-1]:
            table = table[key]
        table[keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "key", "says"),
    [
        (_drop("tls", "cert"), "tls.cert", "missing key"),
        (_drop("federation"), "federation", "missing key"),
        (_drop("policy", "analysts"), "policy.analysts", "missing key"),
        (_drop("peers", 0, "identity"), "peers[0].identity", "missing key"),
        (_drop("chain_key"), "chain_key", "missing key"),
        (_set("x", "colour"), "colour", "unknown key"),
        (_set("x", "policy", "colour"), "policy.colour", "unknown key"),
        (_set("x", "peers", 1, "colour"), "peers[1].colour", "unknown key"),
        (_set("nurse", "role"), "role", "not one of"),
        (_set("nurse", "peers", 2, "role"), "peers[2].role", "not one of"),
        (_set("Alpha", "name"), "name", "not valid"),
        (_set("localhost", "address"), "address", "host:port"),
        (_set("localhost:99999", "peers", 0, "address"), "peers[0].address", "host:port"),
        (_set("smpc://other/hospital/beta", "peers", 0, "identity"), "peers[0].identity", "other"),
        (_set("smpc://demo/analyst/beta", "peers", 0, "identity"), "peers[0].identity", "match"),
        (_set(0, "policy", "min_cell_size"), "policy.min_cell_size", ">= 1"),
        (_set("5", "policy", "min_cell_size"), "policy.min_cell_size", ">= 1"),
        (_set("yes", "policy", "allow_min_max"), "policy.allow_min_max", "true or false"),
        (_set(1, "policy", "allow_probabilities"), "policy.allow_probabilities", "true or false"),
        (_set(-1, "policy", "query_budget"), "policy.query_budget", ">= 0"),
        (_set(0, "policy", "query_window_s"), "policy.query_window_s", ">= 1"),
        (_set(0, "policy", "max_job_seconds"), "policy.max_job_seconds", ">= 1"),
        (_set(1.5, "policy", "max_running_jobs"), "policy.max_running_jobs", ">= 1"),
        (_set(0, "policy", "join_timeout_seconds"), "policy.join_timeout_seconds", "(0, 3600)"),
        (_set("5", "policy", "join_timeout_seconds"), "policy.join_timeout_seconds", "(0, 3600)"),
        (_set("ana", "policy", "analysts"), "policy.analysts", "list of strings"),
        (_set(["Ana"], "policy", "recipients"), "policy.recipients[0]", "not valid"),
        (_set(1, "policy", "protocols", "mean"), "policy.protocols.mean", "version"),
        (_set("xml", "data", "kind"), "data.kind", "not one of"),
        (_drop("data", "table"), "data.table", "table name"),
        (_set(5, "genesis"), "genesis", "string"),
        (_set("x", "tls"), "tls", "table"),
        (_set({"name": "x"}, "peers"), "peers", "array"),
    ],
)
def test_bad_config_names_the_file_and_key(tmp_path: Path, edit: Any, key: str, says: str) -> None:
    doc = _raw(tmp_path)
    edit(doc)
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, doc)
    assert info.value.key == key
    message = str(info.value)
    assert str((tmp_path / "bad.toml").resolve()) in message
    assert f"key '{key}'" in message
    assert says in message


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")
    (tmp_path / "broken.toml").write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "broken.toml")


def test_write_config_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_config(_member(tmp_path), tmp_path / "alpha.toml")
    write_config(_member(tmp_path), tmp_path / "alpha.toml")
    assert [p.name for p in tmp_path.iterdir()] == ["alpha.toml"]


def test_a_fixed_data_port_round_trips_and_any_port_is_not_written(tmp_path: Path) -> None:
    member = dataclasses.replace(_member(tmp_path), data_port=47_001)
    path = write_config(member, member.config_path)
    assert "data_port = 47001" in path.read_text()
    assert load_config(path).data_port == 47_001
    plain = write_config(_member(tmp_path), tmp_path / "plain.toml")
    assert "data_port" not in plain.read_text()
    assert load_config(plain).data_port == 0


@pytest.mark.parametrize("port", [-1, 65_536, True, "47001", 50051])
def test_a_bad_data_port_is_refused_naming_the_key(tmp_path: Path, port: object) -> None:
    doc = _raw(tmp_path)
    doc["data_port"] = port  # 50051 is alpha's gRPC port
    with pytest.raises(ConfigError, match="data_port"):
        _load(tmp_path, doc)
