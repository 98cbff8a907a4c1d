"""Column-split inference between real processes: features of the same patients at 3 hospitals."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from parties.client import Client, JobFailed
from parties.config import RESULTS_DIR, DataConfig, load_config, write_config
from parties.data.model_file import save_model
from parties.local.launcher import LocalDeployment
from protocols.model import train

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
LABEL = "malignant"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    dep = LocalDeployment(
        tmp_path_factory.mktemp("cols"), HOSPITALS, model_owners=("model-owner",), name="cols"
    )
    features = dep.header[2:]
    rows = [r for h in HOSPITALS for r in dep.rows[h]]
    ids = np.array([int(r[0]) for r in rows])
    x = np.array([[float(v) for v in r[2:]] for r in rows])
    y = np.array([r[1] == "M" for r in rows], dtype=float)
    # Every hospital holds every patient, under the same pseudonym, but only its columns;
    # hospital-c also holds the diagnosis as 0/1. Rows are shuffled differently at each.
    dep.split = {
        "hospital-a": features[:10],
        "hospital-b": features[10:18],
        "hospital-c": features[18:],
    }
    rng = np.random.default_rng(7)
    for h, cols in dep.split.items():
        index = [features.index(c) for c in cols]
        header = ["id", *cols] + ([LABEL] if h == "hospital-c" else [])
        path = dep.root / f"{h}-columns.csv"
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for i in rng.permutation(len(ids)):
                extra = [int(y[i])] if h == "hospital-c" else []
                writer.writerow([ids[i], *x[i, index], *extra])
        dep.set_data(h, DataConfig("csv", path))
    model = train(x, y, features)
    path = dep.root / "model.npz"
    save_model(model, path)
    dep.set_data("model-owner", DataConfig("model", path))
    for name in (*HOSPITALS, "model-owner"):
        # Policies allow cells of 1, so the analyst may ask for the table unsuppressed.
        member = dep.members[name]
        policy = dataclasses.replace(member.policy, min_cell_size=1)
        write_config(dataclasses.replace(member, policy=policy), member.config_path)
        dep.members[name] = load_config(member.config_path)
    dep.model, dep.ids, dep.x, dep.y, dep.features = model, ids, x, y, features
    try:
        dep.start_all()
        yield dep
    finally:
        dep.close()


def _job(dep, client, patients, **kwargs):
    return client.column_inference_job(
        "model-owner",
        dep.features,
        dep.split,
        "id",
        patients,
        ["hospital-a"],
        label_holder="hospital-c",
        label_column=LABEL,
        **kwargs,
    )


def test_labels_reach_the_named_hospital_and_metrics_the_analyst(deployment) -> None:
    dep = deployment
    order = np.random.default_rng(3).permutation(len(dep.ids))[:400]
    client = Client(dep.members["analyst"])
    try:
        outcome = client.submit(_job(dep, client, dep.ids[order], min_cell_size=1))
    finally:
        client.close()
    logits = dep.model.logits(dep.x[order])
    with np.load(dep.members["hospital-a"].home / RESULTS_DIR / f"{outcome.job}.npz") as kept:
        labels = kept["labels"]
    clear = np.abs(logits) > 0.01
    np.testing.assert_array_equal(labels[clear], (logits[clear] > 0).astype(int))
    p, t = labels.astype(bool), dep.y[order].astype(bool)
    want = [(p & t).sum(), (p & ~t).sum(), (~p & t).sum(), (~p & ~t).sum()]
    np.testing.assert_array_equal(outcome.outputs["metrics"], want)


def test_metrics_with_a_cell_below_the_jobs_minimum_read_suppressed(deployment) -> None:
    dep = deployment
    order = np.arange(len(dep.ids))
    p = dep.model.logits(dep.x) > 0
    t = dep.y.astype(bool)
    smallest = min((p & t).sum(), (p & ~t).sum(), (~p & t).sum(), (~p & ~t).sum())
    client = Client(dep.members["analyst"])
    try:
        job = _job(dep, client, dep.ids[order], min_cell_size=int(smallest) + 1)
        outcome = client.submit(job)
    finally:
        client.close()
    np.testing.assert_array_equal(outcome.outputs["metrics"], [-1.0] * 4)
    for h in ("hospital-b", "hospital-c", "model-owner"):  # nobody else keeps labels
        assert not (dep.members[h].home / RESULTS_DIR / f"{outcome.job}.npz").exists()


def test_a_patient_missing_at_a_holder_fails_the_job_with_a_clear_error(deployment) -> None:
    dep = deployment
    client = Client(dep.members["analyst"])
    try:
        with pytest.raises(JobFailed) as failed:
            client.submit(_job(dep, client, [int(dep.ids[0]), int(dep.ids[1]), 999_999]))
    finally:
        client.close()
    # Which patients a holder has is its data: the analyst gets the one data reason,
    # and the holders' own logs say what is missing.
    assert failed.value.kind == "local-data"
    assert "patients" not in str(failed.value)
    logs = [dep.log_path(h).read_text() for h in dep.split]
    assert any(
        failed.value.job in log and "1 of the job's 3 patients are not in its rows" in log
        for log in logs
    )
