"""``smpc consent grant|revoke --patient ID --scope S``: record a patient's consent.

Run by a hospital with its own config. The record is signed with the
hospital's chain key and kept as pending in the hospital's records file, which
its running node reads before every job, so the next job already honours it.
``--patient -`` reads the identifier from standard input, keeping it out of the
shell history and the process list. Nothing printed names the patient.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from parties.config import load_config
from parties.data.consent import record_consent
from parties.ledger.record_store import RecordStore, records_path
from smpc.chain.records import CONSENT_ACTIONS, CONSENT_SCOPES, record_id


def run(args: argparse.Namespace) -> int:
    """``smpc consent grant|revoke``."""
    member = load_config(args.config)
    patient = sys.stdin.readline().strip() if args.patient == "-" else args.patient
    with RecordStore(records_path(member)) as store:
        record = record_consent(member, store, args.words[1], patient, args.scope)
    rid = record_id(record.encode()).hex()
    print(
        f"consent {record.action} recorded at {member.name} for scope {record.scope}"
        f" (record {rid[:12]}, pending until a block holds it)"
    )
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The arguments of ``consent grant`` and ``consent revoke``."""
    group = commands.add_parser("consent", help="record a patient's consent at this hospital")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in CONSENT_ACTIONS:
        p = actions.add_parser(action, help=f"{action} a patient's consent for a scope")
        p.add_argument("--config", required=True, type=Path, help="this hospital's TOML config")
        p.add_argument("--patient", required=True, help="the patient identifier, or - for stdin")
        p.add_argument("--scope", required=True, help=f"one of {', '.join(CONSENT_SCOPES)}")
        p.set_defaults(words=("consent", action))


COMMANDS: dict[tuple[str, ...], Callable[[argparse.Namespace], int]] = {
    ("consent", action): run for action in CONSENT_ACTIONS
}
