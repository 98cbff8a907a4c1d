"""``smpc chain verify`` and ``smpc chain show``: check and read a member's chain store.

Both open the store read-only and read the genesis from ``--genesis`` (or take
both from a member's ``--config``: its genesis, and ``<config folder>/<name>/chain.db``).
``verify`` checks every block from the genesis against the current clock and
exits 0 when the chain is valid, 1 with the height, field and reason of the
first fault otherwise. ``show`` lists the blocks and their records without
verifying them; run ``verify`` before trusting what it prints.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from parties.config import load_config
from parties.ledger.chain_node import CHAIN_DB_FILE
from parties.ledger.chain_store import SqliteChainStore
from parties.ledger.genesis import load_genesis
from parties.ledger.job_check import job_check
from smpc.chain.checkpoint import CheckpointError, check_checkpoint, make_checkpoint
from smpc.chain.errors import ChainEncodingError, ChainVerificationError, RecordError
from smpc.chain.genesis import AuthorityKey, Genesis
from smpc.chain.records import AuthorityVote, ConsentRecord, JobRecord, decode_record
from smpc.chain.store import SealedBlock
from smpc.chain.verify import ChainState, replay

HASH_PREFIX = 12
"""Hex digits of a hash that ``show`` prints (the JSON has them all)."""

EXIT_INVALID = 1
"""Exit status of ``verify`` for a chain that breaks a rule (as for any other failure)."""
EXIT_USAGE = 2
"""Exit status when neither ``--db`` and ``--genesis`` nor ``--config`` are given."""


def verify(args: argparse.Namespace) -> int:
    """``smpc chain verify``: check the store from the genesis; 0 if valid."""
    sources = _sources(args)
    if sources is None:
        return EXIT_USAGE
    db, genesis = sources
    try:
        state = _replayed(db, genesis)
    except ChainVerificationError as exc:
        print(
            f"smpc: chain {db} is invalid at height {exc.height}, field {exc.field}: {exc.reason}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    what = f"{state.height} blocks" if state.height else "genesis only"
    print(
        f"chain {db} is valid: {what}, head {state.head_hash.hex()[:HASH_PREFIX]}, "
        f"federation {genesis.federation!r}"
    )
    return 0


def show(args: argparse.Namespace) -> int:
    """``smpc chain show``: list blocks and their records (unverified)."""
    sources = _sources(args)
    if sources is None:
        return EXIT_USAGE
    db, genesis = sources
    with SqliteChainStore(db, readonly=True) as store:
        blocks = _describe(store.iterate(), genesis)
    if args.json:
        print(
            json.dumps(
                {
                    "federation": genesis.federation,
                    "genesis": genesis.hash().hex(),
                    "authorities": [a.name for a in genesis.authorities],
                    "verified": False,
                    "blocks": blocks,
                },
                sort_keys=True,
            )
        )
        return 0
    names = ", ".join(a.name for a in genesis.authorities)
    print(f"federation {genesis.federation!r}, genesis {genesis.hash().hex()[:HASH_PREFIX]}")
    print(f"authorities at genesis: {names}")
    print(f"{len(blocks)} blocks (not verified: run 'smpc chain verify')")
    for b in blocks:
        print(
            f"{b['height']:>7}  {b['hash'][:HASH_PREFIX]}  {b['proposer_name']} "
            f"({b['proposer']})  round {b['round']}  {b['time']}  "
            f"{len(b['records'])} records  {len(b['seals'])} seals"
        )
        for r in b["records"]:
            print(f"           {_record_line(r)}")
    return 0


def checkpoint(args: argparse.Namespace) -> int:
    """``smpc chain checkpoint``: verify the store, then write its head's signed checkpoint."""
    sources = _sources(args)
    if sources is None:
        return EXIT_USAGE
    db, genesis = sources
    try:
        state = _replayed(db, genesis)
    except ChainVerificationError as exc:
        print(f"smpc: chain {db} is invalid: {exc}; no checkpoint written", file=sys.stderr)
        return EXIT_INVALID
    timestamp_ms = None
    if args.height is not None:
        with SqliteChainStore(db, readonly=True) as store:
            entry = store.get(args.height)
        timestamp_ms = None if entry is None else entry.block.timestamp_ms
    try:
        made = make_checkpoint(state, args.height, timestamp_ms)
        text = json.dumps(made, indent=2, sort_keys=True)
    except CheckpointError as exc:
        print(f"smpc: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text + "\n", encoding="utf-8")
        print(f"checkpoint of block {made['height']} written to {args.out}")
    return 0


def check(args: argparse.Namespace) -> int:
    """``smpc chain check-checkpoint FILE``: check a checkpoint's seals (no chain needed)."""
    genesis = load_genesis(args.genesis) if args.genesis is not None else None
    try:
        data = json.loads(args.file.read_text(encoding="utf-8"))
        verdict = check_checkpoint(data, genesis)
    except (OSError, json.JSONDecodeError, CheckpointError) as exc:
        print(f"smpc: checkpoint {args.file} is not valid: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"checkpoint {args.file} is valid: {verdict}")
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The arguments of ``chain verify``, ``show``, ``checkpoint`` and ``check-checkpoint``."""
    group = commands.add_parser("chain", help="check and read the chain store")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    v = actions.add_parser("verify", help="check a chain store from its genesis")
    s = actions.add_parser("show", help="list the blocks and records of a chain store")
    s.add_argument("--json", action="store_true", help="print machine-readable JSON")
    c = actions.add_parser("checkpoint", help="write a signed checkpoint of the verified head")
    c.add_argument("--out", type=Path, help="write it to this file (default: print it)")
    c.add_argument("--height", type=int, help="of this block instead of the head")
    k = actions.add_parser("check-checkpoint", help="check a checkpoint's seals")
    k.add_argument("file", type=Path, help="the checkpoint JSON file")
    k.add_argument("--genesis", type=Path, help="the federation's genesis.json, to compare")
    k.set_defaults(words=("chain", "check-checkpoint"))
    for word, parser in (("verify", v), ("show", s), ("checkpoint", c)):
        parser.add_argument("--config", type=Path, help="a member's TOML config (db and genesis)")
        parser.add_argument("--db", type=Path, help="the chain store (SQLite file)")
        parser.add_argument("--genesis", type=Path, help="the federation's genesis.json")
        parser.set_defaults(words=("chain", word))


COMMANDS: dict[tuple[str, ...], Callable[[argparse.Namespace], int]] = {
    ("chain", "verify"): verify,
    ("chain", "show"): show,
    ("chain", "checkpoint"): checkpoint,
    ("chain", "check-checkpoint"): check,
}


# -- helpers ----------------------------------------------------------------------


def _sources(args: argparse.Namespace) -> tuple[Path, Genesis] | None:
    """The store path and the genesis named by the arguments; None (after a message) if not."""
    db: Path | None = args.db
    genesis: Path | None = args.genesis
    if args.config is not None:
        member = load_config(args.config)
        db = db or member.home / CHAIN_DB_FILE
        genesis = genesis or member.genesis
    if db is None or genesis is None:
        print(
            f"smpc chain {args.words[1]}: error: give --db and --genesis, "
            "or --config with a member's TOML config",
            file=sys.stderr,
        )
        return None
    return db, load_genesis(genesis)


def _replayed(db: Path, genesis: Genesis) -> ChainState:
    """The state after verifying every block of the store at ``db`` from ``genesis``.

    replay is verify_chain without conflicting blocks, and it returns the state
    verified, so the head a command reports is the head it checked.
    """
    with SqliteChainStore(db, readonly=True) as store:
        return replay(store, genesis, _now_ms(), jobs=job_check(genesis))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _iso(ms: int) -> str:
    when = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _describe(entries: Iterable[SealedBlock], genesis: Genesis) -> list[dict[str, Any]]:
    # Names of proposers follow the authority set in force, which votes change
    # from the block after the one holding them; the votes are not checked here.
    members: list[AuthorityKey] = list(genesis.authorities)
    blocks: list[dict[str, Any]] = []
    for entry in entries:
        block = entry.block
        records = [_record(data) for data in block.records]
        proposer = members[block.proposer].name if block.proposer < len(members) else "?"
        blocks.append(
            {
                "height": block.height,
                "hash": block.hash().hex(),
                "parent": block.parent.hex(),
                "proposer": block.proposer,
                "proposer_name": proposer,
                "round": block.round,
                "timestamp_ms": block.timestamp_ms,
                "time": _iso(block.timestamp_ms),
                "records": records,
                "seals": [s.authority for s in entry.seals],
            }
        )
        apply_votes(members, entry)
    return blocks


def apply_votes(members: list[AuthorityKey], entry: SealedBlock) -> None:
    """Change ``members`` by the authority votes in ``entry`` (not checked: see chain verify)."""
    for data in entry.block.records:
        try:
            record = decode_record(data)
        except (ChainEncodingError, RecordError):
            continue
        if isinstance(record, AuthorityVote):
            key = AuthorityKey(record.name, record.public_key)
            if record.action == "add" and key not in members:
                members.append(key)
            elif record.action == "remove" and key in members:
                members.remove(key)


def _record(data: bytes) -> dict[str, Any]:
    try:
        record = decode_record(data)
    except (ChainEncodingError, RecordError) as exc:
        return {"kind": "undecodable", "error": str(exc)}
    if isinstance(record, JobRecord):
        return {
            "kind": "job",
            "job_id": record.job_id,
            "protocol": f"{record.protocol} {record.protocol_version}",
            "parties": [p.name for p in record.parties],
            "status": record.status,
            "failure": None
            if record.failure is None
            else {"party": record.failure.party, "kind": record.failure.kind},
        }
    if isinstance(record, ConsentRecord):
        return {
            "kind": "consent",
            "action": record.action,
            "hospital": record.hospital,
            "scope": record.scope,
            "time": _iso(record.time_ms),
        }
    if isinstance(record, AuthorityVote):
        return {
            "kind": "vote",
            "action": record.action,
            "name": record.name,
            "epoch": record.epoch,
            "votes": len(record.votes),
        }
    return {"kind": type(record).__name__}


def _record_line(r: dict[str, Any]) -> str:
    if r["kind"] == "job":
        line = (
            f"job {r['job_id']}  {r['protocol']}  {r['status']}  parties {','.join(r['parties'])}"
        )
        if r["failure"] is not None:
            line += f"  ({r['failure']['kind']}, blamed {r['failure']['party']})"
        return line
    if r["kind"] == "consent":
        return f"consent {r['action']}  {r['hospital']}  scope {r['scope']}  {r['time']}"
    if r["kind"] == "vote":
        return f"vote {r['action']} {r['name']}  epoch {r['epoch']}  {r['votes']} votes"
    return f"{r['kind']}: {r.get('error', '')}"
