"""``smpc authority add|remove``: sign a change of the authority set, and file it once voted.

Each hospital runs it with its own config on the same vote file: the first
run writes the vote (action, name, public key, and the epoch of the set in
force, read from this hospital's verified chain), each run adds the
hospital's Ed25519 signature. Once the signatures of ceil(2n/3) current
authorities are in, the run that completes the quorum files the vote as a
pending record in its records file; its node proposes it like any other.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from parties.config import load_config
from parties.ledger.chain_node import CHAIN_DB_FILE
from parties.ledger.chain_store import SqliteChainStore
from parties.ledger.genesis import load_genesis
from parties.ledger.job_check import job_check
from parties.ledger.record_store import RecordStore, records_path
from smpc.chain.block import quorum
from smpc.chain.errors import ChainError
from smpc.chain.keys import load_private_key, public_bytes
from smpc.chain.records import VOTE_ACTIONS, AuthorityVote, Vote
from smpc.chain.verify import ChainState, replay

EXIT_FAULT = 1


class VoteError(ChainError, ValueError):
    """A vote cannot be signed or filed; the message says what to change."""


def _load(path: Path, wanted: AuthorityVote) -> AuthorityVote:
    """The vote kept at ``path`` (or ``wanted`` unsigned, if there is none); it must agree."""
    if not path.exists():
        return wanted
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        kept = AuthorityVote(
            data["action"],
            data["name"],
            bytes.fromhex(data["public_key"]),
            int(data["epoch"]),
            tuple(
                Vote(bytes.fromhex(v["voter"]), bytes.fromhex(v["signature"]))
                for v in data["votes"]
            ),
        )
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise VoteError(f"{path} is not a vote file: {exc}") from None
    if kept.signing_message() != wanted.signing_message():
        raise VoteError(
            f"{path} holds a vote to {kept.action} {kept.name} at epoch {kept.epoch}, not this"
            " one; use another file"
        )
    return kept


def _dump(vote: AuthorityVote) -> str:
    return json.dumps(
        {
            "action": vote.action,
            "name": vote.name,
            "public_key": vote.public_key.hex(),
            "epoch": vote.epoch,
            "votes": [{"voter": v.voter.hex(), "signature": v.signature.hex()} for v in vote.votes],
        },
        indent=2,
        sort_keys=True,
    )


def run(args: argparse.Namespace) -> int:
    """``smpc authority add|remove``."""
    member = load_config(args.config)
    try:
        if member.role != "hospital" or member.chain_key is None:
            raise VoteError(f"{member.name} is not a hospital; authorities are hospitals")
        try:
            public_key = bytes.fromhex(args.public_key)
        except ValueError:
            raise VoteError("--public-key must be the raw Ed25519 key in hex") from None
        genesis = load_genesis(member.genesis)
        state = ChainState.start(genesis)
        if (member.home / CHAIN_DB_FILE).is_file():
            with SqliteChainStore(member.home / CHAIN_DB_FILE, readonly=True) as store:
                now = time.time_ns() // 1_000_000
                state = replay(store, genesis, now, jobs=job_check(genesis))
        wanted = AuthorityVote(args.words[1], args.name, public_key, state.epoch, ())
        vote = _load(args.file, wanted)
        key = load_private_key(member.chain_key.read_bytes())
        me = public_bytes(key)
        current = {a.public_key for a in state.authorities}
        if me not in current:
            raise VoteError(f"{member.name}'s chain key is not in the authority set in force")
        votes = {v.voter: v for v in vote.votes}
        votes[me] = Vote(me, key.sign(vote.signing_message()))
        vote = AuthorityVote(
            vote.action,
            vote.name,
            vote.public_key,
            vote.epoch,
            tuple(sorted(votes.values(), key=lambda v: v.voter)),
        )
        valid = vote.valid_voters() & current
        need = quorum(len(current))
        args.file.write_text(_dump(vote) + "\n", encoding="utf-8")
        if len(valid) < need:
            print(
                f"{member.name} signed the vote to {vote.action} {vote.name} (epoch {vote.epoch});"
                f" {len(valid)} of the {need} signatures needed; pass {args.file} on"
            )
            return 0
        with RecordStore(records_path(member)) as records:
            filed = records.add_pending(vote)
        state_of = "filed as a pending record" if filed else "already pending here"
        print(
            f"the vote to {vote.action} {vote.name} has {len(valid)} of the {need} signatures"
            f" needed: {state_of} at {member.name}"
        )
        return 0
    except (ChainError, OSError) as exc:
        print(f"smpc authority {args.words[1]}: {exc}", file=sys.stderr)
        return EXIT_FAULT


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The arguments of ``authority add`` and ``authority remove``."""
    group = commands.add_parser("authority", help="vote to change the chain's authority set")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in VOTE_ACTIONS:
        p = actions.add_parser(action, help=f"sign a vote to {action} an authority")
        p.add_argument("--config", required=True, type=Path, help="this hospital's TOML config")
        p.add_argument("--name", required=True, help="the hospital's name")
        p.add_argument("--public-key", required=True, help="its Ed25519 chain key, raw, in hex")
        p.add_argument("--file", required=True, type=Path, help="the vote file passed around")
        p.set_defaults(words=("authority", action))


COMMANDS: dict[tuple[str, ...], Callable[[argparse.Namespace], int]] = {
    ("authority", action): run for action in VOTE_ACTIONS
}
