"""The ``smpc`` command line: federation init, add-member and renew, end to end."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from parties.cli.main import COMMANDS, build_parser, main
from parties.config import DataConfig, load_config
from parties.data.model_file import save_model
from protocols.model import LogisticModel


def _init(out: Path, *extra: str) -> int:
    return main(
        [
            "federation",
            "init",
            "--name",
            "demo",
            "--hospitals",
            "alpha,beta,gamma",
            "--analysts",
            "ana",
            "--model-owners",
            "mo",
            "--out",
            str(out),
            *extra,
        ]
    )


def _run(words: str, folder: Path, rest: str) -> int:
    """``main`` on ``words FOLDER rest``, keeping the folder one argument."""
    return main([*words.split(), str(folder), *rest.split()])


def _secrets(folder: Path) -> list[str]:
    """Every rendering of every private key under ``folder`` that must never be printed."""
    found: list[str] = []
    for path in folder.rglob("*.pem"):
        pem = path.read_bytes()
        if b"PRIVATE KEY" not in pem:
            continue
        found += [line for line in pem.decode().splitlines() if not line.startswith("-----")]
        key = serialization.load_pem_private_key(pem, password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            value = key.private_numbers().private_value
            found += [str(value), f"{value:x}", f"{value:064x}"]
        else:
            assert isinstance(key, ed25519.Ed25519PrivateKey)
            raw = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            found.append(raw.hex())
    assert found
    return found


def _assert_no_key_material(text: str, folder: Path) -> None:
    assert "PRIVATE KEY" not in text
    for secret in _secrets(folder):
        assert secret not in text
        assert secret[:24] not in text


def test_init_writes_a_federation_and_prints_files_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fed"
    assert _init(out, "--consent", "opt-out", "--base-port", "41000") == 0
    captured = capsys.readouterr()
    for name in ("alpha", "beta", "gamma", "dealer", "ana", "mo"):
        assert f"{name}.toml" in captured.out
        member = load_config(out / f"{name}.toml")
        assert member.tls.cert.exists() and member.tls.key.exists()
    assert load_config(out / "alpha.toml").address == "127.0.0.1:41000"
    assert '"consent_mode":"opt-out"' in (out / "genesis.json").read_text()
    assert "offline" in captured.out
    assert captured.err == ""
    _assert_no_key_material(captured.out + captured.err, out)


def test_add_member_and_renew(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fed"
    assert _init(out) == 0
    assert _run("federation add-member --dir", out, "--name delta --role hospital") == 0
    added = capsys.readouterr().out
    assert "delta.toml" in added and "vote" in added
    assert load_config(out / "alpha.toml").peer("delta").role == "hospital"

    before = x509.load_pem_x509_certificate((out / "beta" / "tls-cert.pem").read_bytes())
    assert _run("federation renew --dir", out, "--name beta") == 0
    renewed = capsys.readouterr().out
    after = x509.load_pem_x509_certificate((out / "beta" / "tls-cert.pem").read_bytes())
    assert after.serial_number != before.serial_number
    assert f"{after.serial_number:x}" in renewed
    _assert_no_key_material(added + renewed, out)


def test_init_refuses_an_existing_federation_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fed"
    assert _init(out) == 0
    key = (out / "alpha" / "tls-key.pem").read_bytes()
    capsys.readouterr()
    assert _init(out) == 1
    err = capsys.readouterr().err
    assert "--force" in err
    assert (out / "alpha" / "tls-key.pem").read_bytes() == key
    assert _init(out, "--force") == 0
    assert (out / "alpha" / "tls-key.pem").read_bytes() != key


def test_errors_go_to_stderr_with_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _init(tmp_path / "fed") == 0
    capsys.readouterr()
    assert _run("federation renew --dir", tmp_path / "fed", "--name zeta") == 1
    err = capsys.readouterr().err
    assert err.startswith("smpc: error:") and "zeta" in err
    assert _run("federation add-member --dir", tmp_path, "--name x --role analyst") == 1
    assert "no federation" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        "",
        "federation",
        "federation init --name demo --hospitals Alpha,beta --out x",
        "federation init --name demo --hospitals , --out x",
        "federation init --name demo --hospitals a,b",
        "federation init --name demo --hospitals a,b --out x --consent maybe",
        "federation add-member --dir x --name n --role nurse",
        "federation init --name demo --hospitals a,b --out x --data a",
        "federation init --name demo --hospitals a,b --out x --data =a.csv",
        "federation init --name demo --hospitals a,b --out x --min-cell-size few",
        "federation bogus",
    ],
)
def test_usage_errors_exit_2(argv: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv.split()) == 2
    assert list(tmp_path.iterdir()) == []


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["federation", "init", "--help"]) == 0
    assert "--hospitals" in capsys.readouterr().out


def test_every_parsed_command_has_a_handler() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    words = set()
    for group, sub in commands.choices.items():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if not nested:  # a one-word command such as `smpc party`
            assert sub.get_default("words") == (group,)
            words.add((group,))
            continue
        for action, leaf in nested[0].choices.items():
            assert leaf.get_default("words") == (group, action)
            words.add((group, action))
    assert words == set(COMMANDS)


# -- init with data, model and policy ----------------------------------------------

_INIT = ["federation", "init", "--name", "demo", "--hospitals", "alpha,beta,gamma"]
_INIT += ["--analysts", "ana", "--model-owners", "mo"]


def _sources(folder: Path) -> None:
    """A CSV for alpha, a SQLite table for beta, a model for mo; all in ``folder``."""
    (folder / "alpha.csv").write_text("mrn,age\nA1,61\nA2,47\n")
    db = sqlite3.connect(folder / "beta.db")
    db.execute("CREATE TABLE patients (mrn TEXT, age REAL)")
    db.execute("INSERT INTO patients VALUES ('B1', 55)")
    db.commit()
    db.close()
    one = np.ones(1)
    save_model(LogisticModel(one, 0.0, ("age",), one, one), folder / "model.npz")


def test_init_writes_data_model_and_policy_into_every_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _sources(tmp_path)
    monkeypatch.chdir(tmp_path)  # the paths below are relative to the current folder
    extra = (
        "--data alpha=alpha.csv --data beta=beta.db#patients --model mo=model.npz"
        " --patient-id mrn --min-cell-size 10 --allow-min-max --allow-probabilities"
    )
    assert main([*_INIT, "--out", "fed", *extra.split()]) == 0
    fed = tmp_path / "fed"
    configs = {n: load_config(fed / f"{n}.toml") for n in ("alpha", "beta", "gamma", "dealer")}
    configs |= {n: load_config(fed / f"{n}.toml") for n in ("ana", "mo")}
    assert configs["alpha"].data == DataConfig("csv", tmp_path / "alpha.csv", None, "mrn")
    assert configs["beta"].data == DataConfig("sqlite", tmp_path / "beta.db", "patients", "mrn")
    assert configs["mo"].data == DataConfig("model", tmp_path / "model.npz")
    for name in ("gamma", "dealer", "ana"):
        assert configs[name].data == DataConfig()
    for member in configs.values():
        policy = member.policy
        assert (policy.min_cell_size, policy.allow_min_max, policy.allow_probabilities) == (
            10,
            True,
            True,
        )
    out = capsys.readouterr().out
    assert "created the dealer member 'dealer'" in out
    assert "smpc dealer --config fed/dealer.toml" in out
    assert f"data: csv {tmp_path / 'alpha.csv'}, patient id column 'mrn'" in out
    assert "minimum cell size 10" in out


def test_init_says_the_default_consent_mode_what_it_means_and_how_to_change_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _sources(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gamma.csv").write_text("mrn,age\nG1,70\n")
    extra = "--data alpha=alpha.csv --data beta=beta.db#patients --data gamma=gamma.csv"
    argv = [*_INIT, *extra.split()]
    assert main([*argv, "--out", "plain"]) == 0
    plain = capsys.readouterr().out
    assert "consent opt-in (the default): a patient is left out of every job until" in plain
    assert "--consent opt-out" in plain
    assert "consent applies to none yet" in plain
    assert main([*argv, "--out", "with-ids", "--patient-id", "mrn"]) == 0
    with_ids = capsys.readouterr().out
    assert "patients are left out of every job until granted" in with_ids
    assert "smpc consent grant --config with-ids/alpha.toml" in with_ids
    assert main([*argv, "--out", "opt-out", "--patient-id", "mrn", "--consent", "opt-out"]) == 0
    opt_out = capsys.readouterr().out
    assert "consent opt-out: a patient is included in every job until they revoke" in opt_out
    assert "--consent opt-in" in opt_out
    assert "left out of every job until granted" not in opt_out


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ("--data delta=alpha.csv", "'delta', who is not a member"),
        ("--data alpha=absent.csv", "the data file of alpha does not exist"),
        ("--data dealer=alpha.csv", "dealer (dealer) holds no data"),
        ("--data ana=alpha.csv", "ana (analyst) holds no data"),
        ("--data mo=alpha.csv", "mo (model-owner) takes model data"),
        ("--data alpha=model.npz", "alpha (hospital) takes csv or sqlite data"),
        ("--model mo=alpha.csv", "the data of mo cannot be used"),
        ("--data alpha=notes.txt", "cannot tell the kind of data in 'notes.txt'"),
        ("--data beta=beta.db", "needs its table: beta.db#TABLE"),
        ("--data beta=beta.db#visits", "no table 'visits'"),
        ("--data alpha=alpha.csv#t", "has no table"),
        ("--data alpha=alpha.csv --data alpha=alpha.csv", "given twice"),
        ("--patient-id mrn", "a patient id column belongs to a hospital's data"),
        (
            "--data alpha=alpha.csv --data beta=beta.db#patients --data gamma=alpha.csv"
            " --patient-id id",
            "has no patient id column 'id'; its columns: mrn, age",
        ),
        ("--min-cell-size 0", "policy.min_cell_size"),
    ],
)
def test_init_refuses_bad_data_and_policy_and_writes_nothing(
    extra: str,
    says: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _sources(tmp_path)
    (tmp_path / "notes.txt").write_text("mrn,age\n")
    monkeypatch.chdir(tmp_path)
    assert main([*_INIT, "--out", "fed", *extra.split()]) == 1
    err = capsys.readouterr().err
    assert err.startswith("smpc: error:") and says in err
    assert not (tmp_path / "fed").exists()
