"""``smpc infer``: what it refuses before submitting anything (jobs run in tests/parties/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parties.cli.main import main


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("infer") / "fed"
    argv = ["federation", "init", "--name", "demo", "--hospitals", "alpha,beta", "--out", str(out)]
    assert main([*argv, "--analysts", "ana", "--model-owners", "mo"]) == 0
    return out


def _infer(fed: Path, rest: str, config: str = "ana") -> list[str]:
    return ["infer", "--config", str(fed / f"{config}.toml"), "--columns", "age", *rest.split()]


@pytest.mark.parametrize(
    ("rest", "says"),
    [
        ("--model-owner mo --rows alpha=10 --metrics", "--metrics and --label-column C go"),
        ("--model-owner mo --rows alpha=10 --label-column y", "--metrics and --label-column C go"),
        ("--model-owner mo --rows alpha=0", "expected HOSPITAL=ROWS"),
        ("--model-owner mo --rows alpha", "expected HOSPITAL=ROWS"),
        ("--model-owner mo --rows alpha=1,alpha=2", "'alpha' is listed twice"),
        ("--model-owner mo --rows alpha=10 --min-cell-size 0", "expected a positive integer"),
        ("--rows alpha=10", "--model-owner"),
    ],
)
def test_usage_errors_exit_2(
    fed: Path, rest: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_infer(fed, rest)) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    ("rest", "config", "says"),
    [
        ("--model-owner alpha --rows beta=10", "ana", "alpha is a hospital, not a model owner"),
        ("--model-owner mo --rows zeta=10", "ana", "'zeta' is not a peer of 'ana'"),
        ("--model-owner mo --rows mo=10", "ana", "--rows names mo, a model-owner"),
        ("--model-owner mo --rows alpha=10", "dealer", "dealer is a dealer; jobs are signed"),
    ],
)
def test_wrong_parties_are_named_with_status_1(
    fed: Path, rest: str, config: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_infer(fed, rest, config)) == 1
    err = capsys.readouterr().err
    assert err.startswith("smpc: error:") and says in err
