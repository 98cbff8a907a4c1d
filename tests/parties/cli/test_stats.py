"""``smpc stats``: parameters from the command line, mistakes named by their flag, printouts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from parties import client
from parties.cli import main as cli
from parties.cli import stats as stats_commands
from parties.federation import init_federation


class _FakeClient:
    asked: ClassVar[dict] = {}

    def __init__(self, member: object) -> None:
        pass

    def statistics(self, statistic, columns, *, where=None, params=None):
        _FakeClient.asked = {"statistic": statistic, "columns": columns, "where": where, **params}
        counts = np.array([12, 0, 7])
        return {
            "counts": counts,
            "suppressed": counts == 0,
            "dropped": None,
            "job": "j",
            "seconds": 0.1,
        }

    def close(self) -> None:
        pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[_FakeClient]:
    monkeypatch.setattr(client, "Client", _FakeClient)
    monkeypatch.setattr(stats_commands, "load_config", lambda path: None)
    return _FakeClient


def test_parameters_reach_the_job_and_suppressed_cells_read_none(fake, capsys) -> None:
    code = cli.main(
        [
            "stats",
            "histogram",
            "--config",
            "a.toml",
            "--columns",
            "age",
            "--edges",
            "0,10,20,30",
            "--json",
        ]
    )
    assert code == 0
    assert fake.asked == {
        "statistic": "histogram",
        "columns": ["age"],
        "where": None,
        "edges": [0.0, 10.0, 20.0, 30.0],
    }
    printed = json.loads(capsys.readouterr().out)
    assert printed["counts"] == [12, None, 7] and "suppressed" not in printed


def test_text_output_says_suppressed(fake, capsys) -> None:
    code = cli.main(
        ["stats", "crosstab", "--config", "a.toml", "--columns", "sex", "--levels", "F, M ,X"]
    )
    assert code == 0 and fake.asked["levels"] == [["F", "M", "X"]]
    assert 'counts: [12, "suppressed", 7]' in capsys.readouterr().out


def test_an_unknown_statistic_is_a_usage_error(capsys) -> None:
    assert cli.main(["stats", "mode", "--config", "a.toml", "--columns", "age"]) == 2


def test_bits_reach_the_median_job(fake) -> None:
    argv = ["stats", "median", "--config", "a.toml", "--columns", "age", "--bits", "12"]
    assert cli.main([*argv, "--range", "0,64"]) == 0
    assert fake.asked["bits"] == 12 and fake.asked["range"] == [0.0, 64.0]


@pytest.fixture(scope="module")
def analyst_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real federation's analyst config; no party runs, so nothing may reach the network."""
    members = init_federation(
        "statsfed", ["hospital-a", "hospital-b"], ["analyst"], [], tmp_path_factory.mktemp("f"), 0
    )
    return next(m for m in members if m.name == "analyst").config_path


def _smpc(*words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parties.cli", *words], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("words", "says"),
    [
        (["histogram", "--columns", "age"], "--edges must list at least two finite bin edges"),
        (["histogram", "--columns", "age", "--edges", "5,1"], "--edges must be strictly"),
        (["histogram", "--columns", "age,bp", "--edges", "0,1"], "--columns must name exactly"),
        (["crosstab", "--columns", "sex"], "--levels must give one list of levels per column"),
        (["median", "--columns", "age", "--bits", "40"], "--bits must be an integer from 1 to 32"),
        (["quantiles", "--columns", "age", "--probabilities", "0.5,1"], "--probabilities must"),
        (["mean", "--columns", "age", "--where", "age >"], "--where is not a valid filter"),
        (
            ["mean", "--columns", "dx", "--where", 'dx == "M"'],
            "--columns include 'dx', which the filter compares with a string",
        ),
    ],
)
def test_a_mistake_in_the_job_fails_before_signing_naming_the_flag(
    analyst_config, words, says
) -> None:
    done = _smpc("stats", words[0], "--config", str(analyst_config), *words[1:])
    assert done.returncode == 2, done.stderr
    assert f"smpc: error: {says}" in done.stderr
    assert "params." not in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_a_flag_that_is_not_a_list_of_numbers_is_a_usage_error(analyst_config) -> None:
    done = _smpc(
        "stats", "histogram", "--config", str(analyst_config), "--columns", "age", "--edges", "1,x"
    )
    assert done.returncode == 2
    assert "argument --edges: expected numbers separated by commas" in done.stderr


def test_a_shortcut_names_its_flags_too(analyst_config) -> None:
    done = _smpc("sum", "--config", str(analyst_config), "--columns", "age", "--where", "age ==")
    assert done.returncode == 2 and "smpc: error: --where is not a valid filter" in done.stderr
