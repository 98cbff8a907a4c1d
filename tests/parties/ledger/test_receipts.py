"""Patient receipts: issued from a chain and kept leaves, checked against a chain or checkpoint.

The chain here is built in memory from real job records (signed jobs from a
federation's analyst, contributions signed by the hospitals' chain keys), so
every check of :func:`parties.ledger.receipts.verify` runs as it would on a
hospital's copy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from parties.config import MemberConfig
from parties.federation import init_federation
from parties.jobs.spec import InputSpec, JobSpec, sign_job
from parties.ledger import receipts
from parties.ledger.genesis import load_genesis
from parties.ledger.patients import JobPatients, PatientStore, patient_keys
from parties.ledger.receipt_html import render
from smpc.chain import leafset, patients
from smpc.chain.block import Block, make_seal
from smpc.chain.genesis import Genesis
from smpc.chain.keys import load_private_key
from smpc.chain.records import Contribution, JobRecord, Party
from smpc.chain.store import MemoryStore

HOSPITALS = ("hospital-a", "hospital-b")
PATIENTS = [f"MRN-{i:04d}" for i in range(40)]
STAMP_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC


class Federation:
    """A genesis, the hospitals' chain keys, an in-memory chain and hospital-a's kept leaves."""

    def __init__(self, root: Path) -> None:
        members = init_federation("fed", HOSPITALS, ["analyst"], [], root, base_port=0)
        self.members: dict[str, MemberConfig] = {m.name: m for m in members}
        self.genesis: Genesis = load_genesis(self.members["hospital-a"].genesis)
        self.keys = {
            h: load_private_key(self.members[h].chain_key.read_bytes())  # type: ignore[union-attr]
            for h in HOSPITALS
        }
        self.secret = secrets.token_bytes(32)
        self.chain = MemoryStore()
        self.kept: list[JobPatients] = []
        self.parent = self.genesis.hash()

    def job(self, chosen: list[str], *, scope: str = "statistics") -> JobRecord:
        """A finished job in which hospital-a used the rows of ``chosen``; kept, not yet final."""
        analyst = self.members["analyst"]
        now = time.time_ns() // 1_000_000
        spec = JobSpec(
            federation="fed",
            protocol="pooled-sum",
            protocol_version="1",
            analyst="analyst",
            parties=HOSPITALS,
            inputs={h: InputSpec(("age",)) for h in HOSPITALS},
            outputs={"sum": ("analyst",)},
            deadline_ms=now + 60_000,
            scope=scope,
        )
        signed = sign_job(spec, analyst.tls.key, analyst.tls.cert)
        salt = secrets.token_bytes(32)
        key = patients.job_key(self.secret, signed.job_id, salt)
        leaves = patients.leaves(key, patient_keys(self.secret, chosen))
        self.kept.append(JobPatients(signed.job_id, now, salt, leaves.tobytes()))
        contributions = tuple(
            Contribution(
                h,
                hashlib.sha256(h.encode()).digest(),
                (),
                (),
                output_tag=bytes(32),
                patients=patients.commit(salt, leaves)[0] if h == "hospital-a" else b"",
            )
            for h in HOSPITALS
        )
        record = JobRecord(
            job_id=signed.job_id,
            signed_job=signed.to_json().encode(),
            protocol=spec.protocol,
            protocol_version=spec.protocol_version,
            parties=tuple(Party(h, "hospital") for h in HOSPITALS),
            outputs=tuple(spec.outputs.items()),
            output_digest=hashlib.sha256(b"d").digest(),
            status="finished",
            failure=None,
            contributions=contributions,
        )
        for h in HOSPITALS:
            record = record.signed_by(h, self.keys[h])
        return record

    def block(self, *records: JobRecord) -> Block:
        """The next final block; block h is stamped h seconds after 2026-01-01."""
        head = self.chain.head()
        height = 1 if head is None else head.block.height + 1
        stamp = STAMP_MS + 1000 * height
        block = Block.create(height, self.parent, (), stamp, 0, 0, [r.encode() for r in records])
        seals = [make_seal(self.keys[h], i, block.hash()) for i, h in enumerate(HOSPITALS)]
        self.chain.append(block, seals)
        self.parent = block.hash()
        return block

    def issue(self, patient: str, **kw: Any) -> dict[str, Any]:
        return receipts.issue(
            hospital="hospital-a",
            key=self.keys["hospital-a"],
            genesis=self.genesis,
            chain=self.chain,
            kept={k.job: k for k in self.kept}.get,
            pending=[k.job for k in self.kept],
            secret=self.secret,
            patient=patient,
            **kw,
        )

    def verify(self, receipt: dict[str, Any]) -> receipts.Verdict:
        anchor = receipts.chain_anchor(self.chain)
        return receipts.verify(receipt, self.genesis, anchor, chain=self.chain)


@pytest.fixture
def fed(tmp_path: Path) -> Federation:
    made = Federation(tmp_path / "fed")
    made.block(made.job(PATIENTS[:10]), made.job(PATIENTS[5:30]))
    made.block()
    made.block(made.job(PATIENTS[20:]))
    return made


def test_inclusion_and_exclusion_are_proven(fed: Federation) -> None:
    receipt = fed.issue("MRN-0007")
    assert [j["included"] for j in receipt["jobs"]] == [True, True, False]
    assert receipt["not_final"] == []
    verdict = fed.verify(receipt)
    assert verdict.ok, verdict.faults
    assert len(verdict.proven) == 3 and not verdict.unanchored
    assert "was not among the 20 patients hospital-a committed to" in verdict.proven[2]
    assert [j["block"]["height"] for j in receipt["jobs"]] == [1, 1, 3]


def test_a_patient_in_no_job_gets_exclusion_proofs(fed: Federation) -> None:
    receipt = fed.issue("MRN-9999")
    assert [j["included"] for j in receipt["jobs"]] == [False, False, False]
    assert fed.verify(receipt).ok


def test_one_patients_leaves_differ_between_jobs(fed: Federation) -> None:
    leaves = [j["leaf"] for j in fed.issue("MRN-0007")["jobs"]]
    assert len(set(leaves)) == 3


def test_a_receipt_holds_no_identifier_and_few_leaves(fed: Federation) -> None:
    many = [f"MRN-{i:04d}" for i in range(1000)]
    fed.block(fed.job(many))
    receipt = fed.issue("MRN-0007")
    text = receipts.dumps(receipt)
    assert "MRN" not in text
    assert fed.secret.hex() not in text
    big = receipt["jobs"][-1]
    shown = b"".join(bytes.fromhex(b["leaves"]) for b in big["buckets"])
    assert big["count"] == 1000
    # one bucket (the patient's), not the 1,000 leaves of the job; the last of
    # the 8 buckets holds the 1000 - 7 * 128 leaves left over
    assert len(big["buckets"]) == 1
    index = big["buckets"][0]["index"]
    in_bucket = min(leafset.BUCKET, 1000 - index * leafset.BUCKET)
    assert len(shown) == in_bucket * patients.LEAF_SIZE < 1000 * patients.LEAF_SIZE
    assert bytes.fromhex(big["leaf"]) in shown
    assert fed.verify(receipt).ok


def test_jobs_not_final_are_named_without_proof(fed: Federation) -> None:
    pending = fed.job(PATIENTS)
    receipt = fed.issue("MRN-0007")
    assert receipt["not_final"] == [pending.job_id]
    assert len(receipt["jobs"]) == 3
    fed.block(pending)
    assert [j["included"] for j in fed.issue("MRN-0007")["jobs"]] == [True, True, False, True]


def test_since_limits_the_jobs_to_the_blocks_from_that_date(fed: Federation) -> None:
    block3 = fed.chain.get(3)
    assert block3 is not None
    receipt = fed.issue("MRN-0007", since_ms=block3.block.timestamp_ms)
    assert receipt["range"] == {"from_height": 3, "to_height": 3}
    assert [j["job"] for j in receipt["jobs"]] == [fed.kept[2].job]
    verdict = fed.verify(receipt)
    assert verdict.ok and verdict.complete, verdict.faults
    assert "took part in 1 jobs in blocks 3 to 3 (from 2026-01-01 00:00 UTC)" in (
        verdict.completeness
    )
    later = fed.issue("MRN-0007", since_ms=block3.block.timestamp_ms + 1)
    assert later["range"] == {"from_height": 4, "to_height": 3} and later["jobs"] == []
    assert fed.verify(later).ok


def test_a_receipt_shows_it_is_complete(fed: Federation) -> None:
    verdict = fed.verify(fed.issue("MRN-0007"))
    assert verdict.ok and verdict.complete
    assert verdict.completeness.startswith(
        "Complete: hospital-a took part in 3 jobs in blocks 1 to 3, and the receipt accounts"
        " for every one: 3 with a proof, 0 to which hospital-a committed no patient set"
    )


def _resign(fed: Federation, receipt: dict[str, Any]) -> dict[str, Any]:
    """``receipt`` signed again by hospital-a, as a dishonest issuer would."""
    body = {k: v for k, v in receipt.items() if k != "signature"}
    body["signature"] = fed.keys["hospital-a"].sign(receipts._signing_message(body)).hex()
    return body


def test_dropping_a_job_from_a_receipt_fails_naming_it(fed: Federation) -> None:
    receipt = fed.issue("MRN-0007")
    dropped = receipt["jobs"].pop(1)
    verdict = fed.verify(receipt)  # edited after signing: the signature fails too
    assert any(f"job {dropped['job'][:12]} (block 1): missing" in f for f in verdict.faults)
    resigned = fed.verify(_resign(fed, receipt))  # the issuer itself left it out
    assert resigned.faults == [
        f"job {dropped['job'][:12]} (block 1): missing: hospital-a took part in it, but the"
        " receipt does not account for it"
    ]
    assert not resigned.complete
    # hiding it as uncommitted does not work either: the record carries a commitment
    receipt["uncommitted"] = [{"job": dropped["job"], "block": 1}]
    hidden = fed.verify(_resign(fed, receipt))
    assert any("listed as uncommitted, but hospital-a committed" in f for f in hidden.faults)


def test_a_range_that_skips_blocks_of_the_date_fails(fed: Federation) -> None:
    receipt = fed.issue("MRN-0007")
    receipt["range"]["from_height"] = 2  # block 1 is from the date on too
    receipt["jobs"] = [j for j in receipt["jobs"] if j["block"]["height"] >= 2]
    verdict = fed.verify(_resign(fed, receipt))
    assert any("range: block 1 is from the date on but left out" in f for f in verdict.faults)


def test_a_job_without_a_patients_commitment_is_accounted_for(fed: Federation) -> None:
    record = fed.job(PATIENTS[:3])
    bare = dataclasses.replace(
        record,
        contributions=tuple(dataclasses.replace(c, patients=b"") for c in record.contributions),
    )
    for h in HOSPITALS:
        bare = bare.signed_by(h, fed.keys[h])
    fed.block(bare)
    receipt = fed.issue("MRN-0007")
    assert receipt["uncommitted"] == [{"job": bare.job_id, "block": 4}]
    verdict = fed.verify(receipt)
    assert verdict.ok and verdict.complete
    assert "3 with a proof, 1 to which hospital-a committed no patient set" in (
        verdict.completeness
    )


def test_missing_leaves_refuse_the_receipt(fed: Federation) -> None:
    fed.kept.pop(0)
    with pytest.raises(receipts.ReceiptError, match="keeps no patient leaves for it"):
        fed.issue("MRN-0007")


def test_a_receipt_verifies_against_a_checkpoint_alone(fed: Federation) -> None:
    receipt = fed.issue("MRN-0007")
    head = fed.chain.head()
    assert head is not None
    at_head = receipts.checkpoint_anchor(head.block.height, head.block.hash())
    verdict = receipts.verify(receipt, fed.genesis, at_head)
    assert verdict.ok and len(verdict.proven) == 3
    assert not verdict.complete
    assert verdict.completeness.startswith("Completeness not checked: a checkpoint does not")
    # an older checkpoint covers only the blocks up to it
    block1 = fed.chain.get(1)
    assert block1 is not None
    older = receipts.verify(
        receipt, fed.genesis, receipts.checkpoint_anchor(1, block1.block.hash())
    )
    assert older.ok and len(older.proven) == 2
    assert "after the checkpoint" in older.unanchored[0]
    # a checkpoint of another history contradicts the headers
    other = receipts.verify(receipt, fed.genesis, receipts.checkpoint_anchor(3, bytes(32)))
    assert not other.ok and "checkpoint's block 3 is another block" in other.faults[0]


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("jobs", 0, "included"), False, "the exclusion proof fails"),
        (("jobs", 2, "included"), True, "the inclusion proof fails"),
        (("jobs", 0, "analyst"), "someone", "analyst: the receipt says"),
        (("jobs", 0, "scope"), "model-training", "scope: the receipt says"),
        (("jobs", 1, "count"), 24, "salt/count/root"),
        (("jobs", 1, "block", "height"), 2, "block: no header of block 2"),
        (("jobs", 1, "record_index"), 0, "record_path: the record is not in block 1"),
        (("hospital",), "hospital-b", "signature: hospital-b's signature"),
        (("issued_ms",), 1, "signature: hospital-a's signature"),
        (("genesis",), "00" * 32, "genesis: the receipt is of another"),
    ],
)
def test_a_changed_field_is_named(
    fed: Federation, path: tuple[Any, ...], value: object, named: str
) -> None:
    receipt = fed.issue("MRN-0007")
    target = receipt
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    verdict = fed.verify(receipt)
    assert not verdict.ok
    assert any(named in f for f in verdict.faults), verdict.faults


def test_changing_any_byte_fails(fed: Federation) -> None:
    text = receipts.dumps(fed.issue("MRN-0007"))
    assert fed.verify(receipts.loads(text)).ok
    step = max(1, len(text) // 400)
    for i in range(0, len(text), step):
        original = text[i]
        for replacement in {"0" if original != "0" else "1", " "} - {original}:
            changed = text[:i] + replacement + text[i + 1 :]
            try:
                verdict = fed.verify(receipts.loads(changed))
            except receipts.ReceiptError as exc:
                assert str(exc)  # refused while reading, with the reason
                continue
            assert not verdict.ok, f"byte {i} changed to {replacement!r} went unnoticed"
            assert all(f.strip() for f in verdict.faults)


def test_a_record_rewritten_in_the_chain_is_caught(fed: Federation, tmp_path: Path) -> None:
    receipt = fed.issue("MRN-0007")
    other = Federation(tmp_path / "other")
    other.genesis, other.keys, other.parent = fed.genesis, fed.keys, fed.genesis.hash()
    other.block(fed.job(PATIENTS[:3]))
    verdict = receipts.verify(receipt, fed.genesis, receipts.chain_anchor(other.chain))
    assert any("this chain holds another block at height 1" in f for f in verdict.faults)


def test_bad_input_is_refused(fed: Federation) -> None:
    with pytest.raises(receipts.ReceiptError, match="patient identifier is empty"):
        fed.issue("  ")
    with pytest.raises(receipts.ReceiptError, match="not JSON"):
        receipts.loads("{")
    with pytest.raises(receipts.ReceiptError, match="edited"):
        receipts.loads(receipts.dumps(fed.issue("MRN-0001")).replace("\n", "\r\n"))


def test_the_patient_store_keeps_the_first_leaves(tmp_path: Path) -> None:
    kept = JobPatients("j", 5, bytes(32), b"\x01" * 16 + b"\x02" * 16)
    with PatientStore(tmp_path / "patients.db") as store:
        store.keep(kept)
        store.keep(dataclasses.replace(kept, leaves=b""))
        assert store.get("j") == kept and store.get("k") is None
        assert store.jobs(6) == [] and store.jobs(5) == [kept]
    assert (tmp_path / "patients.db").stat().st_mode & 0o777 == 0o600


def test_audit_wants_a_signed_patients_commitment_where_there_is_a_patient_column(
    fed: Federation,
) -> None:
    from parties.cli.audit import audit

    def faults(notes: dict[str, str] | None, known: frozenset[str]) -> list[tuple[str | None, str]]:
        found = audit(record, fed.genesis, notes, known)
        return [
            (f.party, f.field) for f in found if f.severity == "fault" and f.field == "patients"
        ]

    record = fed.job(PATIENTS[:5])  # hospital-a commits to its patients, hospital-b does not
    assert faults(None, frozenset(HOSPITALS)) == [("hospital-b", "patients")]
    assert faults(None, frozenset({"hospital-a"})) == []
    # this member's notes: the commitment in the record must be the one it kept
    kept = fed.kept[-1].commitment.hex()
    assert faults({"party": "hospital-a", "patients": kept}, frozenset()) == []
    wrong = {"party": "hospital-a", "patients": "00" * 32}
    assert faults(wrong, frozenset()) == [("hospital-a", "patients")]


def test_remembered_patient_keys_are_the_hmac_keys() -> None:
    import hmac

    from parties.ledger.patients import PatientKeys

    secret, other = secrets.token_bytes(32), secrets.token_bytes(32)
    remembered = PatientKeys(limit=3)
    ids = ["MRN-1", "MRN-2", "MRN-1"]
    for key in (secret, other, secret):  # a new secret forgets the old keys
        expected = [hmac.digest(key, p.encode(), "sha256") for p in ids]
        assert remembered.array(key, ids).tobytes() == b"".join(expected)
    many = [f"MRN-{i}" for i in range(10)]  # past the limit it starts afresh, still right
    assert remembered.array(secret, many)[9].tobytes() == hmac.digest(secret, b"MRN-9", "sha256")
    assert remembered.array(secret, ["MRN-1"]).tobytes() == hmac.digest(secret, b"MRN-1", "sha256")


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each table cell."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_cell = tag == "td"
        if self._in_cell:
            self.cells.append("")

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells[-1] += data


def test_the_html_page_is_self_contained_and_says_what_was_proven(fed: Federation) -> None:
    receipt = fed.issue("MRN-0007")
    page = render(receipt, fed.verify(receipt), "hospital-b's copy of the chain", ["nothing"])
    parsed = _Tags()
    parsed.feed(page)
    names = {tag for tag, _ in parsed.tags}
    assert not names & {"script", "img", "link", "iframe", "object", "embed"}
    assert not any({"src", "href"} & set(attrs) for _, attrs in parsed.tags)
    assert "This receipt <b>verifies</b> against hospital-b&#x27;s copy of the chain" in page
    assert [c for c in parsed.cells if c in ("yes", "no")] == ["yes", "yes", "no"]
    assert "Complete: hospital-a took part in 3 jobs" in page
    assert "MRN" not in page


def test_the_html_page_escapes_the_receipt_and_shows_faults(fed: Federation) -> None:
    receipt = fed.issue("MRN-0007")
    receipt["jobs"][0]["analyst"] = "<script>alert(1)</script>"
    verdict = fed.verify(receipt)
    assert not verdict.ok
    page = render(receipt, verdict, "a checkpoint", ["nothing"])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "does <b>not</b> verify against a checkpoint" in page
    assert "analyst: the receipt says" in page


def test_a_hospital_without_a_known_chain_key_is_named(fed: Federation) -> None:
    receipt = fed.issue("MRN-0007")
    anchor = receipts.chain_anchor(fed.chain)
    genesis_b = {"hospital-b": fed.genesis.authorities[1].public_key}
    verdict = receipts.verify(receipt, fed.genesis, anchor, keys=genesis_b)
    assert verdict.faults == [
        "hospital: 'hospital-a' holds no chain key in the genesis or the chain's votes"
    ]
