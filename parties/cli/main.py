"""The ``smpc`` command line.

One function per subcommand, registered in :data:`COMMANDS` under its words
(e.g. ``("federation", "init")``); :func:`build_parser` adds the arguments.
A new subcommand (party, dealer, run, chain, bench) adds a parser function
and a table entry. Output lists files and addresses, never key material.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509

from parties.cli import audit as audit_command
from parties.cli import bench as bench_command
from parties.cli import chain as chain_commands
from parties.cli import consent as consent_command
from parties.cli import infer as infer_command
from parties.cli import receipt as receipt_command
from parties.cli import service as service_commands
from parties.cli import stats as stats_commands
from parties.cli import vote as vote_command
from parties.config import ROLES, ConfigError, DataConfig, MemberConfig, PolicyConfig, check_name
from parties.federation import (
    CA_CERT_FILE,
    CA_DIR,
    CA_KEY_FILE,
    CONSENT_MEANING,
    CONSENT_MODES,
    GENESIS_FILE,
    FederationError,
    add_member,
    certificate_expiry_warning,
    data_source,
    init_federation,
    renew,
)
from smpc.chain.keys import load_private_key, public_bytes
from smpc.errors import SMPCError

Handler = Callable[[argparse.Namespace], int]


# -- federation -------------------------------------------------------------------


def federation_init(args: argparse.Namespace) -> int:
    """``smpc federation init``: CA, member keys and certificates, genesis, configs."""
    data: dict[str, DataConfig] = {}
    given = (("--data", args.data, None), ("--model", args.model, "model"))
    for option, assignments, kind in given:
        for name, spec in assignments:
            if name in data:
                raise FederationError(f"{option}: the data of {name!r} is given twice")
            data[name] = data_source(spec, default_kind=kind)
    policy = {
        key: value
        for key, value in (
            ("allow_min_max", args.allow_min_max or None),
            ("allow_probabilities", args.allow_probabilities or None),
            ("min_cell_size", args.min_cell_size),
        )
        if value is not None
    }
    members = init_federation(
        args.name,
        args.hospitals,
        args.analysts,
        args.model_owners,
        args.out,
        args.base_port,
        consent=args.consent,
        data=data,
        policy=policy,
        patient_id=args.patient_id,
        force=args.force,
    )
    out = members[0].config_path.parent
    print(f"federation {args.name!r} created in {out}")
    print(f"  {CA_DIR}/{CA_CERT_FILE}  federation CA certificate")
    print(f"  {CA_DIR}/{CA_KEY_FILE}  CA private key (mode 0600): move it offline")
    hospitals = [m for m in members if m.role == "hospital"]
    print(f"  {GENESIS_FILE}  {len(hospitals)} chain authorities, consent {args.consent}")
    for member in members:
        _print_member(member, out)
    dealer = next(m for m in members if m.role == "dealer")
    print(
        f"created the dealer member {dealer.name!r}: run `smpc dealer --config"
        f" {_shown(dealer.config_path)}` at an organisation that holds no patient data"
    )
    _print_policy(members[0].policy)
    _print_consent(args.consent, hospitals)
    print(f"certificates valid until {_expiry(members[0]):%Y-%m-%d}")
    return 0


def federation_add_member(args: argparse.Namespace) -> int:
    """``smpc federation add-member``: issue a new member and list it at every peer."""
    member = add_member(args.dir, args.name, args.role)
    out = member.config_path.parent
    print(f"member {member.name!r} ({member.role}) added to federation {member.federation!r}")
    _print_member(member, out)
    others = ", ".join(p.name for p in member.peers)
    print(f"added as a peer to: {others}")
    print("their policies are unchanged: edit [policy] where they should accept it")
    print("restart each of them so that it loads the new peer from its config")
    if member.role == "hospital" and member.chain_key is not None:
        public = public_bytes(load_private_key(member.chain_key.read_bytes())).hex()
        print(f"its chain public key: {public}")
        print(
            "its chain key is not in the genesis: started, it follows the chain; it becomes an"
            " authority once the authorities vote it in. At each of them, on one vote file:"
        )
        print(
            f"  smpc authority add --config <hospital>.toml --name {member.name}"
            f" --public-key {public} --file vote-{member.name}.json"
        )
    return 0


def federation_renew(args: argparse.Namespace) -> int:
    """``smpc federation renew``: a new certificate for a member's existing key."""
    path = renew(args.dir, args.name)
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    print(f"renewed the certificate of {args.name!r}: {path}")
    print(f"  serial {cert.serial_number:x}, valid until {cert.not_valid_after_utc:%Y-%m-%d}")
    print("  TLS key and chain key unchanged; restart the member to load it")
    return 0


def _add_federation_parsers(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("federation", help="set up a federation: CA, keys, configs")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")

    init = actions.add_parser("init", help="create a federation folder")
    init.add_argument("--name", required=True, type=_name, help="federation name")
    init.add_argument("--hospitals", required=True, type=_names, help="a,b,c")
    init.add_argument("--analysts", type=_names, default=(), help="x,y")
    init.add_argument("--model-owners", type=_names, default=(), help="m,n")
    init.add_argument(
        "--consent",
        choices=CONSENT_MODES,
        default="opt-in",
        help="opt-in (default): a patient is left out until they grant consent;"
        " opt-out: included until they revoke it",
    )
    init.add_argument(
        "--data",
        action="append",
        type=_assignment,
        default=[],
        metavar="HOSPITAL=[KIND:]FILE[#TABLE]",
        help="a hospital's data: .csv, or .db/.sqlite with #TABLE (repeatable)",
    )
    init.add_argument(
        "--model",
        action="append",
        type=_assignment,
        default=[],
        metavar="OWNER=FILE",
        help="a model owner's model file (.npz; repeatable)",
    )
    init.add_argument(
        "--patient-id", metavar="COLUMN", help="every hospital's patient id column (consent)"
    )
    init.add_argument(
        "--min-cell-size", type=int, metavar="N", help="smallest cohort or cell (default 5)"
    )
    init.add_argument(
        "--allow-min-max", action="store_true", help="permit minima, maxima, extreme quantiles"
    )
    init.add_argument(
        "--allow-probabilities", action="store_true", help="permit revealing probabilities"
    )
    init.add_argument("--out", required=True, type=Path, help="folder to create")
    init.add_argument("--base-port", type=int, default=50051, help="port of the first member")
    init.add_argument("--force", action="store_true", help="replace a federation in --out")
    init.set_defaults(words=("federation", "init"))

    add = actions.add_parser("add-member", help="issue a certificate for a new member")
    add.add_argument("--dir", required=True, type=Path, help="the federation folder")
    add.add_argument("--name", required=True, type=_name)
    add.add_argument("--role", required=True, choices=ROLES)
    add.set_defaults(words=("federation", "add-member"))

    ren = actions.add_parser("renew", help="re-issue a member's certificate for one more year")
    ren.add_argument("--dir", required=True, type=Path, help="the federation folder")
    ren.add_argument("--name", required=True, type=_name)
    ren.set_defaults(words=("federation", "renew"))


# -- dispatch ---------------------------------------------------------------------

COMMANDS: dict[tuple[str, ...], Handler] = {
    ("federation", "init"): federation_init,
    ("federation", "add-member"): federation_add_member,
    ("federation", "renew"): federation_renew,
    **service_commands.COMMANDS,
    **chain_commands.COMMANDS,
    **audit_command.COMMANDS,
    **consent_command.COMMANDS,
    **receipt_command.COMMANDS,
    **vote_command.COMMANDS,
    **stats_commands.COMMANDS,
    **infer_command.COMMANDS,
    **bench_command.COMMANDS,
}

_PARSERS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_federation_parsers,
    service_commands.add_parsers,
    chain_commands.add_parsers,
    audit_command.add_parsers,
    consent_command.add_parsers,
    receipt_command.add_parsers,
    vote_command.add_parsers,
    stats_commands.add_parsers,
    infer_command.add_parsers,
    bench_command.add_parsers,
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``smpc`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="smpc", description="Secure multi-party computation for hospitals."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parsers in _PARSERS:
        add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``smpc`` command; returns the exit status (2 for usage, 1 for failures).

    A reader that stops early (``smpc chain show | head``) ends the command
    quietly with status 0: the rest of its output goes nowhere.
    """
    try:
        status = _dispatch(argv)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit finds somewhere to write
        return 0
    return status


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return COMMANDS[args.words](args)
    except BrokenPipeError:
        raise
    except (SMPCError, OSError) as exc:
        print(f"smpc: error: {exc}", file=sys.stderr)
        return 1


# -- helpers ----------------------------------------------------------------------


def _print_member(member: MemberConfig, out: Path) -> None:
    home = member.tls.key.parent
    place = home.relative_to(out) if home.is_relative_to(out) else home
    chain = ", chain key" if member.chain_key is not None else ""
    print(
        f"  {member.config_path.name}  {member.name} ({member.role}) at {member.address};"
        f" TLS key, certificate{chain} in {place}/"
    )
    data = member.data
    if data.path is not None:
        table = f" table {data.table}" if data.table else ""
        patients = f", patient id column {data.patient_id!r}" if data.patient_id else ""
        print(f"    data: {data.kind} {data.path}{table}{patients}")
    warning = certificate_expiry_warning(member.tls.cert)
    if warning:
        print(f"  warning: {warning}")


def _print_policy(policy: PolicyConfig) -> None:
    on_off = {True: "allowed", False: "refused"}
    print(
        f"policy of every member: minimum cell size {policy.min_cell_size};"
        f" minima and maxima {on_off[policy.allow_min_max]};"
        f" probabilities {on_off[policy.allow_probabilities]}"
        " (edit [policy] in a member's TOML to change it there)"
    )


def _print_consent(mode: str, hospitals: Sequence[MemberConfig]) -> None:
    other = next(m for m in CONSENT_MODES if m != mode)
    default = " (the default)" if mode == "opt-in" else ""
    print(f"consent {mode}{default}: {CONSENT_MEANING[mode]}.")
    print(
        f"  The genesis fixes the mode: for {other}, create the federation again with"
        f" --consent {other}."
    )
    named = [h for h in hospitals if h.data.patient_id is not None]
    if not named:
        print(
            "  No hospital names its patient id column (--patient-id COLUMN), so consent"
            " applies to none yet."
        )
    elif mode == "opt-in":
        config = _shown(named[0].config_path)
        print(
            "  Every hospital's patients are left out of every job until granted, e.g."
            f" `smpc consent grant --config {config} --patient ID --scope all` for each patient."
        )


def _shown(path: Path) -> Path:
    """``path`` relative to the current folder when it lies below it, for commands to copy."""
    cwd = Path.cwd()
    return path.relative_to(cwd) if path.is_relative_to(cwd) else path


def _expiry(member: MemberConfig) -> dt.datetime:
    return x509.load_pem_x509_certificate(member.tls.cert.read_bytes()).not_valid_after_utc


def _name(value: str) -> str:
    try:
        return check_name(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _assignment(value: str) -> tuple[str, str]:
    name, sep, rest = value.partition("=")
    if not sep or not rest:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {value!r}")
    return _name(name.strip()), rest


def _names(value: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return tuple(_name(n) for n in names)


if __name__ == "__main__":
    raise SystemExit(main())
