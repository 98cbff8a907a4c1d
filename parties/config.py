"""A federation member's configuration: who it is, whom it talks to, what it accepts.

The CLI reads one TOML file with :func:`load_config` and passes the frozen
:class:`MemberConfig` down; nothing else reads configuration, and nothing here
opens a connection or reads a key. Relative paths in a file are resolved
against the file's own folder, so a federation folder can be moved as a whole.

Identities follow ``smpc://<federation>/<role>/<name>`` (the URI SAN of every
member certificate); each certificate also carries the DNS SAN
``<name>.<federation>.smpc`` (:func:`dns_name`) for clients that can only
check a server by host name.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from smpc.errors import SMPCError, UnknownPartyError

ROLES: tuple[str, ...] = ("hospital", "dealer", "analyst", "model-owner")
"""Every role a member can hold."""

COMPUTING_ROLES: frozenset[str] = frozenset({"hospital", "model-owner"})
"""Roles whose members hold secret shares in a job (the dealer only supplies randomness)."""

DATA_KINDS: tuple[str, ...] = ("csv", "sqlite", "postgresql", "model", "none")

DEFAULT_QUERY_BUDGET = 1000
DEFAULT_QUERY_WINDOW_S = 86_400
"""By default one analyst may have 1,000 jobs a day admitted by one member."""

IDENTITY_SCHEME = "smpc://"
DNS_SUFFIX = "smpc"
RESULTS_DIR = "results"
"""The folder in a member's home where it keeps the outputs it received."""

_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PROTOCOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")


class ConfigError(SMPCError, ValueError):
    """A configuration is missing a key, has an unknown key, or holds a bad value.

    ``path`` is the file (when one was read) and ``key`` the dotted key, e.g.
    ``peers[1].role``; both appear in the message.
    """

    def __init__(self, message: str, *, key: str | None = None, path: Path | None = None) -> None:
        self.message = message
        self.key = key
        self.path = path
        where = [str(path)] if path is not None else []
        if key:
            where.append(f"key '{key}'")
        super().__init__(": ".join([*where, message]))

    def located(self, *, prefix: str | None = None, path: Path | None = None) -> ConfigError:
        """The same error with the key nested under ``prefix`` and the file set."""
        key = ".".join(part for part in (prefix, self.key) if part) or None
        return type(self)(self.message, key=key, path=path if path is not None else self.path)


class InvalidIdentityError(ConfigError):
    """A name, role or identity URI does not follow ``smpc://<federation>/<role>/<name>``."""


# -- names and identities -----------------------------------------------------


def check_name(value: object, what: str = "name") -> str:
    """Return ``value`` if it is a valid member or federation name, else raise.

    Names are 1..63 lowercase letters, digits and '-', not starting or ending
    with '-', so each is also a valid DNS label (see :func:`dns_name`).
    """
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise InvalidIdentityError(
            f"{what} {value!r} is not valid; use 1 to 63 lowercase letters, digits and '-'"
            " (not at either end)"
        )
    return value


def check_role(value: object) -> str:
    """Return ``value`` if it is one of :data:`ROLES`, else raise."""
    if value not in ROLES:
        raise InvalidIdentityError(f"role {value!r} is not one of {', '.join(ROLES)}")
    return str(value)


def identity_uri(federation: str, role: str, name: str) -> str:
    """The identity ``smpc://<federation>/<role>/<name>`` carried as a certificate's URI SAN."""
    check_name(federation, "federation name")
    check_role(role)
    check_name(name)
    return f"{IDENTITY_SCHEME}{federation}/{role}/{name}"


def parse_identity(uri: str) -> tuple[str, str, str]:
    """Split an identity URI into ``(federation, role, name)``, rejecting anything else.

    Strict on purpose: the transport feeds it the URI SAN of an authenticated
    peer, so ports, queries, fragments, extra path parts and upper case are
    refused rather than normalised.
    """
    if not isinstance(uri, str) or not uri.startswith(IDENTITY_SCHEME):
        raise InvalidIdentityError(f"identity {uri!r} does not start with {IDENTITY_SCHEME!r}")
    parts = uri[len(IDENTITY_SCHEME) :].split("/")
    if len(parts) != 3:
        raise InvalidIdentityError(
            f"identity {uri!r} is not of the form smpc://<federation>/<role>/<name>"
        )
    federation, role, name = parts
    return check_name(federation, "federation name"), check_role(role), check_name(name)


def dns_name(federation: str, name: str) -> str:
    """The DNS SAN ``<name>.<federation>.smpc`` of a member's certificate.

    gRPC's Python client checks a server only by host name (the
    ``grpc.ssl_target_name_override`` channel option); servers check clients
    by the URI SAN.
    """
    return f"{check_name(name)}.{check_name(federation, 'federation name')}.{DNS_SUFFIX}"


def check_address(value: object) -> str:
    """Return ``value`` if it is ``host:port`` (IPv6 hosts in brackets), else raise."""
    if not isinstance(value, str):
        raise ConfigError(f"address {value!r} is not a 'host:port' string")
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    valid_host = bool(host) and not any(c.isspace() for c in host) and "/" not in host
    if not sep or not valid_host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"address {value!r} is not 'host:port' with a port from 0 to 65535")
    return value


# -- the dataclasses ----------------------------------------------------------


@dataclass(frozen=True)
class PeerConfig:
    """Another member as this member knows it: name, role, where to reach it, who it is."""

    name: str
    role: str
    address: str
    identity: str

    def __post_init__(self) -> None:
        _nested("name", check_name, self.name)
        _nested("role", check_role, self.role)
        _nested("address", check_address, self.address)
        _, role, name = _nested("identity", parse_identity, self.identity)
        if (role, name) != (self.role, self.name):
            raise ConfigError(
                f"identity {self.identity!r} does not match role {self.role!r} and"
                f" name {self.name!r}",
                key="identity",
            )

    @property
    def federation(self) -> str:
        """The federation named in the identity."""
        return parse_identity(self.identity)[0]


@dataclass(frozen=True)
class TlsConfig:
    """PEM files for mutual TLS: the federation CA, this member's certificate and key."""

    ca_cert: Path
    cert: Path
    key: Path

    def __post_init__(self) -> None:
        for name in ("ca_cert", "cert", "key"):
            object.__setattr__(self, name, _as_path(getattr(self, name), name))


@dataclass(frozen=True)
class PolicyConfig:
    """What this member accepts: analysts, protocols at pinned versions, output recipients.

    ``min_cell_size`` is the smallest cohort or cell this member lets a result
    describe (the job uses the maximum over all parties); ``allow_min_max``
    permits jobs that reveal a minimum or maximum, which are single records;
    ``allow_probabilities`` permits inference jobs that reveal probabilities,
    which give away the model and, through a one-feature logit, the feature.
    ``query_budget`` is how many jobs one analyst may have admitted here per
    ``query_window_s`` seconds (0: no limit): a bound on differencing attacks,
    which no per-job check can see.

    Limits that keep one analyst from starving the service: ``max_job_seconds``
    is the longest lifetime (deadline minus creation) a job may declare,
    ``max_running_jobs`` how many submitted jobs run here at once (more are
    refused until one ends), and ``join_timeout_seconds`` how long a job waits
    for each other party's first message before it fails.
    """

    analysts: tuple[str, ...]
    protocols: dict[str, str]
    recipients: tuple[str, ...]
    min_cell_size: int = 5
    allow_min_max: bool = False
    allow_probabilities: bool = False
    query_budget: int = DEFAULT_QUERY_BUDGET
    query_window_s: int = DEFAULT_QUERY_WINDOW_S
    max_job_seconds: int = 600
    max_running_jobs: int = 4
    join_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "analysts", _names(self.analysts, "analysts"))
        object.__setattr__(self, "recipients", _names(self.recipients, "recipients"))
        if not isinstance(self.protocols, Mapping):
            raise ConfigError("expected a table of protocol name = pinned version", key="protocols")
        protocols = dict(self.protocols)
        for proto, version in protocols.items():
            if not isinstance(proto, str) or _PROTOCOL.fullmatch(proto) is None:
                raise ConfigError(f"protocol name {proto!r} is not valid", key="protocols")
            if not isinstance(version, str) or not version.strip():
                raise ConfigError("expected a non-empty version string", key=f"protocols.{proto}")
        object.__setattr__(self, "protocols", protocols)
        size = self.min_cell_size
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ConfigError(f"expected an integer >= 1, got {size!r}", key="min_cell_size")
        for key in ("allow_min_max", "allow_probabilities"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError("expected true or false", key=key)
        for key, least in (("query_budget", 0), ("query_window_s", 1)):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"expected an integer >= {least}, got {value!r}", key=key)
        for key in ("max_job_seconds", "max_running_jobs"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"expected an integer >= 1, got {value!r}", key=key)
        join = self.join_timeout_seconds
        if not isinstance(join, int | float) or isinstance(join, bool) or not 0 < join < 3600:
            raise ConfigError(
                f"expected seconds in (0, 3600), got {join!r}", key="join_timeout_seconds"
            )
        object.__setattr__(self, "join_timeout_seconds", float(join))


@dataclass(frozen=True)
class DataConfig:
    """Where this member's inputs live: a CSV file, a SQLite table, a model file, or nothing.

    ``patient_id`` names the column holding each row's patient identifier; with
    it set, a hospital uses only the rows of patients who consent to the job's
    scope (see ``parties.data.consent``). Without it consent cannot be applied, and
    a hospital that keeps consent records refuses jobs until it is set.
    """

    kind: str = "none"
    path: Path | None = None
    table: str | None = None
    patient_id: str | None = None
    dsn: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    omop_mapping: Path | None = None
    """For kind 'postgresql': a TOML file mapping job columns to OMOP CDM tables and
    concepts (``parties.data.omop``), instead of one ``table``."""

    def __post_init__(self) -> None:
        if self.kind not in DATA_KINDS:
            raise ConfigError(
                f"data kind {self.kind!r} is not one of {', '.join(DATA_KINDS)}", key="kind"
            )
        if self.path is not None:
            object.__setattr__(self, "path", _as_path(self.path, "path"))
        if self.password_file is not None:
            object.__setattr__(self, "password_file", _as_path(self.password_file, "password_file"))
        if self.omop_mapping is not None:
            object.__setattr__(self, "omop_mapping", _as_path(self.omop_mapping, "omop_mapping"))
        database = (self.dsn, self.password_file, self.password_env, self.omop_mapping)
        if self.kind != "postgresql" and any(v is not None for v in database):
            raise ConfigError(
                "dsn, password_file, password_env and omop_mapping are for kind 'postgresql'",
                key="dsn",
            )
        if self.kind == "postgresql":
            _check_postgresql(self)
        elif self.kind == "none" and (self.path is not None or self.table is not None):
            raise ConfigError("kind 'none' takes no path or table", key="kind")
        elif self.kind != "none" and self.path is None:
            raise ConfigError(f"kind {self.kind!r} needs a path", key="path")
        if self.kind == "sqlite" and not (isinstance(self.table, str) and self.table):
            raise ConfigError("kind 'sqlite' needs a table name", key="table")
        if self.kind in ("csv", "model") and self.table is not None:
            raise ConfigError(f"kind {self.kind!r} takes no table", key="table")
        if self.patient_id is not None:
            if self.kind not in ("csv", "sqlite", "postgresql"):
                raise ConfigError(f"kind {self.kind!r} has no patient rows", key="patient_id")
            if not isinstance(self.patient_id, str) or not self.patient_id:
                raise ConfigError("expected a column name", key="patient_id")


# A password written into a DSN: key=value form, or user:password@ in a URI.
_DSN_PASSWORD = re.compile(r"(?i)(^|\s)password\s*=|^postgres(ql)?://[^/@]*:[^/@]*@|[?&]password=")


def _check_postgresql(data: DataConfig) -> None:
    """A PostgreSQL source: a DSN without a password, a table, and where the password is."""
    if data.path is not None:
        raise ConfigError("kind 'postgresql' takes a dsn, not a path", key="path")
    if not (isinstance(data.dsn, str) and data.dsn.strip()):
        raise ConfigError("kind 'postgresql' needs a dsn", key="dsn")
    if _DSN_PASSWORD.search(data.dsn):
        # The DSN is not repeated: it holds a password.
        raise ConfigError(
            "the dsn must not hold a password; name a password_file or a password_env", key="dsn"
        )
    if data.omop_mapping is not None:
        if data.table is not None:
            raise ConfigError("give a table or an omop_mapping, not both", key="table")
    elif not (isinstance(data.table, str) and data.table):
        raise ConfigError("kind 'postgresql' needs a table name or an omop_mapping", key="table")
    if data.password_file is not None and data.password_env is not None:
        raise ConfigError("give password_file or password_env, not both", key="password_env")
    if data.password_env is not None and not (
        isinstance(data.password_env, str) and data.password_env
    ):
        raise ConfigError("expected the name of an environment variable", key="password_env")


@dataclass(frozen=True)
class MemberConfig:
    """Everything one member process needs, built once by the CLI and passed down.

    ``peers`` lists every other member of the federation (never this one);
    ``chain_key`` is the Ed25519 key a hospital seals blocks with (None for
    other roles); ``config_path`` is the file this was read from or written to.
    ``data_port`` is the TCP port of a computing member's data plane (on the
    host of ``address``): fixed, so a firewall can open it; 0 takes any free
    port. Peers learn it from the member's health reply either way.
    """

    federation: str
    name: str
    role: str
    address: str
    tls: TlsConfig
    peers: tuple[PeerConfig, ...]
    policy: PolicyConfig
    data: DataConfig
    chain_key: Path | None
    genesis: Path
    config_path: Path
    data_port: int = 0

    def __post_init__(self) -> None:
        _nested("federation", check_name, self.federation, "federation name")
        _nested("name", check_name, self.name)
        _nested("role", check_role, self.role)
        _nested("address", check_address, self.address)
        peers = tuple(self.peers)
        seen: set[str] = set()
        for i, peer in enumerate(peers):
            if not isinstance(peer, PeerConfig):
                raise ConfigError("expected a PeerConfig", key=f"peers[{i}]")
            if peer.name == self.name:
                raise ConfigError(f"{peer.name!r} is this member itself", key=f"peers[{i}].name")
            if peer.name in seen:
                raise ConfigError(f"peer {peer.name!r} is listed twice", key=f"peers[{i}].name")
            if peer.federation != self.federation:
                raise ConfigError(
                    f"identity is in federation {peer.federation!r}, not {self.federation!r}",
                    key=f"peers[{i}].identity",
                )
            seen.add(peer.name)
        object.__setattr__(self, "peers", peers)
        if self.chain_key is None:
            if self.role == "hospital":
                raise ConfigError("a hospital needs its Ed25519 chain key file", key="chain_key")
        else:
            object.__setattr__(self, "chain_key", _as_path(self.chain_key, "chain_key"))
        object.__setattr__(self, "genesis", _as_path(self.genesis, "genesis"))
        object.__setattr__(self, "config_path", _as_path(self.config_path, "config_path"))
        port = self.data_port
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ConfigError(f"expected a port from 0 to 65535, got {port!r}", key="data_port")
        if port and port == int(self.address.rpartition(":")[2]):
            raise ConfigError(
                f"port {port} is already this member's gRPC port (address); choose another",
                key="data_port",
            )

    @property
    def identity(self) -> str:
        """This member's own identity URI (its certificate's URI SAN)."""
        return identity_uri(self.federation, self.role, self.name)

    @property
    def home(self) -> Path:
        """This member's private folder: beside its config, named after the member."""
        return self.config_path.parent / self.name

    @property
    def dns_name(self) -> str:
        """This member's DNS SAN, ``<name>.<federation>.smpc``."""
        return dns_name(self.federation, self.name)

    def peer(self, name: str) -> PeerConfig:
        """The peer called ``name``; raises UnknownPartyError naming the known peers."""
        for peer in self.peers:
            if peer.name == name:
                return peer
        if name == self.name:
            raise UnknownPartyError(f"{name!r} is this member itself, not one of its peers")
        known = ", ".join(sorted(p.name for p in self.peers)) or "none"
        raise UnknownPartyError(
            f"{name!r} is not a peer of {self.name!r} in federation {self.federation!r};"
            f" known peers: {known}"
        )

    @property
    def computing_peers(self) -> tuple[PeerConfig, ...]:
        """Peers that hold shares in jobs (hospitals, model owners), sorted by name."""
        return tuple(sorted((p for p in self.peers if p.role in COMPUTING_ROLES), key=_by_name))

    def as_peer(self) -> PeerConfig:
        """This member as the others list it."""
        return PeerConfig(self.name, self.role, self.address, self.identity)


# -- reading and writing ------------------------------------------------------

_TOP_REQUIRED = ("federation", "name", "role", "address", "genesis", "tls", "policy", "peers")
_TOP_OPTIONAL = ("chain_key", "data", "data_port")
_TLS_KEYS = ("ca_cert", "cert", "key")
_POLICY_REQUIRED = ("analysts", "recipients")
_POLICY_LIMITS = ("max_job_seconds", "max_running_jobs", "join_timeout_seconds")
_POLICY_OPTIONAL = (
    "protocols",
    "min_cell_size",
    "allow_min_max",
    "allow_probabilities",
    "query_budget",
    "query_window_s",
    *_POLICY_LIMITS,
)
_PEER_KEYS = ("name", "role", "address", "identity")
_DATA_REQUIRED = ("kind",)
_DATA_OPTIONAL = (
    "path",
    "table",
    "patient_id",
    "dsn",
    "password_file",
    "password_env",
    "omop_mapping",
)


def load_config(path: str | os.PathLike[str]) -> MemberConfig:
    """Read and check a member's TOML config; errors name the file and the key."""
    file = Path(path).expanduser().resolve()
    try:
        with file.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("no such config file", path=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file ({exc.strerror})", path=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML ({exc})", path=file) from None
    try:
        return _member_from_toml(raw, file)
    except ConfigError as exc:
        raise exc.located(path=file) from None


def write_config(member: MemberConfig, path: str | os.PathLike[str]) -> Path:
    """Write ``member`` as TOML to ``path`` atomically; returns the path written.

    Paths inside the file's folder are stored relative to it, others absolute.
    ``member.config_path`` is not stored: it is wherever the file is read from.
    """
    file = Path(path).expanduser().resolve()
    base = file.parent
    doc: dict[str, Any] = {
        "federation": member.federation,
        "name": member.name,
        "role": member.role,
        "address": member.address,
        "genesis": _rel(member.genesis, base),
    }
    if member.data_port:
        doc["data_port"] = member.data_port
    if member.chain_key is not None:
        doc["chain_key"] = _rel(member.chain_key, base)
    doc["tls"] = {key: _rel(getattr(member.tls, key), base) for key in _TLS_KEYS}
    doc["policy"] = {
        "analysts": list(member.policy.analysts),
        "recipients": list(member.policy.recipients),
        "min_cell_size": member.policy.min_cell_size,
        "allow_min_max": member.policy.allow_min_max,
        "allow_probabilities": member.policy.allow_probabilities,
        "query_budget": member.policy.query_budget,
        "query_window_s": member.policy.query_window_s,
        "max_job_seconds": member.policy.max_job_seconds,
        "max_running_jobs": member.policy.max_running_jobs,
        "join_timeout_seconds": member.policy.join_timeout_seconds,
        "protocols": dict(sorted(member.policy.protocols.items())),
    }
    data: dict[str, Any] = {"kind": member.data.kind}
    if member.data.path is not None:
        data["path"] = _rel(member.data.path, base)
    if member.data.table is not None:
        data["table"] = member.data.table
    if member.data.patient_id is not None:
        data["patient_id"] = member.data.patient_id
    if member.data.dsn is not None:
        data["dsn"] = member.data.dsn
    if member.data.password_file is not None:
        data["password_file"] = _rel(member.data.password_file, base)
    if member.data.password_env is not None:
        data["password_env"] = member.data.password_env
    if member.data.omop_mapping is not None:
        data["omop_mapping"] = _rel(member.data.omop_mapping, base)
    doc["data"] = data
    doc["peers"] = [{key: getattr(p, key) for key in _PEER_KEYS} for p in member.peers]
    header = f"# smpc member config: {member.identity}\n"
    write_text_atomic(file, header + tomli_w.dumps(doc))
    return file


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # public; umask applies
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _member_from_toml(raw: dict[str, Any], file: Path) -> MemberConfig:
    base = file.parent
    _check_keys(raw, _TOP_REQUIRED, _TOP_OPTIONAL, "")
    federation = _str(raw, "federation", "")
    role = _str(raw, "role", "")
    chain_key = raw.get("chain_key")
    if chain_key is None and role == "hospital":
        raise ConfigError(
            "missing key; a hospital needs its Ed25519 chain key file", key="chain_key"
        )

    tls_raw = _table(raw, "tls", "")
    _check_keys(tls_raw, _TLS_KEYS, (), "tls")
    tls = TlsConfig(*(_path(tls_raw, key, "tls", base) for key in _TLS_KEYS))

    policy_raw = _table(raw, "policy", "")
    _check_keys(policy_raw, _POLICY_REQUIRED, _POLICY_OPTIONAL, "policy")
    policy = _build(
        "policy",
        PolicyConfig,
        analysts=tuple(_str_list(policy_raw, "analysts", "policy")),
        protocols=_table(policy_raw, "protocols", "policy") if "protocols" in policy_raw else {},
        recipients=tuple(_str_list(policy_raw, "recipients", "policy")),
        min_cell_size=policy_raw.get("min_cell_size", 5),
        allow_min_max=policy_raw.get("allow_min_max", False),
        allow_probabilities=policy_raw.get("allow_probabilities", False),
        query_budget=policy_raw.get("query_budget", DEFAULT_QUERY_BUDGET),
        query_window_s=policy_raw.get("query_window_s", DEFAULT_QUERY_WINDOW_S),
        **{k: policy_raw[k] for k in _POLICY_LIMITS if k in policy_raw},
    )

    data = DataConfig()
    if "data" in raw:
        data_raw = _table(raw, "data", "")
        _check_keys(data_raw, _DATA_REQUIRED, _DATA_OPTIONAL, "data")
        data = _build(
            "data",
            DataConfig,
            kind=_str(data_raw, "kind", "data"),
            path=_path(data_raw, "path", "data", base) if "path" in data_raw else None,
            table=_str(data_raw, "table", "data") if "table" in data_raw else None,
            patient_id=_str(data_raw, "patient_id", "data") if "patient_id" in data_raw else None,
            dsn=_str(data_raw, "dsn", "data") if "dsn" in data_raw else None,
            password_file=(
                _path(data_raw, "password_file", "data", base)
                if "password_file" in data_raw
                else None
            ),
            password_env=(
                _str(data_raw, "password_env", "data") if "password_env" in data_raw else None
            ),
            omop_mapping=(
                _path(data_raw, "omop_mapping", "data", base)
                if "omop_mapping" in data_raw
                else None
            ),
        )

    peers_raw = raw["peers"]
    if not isinstance(peers_raw, list):
        raise ConfigError("expected an array of [[peers]] tables", key="peers")
    peers = []
    for i, entry in enumerate(peers_raw):
        where = f"peers[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError("expected a [[peers]] table", key=where)
        _check_keys(entry, _PEER_KEYS, (), where)
        fields = {key: _str(entry, key, where) for key in _PEER_KEYS}
        peers.append(_build(where, PeerConfig, **fields))

    return _build(
        "",
        MemberConfig,
        federation=federation,
        name=_str(raw, "name", ""),
        role=role,
        address=_str(raw, "address", ""),
        tls=tls,
        peers=tuple(peers),
        policy=policy,
        data=data,
        chain_key=_path(raw, "chain_key", "", base) if chain_key is not None else None,
        genesis=_path(raw, "genesis", "", base),
        config_path=file,
        data_port=raw.get("data_port", 0),
    )


# -- small helpers ------------------------------------------------------------


def _by_name(peer: PeerConfig) -> str:
    return peer.name


def _nested(key: str, check: Any, value: object, *args: Any) -> Any:
    """Run a checker, attaching ``key`` to any ConfigError it raises."""
    try:
        return check(value, *args)
    except ConfigError as exc:
        raise exc.located(prefix=key) from None


def _build(prefix: str, cls: Any, **kwargs: Any) -> Any:
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise exc.located(prefix=prefix or None) from None


def _names(values: Iterable[str], key: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ConfigError("expected a list of member names", key=key)
    out = tuple(values)
    for i, value in enumerate(out):
        _nested(f"{key}[{i}]", check_name, value)
    if len(set(out)) != len(out):
        raise ConfigError("a name is listed twice", key=key)
    return out


def _as_path(value: object, key: str) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ConfigError(f"expected a file path, got {value!r}", key=key)
    return Path(value)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _check_keys(
    table: Mapping[str, Any], required: Iterable[str], optional: Iterable[str], prefix: str
) -> None:
    required = tuple(required)
    allowed = set(required) | set(optional)
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"unknown key; allowed here: {', '.join(sorted(allowed))}", key=_join(prefix, key)
            )
    for key in required:
        if key not in table:
            raise ConfigError("missing key", key=_join(prefix, key))


def _str(table: Mapping[str, Any], key: str, prefix: str) -> str:
    value = table[key]
    if not isinstance(value, str):
        raise ConfigError(f"expected a string, got {type(value).__name__}", key=_join(prefix, key))
    return value


def _str_list(table: Mapping[str, Any], key: str, prefix: str) -> list[str]:
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("expected a list of strings", key=_join(prefix, key))
    return value


def _table(table: Mapping[str, Any], key: str, prefix: str) -> dict[str, Any]:
    value = table[key]
    if not isinstance(value, dict):
        raise ConfigError(f"expected a table, got {type(value).__name__}", key=_join(prefix, key))
    return value


def _path(table: Mapping[str, Any], key: str, prefix: str, base: Path) -> Path:
    value = Path(_str(table, key, prefix)).expanduser()
    if not str(value) or str(value) == ".":
        raise ConfigError("expected a file path", key=_join(prefix, key))
    return value if value.is_absolute() else (base / value).resolve()


def _rel(path: Path, base: Path) -> str:
    if path.is_absolute() and path.is_relative_to(base):
        return path.relative_to(base).as_posix()
    return path.as_posix()


__all__ = [
    "COMPUTING_ROLES",
    "DATA_KINDS",
    "ROLES",
    "ConfigError",
    "DataConfig",
    "InvalidIdentityError",
    "MemberConfig",
    "PeerConfig",
    "PolicyConfig",
    "TlsConfig",
    "check_address",
    "check_name",
    "check_role",
    "dns_name",
    "identity_uri",
    "load_config",
    "parse_identity",
    "write_config",
    "write_text_atomic",
]
