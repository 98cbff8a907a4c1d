"""The ``smpc`` command line: federation init, add-member and renew, end to end."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from parties.cli.main import COMMANDS, build_parser, main
from parties.config import load_config


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
