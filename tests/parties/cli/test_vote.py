"""``smpc authority add|remove``: signatures gather in a vote file; a quorum files the record."""

from __future__ import annotations

from pathlib import Path

import pytest

from parties.cli.main import main
from parties.config import MemberConfig
from parties.federation import init_federation
from parties.ledger.record_store import RecordStore, records_path
from smpc.chain.records import AuthorityVote, decode_record

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
NEW_KEY = "11" * 32


@pytest.fixture
def fed(tmp_path: Path) -> dict[str, MemberConfig]:
    members = init_federation("fed", HOSPITALS, ["analyst"], [], tmp_path / "fed", base_port=0)
    return {m.name: m for m in members}


def vote(capsys, member: MemberConfig, file: Path, *, name: str = "hospital-d", key: str = NEW_KEY):
    status = main(
        ["authority", "add", "--config", str(member.config_path), "--name", name,
         "--public-key", key, "--file", str(file)]
    )  # fmt: skip
    out, err = capsys.readouterr()
    return status, out, err


def pending_votes(member: MemberConfig) -> list[AuthorityVote]:
    with RecordStore(records_path(member)) as store:
        found = [decode_record(data) for _, data in store.pending(AuthorityVote.KIND)]
    return [v for v in found if isinstance(v, AuthorityVote)]


def test_a_quorum_of_signatures_files_the_vote(fed, tmp_path, capsys) -> None:
    file = tmp_path / "vote.json"
    status, out, err = vote(capsys, fed["hospital-a"], file)
    assert status == 0, err
    assert "1 of the 2 signatures needed" in out
    status, out, _ = vote(capsys, fed["hospital-a"], file)  # signing twice counts once
    assert "1 of the 2 signatures needed" in out
    assert pending_votes(fed["hospital-a"]) == []
    status, out, err = vote(capsys, fed["hospital-b"], file)
    assert status == 0, err
    assert "filed as a pending record at hospital-b" in out
    (filed,) = pending_votes(fed["hospital-b"])
    assert (filed.action, filed.name, filed.public_key, filed.epoch) == (
        "add",
        "hospital-d",
        bytes.fromhex(NEW_KEY),
        0,
    )
    assert len(filed.valid_voters()) == 2


def test_a_vote_file_of_another_vote_or_a_bad_key_is_refused(fed, tmp_path, capsys) -> None:
    file = tmp_path / "vote.json"
    vote(capsys, fed["hospital-a"], file)
    status, _, err = vote(capsys, fed["hospital-b"], file, name="hospital-e")
    assert status == 1 and "holds a vote to add hospital-d" in err
    status, _, err = vote(capsys, fed["hospital-b"], tmp_path / "v2.json", key="zz")
    assert status == 1 and "--public-key must be the raw Ed25519 key in hex" in err
    status, _, err = vote(capsys, fed["analyst"], tmp_path / "v3.json")
    assert status == 1 and "not a hospital" in err
