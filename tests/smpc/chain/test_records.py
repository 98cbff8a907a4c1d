"""Records: round trips through bytes, rule checks, signatures, channel comparison."""

from __future__ import annotations

import dataclasses
import hashlib
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpc.chain.encoding import decode, encode
from smpc.chain.errors import ChainEncodingError, RecordError
from smpc.chain.keys import public_bytes
from smpc.chain.records import (
    CONSENT_SCOPES,
    AuthorityVote,
    ConsentRecord,
    Contribution,
    Failure,
    Vote,
    commitment,
    decode_record,
    output_digest,
    record_id,
)

SALT = bytes(range(32))


def test_commitment_binds_tag_salt_and_values() -> None:
    base = commitment(b"tag", SALT, b"values")
    assert len(base) == 32
    assert base == commitment(b"tag", SALT, b"values")
    assert base != commitment(b"tag2", SALT, b"values")
    assert base != commitment(b"tag", bytes(32), b"values")
    assert base != commitment(b"tag", SALT, b"values!")
    # Framing: moving bytes between tag and values changes the commitment.
    assert commitment(b"ab", SALT, b"c") != commitment(b"a", SALT, b"bc")
    assert base != hashlib.sha256(b"tag" + SALT + b"values").digest()


@pytest.mark.parametrize("salt", [b"", bytes(31), bytes(33)])
def test_commitment_needs_a_32_byte_salt(salt: bytes) -> None:
    with pytest.raises(RecordError, match="32"):
        commitment(b"t", salt, b"v")


def test_job_record_round_trip_and_signatures(kit: SimpleNamespace) -> None:
    keys = {"a": kit.key("a"), "b": kit.key("b"), "c": kit.key("c")}
    record = kit.job("job-1", list(keys), keys)
    data = record.encode()
    assert decode_record(data) == record
    assert record_id(data) == hashlib.sha256(data).digest()
    publics = {name: public_bytes(k) for name, k in keys.items()}
    record.verify_signatures(publics)
    assert record.channel_mismatches() == []
    assert record.transcript_hashes()[("a", "b")] == record.contribution("b").received[0][1]

    swapped = {"a": publics["b"], "b": publics["a"]}
    with pytest.raises(RecordError, match="signature does not verify"):
        record.verify_signatures(swapped)


def test_a_signature_covers_the_common_fields(kit: SimpleNamespace) -> None:
    keys = {"a": kit.key("a"), "b": kit.key("b")}
    record = kit.job("job-2", list(keys), keys)
    altered = dataclasses.replace(record, protocol_version="2.0")
    with pytest.raises(RecordError, match="a's signature"):
        altered.verify_signatures({"a": public_bytes(keys["a"])})


def test_each_party_signs_the_common_fields_and_its_own_contribution(
    kit: SimpleNamespace,
) -> None:
    keys = {"a": kit.key("a"), "b": kit.key("b"), "c": kit.key("c")}
    record = kit.job("job-3", list(keys), keys)
    for party in keys:
        common = dict(decode(record.encode()))  # type: ignore[arg-type]
        for left_out in ("kind", "contributions", "output_digest"):
            del common[left_out]
        mine = record.contribution(party).value(with_signature=False)
        expected = encode(["smpc/chain/job-contribution/v1", common, mine])
        assert record.signing_message(party) == expected
    # b's signature moved onto c's contribution (same common fields) does not verify
    b_signature = record.contribution("b").signature
    moved = tuple(
        dataclasses.replace(c, signature=b_signature) if c.party == "c" else c
        for c in record.contributions
    )
    publics = {name: public_bytes(k) for name, k in keys.items()}
    with pytest.raises(RecordError, match="c's signature does not verify"):
        dataclasses.replace(record, contributions=moved).verify_signatures(publics)


def test_channel_mismatch_is_reported(kit: SimpleNamespace) -> None:
    record = kit.job("job-3", ["a", "b", "c"], {})
    b = record.contribution("b")
    lying = dataclasses.replace(b, received=(("a", "0" * 64), *b.received[1:]))
    record = dataclasses.replace(
        record, contributions=tuple(lying if c.party == "b" else c for c in record.contributions)
    )
    assert record.channel_mismatches() == [("a", "b")]


def test_aborted_job_names_its_failure(kit: SimpleNamespace) -> None:
    record = kit.job("job-4", ["a", "b"], {})
    aborted = dataclasses.replace(
        record, status="aborted", failure=Failure("b", "timeout"), output_digest=b""
    )
    assert decode_record(aborted.encode()) == aborted
    with pytest.raises(RecordError, match="names its failure"):
        dataclasses.replace(aborted, failure=None)
    with pytest.raises(RecordError, match="no output digest"):
        dataclasses.replace(aborted, output_digest=bytes(32))
    with pytest.raises(RecordError, match="finished job has no failure"):
        dataclasses.replace(record, failure=Failure("b", "timeout"))


def test_job_record_rules(kit: SimpleNamespace) -> None:
    record = kit.job("job-5", ["a", "b"], {})
    with pytest.raises(RecordError, match="sorted"):
        dataclasses.replace(record, parties=tuple(reversed(record.parties)))
    with pytest.raises(RecordError, match="non-party"):
        dataclasses.replace(record, parties=record.parties[:1])
    with pytest.raises(RecordError, match="status"):
        dataclasses.replace(record, status="done")
    with pytest.raises(RecordError, match="hex"):
        Contribution("a", bytes(32), (("b", "XYZ"),), ())
    with pytest.raises(RecordError, match="to itself"):
        Contribution("a", bytes(32), (("a", "0" * 64),), ())
    with pytest.raises(RecordError, match="input commitment"):
        Contribution("a", bytes(31), (), ())


@given(
    st.sampled_from(["grant", "revoke"]),
    st.sampled_from(CONSENT_SCOPES),
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**63 - 1),
)
def test_consent_round_trip(action: str, scope: str, patient: bytes, time_ms: int) -> None:
    record = ConsentRecord(action, "h0", patient, scope, time_ms)
    assert decode_record(record.encode()) == record


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"scope": "research"}, "scope"),
        ({"action": "maybe"}, "action"),
        ({"patient_key": b"id"}, "patient key"),
        ({"time_ms": -1}, "time_ms"),
        ({"hospital": ""}, "hospital"),
    ],
)
def test_consent_rules(change: dict[str, object], match: str) -> None:
    fields = {
        "action": "grant",
        "hospital": "h0",
        "patient_key": bytes(32),
        "scope": "all",
        "time_ms": 1,
    }
    with pytest.raises(RecordError, match=match):
        ConsentRecord(**{**fields, **change})  # type: ignore[arg-type]


def test_authority_vote_round_trip_and_signatures(kit: SimpleNamespace) -> None:
    voters = [kit.key("v1"), kit.key("v2")]
    new = public_bytes(kit.key("new"))
    unsigned = AuthorityVote("add", "new", new, 3, ())
    message = unsigned.signing_message()
    votes = tuple(
        sorted((Vote(public_bytes(k), k.sign(message)) for k in voters), key=lambda v: v.voter)
    )
    vote = dataclasses.replace(unsigned, votes=votes)
    assert decode_record(vote.encode()) == vote
    assert vote.valid_voters() == {public_bytes(k) for k in voters}
    # A vote for another epoch is a different message: the old signatures do not carry over.
    assert dataclasses.replace(vote, epoch=4).valid_voters() == set()
    with pytest.raises(RecordError, match="sorted"):
        dataclasses.replace(vote, votes=tuple(reversed(votes)))


def test_decode_record_refuses_non_records() -> None:
    with pytest.raises(RecordError, match="not a record"):
        decode_record(encode({"kind": "poem"}))
    with pytest.raises(RecordError, match="not a record"):
        decode_record(encode([1, 2]))
    consent = ConsentRecord("grant", "h0", bytes(32), "all", 1).value()
    assert isinstance(consent, dict)
    with pytest.raises(RecordError, match="fields"):
        decode_record(encode({**consent, "extra": 1}))
    with pytest.raises(RecordError, match="time_ms"):
        decode_record(encode({**consent, "time_ms": "soon"}))
    with pytest.raises(ChainEncodingError):
        decode_record(encode(consent) + b"\x00")


def test_decode_record_refuses_malformed_job_fields(kit: SimpleNamespace) -> None:
    value = decode(kit.job("job-6", ["a", "b"], {}).encode())
    assert isinstance(value, dict)
    for field, bad in [
        ("parties", (("a",),)),
        ("parties", "a,b"),
        ("failure", ("b",)),
        ("outputs", {"mean": "analyst"}),
        ("contributions", ({"party": "a"},)),
        ("signed_job", 7),
    ]:
        with pytest.raises(RecordError):
            decode_record(encode({**value, field: bad}))


def test_a_consent_record_is_signed_by_its_hospital(kit: SimpleNamespace) -> None:
    key, other = kit.key("h0"), kit.key("h1")
    unsigned = ConsentRecord("revoke", "h0", bytes(range(32)), "statistics", 5)
    record = unsigned.signed_by(key)
    assert decode_record(record.encode()) == record
    assert record.signature_valid(public_bytes(key))
    assert not record.signature_valid(public_bytes(other))
    assert not unsigned.signature_valid(public_bytes(key))
    for change in ({"scope": "all"}, {"action": "grant"}, {"time_ms": 6}):
        assert not dataclasses.replace(record, **change).signature_valid(public_bytes(key))
    with pytest.raises(RecordError, match="signature"):
        dataclasses.replace(record, signature=b"short")


def test_signatures_cover_the_own_output_tag_and_the_digest_follows_the_tags(
    kit: SimpleNamespace,
) -> None:
    keys = {"a": kit.key("a"), "b": kit.key("b")}
    record = kit.job("job-6", list(keys), {})
    tags = {"a": bytes([1]) * 32, "b": bytes([2]) * 32}
    tagged = tuple(dataclasses.replace(c, output_tag=tags[c.party]) for c in record.contributions)
    record = dataclasses.replace(record, contributions=tagged, output_digest=output_digest(tags))
    for name, k in keys.items():
        record = record.signed_by(name, k)
    assert record.digest_matches_tags() and decode_record(record.encode()) == record
    publics = {name: public_bytes(k) for name, k in keys.items()}
    record.verify_signatures(publics)
    # The digest is not signed directly, but a wrong one no longer matches the signed tags.
    wrong = dataclasses.replace(record, output_digest=bytes(32))
    wrong.verify_signatures(publics)
    assert not wrong.digest_matches_tags()
    changed = dataclasses.replace(record.contribution("b"), output_tag=bytes(32))
    forged = dataclasses.replace(record, contributions=(record.contribution("a"), changed))
    with pytest.raises(RecordError, match="b's signature"):
        forged.verify_signatures(publics)
    with pytest.raises(RecordError, match="output tag"):
        dataclasses.replace(changed, output_tag=b"short")


def test_patients_commitment_is_signed_and_optional(kit: SimpleNamespace) -> None:
    plain = Contribution("h", bytes(32), (), ())
    assert "patients" not in plain.value()  # records from before the field keep their bytes
    with_root = dataclasses.replace(plain, patients=b"\x07" * 32)
    assert Contribution.from_value(with_root.value()) == with_root
    with pytest.raises(RecordError, match="patients commitment must be empty or 32"):
        dataclasses.replace(plain, patients=b"\x07")
    with pytest.raises(RecordError, match="empty patients commitment is left out"):
        Contribution.from_value({**plain.value(), "patients": b""})  # type: ignore[dict-item]
    keys = {"a": kit.key("a"), "b": kit.key("b")}
    record = kit.job("job-p", list(keys), {})
    mine = dataclasses.replace(record.contribution("a"), patients=b"\x07" * 32)
    record = dataclasses.replace(record, contributions=(mine, record.contribution("b")))
    record = record.signed_by("a", keys["a"]).signed_by("b", keys["b"])
    assert decode_record(record.encode()) == record
    publics = {name: public_bytes(k) for name, k in keys.items()}
    record.verify_signatures(publics)
    changed = dataclasses.replace(record.contribution("a"), patients=b"\x08" * 32)
    forged = dataclasses.replace(record, contributions=(changed, record.contribution("b")))
    with pytest.raises(RecordError, match="a's signature does not verify"):
        forged.verify_signatures(publics)
