"""Logistic-regression models: weights, bias and standardisation, and a plaintext trainer.

A model is ``coef`` (d,), ``intercept``, ``feature_names`` (d,), and
``scaler_mean`` and ``scaler_scale`` (d,) of the standardisation it was
trained with; a model owner keeps it in a file that ``parties.data.model_file``
reads and writes. The trainer is plaintext numpy (for the demo and the
tests): L2-regularised Newton steps (iteratively reweighted least squares) on
standardised features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smpc.errors import SMPCError


class ModelFormatError(SMPCError, ValueError):
    """A model (or its file) is missing, unreadable, or not a logistic regression of this format."""


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
