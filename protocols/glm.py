"""Logistic and linear regression fitted across hospitals (``stats-glm``): Newton's method in MPC.

``stats-glm-text`` is the same fit of a text outcome (an event where it
equals ``positive``, e.g. a diagnosis "M").

The pooled fit of DataSHIELD's ``ds.glm`` without its disclosure: there,
every hospital sends its score vector and information matrix to the analyst
in every iteration. Here each hospital shares them, the sums over hospitals
are formed and the Newton step is solved inside MPC, and nothing of any one
hospital is ever opened.

What is revealed, and to whom:

- To the job's recipients (:data:`OUTPUTS`): the pooled count N of complete
  rows, the dropped rows and the events (binomial), gated as every statistic
  is; the column means and standard deviations used to standardise (the
  scaler that a saved model carries anyway); the coefficients; a variance
  factor per coefficient, hence the standard errors; the deviance over N;
  the iteration count and a status. z values, p-values, confidence
  intervals, AIC and the null deviance are computed from these by the
  recipient (:mod:`protocols.glm_fit`) and reveal nothing more.
- To the computing parties, as declared public intermediates: m, N, the
  pooled events (binomial), the column means and standard deviations, the
  path of the coefficient iterates in standardised units (hence the final
  coefficients) and whether each iteration's inverse converged (six bits:
  which of three traces of the pooled inverse and its residuals lies within
  its bound, step 3); each is a function of the pooled data only, never of
  one hospital's aggregates.
  Keeping the iterates secret (a secure sigmoid over every row) is not done.
- Whether the fit failed, and why (separation, no convergence, collinear
  or constant columns, a coefficient out of range), to everyone: a refused
  fit reveals its status, and every coefficient output is 0.

Steps (k hospitals, p features, q = p + 1 coefficients with the intercept):

1. Policies (1 round); each hospital shares [n_i, dropped_i, events_i,
   non-events_i, veto_i] (1 round). For the binomial family the events and
   non-events are compared with m (:func:`~protocols.disclosure.gate`,
   8 rounds) and their flags join the vetoes; then N against max(m, q + 1,
   q / ``parameter_ratio``) (:data:`PARAMETER_RATIO`) and the dropped count
   against m (8 rounds). The gated N and events are
   opened to the parties (1 round); N = 0 means suppressed, and the job ends
   there with every output 0.
2. Hospitals share their column sums and sums of squares over N (2F bits),
   opened to the parties (2 rounds): the means and population standard
   deviations, rounded to 2^-32, standardise every column (the outcome too
   for the gaussian family). A column whose variance is not well above the
   resolution of these sums (:data:`SPREAD_MARGIN`) is refused as constant.
3. Newton iterations in standardised units (z, with an intercept column),
   from the start of step 4. Hospital i computes at the public beta its
   information matrix Z'WZ and score Z'(y - mu) over its rows, scaled by
   1 / (N s) with the public s = q / 4 (binomial, w <= 1/4) or q (gaussian),
   so that A = sum_i Z_i'W_iZ_i / (N s) has trace at most 1; it shares A at
   22 and at 32 fractional bits, the score in two limbs (22 bits and the
   remainder at 38 bits) and its deviance over N (32 bits); 1 round.
   In MPC: Y ~ A^-1 by :data:`NEWTON_SCHULZ_STEPS` Newton-Schulz steps at
   22 bits (:mod:`smpc.linalg`, 76 rounds); I - A Y against the 22-bit A and
   R = I - A Y against the 32-bit A (one batched product, 1 round); then in
   the same 8 rounds the check (one batched comparison: did the inverse
   converge?) that |trace(I - A_22 Y)| < 2^-10, |trace R| < 2^-7 and
   0 < trace Y < 2^15.5, and one refinement Y + Y R (3 rounds) followed by
   the step Y (g_hi + g_lo) at 36 bits and the variance factors Y_jj and
   t'Yt (for the intercept in raw units, t the public unit vector along
   (1, -mean_j / sd_j); Y t is truncated first, in the round of the step's
   product) at 32 bits (2 rounds). The
   check's six bits are opened to the parties (1 round), then, only if the
   inverse converged, the step (1 round), which is added to beta. 88 rounds
   per iteration (:data:`ITERATION_ROUNDS`).
4. The iteration stops when every step is below ``tol`` (converged: the
   information, hence the standard errors, then comes from an iterate within
   ``tol`` of the last), when the inverse did not converge (collinear
   features), when a standardised coefficient exceeds
   :data:`COEFFICIENT_BOUND` (binomial: separation or quasi-separation) or
   :data:`GAUSSIAN_BOUND` (gaussian: only a wrapped step gets there), or
   after ``max_iter`` (not converged). Newton starts from 0 with the
   intercept at logit(events / N), the intercept-only fit on centred
   features (so the gated event count is public to the parties too).

Scaling (why it reaches 1e-4 relative accuracy): in standardised units the
information over N is O(1) and well inside the ring's range; A is scaled
into (0, 1] by a public bound on its trace, so Newton-Schulz needs no
division and starts from I. Its iterate carries 22 bits, but the refinement
measures the residual against A at 32 bits, so the covariance (whose
diagonal gives the standard errors) has the precision of the 32-bit input,
about 1e-8 relative for a condition number of 100. The step is the product
with a score given to 2^-38, and Newton's method corrects any error of the
inverse, so the coefficients are as exact as the score. Newton-Schulz
converges if A's smallest eigenvalue is at least 2^-15
(``smpc.linalg.INVERSE_BOUND_BITS``). One refinement leaves an error of
about |R|^2, R = (A_22 - A_32) Y being the hospitals' roundings of the
22-bit copy times Y, so the check of step 3 refuses the fit as collinear
unless three traces say it is sound: that of I - A_22 Y, a sum of the
non-negative eigenvalues (1 - lambda)^(2^K) of the Newton-Schulz residual,
so that none cancels another (:data:`CONDITION_TOLERANCE`); that of R,
dominated by its terms along the eigenvectors of small eigenvalues
(:data:`REFINEMENT_TOLERANCE`: an error of about 6e-5); and trace Y, which
bounds the range of everything Y multiplies (:data:`INVERSE_TRACE_BITS`).
Measured: fits pass when A's smallest eigenvalue is 2^-15 or more (for
three hospitals, most of them; for ten hospitals and 31 coefficients,
some) and none below 2^-16, and no passing inverse was off by more than
6e-5. (For a nearly singular A the products leave the ring's range and wrap
around; then every trace must land within its bound by chance, about 2^-19
for the first alone.)

Every iteration consumes the same preprocessing, so the dry run plans
``max_iter`` of them and a fit that converges earlier uses a prefix of its
plan.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import numpy as np

from protocols.context import JobContext, Outcome, ProtocolSpec, is_integer, is_number
from protocols.descriptive import check_frac_bits, fixed, local_rows, pooled_integers
from protocols.disclosure import (
    StatisticsInputError,
    StatisticsParams,
    StatisticsParamsError,
    agree,
    gate,
    job_params,
    public,
    small_contribution,
)
from protocols.local_data import ColumnFacts
from smpc import compare, linalg
from smpc.runtime import Runtime
from smpc.shares import SharedTensor, concatenate
from smpc.steps import Steps, drive, lockstep, truncations

FAMILIES = ("binomial", "gaussian")

PARAMETER_RATIO = 0.33
"""At most this many coefficients per pooled complete row (DataSHIELD's ``nfilter.glm``).

A fit of q coefficients to N rows with q > 0.33 N is suppressed inside MPC
(the gate compares N with ceil(q / ratio)), as a pooled count below m is:
with as many coefficients as rows a fit reproduces the rows. A job may set
a stricter ``parameter_ratio``, never a looser one."""
MAX_FEATURES = 30
"""At most 30 features (31 coefficients with the intercept)."""

NEWTON_SCHULZ_STEPS = 20
"""(1 - lambda)^(2^20) < 2^-30 for every eigenvalue lambda >= 2^-15 of the scaled information."""

WORK_BITS = 22
"""Fractional bits of A and its inverse inside Newton-Schulz."""

FINE_BITS = 32
"""Fractional bits of the precise copy of A, against which the residual is measured."""

RESIDUAL_BITS = 36
"""Fractional bits of each opened step."""

REFINE_BITS = 28
"""Fractional bits of the residual R = I - A_32 Y in the refinement.

Y R at 22 + 28 bits must stay below 2^62: |Y R| < 2^12. Y R is Y (I - A_22
Y), at most 2^15.5 2^-10 after the check, plus Y (A_22 - A_32) Y, the
hospitals' roundings between the two copies of A times Y twice: along an
eigenvector of a small eigenvalue lambda it is that term of trace R (below
2^-7 after the check) over lambda (above 2^-15.5), below 2^8.5. At 36 bits
(room for 2^4 only) the refinement wrapped around for eigenvalues below
about 2^-13."""

LOW_BITS = 38
"""Fractional bits of the score's second limb (the remainder below 2^-22)."""

OUT_BITS = 32
"""Fractional bits of the revealed reals (2F)."""

WEIGHT_BITS = 24
"""Fractional bits of the public direction t of the intercept's variance factor t'Yt.

Y t (|Y t| <= |Y| < 2^15.5) at 22 + 24 bits is truncated to 22 bits before
the product with t, so t's rounding (2^-25 an entry) enters t'Yt only as
2 d'Yt + d'Yd: below 2^-13.7 relative (|2 d'Yt| <= 2 sqrt(d'Yd t'Yt), d'Yd <
2^15.5 q 2^-50 and t'Yt >= 1), and in practice about 1e-7. (Rounding
the weights t t' entry by entry instead left sum_ij Y_ij d_ij, which Y's
largest eigenvalue carries into t'Yt even when t has no component along it:
4e-4 relative for nearly collinear features.)"""

COEFFICIENT_BOUND = 20.0
"""A standardised logistic coefficient beyond this (odds ratio e^20 per SD) means separation.

Or nearly collinear features: e.g. mean radius and mean perimeter of the
breast cancer data, whose standardised coefficients statsmodels puts at -21
and 26; the refusal's reason names both."""

GAUSSIAN_BOUND = 2.0**10
"""A standardised linear coefficient beyond this is refused: no sound fit reaches it.

On standardised columns the fitted beta satisfies beta'C beta <= 1 (the
explained share of the outcome's variance), C = Z'Z / N; the inverse check
lets through only C = q A with A's smallest eigenvalue above 2^-15.5, so
|beta| < 2^7.75 / sqrt(q) < 2^7.25. A larger iterate comes from a step that
wrapped around and passed the check by chance (about 2^-19); without the
bound, the next iteration's local terms would leave the fixed-point range."""

INVERSE_TRACE_BITS = 15.5
"""The inverse counts only if trace(Y) < 2^15.5, which bounds Y's largest eigenvalue.

That keeps the step Y g below 2^18 at 44 bits, Y t and t'Yt below 2^16 at
22 + 24 bits and Newton-Schulz's iterate in range. The trace, not the smallest
eigenvalue, is bounded: when every eigenvalue is small alike (rare events
weigh each row by about p (1 - p), not 1/4), trace Y is q times 1 / lambda,
so the bound must leave room for q = 31 well-conditioned ones near 2^-10."""

CONDITION_TOLERANCE = 2.0**-10
"""|trace(I - A Y)| against the 22-bit A must stay below this: Newton-Schulz converged."""

REFINEMENT_TOLERANCE = 2.0**-7
"""|trace(I - A Y)| against the 32-bit A must stay below this: the refinement is accurate.

R = I - A_32 Y is the rounding difference (A_22 - A_32) Y, largest along
the eigenvectors of small eigenvalues, where its diagonal terms dominate; one
refinement leaves R^2, about 2^-14 = 6e-5 relative at this tolerance. (The
former 2^-10 refused most fits whose smallest eigenvalue was 2^-13 to
2^-15, which this refinement inverts to better than 1e-4.)"""

SPREAD_MARGIN = 2.0**10
"""A column counts as constant unless its variance is this many times :func:`variance_resolution`.

Above it the pooled standard deviation is within 2^-11 relative of the
rows' own; a constant column's computed variance never exceeds one
resolution. With 3 hospitals a column of mean 310 passes from an SD of about
0.015 (the former floor, 2^-12 max(1, |mean|) on the SD, refused one of SD
0.05, which statsmodels fits and this fit matches)."""


def variance_resolution(center: np.ndarray, hospitals: int) -> np.ndarray:
    """The largest error of a pooled variance S2 - S1^2 from k hospitals' sums over N.

    Each hospital rounds its sum over N and its sum of squares over N to
    2^-32, so S1 and S2 are each off by at most k 2^-33, and S2 - S1^2 (formed
    exactly from the integers) by k 2^-33 (1 + 2 |mean|) + (k 2^-33)^2. The
    hospitals' float64 sums of squares add at most about 24 2^-53 mean^2
    (pairwise summation of up to 2^24 rows), below that for |mean| < 2^14.
    """
    half = hospitals * 2.0 ** -(OUT_BITS + 1)
    return half * (1.0 + 2.0 * np.abs(center)) + half**2


OK, SUPPRESSED, SEPARATION, NOT_CONVERGED, COLLINEAR, CONSTANT, UNBOUNDED = range(7)
"""Fit status codes, revealed with the fit."""

OUTPUTS = (
    "count",
    "dropped",
    "events",
    "status",
    "iterations",
    "center",
    "scale",
    "coef",
    "variance",
    "deviance",
)

ITERATION_ROUNDS = 1 + 4 * (NEWTON_SCHULZ_STEPS - 1) + 1 + 8 + 2
"""Rounds of one Newton iteration: input, Newton-Schulz, residual, check and step, openings."""


@dataclass(frozen=True)
class GLMParams(StatisticsParams):
    """A regression of ``outcome`` on every other selected column.

    ``family`` is "binomial" (logistic regression, outcome 0/1) or
    "gaussian" (linear regression); ``max_iter`` bounds the Newton
    iterations (1 to 50) and ``tol`` is the largest step, in standardised
    units, that counts as converged. ``parameter_ratio`` (at most
    :data:`PARAMETER_RATIO`, the default) bounds the coefficients per pooled
    row. ``positive`` is for :class:`TextGLMParams` only.
    """

    TEXT_OUTCOME: ClassVar[bool] = False

    outcome: str
    family: str = "binomial"
    max_iter: int = 25
    tol: float = 1e-8
    positive: str | None = None
    parameter_ratio: float = PARAMETER_RATIO

    def __post_init__(self) -> None:
        if not isinstance(self.outcome, str) or not self.outcome.strip():
            raise self.invalid("outcome", "must name the outcome column")
        if self.family not in FAMILIES:
            raise self.invalid("family", f"must be one of {', '.join(FAMILIES)}")
        if not is_integer(self.max_iter) or not 1 <= int(self.max_iter) <= 50:
            raise self.invalid("max_iter", "must be an integer from 1 to 50")
        if not is_number(self.tol) or not 1e-12 <= float(self.tol) <= 1e-2:
            raise self.invalid("tol", "must be a number from 1e-12 to 1e-2")
        ratio = self.parameter_ratio
        if not is_number(ratio) or not 0.0 < float(ratio) <= PARAMETER_RATIO:
            raise self.invalid(
                "parameter_ratio",
                f"must be a number above 0 and at most {PARAMETER_RATIO} (coefficients per row)",
            )
        if self.positive is None and self.TEXT_OUTCOME:
            raise self.invalid("positive", "is required: the outcome's text that marks an event")
        if self.positive is not None and not self.TEXT_OUTCOME:
            raise self.invalid(
                "positive", "reads a text outcome, which stats-glm-text fits (stats-glm reads 0/1)"
            )
        if self.positive is not None:
            if not isinstance(self.positive, str) or not self.positive.strip():
                raise self.invalid("positive", "must be the outcome's text that marks an event")
            if self.family != "binomial":
                raise self.invalid("positive", "applies to the binomial family only")
            object.__setattr__(self, "positive", self.positive.strip())
        object.__setattr__(self, "max_iter", int(self.max_iter))
        object.__setattr__(self, "tol", float(self.tol))
        object.__setattr__(self, "parameter_ratio", float(ratio))

    def check_columns(self, columns: Sequence[str]) -> None:
        super().check_columns(columns)
        if len(set(columns)) != len(columns):
            raise StatisticsParamsError("must not name a column twice", "columns")
        if self.outcome not in columns:
            raise StatisticsParamsError(
                f"must include the outcome column {self.outcome!r}", "columns"
            )
        features = self.features(columns)
        if not features:
            raise StatisticsParamsError("must name at least one feature besides the outcome")
        if len(features) > MAX_FEATURES:
            raise StatisticsParamsError(
                f"name at most {MAX_FEATURES} features besides the outcome, not {len(features)}",
                "columns",
            )

    def features(self, columns: Sequence[str]) -> tuple[str, ...]:
        """The selected columns other than the outcome, in their order."""
        return tuple(c for c in columns if c != self.outcome)


@dataclass(frozen=True)
class TextGLMParams(GLMParams):
    """A logistic regression on a text outcome: the event is the outcome equal to ``positive``.

    E.g. ``diagnosis`` with ``positive="M"``; an empty outcome cell is
    missing. A protocol of its own (``stats-glm-text``) because it reads the
    selection's text, which costs the hospital a pass over every cell.
    """

    TEXT_OUTCOME: ClassVar[bool] = True


def parse_formula(formula: str) -> tuple[str, tuple[str, ...]]:
    """The outcome and features of ``"outcome ~ a + b + c"``; a StatisticsParamsError otherwise.

    Only main effects of named columns: no transformations or interactions
    (the intercept is always fitted).
    """
    outcome, sep, rhs = formula.partition("~")
    terms = tuple(t.strip() for t in rhs.split("+"))
    names = [outcome.strip(), *terms]
    if not sep or not all(n.isidentifier() for n in names) or rhs.count("~"):
        raise StatisticsParamsError(
            f"{formula!r} is not of the form 'outcome ~ column + column ...' (column names only)",
            "formula",
        )
    return outcome.strip(), terms


def _with_outcome(rt: Runtime, ctx: JobContext, params: GLMParams) -> JobContext:
    """The context with a text outcome read as 0/1 (``positive``), and no text feature.

    A feature that holds text (NaN in the numbers, a cell in the text) is an
    error naming the column; an empty outcome cell is missing.
    """
    if params.positive is None or rt.planning:
        return ctx
    for name in ctx.columns:  # decided on the whole column, whichever rows were selected
        row = ctx.facts[name].not_number if name in ctx.facts else None
        if name != params.outcome and row is not None:
            raise StatisticsInputError(
                f"column {name!r} data row {row}: a feature must be a number"
            )
    if not len(ctx.values):
        return ctx
    values = np.array(ctx.values, dtype=np.float64)
    for j, name in enumerate(ctx.columns):
        cells = np.asarray(ctx.text.get(name, np.full(len(values), "")))
        if name == params.outcome:
            event = np.where(cells == params.positive, 1.0, 0.0)
            values[:, j] = np.where(cells == "", np.nan, event)
        elif (np.isnan(values[:, j]) & (cells != "")).any():
            row = int(np.argmax(np.isnan(values[:, j]) & (cells != "")))
            raise StatisticsInputError(f"column {name!r} row {row}: a feature must be a number")
    return dataclasses.replace(ctx, values=values)


def _split(
    rows: np.ndarray,
    columns: Sequence[str],
    params: GLMParams,
    facts: Mapping[str, ColumnFacts] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features and outcome of this party's complete rows; a binomial outcome must be 0 or 1.

    A numeric outcome is checked on the whole column (``facts``) when the
    source gave it, so the refusal does not depend on the rows selected.
    """
    fact = (facts or {}).get(params.outcome)
    binary = params.family == "binomial" and params.positive is None
    if binary and fact is not None and fact.not_binary is not None:
        raise StatisticsInputError(
            f"column {params.outcome!r} data row {fact.not_binary}: a binomial outcome "
            "must be 0 or 1"
        )
    at = list(columns).index(params.outcome)
    y = rows[:, at]
    x = np.delete(rows, at, axis=1)
    if params.family == "binomial" and len(y) and not np.isin(y, (0.0, 1.0)).all():
        row = int(np.argmax(~np.isin(y, (0.0, 1.0))))
        raise StatisticsInputError(
            f"column {params.outcome!r} row {row} of the complete rows: a binomial outcome "
            "must be 0 or 1"
        )
    return x, y


def local_terms(
    z: np.ndarray, y: np.ndarray, beta: np.ndarray, family: str, divisor: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """This hospital's information matrix, score and deviance at ``beta``, over ``divisor``.

    ``z`` holds the standardised features with a leading column of ones. The
    binomial deviance is 2 sum(log(1 + e^eta) - y eta); the gaussian one the
    residual sum of squares.
    """
    eta = z @ beta
    if family == "binomial":
        mu = 0.5 * (1.0 + np.tanh(0.5 * eta))
        w = mu * (1.0 - mu)
        deviance = 2.0 * float(np.sum(np.logaddexp(0.0, eta) - y * eta))
    else:
        mu = eta
        w = np.ones_like(eta)
        deviance = float(np.sum((y - eta) ** 2))
    information = (z * w[:, None]).T @ z
    score = z.T @ (y - mu)
    return information / divisor, score / divisor, deviance / divisor


def least_rows(q: int, ratio: float) -> int:
    """The fewest pooled rows N with q <= ratio N, for the ratio as written (0.03 is 3/100)."""
    return math.ceil(Fraction(q) / Fraction(repr(ratio)))


def trace_bound(family: str, q: int) -> float:
    """The public s with trace(sum_i Z_i'W_iZ_i / N) <= s: q / 4 (binomial) or q (gaussian)."""
    return 0.25 * q if family == "binomial" else float(q)


def _standardised(values: np.ndarray, center: np.ndarray, spread: np.ndarray) -> np.ndarray:
    return (values - center) / spread


def _grid(values: np.ndarray) -> np.ndarray:
    """Values rounded to 2^-32, so the revealed ones are exactly those used."""
    return np.rint(np.asarray(values, dtype=np.float64) * 2.0**OUT_BITS) / 2.0**OUT_BITS


def _moments(opened: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The means and population variances from the pooled sums over N at 2^-32.

    The variance S2 - S1^2 is formed from the integers exactly, so its only
    error is the hospitals' rounding (:func:`variance_resolution`).
    """
    sums = [int(v) for v in opened[:width]]
    squares = [int(v) for v in opened[width:]]
    exact = [(s2 << OUT_BITS) - s1 * s1 for s1, s2 in zip(sums, squares, strict=True)]
    center = np.array(sums, dtype=np.float64) / 2.0**OUT_BITS
    return center, np.array([float(v) / 2.0 ** (2 * OUT_BITS) for v in exact])


def intercept_direction(center: np.ndarray, spread: np.ndarray) -> tuple[np.ndarray, float]:
    """t = u / |u| for u = (1, -mean_j / sd_j), and |u|^2.

    The intercept in raw units is u . beta (standardised), so its variance
    is |u|^2 t'Ct; t'Yt is bounded by Y's largest eigenvalue, which keeps it
    in range however large the means are.
    """
    u = np.concatenate([[1.0], -center / spread])
    norm = float(u @ u)
    return u / math.sqrt(norm), norm


def fit(rt: Runtime, ctx: JobContext) -> Outcome:
    """The ``stats-glm`` protocol (a 0/1 or real outcome); see the module docstring."""
    return _fit(rt, ctx, GLMParams)


def fit_text(rt: Runtime, ctx: JobContext) -> Outcome:
    """The ``stats-glm-text`` protocol (a text outcome); see the module docstring."""
    return _fit(rt, ctx, TextGLMParams)


def _fit(rt: Runtime, ctx: JobContext, kind: type[GLMParams]) -> Outcome:
    check_frac_bits(rt)
    params = job_params(ctx, kind)
    binomial = params.family == "binomial"
    features = params.features(ctx.columns)
    p = len(features)
    q = p + 1
    rows, dropped = local_rows(rt, _with_outcome(rt, ctx, params))
    x, y = _split(rows, ctx.columns, params, ctx.facts)
    n = len(y)
    m = agree(rt, ctx)
    events = int(y.sum()) if binomial else 0
    head = [n, dropped, events, n - events, small_contribution(n, m)]
    pooled = pooled_integers(rt, np.array(head))
    vetoes = pooled[4:5]
    if binomial:
        flags, _ = gate(rt, pooled[2:4], m, [], vetoes)
        vetoes = vetoes + flags[0:1] + flags[1:2]
    counts = pooled[:2]
    minimum = np.array([max(m, q + 1, least_rows(q, params.parameter_ratio)), m])
    _, (kept, events_kept) = gate(rt, counts, minimum, [(counts, None), (pooled[2:3], 0)], vetoes)
    opened = rt.open(concatenate([kept[:1], events_kept]))
    total, positive = int(opened[0]), int(opened[1])
    shared = {"count": kept[:1], "dropped": kept[1:], "events": events_kept}
    if total == 0 and not rt.planning:
        return _ended(rt, shared, SUPPRESSED, 0, q, p, binomial)
    divisor = float(max(total, 1))

    # 2. Standardisation: means and population standard deviations, public to the parties.
    columns = x if binomial else np.column_stack([x, y])
    width = columns.shape[1]
    if n:
        local = np.concatenate(
            [
                fixed(columns.sum(axis=0) / divisor, OUT_BITS),
                fixed((columns**2).sum(axis=0) / divisor, OUT_BITS),
            ]
        )
    else:
        local = np.zeros(2 * width, dtype=np.int64)
    moments = pooled_integers(rt, local)
    center, variance = _moments(rt.open(moments), width)
    spread = _grid(np.sqrt(np.maximum(variance, 0.0)))
    if rt.planning:
        center, spread = np.zeros(width), np.ones(width)
    elif (variance <= SPREAD_MARGIN * variance_resolution(center, rt.n_parties)).any():
        return _ended(rt, shared, CONSTANT, 0, q, p, binomial, center, spread)
    z = np.column_stack([np.ones(n), _standardised(x, center[:p], spread[:p])])
    target = y if binomial else _standardised(y, center[p], spread[p])

    # 3. Newton iterations on the public iterate.
    s = trace_bound(params.family, q)
    direction, _ = intercept_direction(center[:p], spread[:p])
    beta = np.zeros(q)
    if binomial and 0 < positive < total:  # the intercept-only fit: features are centred
        beta[0] = math.log(positive / (total - positive))
    status, iterations = NOT_CONVERGED, 0
    last: tuple[np.ndarray, np.ndarray] | None = None
    for _ in range(params.max_iter):
        iterations += 1
        if n:
            a, g, dev = local_terms(z, target, beta, params.family, divisor * s)
            dev *= s  # the deviance over N, not over N s
            g_hi = fixed(g, WORK_BITS)
            g_lo = fixed(g - g_hi / 2.0**WORK_BITS, LOW_BITS)
            local = np.concatenate(
                [
                    fixed(a, WORK_BITS).reshape(-1),
                    fixed(a, FINE_BITS).reshape(-1),
                    g_hi,
                    g_lo,
                    fixed([dev], OUT_BITS),
                ]
            )
        else:
            local = np.zeros(2 * q * q + 2 * q + 1, dtype=np.int64)
        summed = np.ascontiguousarray(pooled_integers(rt, local).share)
        a22 = summed[: q * q].reshape(q, q)
        a32 = summed[q * q : 2 * q * q].reshape(q, q)
        gradient = np.ascontiguousarray(summed[2 * q * q : 2 * q * q + 2 * q].reshape(2, q).T)
        deviance = summed[-1:]
        check, step, variance = drive(
            rt, _iteration(rt, a22, a32, gradient, direction), "glm-newton"
        )
        # The check first: a step from an inverse that did not converge is never opened.
        inverted = rt.open_ring(rt.shared(check, 0)).view(np.int64)
        if not rt.planning and not (inverted == 1).all():
            status = COLLINEAR
            break
        delta = rt.open_ring(rt.shared(step, 0)).view(np.int64) / 2.0**RESIDUAL_BITS
        beta = beta + delta
        last = (variance, deviance)
        if rt.planning:
            continue
        if binomial and not np.abs(beta).max() <= COEFFICIENT_BOUND:
            status = SEPARATION
            break
        if not binomial and not np.abs(beta).max() <= GAUSSIAN_BOUND:
            status = UNBOUNDED
            break
        if np.abs(delta).max() < params.tol:
            status = OK
            break
    if status != OK or last is None:
        return _ended(rt, shared, status, iterations, q, p, binomial, center, spread)
    variance, deviance = last
    shared.update(
        status=public(rt, np.array([OK]), 0),
        iterations=public(rt, np.array([iterations]), 0),
        center=public(rt, center, OUT_BITS),
        scale=public(rt, spread, OUT_BITS),
        coef=public(rt, beta, OUT_BITS),
        variance=rt.shared(variance, OUT_BITS),
        deviance=rt.shared(deviance, OUT_BITS),
    )
    return Outcome(shared)


def _iteration(
    rt: Runtime, a22: np.ndarray, a32: np.ndarray, gradient: np.ndarray, direction: np.ndarray
) -> Steps[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Inverse, convergence check, refinement, step and variance factors; 85 rounds.

    Returns shares of the six check bits (1 = within bounds), of the step
    at RESIDUAL_BITS and of the variance factors at OUT_BITS.

    Three traces are checked. Against the 22-bit A, which Newton-Schulz
    inverted, trace(I - A Y) is the sum of the eigenvalues (1 - lambda)^(2^K)
    >= 0 of its residual, so none cancels another: did it converge? Against
    the 32-bit A it is dominated by the rounding difference between the two
    copies along the eigenvectors of small eigenvalues: will one refinement
    be accurate? And trace Y bounds Y's largest eigenvalue, hence the range
    of the refinement, the step and the variance factors.
    """
    ring = rt.ring
    q = a22.shape[0]
    y = yield from linalg.newton_schulz(rt, a22, NEWTON_SCHULZ_STEPS, WORK_BITS)
    both = yield from linalg.matmul_steps(rt, np.concatenate([a22, a32]), y)
    coarse = ring.sub(linalg.scaled_identity(rt, 1.0, q, 2 * WORK_BITS), both[:q])
    r = ring.sub(linalg.scaled_identity(rt, 1.0, q, FINE_BITS + WORK_BITS), both[q:])
    r_bits = FINE_BITS + WORK_BITS
    traces = np.array(
        [ring.total(np.ascontiguousarray(np.diagonal(m))) for m in (coarse, r, y)],
        dtype=np.uint64,
    )
    signed = rt.shared(np.concatenate([traces, ring.neg(traces)]), 0)
    converged = int(CONDITION_TOLERANCE * 2.0 ** (2 * WORK_BITS))
    accurate = int(REFINEMENT_TOLERANCE * 2.0**r_bits)
    bound = int(2.0 ** (INVERSE_TRACE_BITS + WORK_BITS))
    # all six negative exactly when both residuals' traces are within their tolerances
    # and 0 < trace Y < 2^INVERSE_TRACE_BITS
    limits = np.array([converged, accurate, bound, converged, accurate, 0], dtype=np.int64)
    s, comparison = compare.sign_bit_steps(rt, signed - limits)

    def solve() -> Steps[tuple[np.ndarray, np.ndarray]]:
        inverse = yield from linalg.refine(rt, y, r, WORK_BITS, r_bits, REFINE_BITS)
        # Y t before t'(Y t): rounding t t' entry by entry would weigh Y's largest
        # eigenvalues even where t'Yt has no component along them
        encoded = np.rint(direction * 2.0**WEIGHT_BITS).astype(np.int64).view(np.uint64)
        along = ring.matmul(inverse, encoded.reshape(q, 1)).reshape(-1)
        product, (along,) = yield from lockstep(
            linalg.matmul_steps(rt, inverse, gradient),
            truncations(rt, [along], [WEIGHT_BITS]),
        )
        diagonal = ring.mul(
            np.ascontiguousarray(np.diagonal(inverse)[1:]),
            np.full(1, 1 << (OUT_BITS - WORK_BITS), dtype=np.uint64),
        )
        quadratic = ring.total(ring.mul(along, encoded))
        hi, lo, intercept = yield from truncations(
            rt,
            [
                np.ascontiguousarray(product[:, 0]),
                np.ascontiguousarray(product[:, 1]),
                np.array([quadratic], dtype=np.uint64),
            ],
            [
                2 * WORK_BITS - RESIDUAL_BITS,
                WORK_BITS + LOW_BITS - RESIDUAL_BITS,
                WORK_BITS + WEIGHT_BITS - OUT_BITS,
            ],
        )
        return ring.add(hi, lo), np.concatenate([intercept, diagonal])

    d, (step, variance) = yield from lockstep(comparison, solve())
    check = ring.xor_public_bit(d, s, rt.first)
    assert q == len(step)
    return check, step, variance


def _ended(
    rt: Runtime,
    shared: dict[str, SharedTensor],
    status: int,
    iterations: int,
    q: int,
    p: int,
    binomial: bool,
    center: np.ndarray | None = None,
    spread: np.ndarray | None = None,
) -> Outcome:
    """The outcome of a fit that did not finish: its counts and status, every other output 0.

    A suppressed fit reveals nothing but 0 for the counts too.
    """
    width = p if binomial else p + 1
    zeros = np.zeros(width)
    known = status not in (SUPPRESSED,)
    out = dict(shared)
    out.update(
        status=public(rt, np.array([status]), 0),
        iterations=public(rt, np.array([iterations]), 0),
        center=public(rt, center if known and center is not None else zeros, OUT_BITS),
        scale=public(rt, spread if known and spread is not None else zeros, OUT_BITS),
        coef=public(rt, np.zeros(q), OUT_BITS),
        variance=public(rt, np.zeros(q), OUT_BITS),
        deviance=public(rt, np.zeros(1), OUT_BITS),
    )
    return Outcome(out)


_REVEALS = (
    "to the job's recipients: N, dropped rows and events gated as for stats-count, the "
    "standardisation (column means and standard deviations), the coefficients, their "
    "variance factors (hence standard errors), the deviance over N, the iteration count and "
    "the fit's status; to the computing parties: m, N, the events, the standardisation, "
    "the path of the coefficient iterates and whether each inverse converged"
)

PROTOCOLS = (
    ProtocolSpec(
        "stats-glm",
        "1",
        fit,
        OUTPUTS,
        _REVEALS,
        params=GLMParams,
        scope="model-training",
    ),
    ProtocolSpec(
        "stats-glm-text",
        "1",
        fit_text,
        OUTPUTS,
        _REVEALS,
        params=TextGLMParams,
        categorical=True,
        scope="model-training",
    ),
)


def protocol_for(params: GLMParams) -> ProtocolSpec:
    """The protocol that fits with these parameters: stats-glm-text for a text outcome."""
    return PROTOCOLS[1] if params.TEXT_OUTCOME else PROTOCOLS[0]


def params_for(mapping: object) -> GLMParams:
    """The parameters of a job's mapping: TextGLMParams when it names ``positive``."""
    if isinstance(mapping, GLMParams):
        return mapping
    text = isinstance(mapping, Mapping) and mapping.get("positive") is not None
    return (TextGLMParams if text else GLMParams).from_mapping(mapping)
