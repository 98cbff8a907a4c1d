"""Logistic-regression models: the ``.npz`` file a model owner keeps, and a plaintext trainer.

The file holds ``coef`` (d,), ``intercept`` (scalar), ``feature_names`` (d,),
``scaler_mean`` and ``scaler_scale`` (d,) of the standardisation the model
was trained with, and ``format_version``. The trainer is plaintext numpy (for
the demo and the tests): L2-regularised Newton steps (iteratively reweighted
least squares) on standardised features.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smpc.errors import SMPCError

FORMAT_VERSION = 1
_KEYS = ("coef", "intercept", "feature_names", "scaler_mean", "scaler_scale", "format_version")


class ModelFormatError(SMPCError, ValueError):
    """A model file is missing, unreadable, or not a logistic-regression model of this format."""


@dataclass(frozen=True)
class LogisticModel:
    """Weights, bias and the standardisation they expect."""

    coef: np.ndarray
    intercept: float
    feature_names: tuple[str, ...]
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray

    def __post_init__(self) -> None:
        d = len(self.feature_names)
        for name in ("coef", "scaler_mean", "scaler_scale"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (d,) or not np.isfinite(value).all():
                raise ModelFormatError(f"{name} must be {d} finite numbers, one per feature")
            object.__setattr__(self, name, value)
        if not np.isfinite(self.intercept):
            raise ModelFormatError("intercept must be finite")
        if (self.scaler_scale <= 0).any():
            raise ModelFormatError("scaler_scale must be positive")

    def folded(self) -> tuple[np.ndarray, float]:
        """Weights and bias on raw features: w / scale and b - sum(w * mean / scale)."""
        weights = self.coef / self.scaler_scale
        return weights, float(self.intercept - np.dot(weights, self.scaler_mean))

    def logits(self, features: np.ndarray) -> np.ndarray:
        """The plaintext logits (the oracle for the secure computation)."""
        standardised = (
            np.asarray(features, dtype=np.float64) - self.scaler_mean
        ) / self.scaler_scale
        return standardised @ self.coef + self.intercept

    def save(self, path: str | Path) -> None:
        np.savez(
            Path(path),
            coef=self.coef,
            intercept=np.float64(self.intercept),
            feature_names=np.array(self.feature_names),
            scaler_mean=self.scaler_mean,
            scaler_scale=self.scaler_scale,
            format_version=np.int64(FORMAT_VERSION),
        )

    @staticmethod
    def load(path: str | Path) -> LogisticModel:
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
                    feature_names=tuple(
                        str(n) for n in _field(data, "feature_names", path, 1, "U")
                    ),
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


def train(
    features: np.ndarray,
    labels: np.ndarray,
    feature_names: Sequence[str],
    *,
    l2: float = 1.0,
    iterations: int = 25,
) -> LogisticModel:
    """Fit a logistic regression in plaintext (for the demo and tests)."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    beta = np.zeros(z.shape[1])
    penalty = l2 * np.eye(z.shape[1])
    penalty[0, 0] = 0.0  # no penalty on the intercept
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(z @ beta)))
        gradient = z.T @ (p - y) + penalty @ beta
        hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return LogisticModel(beta[1:], float(beta[0]), tuple(feature_names), mean, scale)
