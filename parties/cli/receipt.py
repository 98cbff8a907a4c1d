"""``smpc receipt issue|verify``: a patient's proof of which jobs used their row.

``issue`` runs at a hospital with its own config and writes a signed receipt
(:mod:`parties.ledger.receipts`) listing every job since a date, whether the
patient's row was in it, and the proofs. ``--patient -`` reads the identifier
from standard input. Nothing printed or written names the patient.

``verify`` checks a receipt against any hospital's copy of the chain
(``--config``) or a signed checkpoint alone (``--checkpoint`` and
``--genesis``), and says what it proves and what it does not; ``--html``
also writes that as one self-contained web page for a patient portal. Exit
status 0 when every proof holds, 1 when one does not, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from parties.config import MemberConfig, load_config
from parties.data import consent
from parties.ledger.chain_node import CHAIN_DB_FILE
from parties.ledger.chain_store import SqliteChainStore
from parties.ledger.genesis import load_genesis
from parties.ledger.patients import PatientStore, store_path
from parties.ledger.receipt_html import render
from parties.ledger.receipts import (
    ReceiptError,
    Verdict,
    chain_anchor,
    checkpoint_anchor,
    dumps,
    issue,
    loads,
    verify,
)
from parties.ledger.record_store import RecordStore, records_path
from smpc.chain.checkpoint import CheckpointError, check_checkpoint
from smpc.chain.errors import ChainEncodingError, ChainError, RecordError
from smpc.chain.genesis import Genesis
from smpc.chain.keys import load_private_key
from smpc.chain.records import AuthorityVote, JobRecord, decode_record
from smpc.chain.store import ChainStore

EXIT_FAULT = 1
EXIT_USAGE = 2

DOES_NOT_PROVE = (
    "that the leaf is this patient's: only the hospital, holding its consent secret, can"
    " compute it, and it vouches for that with its signature on the receipt",
    "what a job computed from the row, or anything about other hospitals' patients",
    "anything about jobs in blocks after the last one the receipt covers",
)


def since_ms(text: str | None) -> int:
    """Milliseconds (UTC) of an ISO date or date-time; 0 for none."""
    if text is None:
        return 0
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ReceiptError(f"--since {text!r} is not a date such as 2026-01-31") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def run_issue(args: argparse.Namespace) -> int:
    """``smpc receipt issue``."""
    member = load_config(args.config)
    patient = sys.stdin.readline().strip() if args.patient == "-" else args.patient.strip()
    try:
        if member.role != "hospital" or member.chain_key is None:
            raise ReceiptError(f"{member.name} is not a hospital; hospitals issue receipts")
        secret = consent.load_secret(member)
        if secret is None or not store_path(member).is_file():
            raise ReceiptError(
                f"{member.name} has committed to no patients yet (it needs data.patient_id"
                " and a finished job)"
            )
        start = since_ms(args.since)
        genesis = load_genesis(member.genesis)
        with (
            PatientStore(store_path(member), readonly=True) as kept,
            SqliteChainStore(member.home / CHAIN_DB_FILE, readonly=True) as chain,
        ):
            receipt = issue(
                hospital=member.name,
                key=load_private_key(member.chain_key.read_bytes()),
                genesis=genesis,
                chain=chain,
                kept=kept.get,
                secret=secret,
                patient=patient,
                since_ms=start,
                pending=pending_jobs(member),
            )
    except (ChainError, consent.ConsentError) as exc:
        print(f"smpc receipt issue: {exc}", file=sys.stderr)
        return EXIT_FAULT
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(dumps(receipt))
    included = sum(j["included"] for j in receipt["jobs"])
    span = receipt["range"]
    print(
        f"receipt of {member.name} written to {args.out}: {len(receipt['jobs'])} jobs in blocks"
        f" {span['from_height']} to {span['to_height']}, the row in {included};"
        f" {len(receipt['uncommitted'])} without a patients commitment;"
        f" {len(receipt['not_final'])} not final yet"
    )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """``smpc receipt verify``."""
    if (args.config is None) == (args.checkpoint is None):
        print(
            "smpc receipt verify: error: give --config (a chain copy) or --checkpoint with"
            " --genesis",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        receipt = loads(args.file.read_text(encoding="utf-8"))
        if args.config is not None:
            member = load_config(args.config)
            genesis = load_genesis(args.genesis or member.genesis)
            with SqliteChainStore(member.home / CHAIN_DB_FILE, readonly=True) as chain:
                keys = hospital_keys(genesis, chain)
                verdict = verify(receipt, genesis, chain_anchor(chain), chain=chain, keys=keys)
            against = f"{member.name}'s copy of the chain"
        else:
            if args.genesis is None:
                raise ReceiptError("--checkpoint needs --genesis, the federation's genesis.json")
            genesis = load_genesis(args.genesis)
            checkpoint = json.loads(args.checkpoint.read_text(encoding="utf-8"))
            sealed = check_checkpoint(checkpoint, genesis)
            anchor = checkpoint_anchor(
                int(checkpoint["height"]), bytes.fromhex(checkpoint["block"])
            )
            keys = {a.name: a.public_key for a in genesis.authorities}
            for a in checkpoint["authorities"]:  # checked by the seals, as check_checkpoint says
                keys.setdefault(str(a["name"]), bytes.fromhex(a["public_key"]))
            verdict = verify(receipt, genesis, anchor, keys=keys)
            against = f"the checkpoint of {sealed}"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ChainError, CheckpointError) as exc:
        print(f"smpc receipt verify: {args.file}: {exc}", file=sys.stderr)
        return EXIT_FAULT
    _print(receipt["hospital"], against, verdict)
    if args.html is not None:
        page = render(receipt, verdict, against, DOES_NOT_PROVE)
        try:
            args.html.write_text(page, encoding="utf-8")
        except OSError as exc:
            print(f"smpc receipt verify: --html {args.html}: {exc}", file=sys.stderr)
            return EXIT_FAULT
        print(f"the receipt as a web page for the patient: {args.html}")
    return 0 if verdict.ok else EXIT_FAULT


def pending_jobs(member: MemberConfig) -> list[str]:
    """The jobs whose records this hospital still holds as pending (none final yet)."""
    path = records_path(member)
    if not path.is_file():
        return []
    jobs = []
    with RecordStore(path, readonly=True) as records:
        for _, data in records.pending("job"):
            try:
                record = decode_record(data)
            except (ChainEncodingError, RecordError):
                continue
            if isinstance(record, JobRecord):
                jobs.append(record.job_id)
    return jobs


def hospital_keys(genesis: Genesis, chain: ChainStore) -> dict[str, bytes]:
    """The chain key of every hospital that has been an authority: the genesis, then votes.

    A hospital voted out keeps its key here: its receipts for earlier jobs still verify.
    """
    keys = {a.name: a.public_key for a in genesis.authorities}
    for entry in chain.iterate():
        for data in entry.block.records:
            try:
                record = decode_record(data)
            except (ChainEncodingError, RecordError):
                continue
            if isinstance(record, AuthorityVote) and record.action == "add":
                keys.setdefault(record.name, record.public_key)
    return keys


def _print(hospital: str, against: str, verdict: Verdict) -> None:
    if not verdict.ok:
        for fault in verdict.faults:
            print(f"smpc receipt verify: fault: {fault}", file=sys.stderr)
        print(f"the receipt does NOT verify against {against}: it proves nothing")
        return
    print(f"the receipt verifies against {against}.")
    print(f"It proves, for each job below, from {hospital}'s signed record in a final block:")
    for line in verdict.proven:
        print(f"  - {line}")
    if verdict.unanchored:
        print("It cannot prove, against this chain or checkpoint, for:")
        for line in verdict.unanchored:
            print(f"  - {line}")
    print(f"{verdict.completeness}.")
    print("It does not prove:")
    for line in DOES_NOT_PROVE:
        print(f"  - {line}")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The arguments of ``receipt issue`` and ``receipt verify``."""
    group = commands.add_parser("receipt", help="a patient's proof of which jobs used their row")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("issue", help="write a signed receipt for one patient")
    p.add_argument("--config", required=True, type=Path, help="this hospital's TOML config")
    p.add_argument("--patient", required=True, help="the patient identifier, or - for stdin")
    p.add_argument("--since", help="only jobs from this date (ISO, UTC), e.g. 2026-01-31")
    p.add_argument("--out", required=True, type=Path, help="where to write the receipt (JSON)")
    p.set_defaults(words=("receipt", "issue"))
    v = actions.add_parser("verify", help="check a receipt against a chain or a checkpoint")
    v.add_argument("file", type=Path, help="the receipt")
    v.add_argument("--config", type=Path, help="a member's TOML config (its copy of the chain)")
    v.add_argument("--checkpoint", type=Path, help="a signed checkpoint (smpc chain checkpoint)")
    v.add_argument("--genesis", type=Path, help="the federation's genesis.json")
    v.add_argument("--html", type=Path, help="also write the receipt and verdict as one web page")
    v.set_defaults(words=("receipt", "verify"))


COMMANDS: dict[tuple[str, ...], Callable[[argparse.Namespace], int]] = {
    ("receipt", "issue"): run_issue,
    ("receipt", "verify"): run_verify,
}
