"""``smpc stats glm``: flags reach the fit, the table and the model file, mistakes named by flag."""

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
from parties.data.model_file import load_model
from parties.federation import init_federation
from protocols.glm_fit import GLMFitError, run_local
from protocols.statistics import contexts
from smpc.local import LocalFederation


def _fit():
    """A real fit of three in-process hospitals (the fake client returns it)."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(600, 2))
    y = (rng.random(600) < 1 / (1 + np.exp(-(0.5 + x[:, 0] - 0.7 * x[:, 1])))).astype(float)
    values = np.column_stack([x, y])
    ctxs = contexts([values[k::3] for k in range(3)], ["a", "b", "y"], params={"outcome": "y"})
    return run_local(LocalFederation(3), ctxs)[0]


class _FakeClient:
    asked: ClassVar[dict] = {}
    refuse: ClassVar[bool] = False
    returned: ClassVar[list] = []

    def __init__(self, member: object) -> None:
        pass

    def glm(self, columns, outcome=None, *, family, where=None, max_iter=25, positive=None):
        _FakeClient.asked = {
            "columns": columns,
            "outcome": outcome,
            "family": family,
            "where": where,
            "max_iter": max_iter,
        }
        if _FakeClient.refuse:
            raise GLMFitError("the outcome is (quasi-)separated by the features")
        _FakeClient.returned.append(_fit())
        return _FakeClient.returned[-1]

    def close(self) -> None:
        pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[_FakeClient]:
    monkeypatch.setattr(client, "Client", _FakeClient)
    monkeypatch.setattr(stats_commands, "load_config", lambda path: None)
    monkeypatch.setattr("parties.cli.glm.load_config", lambda path: None)
    _FakeClient.refuse = False
    _FakeClient.returned.clear()
    return _FakeClient


def test_a_formula_reaches_the_fit_and_prints_a_table_and_a_model(fake, capsys, tmp_path) -> None:
    path = tmp_path / "fitted.npz"
    argv = ["stats", "glm", "--config", "a.toml", "--formula", "y ~ a + b"]
    code = cli.main([*argv, "--max-iter", "12", "--save-model", str(path)])
    assert code == 0
    assert fake.asked == {
        "columns": "y ~ a + b",
        "outcome": None,
        "family": "binomial",
        "where": None,
        "max_iter": 12,
    }
    out = capsys.readouterr().out
    assert "const" in out and "P>|z|" in out and f"model written to {path}" in out
    (fit,) = fake.returned
    model = load_model(path)
    np.testing.assert_array_equal(model.coef, fit.standardised[1:])
    assert model.feature_names == ("a", "b")


def test_json_output_carries_the_fit(fake, capsys) -> None:
    argv = ["stats", "glm", "--config", "a.toml", "--columns", "a,b", "--outcome", "y", "--json"]
    assert cli.main([*argv, "--family", "gaussian"]) == 0
    assert fake.asked["columns"] == ["a", "b"] and fake.asked["family"] == "gaussian"
    shown = json.loads(capsys.readouterr().out)
    (fit,) = fake.returned
    np.testing.assert_allclose(shown["coef"], fit.coef)
    np.testing.assert_allclose(shown["pvalues"], fit.pvalues)
    assert shown["names"] == ["const", "a", "b"]


def test_a_refused_fit_says_why(fake, capsys) -> None:
    fake.refuse = True
    assert cli.main(["stats", "glm", "--config", "a.toml", "--formula", "y ~ a"]) == 1
    assert "the fit was refused: the outcome is (quasi-)separated" in capsys.readouterr().err


@pytest.fixture(scope="module")
def analyst_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real federation's analyst config; no party runs, so nothing may reach the network."""
    members = init_federation(
        "glmfed", ["hospital-a", "hospital-b"], ["analyst"], [], tmp_path_factory.mktemp("f"), 0
    )
    return next(m for m in members if m.name == "analyst").config_path


@pytest.mark.parametrize(
    ("words", "says"),
    [
        (["--formula", "y = a + b"], "--formula 'y = a + b' is not of the form"),
        (["--columns", "a,b"], "--outcome must name the outcome column"),
        (["--columns", "a,y", "--outcome", "y", "--max-iter", "0"], "--max-iter must be"),
        (["--formula", "y ~ a", "--outcome", "y"], "--outcome give a formula or an outcome"),
        ([], "give --formula, or --columns with --outcome"),
    ],
)
def test_a_mistake_in_the_job_fails_before_signing_naming_the_flag(
    analyst_config, words, says
) -> None:
    command = [sys.executable, "-m", "parties.cli", "stats", "glm"]
    done = subprocess.run(
        [*command, "--config", str(analyst_config), *words],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"smpc: error: {says}" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_save_model_with_a_linear_fit_is_refused_before_the_job(fake, capsys, tmp_path) -> None:
    # only a logistic fit is a model for secure inference: say so before any job runs
    fake.asked = {}
    argv = ["stats", "glm", "--config", "a.toml", "--formula", "y ~ a + b", "--family", "gaussian"]
    code = cli.main([*argv, "--save-model", str(tmp_path / "m.npz")])
    assert code == 2
    assert "smpc: error: --save-model needs --family binomial" in capsys.readouterr().err
    assert fake.asked == {} and not (tmp_path / "m.npz").exists()
