"""Logistic-regression inference between real processes: 3 hospitals, a model owner, a dealer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from parties.client import Client
from parties.config import RESULTS_DIR, DataConfig, load_config, write_config
from parties.data.model_file import save_model
from parties.local.launcher import LocalDeployment
from protocols.model import train

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    dep = LocalDeployment(
        tmp_path_factory.mktemp("lr"), HOSPITALS, model_owners=("model-owner",), name="lr"
    )
    features = dep.header[2:]
    rows = [r for h in HOSPITALS for r in dep.rows[h]]
    x = np.array([[float(v) for v in r[2:]] for r in rows])
    y = np.array([r[1] == "M" for r in rows], dtype=float)
    model = train(x, y, features)
    path = dep.root / "model.npz"
    save_model(model, path)
    dep.set_data("model-owner", DataConfig("model", path))
    dep.model = model
    for name in (*HOSPITALS, "model-owner"):  # every party must permit revealing probabilities
        member = dep.members[name]
        policy = dataclasses.replace(member.policy, allow_probabilities=True)
        write_config(dataclasses.replace(member, policy=policy), member.config_path)
        dep.members[name] = load_config(member.config_path)
    try:
        dep.start_all()
        yield dep
    finally:
        dep.close()


def test_each_hospital_keeps_its_own_labels_and_probabilities(deployment) -> None:
    dep = deployment
    features = list(dep.header[2:])
    client = Client(dep.members["analyst"])
    try:
        job = client.inference_job(
            "model-owner", features, {h: len(dep.rows[h]) for h in HOSPITALS}, probabilities=True
        )
        outcome = client.submit(job)
    finally:
        client.close()
    assert outcome.outputs == {}  # the analyst learns nothing about the patients
    for h in HOSPITALS:
        with np.load(dep.members[h].home / RESULTS_DIR / f"{outcome.job}.npz") as kept:
            labels, probabilities = kept["labels"], kept["probabilities"]
        x = np.array([[float(v) for v in r[2:]] for r in dep.rows[h]])
        logits = dep.model.logits(x)
        clear = np.abs(logits) > 0.01
        np.testing.assert_array_equal(labels[clear], (logits[clear] > 0).astype(int))
        assert np.abs(probabilities - 1 / (1 + np.exp(-logits))).max() <= 1e-3
    owner_results = dep.members["model-owner"].home / RESULTS_DIR
    assert not owner_results.exists()  # the model owner keeps nothing
