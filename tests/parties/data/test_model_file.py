"""Model files: a model owner's .npz archive is read back exactly, and anything else is named."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from parties.data.model_file import FORMAT_VERSION, load_model, save_model
from protocols.model import LogisticModel, ModelFormatError


@pytest.fixture
def model() -> LogisticModel:
    return LogisticModel(
        coef=np.array([0.5, -1.25, 2.0]),
        intercept=0.1,
        feature_names=("age", "bp", "chol"),
        scaler_mean=np.array([60.0, 130.0, 5.0]),
        scaler_scale=np.array([12.0, 15.0, 1.1]),
    )


def test_model_files_round_trip_and_a_missing_file_is_a_clear_error(model, tmp_path) -> None:
    path = tmp_path / "model.npz"
    save_model(model, path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.coef, model.coef)
    assert loaded.feature_names == model.feature_names
    assert loaded.intercept == model.intercept
    np.testing.assert_array_equal(loaded.scaler_scale, model.scaler_scale)
    with pytest.raises(ModelFormatError, match="no model file"):
        load_model(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", coef=np.zeros(3))
    with pytest.raises(ModelFormatError, match="lacks"):
        load_model(tmp_path / "bad.npz")


def _save_with(model: LogisticModel, path: Path, **changes: np.ndarray) -> Path:
    fields = {
        "coef": model.coef,
        "intercept": np.float64(model.intercept),
        "feature_names": np.array(model.feature_names),
        "scaler_mean": model.scaler_mean,
        "scaler_scale": model.scaler_scale,
        "format_version": np.int64(FORMAT_VERSION),
    }
    np.savez(path, **{**fields, **changes})
    return path


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"intercept": np.array([[0.5]])}, "intercept must be a single number"),
        ({"intercept": np.ones((2, 2))}, "intercept must be a single number"),
        ({"intercept": np.array("high")}, "intercept must be a single number"),
        ({"feature_names": np.array([["a", "b"]])}, "feature_names must be a flat list of strings"),
        ({"coef": np.zeros((2, 2))}, "coef must be a flat list"),
        ({"format_version": np.array([1, 1])}, "format_version must be a single number"),
    ],
)
def test_a_model_file_with_misshapen_fields_is_a_model_format_error(
    model, tmp_path, changes, says
) -> None:
    path = _save_with(model, tmp_path / "model.npz", **changes)
    with pytest.raises(ModelFormatError, match=says):
        load_model(path)


def _npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ones(3))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content",
    [b"", b"not a zip archive" * 8, b"PK\x03\x04" + bytes(100), _npy_bytes()],
    ids=["empty", "text", "broken-zip", "npy-array"],
)
def test_a_model_file_that_is_not_an_npz_archive_is_a_model_format_error(
    tmp_path, content: bytes
) -> None:
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFormatError, match=r"not an \.npz archive"):
        load_model(path)


def test_a_model_file_of_another_format_version_is_refused(model, tmp_path) -> None:
    path = _save_with(model, tmp_path / "model.npz", format_version=np.int64(FORMAT_VERSION + 1))
    with pytest.raises(ModelFormatError, match=f"has format {FORMAT_VERSION + 1}"):
        load_model(path)
