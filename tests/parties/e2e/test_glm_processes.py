"""A logistic regression fitted across three hospital processes, then used for secure inference.

Three hospitals, a dealer and a model owner run as real processes (gRPC +
mutual TLS, TLS sockets for the rounds). The analyst fits ``diagnosis ~
features`` with ``stats-glm`` and checks it against statsmodels on the
pooled plaintext; the fit becomes the model owner's model file, and the
hospitals' patients are scored with it by the existing secure inference.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm

from parties.client import Client, JobFailed
from parties.config import RESULTS_DIR, DataConfig
from parties.data.model_file import save_model
from parties.jobs.spec import LOCAL_DATA_REASON, sign_job
from parties.local.launcher import LocalDeployment
from protocols import glm
from protocols.glm_fit import FitSuppressed
from protocols.model import LogisticModel

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
FEATURES = [
    "mean_radius",
    "mean_texture",
    "mean_smoothness",
    "mean_symmetry",
    "mean_concave_points",
]
FORMULA = "diagnosis ~ " + " + ".join(FEATURES)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    dep = LocalDeployment(
        tmp_path_factory.mktemp("glm"), HOSPITALS, model_owners=("model-owner",), name="glm"
    )
    placeholder = LogisticModel(
        np.zeros(len(FEATURES)), 0.0, tuple(FEATURES), np.zeros(len(FEATURES)), np.ones(5)
    )
    save_model(placeholder, dep.root / "placeholder.npz")
    dep.set_data("model-owner", DataConfig("model", dep.root / "placeholder.npz"))
    try:
        dep.start_all()
        yield dep
    finally:
        dep.close()


@pytest.fixture(scope="module")
def client(deployment):
    c = Client(deployment.members["analyst"])
    yield c
    c.close()


def _pooled(dep: LocalDeployment, rows=None) -> tuple[np.ndarray, np.ndarray]:
    rows = rows if rows is not None else [r for h in HOSPITALS for r in dep.rows[h]]
    x = np.array([[float(r[dep.header.index(c)]) for c in FEATURES] for r in rows])
    y = np.array([r[1] == "M" for r in rows], dtype=float)
    return x, y


def _oracle(x: np.ndarray, y: np.ndarray, **fit_args):
    return sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit(**fit_args)


@pytest.fixture(scope="module")
def fitted(deployment, client):
    return client.glm_outcome(FORMULA, positive="M")


def test_the_fit_across_processes_matches_statsmodels(deployment, fitted) -> None:
    fit, outcome = fitted
    x, y = _pooled(deployment)
    ref, tight = _oracle(x, y), _oracle(x, y, tol=1e-13)
    assert fit.nobs == len(y) and fit.names == ("const", *FEATURES)
    np.testing.assert_allclose(fit.coef, ref.params, rtol=1e-4)
    np.testing.assert_allclose(fit.bse, ref.bse, rtol=1e-4)
    np.testing.assert_allclose(fit.pvalues, tight.pvalues, rtol=1e-4)
    np.testing.assert_allclose(fit.deviance, tight.deviance, rtol=1e-6)
    np.testing.assert_allclose(fit.aic, tight.aic, rtol=1e-6)
    replies = list(outcome.replies.values())
    assert len({r.rounds for r in replies}) == 1  # every party ran the same rounds


def test_the_fitted_model_scores_new_patients_with_secure_inference(deployment, fitted) -> None:
    dep = deployment
    fit, _ = fitted
    path = dep.root / "fitted.npz"
    save_model(fit.to_model(), path)
    dep.stop("model-owner")
    dep.set_data("model-owner", DataConfig("model", path))
    dep.start("model-owner")
    analyst = Client(dep.members["analyst"])
    try:
        job = analyst.inference_job(
            "model-owner", FEATURES, {h: len(dep.rows[h]) for h in HOSPITALS}
        )
        outcome = analyst.submit(job)
    finally:
        analyst.close()
    x, y = _pooled(dep)
    ref = _oracle(x, y)
    for h in HOSPITALS:
        with np.load(dep.members[h].home / RESULTS_DIR / f"{outcome.job}.npz") as kept:
            labels = kept["labels"]
        xh, _ = _pooled(dep, dep.rows[h])
        logits = sm.add_constant(xh, has_constant="add") @ ref.params
        clear = np.abs(logits) > 0.01
        np.testing.assert_array_equal(labels[clear], (logits[clear] > 0).astype(int))


def test_a_fit_with_too_few_events_is_suppressed(client) -> None:
    # few patients with a large radius are benign: below m = 5 events of one class
    with pytest.raises(FitSuppressed):
        client.glm(FORMULA, positive="B", where="mean_radius > 19")


def test_an_unknown_column_is_named(client) -> None:
    with pytest.raises(JobFailed, match="no_such_column") as failed:
        client.glm("diagnosis ~ mean_radius + no_such_column", positive="M")
    assert failed.value.kind == "refused: bad-request"


def test_smpc_stats_glm_prints_the_table(deployment) -> None:
    config = deployment.members["analyst"].config_path
    formula = ["--formula", "diagnosis ~ mean_radius + mean_texture", "--positive", "M"]
    done = subprocess.run(
        [sys.executable, "-m", "parties.cli", "stats", "glm", "--config", str(config), *formula],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    x, y = _pooled(deployment)
    ref = _oracle(x[:, :2], y)
    assert "mean_texture" in done.stdout and "P>|z|" in done.stdout
    assert f"{ref.params[1]:11.4g}" in done.stdout


def _restart_hospitals(dep: LocalDeployment, paths: dict[str, Path]) -> None:
    """Restart every hospital on the data file given for it (each reads it once, at start)."""
    for h in HOSPITALS:
        dep.stop(h)
        dep.set_data(h, DataConfig("csv", paths[h]))
    dep.start_all()


def test_a_bad_outcome_value_at_one_hospital_fails_the_job_saying_only_local_data(
    deployment,
) -> None:
    # a 0/1 outcome with one 2 at hospital-c: the analyst learns only that hospital-c cannot
    # use its rows, in the one fixed reason, and the other parties' replies say no more
    dep = deployment
    original = {h: Path(dep.members[h].data.path) for h in HOSPITALS}
    paths = {h: dep.root / f"{h}-malignant.csv" for h in HOSPITALS}
    for h in HOSPITALS:
        rows = [[*r, "1" if r[1] == "M" else "0"] for r in dep.rows[h]]
        if h == "hospital-c":
            rows[17][-1] = "2"
        with paths[h].open("w", newline="") as f:
            csv.writer(f).writerows([[*dep.header, "malignant"], *rows])
    _restart_hospitals(dep, paths)
    analyst = Client(dep.members["analyst"])
    selected = ["mean_radius", "mean_texture", "malignant"]
    try:
        with pytest.raises(JobFailed) as failed:
            analyst.glm(selected[:2], "malignant")
        spec = analyst.job(
            "stats-glm",
            "1",
            inputs={h: (selected, None) for h in HOSPITALS},
            params=glm.GLMParams(outcome="malignant"),
        )
        tls = dep.members["analyst"].tls
        replies, unreachable = analyst.replies(sign_job(spec, tls.key, tls.cert), spec)
    finally:
        analyst.close()
        _restart_hospitals(dep, original)
    assert failed.value.kind == "local-data" and failed.value.party == "hospital-c"
    told = rf"party hospital-c: local-data: {re.escape(LOCAL_DATA_REASON)}"
    assert re.fullmatch(
        rf"job (\w+) aborted: party hospital-c: local-data \(job \1: {told}\)", str(failed.value)
    )
    assert not unreachable and not any(r.ok for r in replies.values())
    bad = replies.pop("hospital-c")
    assert bad.failure_kind == "local-data"
    assert bad.failure == f"job {spec.job_id}: party hospital-c: local-data: {LOCAL_DATA_REASON}"
    for party, reply in replies.items():
        assert reply.failure_kind == "party aborted", party
        told = f"job {spec.job_id}: party {party}: party aborted: party hospital-c: party aborted"
        assert reply.failure == told, party
    log = dep.log_path("hospital-c").read_text()
    # the cause, in its own log: column and data row (decided on the whole column)
    assert "'malignant' data row 18: a binomial outcome must be 0 or 1" in log
