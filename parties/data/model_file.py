"""A model owner's model file: the ``.npz`` archive behind ``protocols.model.LogisticModel``.

The archive holds ``coef`` (d,), ``intercept`` (a number), ``feature_names``
(d strings), ``scaler_mean`` and ``scaler_scale`` (d,) and ``format_version``.
It is read without pickle; anything else is a ``ModelFormatError`` naming the
file and the field, never a weight.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from protocols.model import LogisticModel, ModelFormatError

FORMAT_VERSION = 1
_KEYS = ("coef", "intercept", "feature_names", "scaler_mean", "scaler_scale", "format_version")


def save_model(model: LogisticModel, path: str | Path) -> None:
    """Write ``model`` to ``path`` as a model file of this format."""
    np.savez(
        Path(path),
        coef=model.coef,
        intercept=np.float64(model.intercept),
        feature_names=np.array(model.feature_names),
        scaler_mean=model.scaler_mean,
        scaler_scale=model.scaler_scale,
        format_version=np.int64(FORMAT_VERSION),
    )


def load_model(path: str | Path) -> LogisticModel:
    """Read a model file; a clear ModelFormatError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"no model file at {path}")
    if not zipfile.is_zipfile(path):
        raise ModelFormatError(f"{path} is not an .npz archive; save models with np.savez")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _KEYS if k not in data.files]
            if missing:
                raise ModelFormatError(f"{path} lacks {', '.join(missing)}")
            version = _field(data, "format_version", path, 0, "iu")
            if int(version) != FORMAT_VERSION:
                raise ModelFormatError(f"{path} has format {int(version)}")
            return LogisticModel(
                coef=_field(data, "coef", path, 1, "fiu"),
                intercept=float(_field(data, "intercept", path, 0, "fiu")),
                feature_names=tuple(str(n) for n in _field(data, "feature_names", path, 1, "U")),
                scaler_mean=_field(data, "scaler_mean", path, 1, "fiu"),
                scaler_scale=_field(data, "scaler_scale", path, 1, "fiu"),
            )
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        if isinstance(exc, ModelFormatError):
            raise
        raise ModelFormatError(f"{path} is not a readable model file") from None


def _field(
    data: Mapping[str, np.ndarray], key: str, path: Path, ndim: int, kinds: str
) -> np.ndarray:
    """One array of a model file, checked for its number of dimensions and kind of values."""
    value = data[key]
    if value.ndim != ndim or value.dtype.kind not in kinds:
        expected = "a single number" if ndim == 0 else "a flat list"
        if kinds == "U":
            expected += " of strings"
        raise ModelFormatError(
            f"{path}: {key} must be {expected}, not an array of shape {value.shape}"
            f" and dtype {value.dtype}"
        )
    return value
