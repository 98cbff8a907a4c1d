"""Reading a ``stats-glm`` job's revealed outputs: the fitted model, its table and its model file.

Everything here is plaintext arithmetic on what the job revealed to its
recipient (:mod:`protocols.glm`), so it reveals nothing more: coefficients
and standard errors in the columns' own units, z values, two-sided p-values
and confidence intervals from the normal distribution (as statsmodels' GLM
reports them), the deviance, the null deviance (from N and the events, or
from the outcome's variance), the log-likelihood and AIC. A fit that was
refused raises :class:`GLMFitError` (or :class:`FitSuppressed`) with the
reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from protocols import glm
from protocols.context import JobContext
from protocols.disclosure import StatisticsInputError
from protocols.model import LogisticModel
from protocols.statistics import opened
from smpc.local import JobResult, LocalFederation


class GLMFitError(StatisticsInputError):
    """The pooled data admit no fit of this model; the message says why and what to change."""


class FitSuppressed(GLMFitError):
    """The fit was suppressed by disclosure control (a count below the minimum cell size)."""


REASONS = {
    glm.SUPPRESSED: (
        FitSuppressed,
        "suppressed: the pooled complete rows or the events of a class are below the minimum "
        "cell size, or a hospital holds fewer than that many complete rows",
    ),
    glm.SEPARATION: (
        GLMFitError,
        "a coefficient exceeded {bound:g} in standardised units: the outcome is (quasi-)separated "
        "by the features (the coefficient grows without bound), or the features are nearly "
        "collinear; remove or merge the separating or redundant features",
    ),
    glm.NOT_CONVERGED: (
        GLMFitError,
        "Newton's method did not converge in {iterations} iterations; raise max_iter or check "
        "the model for (quasi-)separation",
    ),
    glm.COLLINEAR: (
        GLMFitError,
        "the information matrix is singular or too ill-conditioned (collinear features, or a "
        "saturated model); remove redundant features",
    ),
    glm.CONSTANT: (
        GLMFitError,
        "a selected column is constant on the complete rows, so its coefficient is not "
        "identified; remove it",
    ),
}


SATURATED = 1e-12
"""A gaussian fit whose residual sum of squares is below this share of the total is saturated."""


def _z_critical(alpha: float) -> float:
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


@dataclass(frozen=True)
class GLMFit:
    """A fitted regression in the columns' own units, as statsmodels' GLM reports it."""

    family: str
    outcome: str
    names: tuple[str, ...]
    """``const`` and the feature names, in the order of :attr:`coef`."""
    coef: np.ndarray
    bse: np.ndarray
    deviance: float
    null_deviance: float
    scale: float
    """The dispersion: 1 (binomial) or the residual sum of squares over N - q (gaussian)."""
    llf: float
    nobs: int
    dropped: int | None
    iterations: int
    center: np.ndarray
    """The feature means the fit standardised with (its model's scaler)."""
    spread: np.ndarray
    """The feature standard deviations the fit standardised with."""
    standardised: np.ndarray
    """The coefficients on standardised features (intercept first)."""

    @property
    def params(self) -> np.ndarray:
        """The coefficients, statsmodels' name for them."""
        return self.coef

    @property
    def tvalues(self) -> np.ndarray:
        """z values: coefficient over standard error."""
        return self.coef / self.bse

    @property
    def pvalues(self) -> np.ndarray:
        """Two-sided p-values from the normal distribution."""
        return np.array([math.erfc(abs(z) / math.sqrt(2.0)) for z in self.tvalues])

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """(lower, upper) of the 1 - alpha confidence interval of each coefficient."""
        width = _z_critical(alpha) * self.bse
        return np.column_stack([self.coef - width, self.coef + width])

    @property
    def df_model(self) -> int:
        return len(self.coef) - 1

    @property
    def df_resid(self) -> int:
        return self.nobs - len(self.coef)

    @property
    def aic(self) -> float:
        """-2 llf + 2 (df_model + 1), as statsmodels' GLM counts it."""
        return -2.0 * self.llf + 2.0 * (self.df_model + 1)

    def to_model(self) -> LogisticModel:
        """The fitted logistic regression as a model owner's model, with its scaler.

        The weights stay on the standardised features, with the means and
        standard deviations the fit used as the scaler, so secure inference
        scores exactly this fit.
        """
        if self.family != "binomial":
            raise GLMFitError("only a binomial (logistic) fit is a model for secure inference")
        return LogisticModel(
            coef=self.standardised[1:].copy(),
            intercept=float(self.standardised[0]),
            feature_names=self.names[1:],
            scaler_mean=self.center.copy(),
            scaler_scale=self.spread.copy(),
        )

    def summary(self, alpha: float = 0.05) -> str:
        """A table in the manner of statsmodels' GLM summary."""
        ci = self.conf_int(alpha)
        lo, hi = f"[{alpha / 2:g}", f"{1 - alpha / 2:g}]"
        width = max(12, *(len(n) for n in self.names))
        family = "Binomial (logit)" if self.family == "binomial" else "Gaussian (identity)"
        lines = [
            f"Generalized linear model across hospitals: {self.outcome} ~ {family}",
            f"  No. observations: {self.nobs:<10d} Df residuals: {self.df_resid:<8d} "
            f"Df model: {self.df_model}",
            f"  Deviance: {self.deviance:<14.6g} Null deviance: {self.null_deviance:<12.6g} "
            f"Scale: {self.scale:.6g}",
            f"  Log-likelihood: {self.llf:<10.6g} AIC: {self.aic:<12.6g} "
            f"Iterations: {self.iterations}",
            "",
            f"{'':{width}s} {'coef':>11s} {'std err':>11s} {'z':>9s} {'P>|z|':>9s} "
            f"{lo:>11s} {hi:>11s}",
        ]
        for k, name in enumerate(self.names):
            lines.append(
                f"{name:{width}s} {self.coef[k]:11.4g} {self.bse[k]:11.4g} "
                f"{self.tvalues[k]:9.3f} {self.pvalues[k]:9.3g} {ci[k, 0]:11.4g} {ci[k, 1]:11.4g}"
            )
        return "\n".join(lines)


def read_fit(
    outputs: Mapping[str, np.ndarray],
    params: glm.GLMParams,
    columns: Sequence[str],
) -> GLMFit:
    """The fit behind a ``stats-glm`` job's revealed outputs; GLMFitError if it was refused.

    ``columns`` are the columns every hospital selected (the outcome among them).
    """
    status = int(np.asarray(outputs["status"]).reshape(-1)[0])
    iterations = int(np.asarray(outputs["iterations"]).reshape(-1)[0])
    if status != glm.OK:
        kind, reason = REASONS.get(status, (GLMFitError, "the fit failed (status {status})"))
        raise kind(reason.format(bound=glm.COEFFICIENT_BOUND, iterations=iterations, status=status))
    features = params.features(columns)
    p = len(features)
    q = p + 1
    n = int(np.asarray(outputs["count"]).reshape(-1)[0])
    dropped = int(np.asarray(outputs["dropped"]).reshape(-1)[0])
    center = np.asarray(outputs["center"], dtype=np.float64)
    spread = np.asarray(outputs["scale"], dtype=np.float64)
    beta = np.asarray(outputs["coef"], dtype=np.float64)
    factor = np.asarray(outputs["variance"], dtype=np.float64)
    per_n = float(np.asarray(outputs["deviance"]).reshape(-1)[0])
    s = glm.trace_bound(params.family, q)
    _, norm = glm.intercept_weights(center[:p], spread[:p])
    # Var(beta_z) = Y / (s N) times the dispersion; back to raw units below.
    raw_variance = np.concatenate([[norm * factor[0]], factor[1:] / spread[:p] ** 2]) / (s * n)
    coef = np.concatenate([[beta[0] - beta[1:] @ (center[:p] / spread[:p])], beta[1:] / spread[:p]])
    if params.family == "binomial":
        deviance = per_n * n
        scale = 1.0
        events = int(np.asarray(outputs["events"]).reshape(-1)[0])
        null = _binomial_null(n, events)
        llf = -deviance / 2.0
    else:
        sy, my = spread[p], center[p]
        deviance = per_n * n * sy**2
        scale = deviance / (n - q)
        coef = coef * sy
        coef[0] += my
        raw_variance = raw_variance * scale
        null = n * sy**2
        if deviance <= SATURATED * null:
            raise GLMFitError(
                "the outcome is an exact linear function of the features (a saturated fit: no "
                "residual variance to estimate standard errors from); remove the redundant terms"
            )
        llf = -n / 2.0 * (math.log(2.0 * math.pi * deviance / n) + 1.0)
    return GLMFit(
        family=params.family,
        outcome=params.outcome,
        names=("const", *features),
        coef=coef,
        bse=np.sqrt(np.maximum(raw_variance, 0.0)),
        deviance=deviance,
        null_deviance=null,
        scale=scale,
        llf=llf,
        nobs=n,
        dropped=dropped if dropped > 0 else None,
        iterations=iterations,
        center=center[:p],
        spread=spread[:p],
        standardised=beta,
    )


def _binomial_null(n: int, events: int) -> float:
    """The deviance of the intercept-only logistic model: from N and the events alone."""
    total = 0.0
    for count in (events, n - events):
        if count > 0:
            total += count * math.log(count / n)
    return -2.0 * total


def as_dict(fit: GLMFit, alpha: float = 0.05) -> dict[str, Any]:
    """The fit as plain JSON-ready values (for ``--json``)."""
    ci = fit.conf_int(alpha)
    return {
        "family": fit.family,
        "outcome": fit.outcome,
        "names": list(fit.names),
        "coef": fit.coef.tolist(),
        "bse": fit.bse.tolist(),
        "z": fit.tvalues.tolist(),
        "pvalues": fit.pvalues.tolist(),
        "conf_int": ci.tolist(),
        "deviance": fit.deviance,
        "null_deviance": fit.null_deviance,
        "scale": fit.scale,
        "llf": fit.llf,
        "aic": fit.aic,
        "nobs": fit.nobs,
        "dropped": fit.dropped,
        "iterations": fit.iterations,
    }


def run_local(fed: LocalFederation, ctxs: Sequence[JobContext]) -> tuple[GLMFit, JobResult]:
    """Run ``stats-glm`` (or ``stats-glm-text``) in process; the fit (GLMFitError if refused)."""
    params = glm.params_for(ctxs[0].params)
    job = fed.run(opened(glm.protocol_for(params)), inputs=list(ctxs))
    return read_fit(job.results[0], params, ctxs[0].columns), job
