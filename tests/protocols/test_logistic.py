"""Secure logistic-regression inference against the plaintext model on the breast cancer data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from protocols.logistic import infer
from protocols.model import LogisticModel, ModelFormatError, train
from smpc.errors import FixedPointRangeError, ShapeMismatchError
from smpc.local import LocalFederation

DATA = Path(__file__).resolve().parents[2] / "parties" / "data" / "breast_cancer.csv"
HOSPITALS = [0, 1, 2]
OWNER = 3


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, list[str]]:
    with DATA.open() as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    names = header[2:]
    x = np.array([[float(v) for v in r[2:]] for r in body])
    y = np.array([1.0 if r[1] == "M" else 0.0 for r in body])
    return x, y, names


@pytest.fixture(scope="module")
def model(data) -> LogisticModel:
    x, y, names = data
    return train(x, y, names, l2=1.0)


def _run(model, parts, *, probabilities: bool = False, n_features: int = 30):
    rows = [len(p) for p in parts]
    inputs = [parts[0], parts[1], parts[2], model]

    def fn(rt, mine):
        is_owner = rt.party == OWNER
        return infer(
            rt,
            OWNER,
            mine if is_owner else None,
            HOSPITALS,
            rows,
            None if is_owner else mine,
            n_features,
            probabilities=probabilities,
        )

    return LocalFederation(4).run(fn, inputs=inputs)


def test_secure_labels_and_probabilities_match_the_plaintext_model(data, model) -> None:
    x, y, _ = data
    parts = [x[i::3] for i in range(3)]  # rows split disjointly over 3 hospitals
    res = _run(model, parts, probabilities=True)
    assert res.results[OWNER] is None  # the model owner learns nothing
    for h in HOSPITALS:
        logits = model.logits(parts[h])
        plain_labels = (logits > 0).astype(int)
        plain_prob = 1 / (1 + np.exp(-logits))
        got = res.results[h]
        clear = np.abs(logits) > 0.01
        np.testing.assert_array_equal(got["labels"][clear], plain_labels[clear])
        assert np.abs(got["probabilities"] - plain_prob).max() <= 1e-3
    accuracy = np.mean(
        np.concatenate([res.results[h]["labels"] for h in HOSPITALS])
        == np.concatenate([y[i::3] for i in range(3)])
    )
    assert accuracy > 0.95  # the trained model itself is good on its training data


def test_labels_only_by_default_in_twelve_rounds(data, model) -> None:
    x, _, _ = data
    res = _run(model, [x[i::3] for i in range(3)])
    assert set(res.results[0]) == {"labels"}
    assert res.rounds[0] == 12


def test_a_feature_count_that_does_not_match_the_model_is_refused(data, model) -> None:
    x, _, _ = data
    with pytest.raises(ShapeMismatchError):
        _run(model, [x[i::3, :29] for i in range(3)], n_features=30)


def test_nan_in_features_is_a_clear_error_and_reveals_nothing(data, model) -> None:
    x, _, _ = data
    parts = [x[i::3].copy() for i in range(3)]
    parts[1][4, 7] = np.nan
    with pytest.raises(FixedPointRangeError, match="row 4"):
        _run(model, parts)


def test_model_files_round_trip_and_a_missing_file_is_a_clear_error(model, tmp_path) -> None:
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = LogisticModel.load(path)
    np.testing.assert_array_equal(loaded.coef, model.coef)
    assert loaded.feature_names == model.feature_names
    with pytest.raises(ModelFormatError, match="no model file"):
        LogisticModel.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", coef=np.zeros(3))
    with pytest.raises(ModelFormatError, match="lacks"):
        LogisticModel.load(tmp_path / "bad.npz")
