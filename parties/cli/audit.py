"""``smpc audit JOB_ID``: read one job's record and check what can be checked from it.

The record is looked up in the member's chain store (final blocks) and then
among its pending records. Checks, each failure a *fault* naming the party,
the channel and the field:

- the signed job in the record hashes to the job id and names its protocol;
- a finished job's output digest is the digest of the parties' signed tags;
- every contribution's signature verifies against the party's chain key in
  the genesis (a member without one, such as a model owner, is a *note*);
- for every channel i -> j, what i hashed as sent equals what j hashed as
  received (for an aborted job messages may have been in flight, so there a
  difference is a note), and every party of a finished job contributed;
- every hospital known to keep a patient column (this member when its
  config names one, and every hospital with consent records) commits, in its
  signed contribution, to the patients whose rows it used;
- where this member kept its own notes on the job, its hashes, input
  commitment and patients commitment in the record are the ones it kept.

Exit status 0 when there is no fault, 1 when there is one (or the record is
missing or malformed), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from parties.cli.chain import apply_votes
from parties.config import MemberConfig, load_config
from parties.jobs.spec import JobFormatError, JobSpec, SignedJob
from parties.ledger.chain_node import CHAIN_DB_FILE
from parties.ledger.chain_store import SqliteChainStore
from parties.ledger.genesis import load_genesis
from parties.ledger.record_store import RECORDS_DB_FILE, RecordStore, records_path
from smpc.chain.errors import ChainEncodingError, ChainError, RecordError
from smpc.chain.genesis import AuthorityKey, Genesis
from smpc.chain.keys import signature_valid
from smpc.chain.records import ConsentRecord, JobRecord, decode_record

EXIT_FAULT = 1
EXIT_USAGE = 2
_JOB_ID = re.compile(r"[0-9a-f]{64}")


class AuditError(ChainError):
    """The record to audit cannot be found or read; the message says which and where."""


@dataclass(frozen=True)
class Finding:
    """One result of the audit: a fault (the record is wrong) or a note (worth knowing)."""

    severity: str
    field: str
    message: str
    party: str | None = None
    channel: str | None = None

    def line(self) -> str:
        where = [f"party {self.party}"] if self.party else []
        where += [f"channel {self.channel}"] if self.channel else []
        where.append(f"field {self.field}")
        return f"{self.severity}: {', '.join(where)}: {self.message}"


@dataclass(frozen=True)
class Found:
    """A job's record and where it was: ``block`` is its height, or None while pending."""

    record: JobRecord
    block: int | None


def find_record(job_id: str, chain_db: Path | None, records_db: Path | None) -> Found:
    """The record of ``job_id`` in the final blocks, else among the pending records."""
    looked: list[str] = []
    if chain_db is not None and chain_db.is_file():
        looked.append(str(chain_db))
        with SqliteChainStore(chain_db, readonly=True) as store:
            for entry in store.iterate():
                for data in entry.block.records:
                    try:
                        record = decode_record(data)
                    except (ChainEncodingError, RecordError):
                        continue  # `smpc chain verify` names undecodable records
                    if isinstance(record, JobRecord) and record.job_id == job_id:
                        return Found(record, entry.block.height)
    if records_db is not None and records_db.is_file():
        looked.append(str(records_db))
        with RecordStore(records_db, readonly=True) as store:
            pending = store.job_record(job_id)
        if pending is not None:
            try:
                record = decode_record(pending)
            except (ChainEncodingError, RecordError) as exc:
                raise AuditError(
                    f"the pending record of job {job_id} is malformed: {exc}"
                ) from None
            if not isinstance(record, JobRecord) or record.job_id != job_id:
                raise AuditError(f"the pending record filed under job {job_id} is not its record")
            return Found(record, None)
    where = ", ".join(looked) or "no chain store or records file exists yet"
    raise AuditError(f"no record of job {job_id} ({where})")


def wait_for_record(member: MemberConfig, job_id: str, timeout: float = 30.0) -> JobRecord:
    """The record ``member`` keeps of ``job_id``, final or pending, once it exists.

    An aborted job's record is assembled after the reply, so a caller that
    has just seen the failure may have to wait for it.
    """
    end = time.monotonic() + timeout
    while True:
        try:
            return find_record(job_id, member.home / CHAIN_DB_FILE, records_path(member)).record
        except AuditError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def audit(
    record: JobRecord,
    genesis: Genesis,
    notes: dict[str, Any] | None,
    patient_hospitals: frozenset[str] = frozenset(),
    keys: dict[str, bytes] | None = None,
) -> list[Finding]:
    """Every fault and note of ``record``, checked against the genesis and this member's notes.

    ``patient_hospitals`` are the hospitals known to have a patient column:
    each one's contribution must carry its (signed) patients commitment.
    ``keys`` are the chain keys of the authorities in force for the record
    (:func:`authority_keys`); the genesis authorities by default.
    """
    findings: list[Finding] = []
    fault = _adder(findings, "fault")
    note = _adder(findings, "note")
    _check_job(record, fault)
    if not record.digest_matches_tags():
        fault("output_digest", "is not the digest of the parties' signed output tags")
    if keys is None:
        keys = {a.name: a.public_key for a in genesis.authorities}
    for c in record.contributions:
        key = keys.get(c.party)
        if key is None:
            if c.signature == b"":
                note("signature", "unsigned: the party is not a chain authority", c.party)
            else:
                note("signature", "signed, but the party is not a chain authority", c.party)
        elif not signature_valid(key, c.signature, record.signing_message(c.party)):
            fault("signature", "does not verify against the party's chain key", c.party)
    by_party = {c.party: c for c in record.contributions}
    finished = record.status == "finished"
    for p in record.parties:
        if p.name not in by_party:
            (fault if finished else note)("contributions", "no contribution", p.name)
    for i in by_party.values():
        sent = dict(i.sent)
        for j in by_party.values():
            if i.party == j.party:
                continue
            channel = f"{i.party} -> {j.party}"
            mine, theirs = sent.get(j.party), dict(j.received).get(i.party)
            if mine is None:
                fault("sent", "no hash for this channel", i.party, channel)
            elif theirs is None:
                fault("received", "no hash for this channel", j.party, channel)
            elif mine != theirs:
                message = f"{i.party} hashed as sent {mine[:12]}..., {j.party} as received "
                message += f"{theirs[:12]}..."
                if finished:
                    fault("sent/received", message, i.party, channel)
                else:
                    note(
                        "sent/received",
                        message + " (aborted: it may have been in flight)",
                        i.party,
                        channel,
                    )
    for name in sorted(patient_hospitals & by_party.keys()):
        if not by_party[name].patients:
            fault("patients", "no commitment to the patients whose rows it used", name)
        elif name not in keys:
            fault("patients", "the commitment is not signed with a chain key", name)
    if notes is not None:
        _check_notes(by_party, notes, fault, note)
    return findings


def authority_keys(chain_db: Path | None, genesis: Genesis, block: int | None) -> dict[str, bytes]:
    """The chain keys of the authorities in force for ``block`` (None: after the head).

    The genesis set, changed by the votes of the blocks before it.
    """
    members: list[AuthorityKey] = list(genesis.authorities)
    if chain_db is not None and chain_db.is_file():
        with SqliteChainStore(chain_db, readonly=True) as store:
            for entry in store.iterate():
                if block is not None and entry.block.height >= block:
                    break
                apply_votes(members, entry)
    return {a.name: a.public_key for a in members}


def patient_hospitals(chain_db: Path | None, records_db: Path | None) -> set[str]:
    """Hospitals with consent records (final or pending here): they have a patient column."""
    found: list[bytes] = []
    if chain_db is not None and chain_db.is_file():
        with SqliteChainStore(chain_db, readonly=True) as store:
            found += [data for entry in store.iterate() for data in entry.block.records]
    if records_db is not None and records_db.is_file():
        with RecordStore(records_db, readonly=True) as store:
            found += [data for _, data in store.pending(ConsentRecord.KIND)]
    names = set()
    for data in found:
        try:
            record = decode_record(data)
        except (ChainEncodingError, RecordError):
            continue  # `smpc chain verify` names undecodable records
        if isinstance(record, ConsentRecord):
            names.add(record.hospital)
    return names


def _adder(findings: list[Finding], severity: str) -> Callable[..., None]:
    def add(field: str, message: str, party: str | None = None, channel: str | None = None) -> None:
        findings.append(Finding(severity, field, message, party, channel))

    return add


def _check_job(record: JobRecord, fault: Callable[..., None]) -> None:
    try:
        signed = SignedJob.from_json(record.signed_job)
        spec = JobSpec.from_json(signed.spec_bytes)
    except (JobFormatError, UnicodeDecodeError) as exc:
        fault("signed_job", f"is not a signed job: {exc}")
        return
    if signed.job_id != record.job_id:
        fault("signed_job", f"hashes to job {signed.job_id}, not {record.job_id}")
    if (spec.protocol, spec.protocol_version) != (record.protocol, record.protocol_version):
        fault("protocol", f"the signed job names {spec.protocol} {spec.protocol_version}")
    if tuple(spec.parties) != tuple(p.name for p in record.parties):
        fault("parties", "differ from the parties of the signed job")


def _check_notes(
    by_party: dict[str, Any],
    notes: dict[str, Any],
    fault: Callable[..., None],
    note: Callable[..., None],
) -> None:
    me = notes.get("party")
    c = by_party.get(me) if isinstance(me, str) else None
    if c is None:
        note("contributions", "this member kept notes on the job but has no contribution", me)
        return
    if c.input_commitment.hex() != notes.get("input_commitment"):
        fault("input_commitment", "differs from the commitment this member kept", me)
    for label, view in (("sent", dict(c.sent)), ("received", dict(c.received))):
        kept = notes.get(label, {})
        for peer in sorted(set(kept) | set(view)):
            if kept.get(peer) != view.get(peer):
                channel = f"{me} -> {peer}" if label == "sent" else f"{peer} -> {me}"
                fault(label, "differs from the hash this member kept", me, channel)
    if notes.get("patients", "") != c.patients.hex():
        fault("patients", "differs from the patients commitment this member kept", me)


def describe(found: Found, findings: list[Finding]) -> dict[str, Any]:
    """The record and the findings, as JSON-ready data."""
    r = found.record
    return {
        "job": r.job_id,
        "block": found.block,
        "pending": found.block is None,
        "protocol": r.protocol,
        "protocol_version": r.protocol_version,
        "status": r.status,
        "failure": None
        if r.failure is None
        else {"party": r.failure.party, "kind": r.failure.kind},
        "parties": [{"name": p.name, "role": p.role} for p in r.parties],
        "outputs": {name: list(to) for name, to in r.outputs},
        "output_digest": r.output_digest.hex(),
        "contributions": [
            {
                "party": c.party,
                "input_commitment": c.input_commitment.hex(),
                "sent": dict(c.sent),
                "received": dict(c.received),
                "signature": c.signature.hex(),
                "patients": c.patients.hex(),
            }
            for c in r.contributions
        ],
        "findings": [asdict(f) for f in findings],
        "ok": not any(f.severity == "fault" for f in findings),
    }


def run(args: argparse.Namespace) -> int:
    """``smpc audit JOB_ID``."""
    job_id: str = args.job
    if _JOB_ID.fullmatch(job_id) is None:
        print(
            f"smpc audit: error: {job_id!r} is not a job id (64 lowercase hex digits)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    chain_db, records_db, genesis_path = args.db, args.records, args.genesis
    if args.config is not None:
        member = load_config(args.config)
        home = member.home
        chain_db = chain_db or home / CHAIN_DB_FILE
        records_db = records_db or home / RECORDS_DB_FILE
        genesis_path = genesis_path or member.genesis
    if genesis_path is None or (chain_db is None and records_db is None):
        print(
            "smpc audit: error: give --config with a member's TOML config, or --genesis with"
            " --db and/or --records",
            file=sys.stderr,
        )
        return EXIT_USAGE
    genesis = load_genesis(genesis_path)
    with_patients = patient_hospitals(chain_db, records_db)
    if args.config is not None and member.data.patient_id is not None:
        with_patients.add(member.name)
    try:
        found = find_record(job_id, chain_db, records_db)
    except AuditError as exc:
        print(f"smpc audit: {exc}", file=sys.stderr)
        return EXIT_FAULT
    notes = None
    if records_db is not None and records_db.is_file():
        with RecordStore(records_db, readonly=True) as store:
            notes = store.notes(job_id)
    keys = authority_keys(chain_db, genesis, found.block)
    findings = audit(found.record, genesis, notes, frozenset(with_patients), keys)
    report = describe(found, findings)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        _print(report, notes is not None)
    faults = [f for f in findings if f.severity == "fault"]
    for f in faults:
        print(f"smpc audit: job {job_id}: {f.line()}", file=sys.stderr)
    return EXIT_FAULT if faults else 0


def _print(report: dict[str, Any], with_notes: bool) -> None:
    where = "pending (not in a block yet)" if report["pending"] else f"block {report['block']}"
    print(f"job {report['job']}  {where}")
    print(f"protocol {report['protocol']} {report['protocol_version']}, {report['status']}")
    if report["failure"] is not None:
        print(f"failure: {report['failure']['kind']} (blamed {report['failure']['party']})")
    print("parties: " + ", ".join(f"{p['name']} ({p['role']})" for p in report["parties"]))
    for name, to in report["outputs"].items():
        print(f"output {name} revealed to {', '.join(to)}")
    if report["output_digest"]:
        print(f"output digest {report['output_digest']}")
    for c in report["contributions"]:
        signed = "signed" if c["signature"] else "unsigned"
        print(f"  {c['party']}: input commitment {c['input_commitment'][:16]}..., {signed}")
        if c["patients"]:
            print(f"    patients commitment {c['patients'][:16]}...")
        for label, view in (("sent to", c["sent"]), ("received from", c["received"])):
            for peer, digest in sorted(view.items()):
                print(f"    {label} {peer}: {digest[:16]}...")
    for f in report["findings"]:
        print(Finding(**f).line())
    kept = "; checked against this member's own notes" if with_notes else ""
    verdict = "passed" if report["ok"] else "FAILED"
    print(f"audit {verdict}: {len(report['contributions'])} contributions{kept}")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The arguments of ``audit``."""
    p = commands.add_parser("audit", help="check a job's record: signatures and transcripts")
    p.add_argument("job", metavar="JOB_ID", help="the job id (64 hex digits)")
    p.add_argument("--config", type=Path, help="a member's TOML config (its stores and genesis)")
    p.add_argument("--db", type=Path, help="the chain store (SQLite file)")
    p.add_argument("--records", type=Path, help="the member's records file (pending records)")
    p.add_argument("--genesis", type=Path, help="the federation's genesis.json")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(words=("audit",))


COMMANDS: dict[tuple[str, ...], Callable[[argparse.Namespace], int]] = {("audit",): run}
