"""Federation set-up: the CA, member certificates and keys, the genesis, member configs.

Layout of a federation folder made by :func:`init_federation`::

    ca/ca.pem, ca/ca-key.pem        the federation CA (the key belongs offline)
    genesis.json                    canonical JSON: federation, hospitals' chain keys, consent,
                                    the CA certificate (DER, hex) that signs analysts' jobs
    <name>.toml                     one config per member (see parties.config)
    <name>/tls-cert.pem, tls-key.pem, ca.pem, chain-key.pem (hospitals only)

Each member's certificate names it twice: the URI SAN
``smpc://<federation>/<role>/<name>`` (servers check clients by it) and the DNS
SAN ``<name>.<federation>.smpc`` (gRPC's Python client can only check servers by
host name). TLS keys are EC P-256; chain keys are separate Ed25519 keys, so
certificates can be renewed without touching the chain. Private keys are created
with mode 0600 and never overwritten in place.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from parties.config import (
    DATA_KINDS,
    ConfigError,
    DataConfig,
    MemberConfig,
    PeerConfig,
    PolicyConfig,
    TlsConfig,
    check_name,
    check_role,
    dns_name,
    identity_uri,
    load_config,
    write_config,
    write_text_atomic,
)
from smpc.chain.genesis import GENESIS_VERSION
from smpc.errors import SMPCError

CA_VALIDITY = dt.timedelta(days=3650)
MEMBER_VALIDITY = dt.timedelta(days=365)
EXPIRY_WARNING = dt.timedelta(days=30)
CLOCK_SKEW = dt.timedelta(minutes=5)
"""Certificates start this long before issue, so peers with slow clocks accept them."""

CONSENT_MODES: tuple[str, ...] = ("opt-in", "opt-out")
CONSENT_MEANING: dict[str, str] = {
    "opt-in": "a patient is left out of every job until they grant consent",
    "opt-out": "a patient is included in every job until they revoke consent",
}
"""What each consent mode means for a patient with no consent record (see parties.data.consent)."""

DATA_SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".db": "sqlite",
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
    ".npz": "model",
}
"""The data kind a file's extension implies when a data option names no kind."""

POLICY_OPTIONS: tuple[str, ...] = tuple(
    f.name for f in fields(PolicyConfig) if f.name not in ("analysts", "protocols", "recipients")
)
"""The policy fields ``init_federation(policy=...)`` may set for every member."""
DEALER_NAME = "dealer"
GENESIS_FILE = "genesis.json"
CA_DIR = "ca"
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
TLS_CERT_FILE = "tls-cert.pem"
TLS_KEY_FILE = "tls-key.pem"
CHAIN_KEY_FILE = "chain-key.pem"
MAX_MEMBERS = 254
"""Member i listens on 127.0.0.(i+1), so a fresh federation has at most 254 members."""

_RESERVED_NAMES = frozenset({CA_DIR})
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class FederationError(SMPCError):
    """Federation set-up cannot proceed: existing folder, unknown member, bad member list."""


# -- public API -----------------------------------------------------------------


def init_federation(
    name: str,
    hospitals: Sequence[str],
    analysts: Sequence[str],
    model_owners: Sequence[str],
    out_dir: str | os.PathLike[str],
    base_port: int = 50051,
    *,
    consent: str = "opt-in",
    data: Mapping[str, DataConfig] | None = None,
    policy: Mapping[str, Any] | None = None,
    patient_id: str | None = None,
    force: bool = False,
    now: dt.datetime | None = None,
) -> list[MemberConfig]:
    """Create a federation in ``out_dir`` and return every member's config, in member order.

    Members are the hospitals, one dealer named ``dealer``, the analysts and the
    model owners, in that order; member i listens on ``127.0.0.{i+1}:{base_port+i}``
    (on Linux the whole 127/8 block is loopback), or on a free port of its
    address when ``base_port`` is 0 (tests, benchmarks, local runs). The
    default policy accepts the federation's analysts, the protocols installed
    here at their installed versions, every member as a recipient, and cells
    of at least 5; ``policy`` overrides any of :data:`POLICY_OPTIONS` for every
    member (e.g. ``{"allow_min_max": True, "min_cell_size": 10}``).

    ``data`` gives members their inputs: a hospital a CSV or SQLite source, a
    model owner its model file (see :func:`data_source`); ``patient_id`` names
    the patient column of every hospital source given, which makes consent
    apply there (under ``consent="opt-in"`` a patient is left out until they
    grant it). Every file must exist and every source must open, with that column.

    The CA private key is written to ``ca/ca-key.pem`` for convenience in tests
    and demos; in production it belongs offline, brought back only to add a
    member or renew a certificate.

    An existing non-empty folder is refused unless ``force`` is set, and even
    then only a folder that holds a federation (a ``genesis.json``) is replaced;
    only the federation's own files are removed.
    """
    check_name(name, "federation name")
    if consent not in CONSENT_MODES:
        raise FederationError(f"consent {consent!r} is not one of {', '.join(CONSENT_MODES)}")
    roster = _roster(hospitals, analysts, model_owners)
    if not isinstance(base_port, int) or base_port < 0 or base_port + len(roster) - 1 > 65535:
        raise FederationError(
            f"base port {base_port!r} does not leave room for {len(roster)} ports below 65536"
        )
    sources = _member_data(roster, data or {}, patient_id)
    overrides = dict(policy or {})
    unknown = sorted(set(overrides) - set(POLICY_OPTIONS))
    if unknown:
        raise FederationError(
            f"unknown policy option {', '.join(unknown)}; choose from {', '.join(POLICY_OPTIONS)}"
        )
    try:
        member_policy = PolicyConfig(
            analysts=tuple(m for m, r in roster if r == "analyst"),
            protocols=default_protocols(),
            recipients=tuple(m for m, _ in roster),
            **overrides,
        )
    except ConfigError as exc:
        raise exc.located(prefix="policy") from None
    out = Path(out_dir).expanduser().resolve()
    _prepare_folder(out, [member for member, _ in roster], force)
    now = _utc(now)

    ca_key, ca_cert = _make_ca(name, now)
    (out / CA_DIR).mkdir(mode=0o700)
    _write_private(out / CA_DIR / CA_KEY_FILE, _pem_private(ca_key))
    write_text_atomic(out / CA_DIR / CA_CERT_FILE, _pem_cert(ca_cert))

    hosts = [f"127.0.0.{i + 1}" for i in range(len(roster))]
    ports = [free_port(h) if base_port == 0 else base_port + i for i, h in enumerate(hosts)]
    addresses = [f"{host}:{port}" for host, port in zip(hosts, ports, strict=True)]
    peers = [
        PeerConfig(member, role, addr, identity_uri(name, role, member))
        for (member, role), addr in zip(roster, addresses, strict=True)
    ]
    chain_public: dict[str, str] = {}
    members: list[MemberConfig] = []
    for me in peers:
        tls, chain_key, chain_hex = _issue_member_files(out, name, me, ca_key, ca_cert, now)
        if chain_hex is not None:
            chain_public[me.name] = chain_hex
        member = MemberConfig(
            federation=name,
            name=me.name,
            role=me.role,
            address=me.address,
            tls=tls,
            peers=tuple(p for p in peers if p.name != me.name),
            policy=member_policy,
            data=sources.get(me.name, DataConfig()),
            chain_key=chain_key,
            genesis=out / GENESIS_FILE,
            config_path=out / f"{me.name}.toml",
        )
        write_config(member, member.config_path)
        members.append(member)

    genesis = {
        "version": GENESIS_VERSION,
        "federation": name,
        "consent_mode": consent,
        "created_ms": _ms(now),
        "federation_ca": ca_cert.public_bytes(serialization.Encoding.DER).hex(),
        "hospitals": [
            {"name": hospital, "chain_public_key": chain_public[hospital]}
            for hospital in sorted(chain_public)
        ],
    }
    write_text_atomic(out / GENESIS_FILE, canonical_json(genesis))
    return members


def data_source(
    spec: str, base: str | os.PathLike[str] | None = None, *, default_kind: str | None = None
) -> DataConfig:
    """The data config ``[KIND:]PATH[#TABLE]`` describes, its path made absolute.

    KIND is one of ``csv``, ``sqlite`` and ``model``; without it
    ``default_kind`` or else the extension decides (:data:`DATA_SUFFIXES`). A
    SQLite source names its table after ``#`` (``records.db#patients``). A
    relative PATH is taken from ``base`` (default: the current folder).
    """
    text = spec.strip()
    kind, sep, rest = text.partition(":")
    if sep and kind in DATA_KINDS:
        text = rest
    else:
        kind = default_kind or ""
    text, _, table = text.partition("#")
    if not text:
        raise FederationError(f"data {spec!r} names no file")
    path = Path(text).expanduser()
    if not kind:
        kind = DATA_SUFFIXES.get(path.suffix.lower(), "")
        if not kind:
            raise FederationError(
                f"cannot tell the kind of data in {text!r} from its extension;"
                " write csv:FILE or sqlite:FILE#TABLE"
            )
    if kind == "none":
        raise FederationError(f"data {spec!r}: kind 'none' takes no file")
    if kind == "sqlite" and not table:
        raise FederationError(f"SQLite data {text!r} needs its table: {text}#TABLE")
    if kind != "sqlite" and table:
        raise FederationError(f"{kind} data {text!r} has no table; drop '#{table}'")
    path = (Path(base) if base is not None else Path.cwd()) / path
    return DataConfig(kind, path.resolve(), table or None)


def default_protocols() -> dict[str, str]:
    """Every protocol installed here, pinned at its installed version."""
    from protocols.registry import installed

    return {name: spec.version for name, spec in sorted(installed().items())}


def free_port(host: str) -> int:
    """A TCP port that was free on ``host`` a moment ago (for tests and local runs)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def add_member(
    fed_dir: str | os.PathLike[str], name: str, role: str, *, now: dt.datetime | None = None
) -> MemberConfig:
    """Issue a key and certificate for a new member, write its config, add it to every peer.

    Existing members gain the newcomer as a peer, but their policies are left as
    they are: accepting a new analyst or recipient is each member's decision. A
    new hospital gets a chain key, but the genesis is not rewritten; joining the
    authority set is a vote recorded on the chain.
    """
    out = Path(fed_dir).expanduser().resolve()
    check_name(name)
    check_role(role)
    existing = _load_members(out)
    federation = existing[0].federation
    if name in _RESERVED_NAMES or any(m.name == name for m in existing):
        raise FederationError(f"federation {federation!r} already has a member named {name!r}")
    if (out / name).exists() or (out / f"{name}.toml").exists():
        raise FederationError(f"{out / name} already exists; remove it or choose another name")
    if role == "dealer" and any(m.role == "dealer" for m in existing):
        raise FederationError("the federation already has a dealer; it runs with exactly one")
    if len(existing) >= MAX_MEMBERS:
        raise FederationError(f"a federation folder holds at most {MAX_MEMBERS} members")
    ca_key, ca_cert = _load_ca(out)
    now = _utc(now)

    me = PeerConfig(name, role, _next_address(existing), identity_uri(federation, role, name))
    tls, chain_key, _ = _issue_member_files(out, federation, me, ca_key, ca_cert, now)
    analysts = {m.name for m in existing if m.role == "analyst"}
    if role == "analyst":
        analysts.add(name)
    member = MemberConfig(
        federation=federation,
        name=name,
        role=role,
        address=me.address,
        tls=tls,
        peers=tuple(m.as_peer() for m in existing),
        policy=PolicyConfig(
            analysts=tuple(sorted(analysts)),
            protocols=default_protocols(),
            recipients=tuple(sorted([*(m.name for m in existing), name])),
        ),
        data=DataConfig(),
        chain_key=chain_key,
        genesis=existing[0].genesis,
        config_path=out / f"{name}.toml",
    )
    write_config(member, member.config_path)
    for other in existing:
        write_config(replace(other, peers=(*other.peers, me)), other.config_path)
    return member


def renew(fed_dir: str | os.PathLike[str], name: str, *, now: dt.datetime | None = None) -> Path:
    """Re-issue a member's certificate (new serial, one more year) for its existing key.

    Returns the certificate's path. The TLS key and the chain key are untouched.
    """
    out = Path(fed_dir).expanduser().resolve()
    member = _load_member(out, name)
    ca_key, ca_cert = _load_ca(out)
    key = _read_private(member.tls.key)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FederationError(f"{member.tls.key} does not hold an EC private key")
    cert = _issue_cert(
        ca_key, ca_cert, member.federation, member.role, member.name, key.public_key(), _utc(now)
    )
    write_text_atomic(member.tls.cert, _pem_cert(cert))
    return member.tls.cert


def certificate_expiry_warning(
    cert_path: str | os.PathLike[str], now: dt.datetime | None = None
) -> str | None:
    """A warning if the certificate has expired or expires within 30 days, else None."""
    path = Path(cert_path)
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    now = _utc(now)
    expiry = cert.not_valid_after_utc
    when = expiry.strftime("%Y-%m-%d %H:%M UTC")
    advice = "renew it with `smpc federation renew --dir DIR --name NAME`"
    if expiry <= now:
        return f"certificate {path} expired on {when}; {advice}"
    left = expiry - now
    if left > EXPIRY_WARNING:
        return None
    days = left.days
    span = "less than a day" if days == 0 else f"{days} day{'s' if days != 1 else ''}"
    return f"certificate {path} expires in {span} (on {when}); {advice}"


def canonical_json(value: object) -> str:
    """JSON with sorted keys, no spaces and ASCII only: one text per value, for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def member_files(fed_dir: Path, name: str) -> dict[str, Path]:
    """Where :func:`init_federation` puts a member's files (a chain key only for hospitals)."""
    home = fed_dir / name
    return {
        "config": fed_dir / f"{name}.toml",
        "ca_cert": home / CA_CERT_FILE,
        "cert": home / TLS_CERT_FILE,
        "key": home / TLS_KEY_FILE,
        "chain_key": home / CHAIN_KEY_FILE,
    }


# -- certificates -----------------------------------------------------------------


def _make_ca(
    federation: str, now: dt.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, federation),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{federation} federation CA"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    federation: str,
    role: str,
    name: str,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
) -> x509.Certificate:
    """A one-year leaf certificate naming the member by URI and DNS SAN, for client and server."""
    ca_expiry = ca_cert.not_valid_after_utc
    if ca_expiry <= now:
        raise FederationError(f"the federation CA expired on {ca_expiry:%Y-%m-%d}; make a new one")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, federation),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    san = x509.SubjectAlternativeName(
        [
            x509.UniformResourceIdentifier(identity_uri(federation, role, name)),
            x509.DNSName(dns_name(federation, name)),
        ]
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + MEMBER_VALIDITY, ca_expiry))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(eku, critical=False)
        .add_extension(san, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    """CA: sign certificates and CRLs. Leaf: digital signatures only (ECDHE-ECDSA, TLS 1.3)."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _issue_member_files(
    out: Path,
    federation: str,
    me: PeerConfig,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    now: dt.datetime,
) -> tuple[TlsConfig, Path | None, str | None]:
    """Write a member's TLS key, certificate, CA copy and (hospitals) chain key.

    Returns the TLS paths, the chain key's path and its public key in hex.
    """
    files = member_files(out, me.name)
    files["key"].parent.mkdir(mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    _write_private(files["key"], _pem_private(key))
    cert = _issue_cert(ca_key, ca_cert, federation, me.role, me.name, key.public_key(), now)
    write_text_atomic(files["cert"], _pem_cert(cert))
    write_text_atomic(files["ca_cert"], _pem_cert(ca_cert))
    tls = TlsConfig(ca_cert=files["ca_cert"], cert=files["cert"], key=files["key"])
    if me.role != "hospital":
        return tls, None, None
    chain_key = ed25519.Ed25519PrivateKey.generate()
    _write_private(files["chain_key"], _pem_private(chain_key))
    raw = chain_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return tls, files["chain_key"], raw.hex()


def _load_ca(out: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path = out / CA_DIR / CA_KEY_FILE
    if not key_path.exists():
        raise FederationError(
            f"the CA private key is not at {key_path}; bring it back from offline storage"
            " to issue or renew certificates"
        )
    key = _read_private(key_path)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FederationError(f"{key_path} does not hold an EC private key")
    cert = x509.load_pem_x509_certificate((out / CA_DIR / CA_CERT_FILE).read_bytes())
    return key, cert


# -- files ------------------------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    """Create a new file readable by its owner only; never replaces an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _read_private(path: Path) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise FederationError(f"{path} holds an unexpected kind of key")
    return key


def _pem_private(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _prepare_folder(out: Path, names: Sequence[str], force: bool) -> None:
    """Make ``out`` ready for a new federation, or refuse to touch what is there."""
    if out.exists() and not out.is_dir():
        raise FederationError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FederationError(
                f"{out} is not empty; pass force=True (--force) to replace the federation in it"
            )
        if not (out / GENESIS_FILE).exists():
            raise FederationError(
                f"{out} is not empty and holds no federation ({GENESIS_FILE}); choose an"
                " empty folder"
            )
        _remove_federation(out, names)
    out.mkdir(parents=True, exist_ok=True)


def _remove_federation(out: Path, names: Sequence[str]) -> None:
    """Delete a federation's own files (CA, genesis, member configs and folders), nothing else."""
    shutil.rmtree(out / CA_DIR, ignore_errors=True)
    (out / GENESIS_FILE).unlink(missing_ok=True)
    stems = {p.stem for p in _member_config_paths(out)} | set(names)
    for stem in stems:
        (out / f"{stem}.toml").unlink(missing_ok=True)
        if (out / stem).is_dir() and not (out / stem).is_symlink():
            shutil.rmtree(out / stem)


def _load_members(out: Path) -> list[MemberConfig]:
    if not (out / GENESIS_FILE).exists():
        raise FederationError(f"{out} holds no federation ({GENESIS_FILE} is missing)")
    members = [load_config(p) for p in _member_config_paths(out)]
    if not members:
        raise FederationError(f"{out} holds no member configs (*.toml)")
    federations = {m.federation for m in members}
    if len(federations) != 1:
        raise FederationError(f"{out} mixes federations: {', '.join(sorted(federations))}")
    return members


def _member_config_paths(out: Path) -> list[Path]:
    """The member configs in a federation folder: each ``X.toml`` beside a folder ``X/``."""
    return sorted(p for p in out.glob("*.toml") if (out / p.stem).is_dir())


def _load_member(out: Path, name: str) -> MemberConfig:
    check_name(name)
    members = _load_members(out)
    for member in members:
        if member.name == name:
            return member
    known = ", ".join(m.name for m in members)
    raise FederationError(f"no member named {name!r} in {out}; members: {known}")


# -- small helpers ------------------------------------------------------------------


def _roster(
    hospitals: Sequence[str], analysts: Sequence[str], model_owners: Sequence[str]
) -> list[tuple[str, str]]:
    """(name, role) in member order, checked: valid, unique, not reserved, enough parties."""
    for names in (hospitals, analysts, model_owners):
        if isinstance(names, str):
            raise TypeError(f"pass a list of names, not the string {names!r}")
    roster = [
        *((h, "hospital") for h in hospitals),
        (DEALER_NAME, "dealer"),
        *((a, "analyst") for a in analysts),
        *((m, "model-owner") for m in model_owners),
    ]
    seen: set[str] = set()
    for member, _ in roster:
        check_name(member)
        if member in _RESERVED_NAMES:
            raise FederationError(f"{member!r} is reserved for the CA folder; choose another name")
        if member in seen:
            why = " (the dealer's name)" if member == DEALER_NAME else ""
            raise FederationError(f"member name {member!r} is used twice{why}; names are unique")
        seen.add(member)
    if not hospitals:
        raise FederationError("a federation needs at least one hospital")
    if len(hospitals) + len(model_owners) < 2:
        raise FederationError("a federation needs at least two computing parties; add a hospital")
    if len(roster) > MAX_MEMBERS:
        raise FederationError(f"a federation folder holds at most {MAX_MEMBERS} members")
    return roster


def _member_data(
    roster: Sequence[tuple[str, str]], data: Mapping[str, DataConfig], patient_id: str | None
) -> dict[str, DataConfig]:
    """Check each member's data against its role and its file, and set the patient column.

    Hospitals take CSV or SQLite sources, model owners model files, others
    nothing. Every source is opened once, so a missing file, table or patient
    column is found now and not at the first job.
    """
    roles = dict(roster)
    sources: dict[str, DataConfig] = {}
    for name, config in data.items():
        role = roles.get(name)
        if role is None:
            raise FederationError(
                f"data for {name!r}, who is not a member; members: {', '.join(roles)}"
            )
        wanted = {"hospital": ("csv", "sqlite"), "model-owner": ("model",)}.get(role, ())
        if config.kind not in wanted:
            holds = f"takes {' or '.join(wanted)} data" if wanted else "holds no data"
            raise FederationError(f"{name} ({role}) {holds}, not {config.kind!r}")
        if config.path is None or not config.path.is_file():
            raise FederationError(f"the data file of {name} does not exist: {config.path}")
        sources[name] = config
    hospitals = [name for name, role in roster if role == "hospital" and name in sources]
    if patient_id is not None:
        if not hospitals:
            raise FederationError(
                "a patient id column belongs to a hospital's data; give it with --data NAME=FILE"
            )
        for name in hospitals:
            sources[name] = replace(sources[name], patient_id=patient_id)
    for name, config in sources.items():
        _check_source(name, config)
    return sources


def _check_source(name: str, config: DataConfig) -> None:
    """Open a member's source (or model) once; a FederationError naming it if that fails."""
    from parties.data.kinds import open_source
    from parties.data.model_file import load_model

    try:
        if config.kind == "model":
            assert config.path is not None  # a model config always names its file
            load_model(config.path)
            return
        columns = open_source(config).columns
    except SMPCError as exc:
        raise FederationError(f"the data of {name} cannot be used: {exc}") from None
    if config.patient_id is not None and config.patient_id not in columns:
        raise FederationError(
            f"the data of {name} ({config.path}) has no patient id column"
            f" {config.patient_id!r}; its columns: {', '.join(columns)}"
        )


def _next_address(existing: Sequence[MemberConfig]) -> str:
    """The first free 127.0.0.x after the members, on the port after the highest one."""
    hosts = {m.address.rpartition(":")[0] for m in existing}
    ports = [int(m.address.rpartition(":")[2]) for m in existing]
    port = max(ports) + 1
    if port > 65535:
        raise FederationError("no port left above the existing members'; edit their addresses")
    for i in range(len(existing), MAX_MEMBERS):
        host = f"127.0.0.{i + 1}"
        if host not in hosts:
            return f"{host}:{port}"
    raise FederationError("no free loopback address left; edit the members' addresses")


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("pass an aware datetime (e.g. datetime.now(datetime.UTC))")
    return now.astimezone(dt.UTC)


def _ms(now: dt.datetime) -> int:
    return (now - _EPOCH) // dt.timedelta(milliseconds=1)
