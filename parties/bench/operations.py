"""The operations ``smpc bench`` measures: one :class:`Operation` entry each, in :data:`OPERATIONS`.

An entry says how to make public benchmark data for a size, how the parties
prepare (untimed: e.g. secret-share the operands), what one timed repetition
computes, how its output is revealed afterwards (untimed) to be checked
against the plaintext numpy computation, which also gives the baseline time,
and the round count the engine documents for it (read from the engine's
constants, so a change of protocol that changes the rounds shows up as a
mismatch in the tests).

Adding an operation is adding one entry. Operands are synthetic and public:
they come from ``numpy.random`` with fixed seeds, rounded to the fixed-point
grid so that the plaintext oracle sees exactly the values the parties share.
Shares and masks still come only from the engine's generators.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols import descriptive, logistic, tables
from protocols.context import Params
from protocols.model import LogisticModel
from smpc import approx, beaver, compare, inverse, truncation
from smpc.errors import SMPCError
from smpc.runtime import INPUT_ROUNDS, OPEN_ROUNDS, Runtime
from smpc.shares import SharedTensor

Data = dict[str, Any]

FRAC_BITS = 16
"""Fixed-point fractional bits of every benchmark (the engine's default)."""

LR_FEATURES = 30
"""Features per row in the inference benchmark (as in the breast cancer data)."""

LR_OWNER = 2
"""The model owner's party index in the inference benchmark; parties 0 and 1 hold rows."""


class ResultMismatch(SMPCError):
    """A secure result differs from the plaintext computation by more than the tolerance."""


@dataclass(frozen=True)
class Operation:
    """One measurable operation; see the module docstring for the role of each field."""

    name: str
    summary: str
    rounds: int
    data: Callable[[int], Data]
    setup: Callable[[Runtime, Data], Any]
    run: Callable[[Runtime, Any], Any]
    plaintext: Callable[[Data], np.ndarray]
    check: Callable[[np.ndarray, np.ndarray, Data], None]
    baseline: str
    reveal: Callable[[Runtime, Any], Any] = lambda rt, out: rt.open(out)
    combine: Callable[[Sequence[Any]], np.ndarray] = lambda parts: np.asarray(parts[0])
    shape: Callable[[int], str] = lambda n: size_label(n)
    elements: Callable[[int], int] = lambda n: n
    weight: int = 1
    """Preprocessing words per element relative to a product: sizes how many repetitions
    share one job (and one preprocessing plan) without exhausting memory."""
    default_max: int | None = None
    """Largest size in the default subset (``--full`` lifts it); None for no limit."""
    default_transports: tuple[str, ...] = ("memory", "tls")
    """Transports of the default subset; ``--full`` or naming it in ``--ops`` adds the rest."""
    min_size: int = 1
    """Smallest meaningful size: smaller requested sizes run at this one."""


def size_label(n: int) -> str:
    """``1e6`` for powers of ten from 1000 on, the plain number otherwise."""
    exponent = round(math.log10(n)) if n > 0 else 0
    return f"1e{exponent}" if n >= 1000 and 10**exponent == n else str(n)


def parse_size(text: str) -> int:
    """A size written ``1000``, ``1e3`` or ``10^3``; a clear ValueError otherwise."""
    cleaned = text.strip().replace("_", "")
    try:
        if "^" in cleaned:
            base, exponent = cleaned.split("^", 1)
            value = int(base) ** int(exponent)
        else:
            as_float = float(cleaned)
            if not as_float.is_integer():
                raise ValueError
            value = int(as_float)
    except ValueError:
        raise ValueError(f"size {text!r} is not a whole number (write 1000, 1e3 or 10^3)") from None
    if not 1 <= value <= 10**7:
        raise ValueError(f"size {text!r} must be between 1 and 10^7")
    return value


def _grid(values: np.ndarray) -> np.ndarray:
    """Values rounded to the fixed-point grid: the parties share exactly these numbers."""
    return np.round(values * 2.0**FRAC_BITS) / 2.0**FRAC_BITS


def _uniform(shape: tuple[int, ...], seed: int, bound: float) -> np.ndarray:
    # Public synthetic operands, not secrets: numpy.random is fine here.
    return _grid(np.random.default_rng(seed).uniform(-bound, bound, size=shape))


def _pair(n: int) -> Data:
    return {"x": _uniform((n,), 1, 8.0), "y": _uniform((n,), 2, 8.0)}


def _one(n: int) -> Data:
    return {"x": _uniform((n,), 3, 10.0)}


def _share_x(rt: Runtime, data: Data) -> SharedTensor:
    x = data["x"]
    return rt.input(x if rt.party == 0 else None, 0, x.shape)


def _share_xy(rt: Runtime, data: Data) -> tuple[SharedTensor, SharedTensor]:
    x, y = data["x"], data["y"]
    return rt.input(x if rt.party == 0 else None, 0, x.shape), rt.input(
        y if rt.party == 1 else None, 1, y.shape
    )


def _close(tolerance: Callable[[Data], float]) -> Callable[[np.ndarray, np.ndarray, Data], None]:
    def check(got: np.ndarray, expected: np.ndarray, data: Data) -> None:
        error = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - expected), initial=0.0))
        if got.shape != expected.shape or not error <= tolerance(data):
            raise ResultMismatch(
                f"differs from numpy by {error:.3g} (tolerance {tolerance(data):.3g}), "
                f"shapes {got.shape} and {expected.shape}"
            )

    return check


def _relative(relative: float) -> Callable[[np.ndarray, np.ndarray, Data], None]:
    """Within ``relative`` of the expected value plus two units of 2^-F, elementwise."""

    def check(got: np.ndarray, expected: np.ndarray, data: Data) -> None:
        error = np.abs(np.asarray(got, dtype=np.float64) - expected)
        bound = 2 * 2.0**-FRAC_BITS + relative * np.abs(expected)
        outside = int(np.count_nonzero(~(error <= bound))) if got.shape == expected.shape else -1
        if outside:
            raise ResultMismatch(
                f"differs from numpy beyond {relative:g} relative + 2 units of 2^-{FRAC_BITS} "
                f"at {outside} of {expected.size} elements"
            )

    return check


def _positive(n: int) -> Data:
    # Inside octaves (-1, 10), a range a caller who knows its data passes
    # (narrower than the default, which holds 24 octaves at F = 16).
    return {"x": _grid(np.random.default_rng(7).uniform(0.5, 1000.0, size=n))}


POSITIVE_OCTAVES = (-1, 10)


def _equal(got: np.ndarray, expected: np.ndarray, data: Data) -> None:
    wrong = int(np.count_nonzero(np.asarray(got).reshape(expected.shape) != expected))
    if wrong:
        raise ResultMismatch(f"{wrong} of {expected.size} elements differ from numpy")


# -- matmul: a size n means the square matrices nearest to n elements ---------------------


def _side(n: int) -> int:
    return max(1, round(math.sqrt(n)))


def _matrices(n: int) -> Data:
    side = _side(n)
    return {"x": _uniform((side, side), 4, 8.0), "y": _uniform((side, side), 5, 8.0)}


# -- logistic-regression inference ------------------------------------------------------


def _lr_data(rows: int) -> Data:
    # A public synthetic model and cohort: standardised features near the training scale.
    rng = np.random.default_rng(6)
    mean = rng.uniform(0.0, 100.0, LR_FEATURES)
    scale = rng.uniform(0.5, 20.0, LR_FEATURES)
    model = LogisticModel(
        coef=rng.normal(0.0, 0.5, LR_FEATURES),
        intercept=0.1,
        feature_names=tuple(f"f{j}" for j in range(LR_FEATURES)),
        scaler_mean=mean,
        scaler_scale=scale,
    )
    features = _grid(mean + scale * rng.standard_normal((rows, LR_FEATURES)))
    first = rows - rows // 2
    blocks = [features[:first], features[first:]] if rows >= 2 else [features]
    return {"model": model, "features": features, "blocks": blocks}


def _lr_setup(rt: Runtime, data: Data) -> dict[str, Any]:
    blocks = data["blocks"]
    hospitals = list(range(len(blocks)))
    mine = blocks[rt.party] if rt.party in hospitals else None
    return {
        "hospitals": hospitals,
        "rows": [len(b) for b in blocks],
        "features": mine,
        "model": data["model"] if rt.party == LR_OWNER else None,
    }


def _lr_run(rt: Runtime, state: dict[str, Any]) -> dict[str, np.ndarray] | None:
    return logistic.infer(
        rt,
        LR_OWNER,
        state["model"],
        state["hospitals"],
        state["rows"],
        state["features"],
        LR_FEATURES,
    )[0]  # this hospital's labels; no metrics asked


def _lr_labels(parts: Sequence[Any]) -> np.ndarray:
    """Every hospital's labels in row order (hospitals are parties 0, 1, ...)."""
    return np.concatenate([p["labels"] for p in parts if p is not None])


def _lr_plaintext(data: Data) -> np.ndarray:
    return (data["model"].logits(data["features"]) > 0).astype(np.int64)


def _lr_check(got: np.ndarray, expected: np.ndarray, data: Data) -> None:
    """Labels must agree wherever the plaintext logit is clear of the decision boundary."""
    clear = np.abs(data["model"].logits(data["features"])) > 0.01
    wrong = int(np.count_nonzero((got.reshape(-1) != expected)[clear]))
    if got.size != expected.size or wrong:
        raise ResultMismatch(f"{wrong} of {int(clear.sum())} clear labels differ from numpy")


# -- statistics over row-split data: the pooled rows split over the 3 parties ---------------

STATS_MIN_CELL = 5
"""The minimum cell size of the statistics benchmarks (the default policy)."""

HISTOGRAM_EDGES = tuple(float(e) for e in np.linspace(0.0, 100.0, 21))
"""20 bins over [0, 100]."""

CORRELATION_COLUMNS = 10


def _cohort(width: int) -> Callable[[int], Data]:
    def make(rows: int) -> Data:
        # Public synthetic values well inside the statistics' bound |x| < 2^14.
        rng = np.random.default_rng(8)
        base = rng.normal(50.0, 15.0, (rows, 1))
        noise = rng.normal(0.0, 10.0, (rows, width)) * np.arange(1, width + 1)
        return {"rows": _grid(base + noise)}

    return make


def _stats_setup(name: str, params: Params | None = None) -> Callable[[Runtime, Data], Any]:
    def setup(rt: Runtime, data: Data) -> Any:
        from protocols.statistics import contexts, protocol

        rows = data["rows"]
        parts = np.array_split(rows, rt.n_parties)
        columns = [f"c{j}" for j in range(rows.shape[1])]
        ctx = contexts(parts, columns, params=params, min_cell_size=STATS_MIN_CELL)[rt.party]
        return protocol(name), ctx

    return setup


def _stats_run(rt: Runtime, state: Any) -> Mapping[str, SharedTensor]:
    spec, ctx = state
    return spec.run(rt, ctx).revealed


def _stats_reveal(rt: Runtime, out: Mapping[str, SharedTensor]) -> dict[str, np.ndarray]:
    return {key: rt.open(out[key]) for key in sorted(out)}


def _mean_variance(parts: Sequence[Any]) -> np.ndarray:
    return np.array([parts[0]["mean"][0], parts[0]["pvariance"][0]])


def _histogram_counts(parts: Sequence[Any]) -> np.ndarray:
    return np.asarray(parts[0]["counts"]).reshape(-1)


def _histogram_plaintext(data: Data) -> np.ndarray:
    counts, _ = np.histogram(data["rows"][:, 0], HISTOGRAM_EDGES)
    return np.where(counts >= STATS_MIN_CELL, counts, 0)  # cells below m are suppressed


def _correlation_of(parts: Sequence[Any]) -> np.ndarray:
    cov = np.asarray(parts[0]["pcovariance"])
    scale = np.sqrt(np.diag(cov))
    return cov / np.outer(scale, scale)


FIXED_POINT_PRODUCT_ROUNDS = beaver.ROUNDS + truncation.ROUNDS

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            name="share",
            summary="party 0 secret-shares a vector (rt.input)",
            rounds=INPUT_ROUNDS,
            data=_one,
            setup=lambda rt, data: data["x"],
            run=lambda rt, x: rt.input(x if rt.party == 0 else None, 0, x.shape),
            plaintext=lambda d: d["x"].copy(),
            check=_close(lambda d: 2.0**-FRAC_BITS),
            baseline="a.copy()",
        ),
        Operation(
            name="open",
            summary="every party learns a shared vector (rt.open, all-to-all)",
            rounds=OPEN_ROUNDS,
            data=_one,
            setup=_share_x,
            run=lambda rt, x: rt.open(x),
            reveal=lambda rt, out: out,
            plaintext=lambda d: d["x"].copy(),
            check=_close(lambda d: 2.0**-FRAC_BITS),
            baseline="a.copy()",
        ),
        Operation(
            name="add",
            summary="sum of two shared vectors (local, no communication)",
            rounds=0,
            data=_pair,
            setup=_share_xy,
            run=lambda rt, xy: xy[0] + xy[1],
            plaintext=lambda d: d["x"] + d["y"],
            check=_close(lambda d: 2.0**-FRAC_BITS),
            baseline="a + b",
        ),
        Operation(
            name="mul",
            summary="elementwise fixed-point product (Beaver round + truncation round)",
            rounds=FIXED_POINT_PRODUCT_ROUNDS,
            data=_pair,
            setup=_share_xy,
            run=lambda rt, xy: rt.mul(*xy),
            plaintext=lambda d: d["x"] * d["y"],
            check=_close(lambda d: 2.0 ** (1 - FRAC_BITS)),
            baseline="a * b",
        ),
        Operation(
            name="matmul",
            summary="square fixed-point matrix product (Beaver round + truncation round)",
            rounds=FIXED_POINT_PRODUCT_ROUNDS,
            data=_matrices,
            setup=_share_xy,
            run=lambda rt, xy: rt.matmul(*xy),
            plaintext=lambda d: d["x"] @ d["y"],
            check=_close(lambda d: 2.0 ** (1 - FRAC_BITS)),
            baseline="a @ b",
            shape=lambda n: f"{_side(n)}x{_side(n)}",
            elements=lambda n: _side(n) ** 2,
            default_max=256 * 256,  # 1000x1000 is 10^9 multiply-adds per party
        ),
        Operation(
            name="ltz",
            summary="exact comparison x < 0, shared 0/1 result",
            rounds=compare.ROUNDS,
            data=_one,
            setup=_share_x,
            run=compare.ltz,
            plaintext=lambda d: (d["x"] < 0).astype(np.int64),
            check=_equal,
            baseline="a < 0",
            weight=4,
        ),
        Operation(
            name="sigmoid",
            summary="piecewise-polynomial sigmoid on [-10, 10]",
            rounds=approx.SIGMOID_ROUNDS,
            data=_one,
            setup=_share_x,
            run=approx.sigmoid,
            plaintext=lambda d: 1.0 / (1.0 + np.exp(-d["x"])),
            check=_close(lambda d: approx.SIGMOID_MAX_ERROR[FRAC_BITS]),
            baseline="1 / (1 + np.exp(-a))",
            weight=16,
        ),
        Operation(
            name="exp",
            summary="e^x on [-10, 10] (range checks, a polynomial, four squarings)",
            rounds=approx.EXP_ROUNDS,
            data=_one,
            setup=_share_x,
            run=approx.exp,
            plaintext=lambda d: np.exp(d["x"]),
            check=_relative(approx.EXP_MAX_RELATIVE_ERROR),
            baseline="np.exp(a)",
            weight=16,
            default_max=10**5,
            default_transports=("memory",),
        ),
        Operation(
            name="reciprocal",
            summary="1 / x on [0.5, 1000], octaves (-1, 10)",
            rounds=inverse.RECIPROCAL_ROUNDS,
            data=_positive,
            setup=_share_x,
            run=lambda rt, x: inverse.reciprocal(rt, x, octaves=POSITIVE_OCTAVES),
            plaintext=lambda d: 1.0 / d["x"],
            check=_relative(inverse.MAX_RELATIVE_ERROR),
            baseline="1 / a",
            weight=48,
            default_max=10**5,
            default_transports=("memory",),
        ),
        Operation(
            name="sqrt",
            summary="sqrt(x) on [0.5, 1000], octaves (-1, 10)",
            rounds=inverse.SQRT_ROUNDS,
            data=_positive,
            setup=_share_x,
            run=lambda rt, x: inverse.sqrt(rt, x, octaves=POSITIVE_OCTAVES),
            plaintext=lambda d: np.sqrt(d["x"]),
            check=_relative(inverse.MAX_RELATIVE_ERROR),
            baseline="np.sqrt(a)",
            weight=52,
            default_max=10**5,
            default_transports=("memory",),
        ),
        Operation(
            name="lr-inference",
            summary=f"labels of rows x {LR_FEATURES} features, 2 hospitals + model owner",
            rounds=logistic.LABEL_ROUNDS,
            data=_lr_data,
            setup=_lr_setup,
            run=_lr_run,
            reveal=lambda rt, out: out,
            combine=_lr_labels,
            plaintext=_lr_plaintext,
            check=_lr_check,
            baseline="model.logits(X) > 0",
            shape=lambda n: f"{size_label(n)}x{LR_FEATURES}",
            weight=2 * LR_FEATURES,
            default_max=10**5,
        ),
        Operation(
            name="mean-variance",
            summary="pooled mean and population variance of one column (stats-variance)",
            rounds=descriptive.MOMENTS_ROUNDS,
            data=_cohort(1),
            setup=_stats_setup("stats-variance"),
            run=_stats_run,
            reveal=_stats_reveal,
            combine=_mean_variance,
            plaintext=lambda d: np.array([d["rows"][:, 0].mean(), d["rows"][:, 0].var()]),
            check=_relative(1e-4),
            baseline="a.mean(), a.var()",
            min_size=3 * STATS_MIN_CELL,
        ),
        Operation(
            name="histogram",
            summary="20-bin histogram of one column, cells below 5 suppressed (stats-histogram)",
            rounds=tables.ROUNDS,
            data=_cohort(1),
            setup=_stats_setup("stats-histogram", tables.HistogramParams(edges=HISTOGRAM_EDGES)),
            run=_stats_run,
            reveal=_stats_reveal,
            combine=_histogram_counts,
            plaintext=_histogram_plaintext,
            check=_equal,
            baseline="np.histogram(a, edges)",
            min_size=3 * STATS_MIN_CELL,
        ),
        Operation(
            name="correlation",
            summary=f"{CORRELATION_COLUMNS}x{CORRELATION_COLUMNS} correlation matrix "
            "(stats-covariance)",
            rounds=descriptive.MOMENTS_ROUNDS,
            data=_cohort(CORRELATION_COLUMNS),
            setup=_stats_setup("stats-covariance"),
            run=_stats_run,
            reveal=_stats_reveal,
            combine=_correlation_of,
            plaintext=lambda d: np.corrcoef(d["rows"], rowvar=False),
            check=_close(lambda d: 1e-3),
            baseline="np.corrcoef(a)",
            shape=lambda n: f"{size_label(n)}x{CORRELATION_COLUMNS}",
            min_size=3 * STATS_MIN_CELL,
            default_max=10**5,
        ),
    )
}
