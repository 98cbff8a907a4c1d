"""``smpc infer`` between real processes: 2 hospitals, a model owner, a dealer, an analyst."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from parties.config import RESULTS_DIR, DataConfig
from parties.data.model_file import save_model
from parties.local.launcher import LocalDeployment
from protocols.model import train

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b")
LABEL = "malignant"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):
    """Each hospital's breast cancer rows with a 0/1 ``malignant`` column; a model on 5 features."""
    dep = LocalDeployment(
        tmp_path_factory.mktemp("infer"), HOSPITALS, model_owners=("model-owner",), name="inf"
    )
    dep.features = dep.header[2:7]
    for h in HOSPITALS:
        with dep.members[h].data.path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*dep.header, LABEL])
            writer.writerows([*r, int(r[1] == "M")] for r in dep.rows[h])
    rows = [r for h in HOSPITALS for r in dep.rows[h]]
    model = train(_features(rows), np.array([r[1] == "M" for r in rows], float), dep.features)
    save_model(model, dep.root / "model.npz")
    dep.set_data("model-owner", DataConfig("model", dep.root / "model.npz"))
    dep.model = model
    try:
        dep.start_all()
        yield dep
    finally:
        dep.close()


def _features(rows: list[list[str]]) -> np.ndarray:
    return np.array([[float(v) for v in r[2:7]] for r in rows])


def _smpc(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "parties.cli", *argv]
    return subprocess.run(command, text=True, timeout=120, **kwargs)  # type: ignore[call-overload]


def _infer(dep: LocalDeployment, *extra: str) -> subprocess.CompletedProcess[str]:
    rows = ",".join(f"{h}={len(dep.rows[h])}" for h in HOSPITALS)
    config = str(dep.members["analyst"].config_path)
    columns = ",".join(dep.features)
    argv = ["infer", "--config", config, "--model-owner", "model-owner", "--columns", columns]
    return _smpc(*argv, "--rows", rows, *extra, capture_output=True)


def _kept(dep: LocalDeployment, hospital: str, job: str) -> np.ndarray:
    with np.load(dep.members[hospital].home / RESULTS_DIR / f"{job}.npz") as kept:
        return kept["labels"]


def test_infer_prints_where_each_hospital_keeps_its_labels(deployment: LocalDeployment) -> None:
    dep = deployment
    done = _infer(dep)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    job = lines[0].split()[1]
    for h in HOSPITALS:
        n = len(dep.rows[h])
        kept = f"labels kept at {h} in {h}/results/{job}.npz (its member folder)"
        assert f"  {h}: {n} rows scored; {kept}" in lines[1:]
        logits = dep.model.logits(_features(dep.rows[h]))
        clear = np.abs(logits) > 0.01
        labels = _kept(dep, h, job)
        assert labels.shape == (n,)
        np.testing.assert_array_equal(labels[clear], (logits[clear] > 0).astype(int))
    assert "metrics" not in done.stdout


def test_infer_metrics_are_the_confusion_counts_of_the_kept_labels(
    deployment: LocalDeployment,
) -> None:
    dep = deployment
    done = _infer(dep, "--label-column", LABEL, "--metrics", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    labels = np.concatenate([_kept(dep, h, result["job"]) for h in HOSPITALS])
    truth = np.array([r[1] == "M" for h in HOSPITALS for r in dep.rows[h]])
    predicted = labels == 1
    expected = {
        "tp": int((predicted & truth).sum()),
        "fp": int((predicted & ~truth).sum()),
        "fn": int((~predicted & truth).sum()),
        "tn": int((~predicted & ~truth).sum()),
    }
    assert {k: result["metrics"][k] for k in expected} == expected
    assert result["metrics"]["suppressed"] is False
    assert result["metrics"]["accuracy"] == pytest.approx(np.mean(predicted == truth))
    text = _infer(dep, "--label-column", LABEL, "--metrics")  # the same job again, as text
    assert text.returncode == 0, text.stderr
    counts = ", ".join(f"{k.upper()} {v}" for k, v in expected.items())
    accuracy = result["metrics"]["accuracy"]
    assert f"  metrics: {counts}; accuracy {accuracy:.4f}" in text.stdout.splitlines()
    assert result["labels"] == {
        h: {"rows": len(dep.rows[h]), "file": f"{h}/results/{result['job']}.npz"} for h in HOSPITALS
    }


def test_infer_metrics_with_a_cell_below_the_minimum_read_suppressed(
    deployment: LocalDeployment,
) -> None:
    done = _infer(deployment, "--label-column", LABEL, "--metrics", "--min-cell-size", "1000")
    assert done.returncode == 0, done.stderr
    line = "  metrics: suppressed (a cell is below the minimum cell size 1000)"
    assert line in done.stdout.splitlines()
    assert "TP" not in done.stdout


def test_audit_of_the_job_into_a_closed_pipe_exits_quietly(deployment: LocalDeployment) -> None:
    dep = deployment
    done = _infer(dep, "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)["job"]
    audit = ["audit", job, "--config", str(dep.members["hospital-a"].config_path)]
    full = _smpc(*audit, capture_output=True)
    assert full.returncode == 0, full.stderr
    assert job in full.stdout
    read, write = os.pipe()
    os.close(read)  # as `| head` leaves it once it has read enough
    try:
        piped = _smpc(*audit, stdout=write, stderr=subprocess.PIPE)
    finally:
        os.close(write)
    assert piped.returncode == 0
    assert piped.stderr == ""
