"""``smpc stats``: parameters from the command line, and suppressed cells in the printout."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest

from parties import client
from parties.cli import main as cli
from parties.cli import stats as stats_commands


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
