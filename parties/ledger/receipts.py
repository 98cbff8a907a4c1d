"""A patient's receipt: for every job at one hospital, whether their row was in it, with proof.

A hospital issues the receipt (:func:`issue`) from its chain, its kept leaves
(:mod:`parties.ledger.patients`) and its consent secret. It covers a range of
final blocks, from the first stamped on or after a date to the head, and
accounts for every job record in it that names the hospital. For each it
lists the protocol, scope, analyst, time, status and outputs' recipients, and
whether the patient's leaf is among the leaves the hospital committed to in
its signed contribution to the job record, with a Merkle proof of membership
or of absence (:class:`smpc.chain.leafset.LeafSet`); a job to which the
hospital committed no patient set is listed as such. It carries each record,
the record's path to its block's Merkle root, and the headers of the range
(and of the block before it), so that :func:`verify` can check it against any
copy of the chain or a signed checkpoint alone; against a copy of the chain
it also checks that no job of the hospital in the range is missing. The
hospital signs the whole receipt with its chain key.

A receipt reveals, about other patients, only the number of patients the
hospital used in each job and the leaves of at most two buckets per job
(keyed permutations of patient keys under a per-job key that only the
hospital can compute, so they cannot be linked to a patient, a consent record
or another job); the job records it carries are already on the chain. It
names no identifier.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from parties.jobs.spec import JobFormatError, JobSpec, SignedJob
from parties.ledger.patients import JobPatients, patient_keys
from smpc.chain import leafset, patients
from smpc.chain.block import Block
from smpc.chain.encoding import Value, encode
from smpc.chain.errors import ChainEncodingError, ChainError, RecordError
from smpc.chain.genesis import Genesis
from smpc.chain.keys import signature_valid
from smpc.chain.merkle import inclusion_proof, verify_inclusion
from smpc.chain.records import Contribution, JobRecord, decode_record
from smpc.chain.store import ChainStore

FORMAT = "smpc-receipt-2"
_SIGN_DOMAIN = "smpc/receipt/v2"


class ReceiptError(ChainError, ValueError):
    """A receipt cannot be issued or does not verify; the message names what and where."""


# -- issuing ------------------------------------------------------------------------


def issue(
    *,
    hospital: str,
    key: Ed25519PrivateKey,
    genesis: Genesis,
    chain: ChainStore,
    kept: Callable[[str], JobPatients | None],
    secret: bytes,
    patient: str,
    since_ms: int = 0,
    pending: Iterable[str] = (),
    now_ms: int | None = None,
) -> dict[str, Any]:
    """The signed receipt for ``patient`` over every job of ``hospital`` since ``since_ms``.

    The receipt covers a range of final blocks: the first stamped at or after
    ``since_ms`` up to the chain's head. Every job record in it that names
    ``hospital`` among its parties is accounted for: with a proof (from the
    leaves ``kept`` returns for the job id) when the hospital committed to its
    patients, or under ``uncommitted`` when it did not. ``pending`` names jobs
    whose records the hospital still holds as pending; those not on the chain
    are listed under ``not_final``, with no proof. ReceiptError when the leaves of a committed
    job are missing or do not open its commitment: a receipt that skipped it
    would not be complete.
    """
    if not patient.strip():
        raise ReceiptError("the patient identifier is empty")
    pk = patient_keys(secret, [patient.strip()])[0].tobytes()
    head = chain.head()
    top = 0 if head is None else head.block.height
    first: int | None = None
    jobs: list[dict[str, Any]] = []
    uncommitted: list[dict[str, Any]] = []
    found: set[str] = set()
    for entry in chain.iterate():
        block = entry.block
        if block.timestamp_ms < since_ms:
            continue  # timestamps never go down, so the range is one run of blocks
        first = block.height if first is None else first
        for index, record in _job_records(block):
            if hospital not in {p.name for p in record.parties}:
                continue
            found.add(record.job_id)
            mine = _contribution(record, hospital)
            if mine is None or not mine.patients:
                uncommitted.append({"job": record.job_id, "block": block.height})
                continue
            k = kept(record.job_id)
            where = f"job {record.job_id[:12]} (block {block.height})"
            if k is None:
                raise ReceiptError(
                    f"{where}: {hospital} keeps no patient leaves for it, so no complete"
                    " receipt can be issued (restore patients.db from a backup)"
                )
            if k.commitment != mine.patients:
                raise ReceiptError(f"{where}: the kept leaves do not open the signed commitment")
            jobs.append(_job_entry(record, block, index, k, secret, pk))
    start = top + 1 if first is None else first
    low = max(start - 1, 1)  # the block before the range shows where the range starts
    headers = []
    for height in range(low, top + 1):
        sealed = chain.get(height)
        if sealed is None:
            raise ReceiptError(f"the chain store lacks block {height}")
        headers.append(encode(sealed.block.header_value()).hex())
    body: dict[str, Any] = {
        "format": FORMAT,
        "federation": genesis.federation,
        "genesis": genesis.hash().hex(),
        "hospital": hospital,
        "issued_ms": time.time_ns() // 1_000_000 if now_ms is None else now_ms,
        "since_ms": since_ms,
        "range": {"from_height": start, "to_height": top},
        "first_height": low if headers else 0,
        "headers": headers,
        "jobs": jobs,
        "uncommitted": uncommitted,
        "not_final": sorted(set(pending) - found),
    }
    body["signature"] = key.sign(_signing_message(body)).hex()
    return body


def _job_records(block: Block) -> Iterator[tuple[int, JobRecord]]:
    """The job records of ``block`` with their positions (other records skipped)."""
    for index, data in enumerate(block.records):
        try:
            record = decode_record(data)
        except (ChainEncodingError, RecordError):
            continue
        if isinstance(record, JobRecord):
            yield index, record


def _contribution(record: JobRecord, party: str) -> Contribution | None:
    return next((c for c in record.contributions if c.party == party), None)


def _job_entry(
    record: JobRecord, block: Block, index: int, k: JobPatients, secret: bytes, pk: bytes
) -> dict[str, Any]:
    leaf = patients.leaf(patients.job_key(secret, k.job, k.salt), pk)
    tree = leafset.LeafSet(k.leaves)
    proof = tree.prove(leaf)
    return {
        **_described(record),
        "included": proof.member,
        "block": {"height": block.height, "hash": block.hash().hex()},
        "record": block.records[index].hex(),
        "record_index": index,
        "block_records": len(block.records),
        "record_path": [h.hex() for h in inclusion_proof(block.records, index)],
        "salt": k.salt.hex(),
        "count": tree.count,
        "root": tree.root.hex(),
        "leaf": leaf.hex(),
        "buckets": [
            {"index": b.index, "leaves": b.leaves.hex(), "path": [h.hex() for h in b.path]}
            for b in proof.buckets
        ],
    }


def _described(record: JobRecord) -> dict[str, Any]:
    """What a receipt says of a job, all read from its record and the signed job in it."""
    try:
        spec = JobSpec.from_json(SignedJob.from_json(record.signed_job).spec_bytes)
    except (JobFormatError, UnicodeDecodeError) as exc:
        raise ReceiptError(f"job {record.job_id}: the record's signed job: {exc}") from None
    return {
        "job": record.job_id,
        "protocol": record.protocol,
        "protocol_version": record.protocol_version,
        "scope": spec.scope,
        "analyst": spec.analyst,
        "time_ms": spec.created_ms,
        "status": record.status,
        "outputs": {name: list(to) for name, to in record.outputs},
    }


def _signing_message(body: Mapping[str, Any]) -> bytes:
    content = {k: v for k, v in body.items() if k != "signature"}
    return encode([_SIGN_DOMAIN, cast(Value, content)])


def dumps(receipt: Mapping[str, Any]) -> str:
    """The receipt's one canonical text: any other bytes for the same receipt are refused."""
    return json.dumps(receipt, sort_keys=True, indent=1) + "\n"


# -- verifying ----------------------------------------------------------------------


@dataclass
class Verdict:
    """What verifying a receipt found: faults (it does not hold), what it proves, caveats.

    ``completeness`` says in words whether every job of the hospital in the
    receipt's range of blocks was found accounted for, or why that was not checked.
    """

    faults: list[str] = field(default_factory=list)
    proven: list[str] = field(default_factory=list)
    unanchored: list[str] = field(default_factory=list)
    completeness: str = ""
    complete: bool = False

    @property
    def ok(self) -> bool:
        return not self.faults


Anchor = Callable[[int, bytes, Mapping[int, Block]], str | None]
"""Given a block's (height, hash) and the receipt's headers: None if the chain (or checkpoint)
holds that block, the reason if it cannot tell; raises ReceiptError if it holds another."""


def loads(text: str) -> dict[str, Any]:
    """Parse a receipt file; ReceiptError if it is not exactly as issued."""
    try:
        receipt = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReceiptError(f"the file is not a receipt (not JSON: {exc})") from None
    if not isinstance(receipt, dict):
        raise ReceiptError("the file is not a receipt (not a JSON object)")
    if dumps(receipt) != text:
        raise ReceiptError("the file's bytes are not the receipt as issued (it was edited)")
    return receipt


def verify(
    receipt: Mapping[str, Any],
    genesis: Genesis,
    anchor: Anchor,
    *,
    chain: ChainStore | None = None,
    keys: Mapping[str, bytes] | None = None,
) -> Verdict:
    """Check every proof in ``receipt``; ``anchor`` ties the headers to a chain or checkpoint.

    With ``chain`` (a copy of the chain) it also checks that the receipt is
    complete: every job record naming the hospital in the receipt's range of
    blocks is listed, with a proof or as uncommitted. ``keys`` are the chain
    keys of the hospitals that may have issued it (default: the genesis
    authorities; a hospital voted in later is known from the chain's votes).
    """
    verdict = Verdict()
    try:
        known = keys if keys is not None else {a.name: a.public_key for a in genesis.authorities}
        headers = _verify(receipt, genesis, known, anchor, verdict)
        if chain is None:
            verdict.completeness = (
                "Completeness not checked: a checkpoint does not carry the blocks' records;"
                " verify against a copy of the chain to check that no job is missing"
            )
        else:
            _verify_complete(receipt, chain, headers, verdict)
    except (KeyError, TypeError, ValueError, ChainError) as exc:
        if not isinstance(exc, ReceiptError):
            exc = ReceiptError(f"malformed receipt: {type(exc).__name__}: {exc}")
        verdict.faults.append(str(exc))
    return verdict


def _hex(value: object, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise ReceiptError(f"{what} is not a hex string")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise ReceiptError(f"{what} is not hex") from None
    if size is not None and len(data) != size:
        raise ReceiptError(f"{what} is not {size} bytes")
    return data


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ReceiptError(f"{what} is not a non-negative integer")
    return value


def _verify(
    receipt: Mapping[str, Any],
    genesis: Genesis,
    keys: Mapping[str, bytes],
    anchor: Anchor,
    v: Verdict,
) -> dict[int, Block]:
    if receipt.get("format") != FORMAT:
        raise ReceiptError(f"format is {receipt.get('format')!r}, not {FORMAT}")
    if receipt.get("genesis") != genesis.hash().hex():
        raise ReceiptError("genesis: the receipt is of another federation's genesis")
    hospital = receipt["hospital"]
    if hospital not in keys:
        raise ReceiptError(
            f"hospital: {hospital!r} holds no chain key in the genesis or the chain's votes"
        )
    headers = _headers(receipt, v)
    start, top = _range(receipt, headers)
    for n, job in enumerate(receipt["jobs"]):
        where = f"job {n + 1} ({str(job.get('job', '?'))[:12]})"
        try:
            _verify_job(job, hospital, keys[hospital], headers, anchor, v)
            height = job["block"]["height"]
            if not start <= height <= top:
                raise ReceiptError(f"block: {height} is outside the range {start} to {top}")
        except (KeyError, TypeError, ValueError, ChainError) as exc:
            v.faults.append(f"{where}: {exc if isinstance(exc, ReceiptError) else repr(exc)}")
    signature = _hex(receipt.get("signature"), "signature")
    if not signature_valid(keys[hospital], signature, _signing_message(receipt)):
        v.faults.append(
            f"signature: {hospital}'s signature over the receipt does not verify"
            " (something was changed after it was issued)"
        )
    return headers


def _range(receipt: Mapping[str, Any], headers: Mapping[int, Block]) -> tuple[int, int]:
    """The receipt's range of blocks, checked against its date and headers."""
    since = _int(receipt["since_ms"], "since_ms")
    start = _int(receipt["range"]["from_height"], "range from_height")
    top = _int(receipt["range"]["to_height"], "range to_height")
    if not 1 <= start <= top + 1:
        raise ReceiptError(f"range: blocks {start} to {top} is not a range")
    for height in range(max(start - 1, 1), top + 1):
        if height not in headers:
            raise ReceiptError(f"range: the receipt lacks the header of block {height}")
    if start <= top and headers[start].timestamp_ms < since:
        raise ReceiptError(f"range: block {start} is from before the date the receipt starts at")
    if start > 1 and headers[start - 1].timestamp_ms >= since:
        raise ReceiptError(f"range: block {start - 1} is from the date on but left out")
    return start, top


def _verify_complete(
    receipt: Mapping[str, Any], chain: ChainStore, headers: Mapping[int, Block], v: Verdict
) -> None:
    """Every job record naming the hospital in the range is listed; faults name those missing."""
    before = len(v.faults)
    hospital = receipt["hospital"]
    start = receipt["range"]["from_height"]
    top = receipt["range"]["to_height"]
    listed = {str(j["job"]) for j in receipt["jobs"]}
    uncommitted = {str(u["job"]) for u in receipt["uncommitted"]}
    seen: set[str] = set()
    checked_to = top
    for height in range(start, top + 1):
        entry = chain.get(height)
        if entry is None:
            checked_to = height - 1
            break
        if entry.block.hash() != headers[height].hash():
            raise ReceiptError(f"range: this chain holds another block at height {height}")
        for _, record in _job_records(entry.block):
            if hospital not in {p.name for p in record.parties}:
                continue
            seen.add(record.job_id)
            where = f"job {record.job_id[:12]} (block {height})"
            mine = _contribution(record, hospital)
            if record.job_id in listed:
                continue
            if record.job_id not in uncommitted:
                v.faults.append(
                    f"{where}: missing: {hospital} took part in it, but the receipt does not"
                    " account for it"
                )
            elif mine is not None and mine.patients:
                v.faults.append(
                    f"{where}: listed as uncommitted, but {hospital} committed to its patients:"
                    " its proof is missing"
                )
    for job in sorted(uncommitted - seen):
        v.faults.append(f"job {job[:12]}: listed as uncommitted, but not in the range")
    if len(v.faults) > before:
        return
    if checked_to < start:
        v.completeness = (
            f"Completeness not checked: this chain has none of blocks {start} to {top} yet"
        )
        return
    v.complete = checked_to == top
    ranged = f"in blocks {start} to {checked_to}"
    since = receipt["since_ms"]
    if since:
        ranged += f" (from {dt.datetime.fromtimestamp(since / 1000, dt.UTC):%Y-%m-%d %H:%M} UTC)"
    v.completeness = (
        f"Complete: {hospital} took part in {len(seen)} jobs {ranged}, and the receipt"
        f" accounts for every one: {len(seen & listed)} with a proof,"
        f" {len(seen & uncommitted)} to which {hospital} committed no patient set"
    )
    if checked_to < top:
        v.completeness += f"; this chain has no block after {checked_to}, so later ones unchecked"


def _headers(receipt: Mapping[str, Any], v: Verdict) -> dict[int, Block]:
    first = _int(receipt["first_height"], "first_height")
    out: dict[int, Block] = {}
    previous: Block | None = None
    for n, text in enumerate(receipt["headers"]):
        height = first + n
        data = _hex(text, f"header {height}")
        try:
            block = Block.decode_header(data)
        except (ChainEncodingError, KeyError, TypeError) as exc:
            raise ReceiptError(f"header {height} is not a block header: {exc}") from None
        if block.height != height:
            raise ReceiptError(f"header {height} is not the canonical header of block {height}")
        if previous is not None and block.parent != previous.hash():
            raise ReceiptError(f"header {height} does not name block {height - 1} as its parent")
        out[height] = previous = block
    return out


def _verify_job(
    job: Mapping[str, Any],
    hospital: str,
    key: bytes,
    headers: Mapping[int, Block],
    anchor: Anchor,
    v: Verdict,
) -> None:
    data = _hex(job["record"], "record")
    try:
        record = decode_record(data)
    except (ChainEncodingError, RecordError) as exc:
        raise ReceiptError(f"record: not a job record: {exc}") from None
    if not isinstance(record, JobRecord):
        raise ReceiptError("record: not a job record")
    for name, value in _described(record).items():
        if job.get(name) != value:
            raise ReceiptError(f"{name}: the receipt says {job.get(name)!r}, the record {value!r}")
    if hospital not in {c.party for c in record.contributions}:
        raise ReceiptError(f"record: {hospital} did not contribute to it")
    mine = record.contribution(hospital)
    if not signature_valid(key, mine.signature, record.signing_message(hospital)):
        raise ReceiptError(f"record: {hospital}'s contribution is not signed by its chain key")
    salt = _hex(job["salt"], "salt", patients.SALT_SIZE)
    count = _int(job["count"], "count")
    root = _hex(job["root"], "root", 32)
    if not mine.patients or mine.patients != patients.commitment(salt, count, root):
        raise ReceiptError(
            f"salt/count/root: do not open {hospital}'s signed patients commitment in the record"
        )
    included = job["included"]
    if not isinstance(included, bool):
        raise ReceiptError("included: not true or false")
    shown = tuple(
        leafset.Bucket(
            _int(b["index"], "bucket index"),
            _hex(b["leaves"], "bucket leaves"),
            tuple(_hex(h, "bucket path", 32) for h in b["path"]),
        )
        for b in job["buckets"]
    )
    proof = leafset.LeafProof(_hex(job["leaf"], "leaf", patients.LEAF_SIZE), count, included, shown)
    problem = leafset.verify(proof, root)
    if problem is not None:
        kind = "inclusion" if included else "exclusion"
        raise ReceiptError(f"included/leaf/buckets: the {kind} proof fails: {problem}")
    height = _int(job["block"]["height"], "block height")
    block_hash = _hex(job["block"]["hash"], "block hash", 32)
    header = headers.get(height)
    if header is None or header.hash() != block_hash:
        raise ReceiptError(f"block: no header of block {height} with that hash in the receipt")
    path = [_hex(h, "record_path", 32) for h in job["record_path"]]
    size = _int(job["block_records"], "block_records")
    if not verify_inclusion(
        data, _int(job["record_index"], "record_index"), size, path, header.merkle_root
    ):
        raise ReceiptError(f"record_path: the record is not in block {height}")
    missing = anchor(height, block_hash, headers)
    words = (
        f"{record.protocol} {record.protocol_version} job {record.job_id[:12]} (scope"
        f" {job['scope']}, analyst {job['analyst']}, {record.status}, block {height}):"
        f" the patient's row was {'' if included else 'not '}among the"
        f" {count} patients {hospital} committed to"
    )
    (v.unanchored if missing else v.proven).append(words if not missing else f"{words}; {missing}")


def chain_anchor(chain: ChainStore) -> Anchor:
    """Anchor blocks in a chain store: it must hold each block, with the same hash."""

    def anchor(height: int, block_hash: bytes, headers: Mapping[int, Block]) -> str | None:
        entry = chain.get(height)
        if entry is None:
            return f"this chain has no block {height} yet"
        if entry.block.hash() != block_hash:
            raise ReceiptError(f"block: this chain holds another block at height {height}")
        return None

    return anchor


def checkpoint_anchor(height: int, block_hash: bytes) -> Anchor:
    """Anchor blocks in a checked checkpoint of block ``height`` with hash ``block_hash``.

    A block at or below the checkpoint is anchored when the receipt's headers
    lead from it to the checkpointed block; one above it is not covered.
    """

    def anchor(at: int, _hash: bytes, headers: Mapping[int, Block]) -> str | None:
        if at > height:
            return f"block {at} is after the checkpoint (block {height}): not covered by it"
        header = headers.get(height)
        if header is None:
            return f"the receipt's headers end before the checkpoint's block {height}"
        if header.hash() != block_hash:
            raise ReceiptError(f"headers: the checkpoint's block {height} is another block")
        return None

    return anchor
