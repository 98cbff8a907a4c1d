"""Joint statistics with disclosure control: the protocols by name, and reading their outputs.

The protocols live in :mod:`protocols.descriptive` (count, sum and mean,
variance, covariance, minimum and maximum), :mod:`protocols.tables`
(histogram, contingency table), :mod:`protocols.order` (median and
quantiles) and :mod:`protocols.vertical` (column-split correlation and
covariance). Each returns its outputs still shared; the party layer reveals
them to the job's recipients. :func:`summarise` turns the revealed outputs
into the statistics an analyst asked for, with the names of Python's
``statistics`` module (``mean``, ``variance``, ``stdev``, ``pvariance``,
``pstdev``, ``covariance``, ``correlation``, ``quantiles``, ``median``);
every one of them is a function of the declared outputs, so deriving it
reveals nothing more. A suppressed result (pooled count below the minimum
cell size, or empty) reads ``{"suppressed": True}``; a suppressed cell of a
table reads as ``None``.

:func:`run_local` runs a protocol on an in-process federation, for
scripting, tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from protocols import descriptive, order, tables, vertical
from protocols.context import JobContext, Params, ProtocolSpec
from protocols.disclosure import StatisticsParams, StatisticsParamsError
from smpc.local import JobResult, LocalFederation
from smpc.runtime import Runtime

_GATED = (
    "if the pooled count of complete rows reaches the minimum cell size m and no party's own "
    "count is from 1 to m - 1 (else 0), to the job's recipients"
)

PROTOCOLS = (
    ProtocolSpec(
        "stats-count",
        "3",
        descriptive.count,
        ("count", "dropped"),
        f"the pooled count of complete rows and of dropped rows, each {_GATED}",
        params=StatisticsParams,
        aggregates=True,
    ),
    ProtocolSpec(
        "stats-mean",
        "3",
        descriptive.total,
        ("count", "dropped", "sum"),
        f"the pooled count and per-column sums (hence means) {_GATED}",
        params=StatisticsParams,
        aggregates=True,
    ),
    ProtocolSpec(
        "stats-variance",
        "3",
        descriptive.variance,
        ("count", "dropped", "mean", "pvariance"),
        f"the pooled count, means and population variances {_GATED}; N to the parties",
        params=StatisticsParams,
        aggregates=True,
    ),
    ProtocolSpec(
        "stats-covariance",
        "3",
        descriptive.covariance,
        ("count", "dropped", "mean", "pcovariance"),
        f"the pooled count, means and population covariance matrix {_GATED}; N to the parties",
        params=StatisticsParams,
        aggregates=True,
    ),
    ProtocolSpec(
        "stats-minmax",
        "3",
        descriptive.extremes,
        ("count", "dropped", "min", "max"),
        f"the pooled count and each column's minimum and maximum {_GATED}; only where every "
        "party's policy allows a minimum or maximum",
        params=StatisticsParams,
        aggregates=True,
    ),
    ProtocolSpec(
        "stats-histogram",
        "3",
        tables.histogram,
        ("counts", "dropped"),
        "each pooled bin count that reaches m (else 0; all 0 if a party's own count is from 1 to "
        "m - 1), to the job's recipients",
        params=tables.HistogramParams,
        aggregates=True,
    ),
    ProtocolSpec(
        "stats-crosstab",
        "3",
        tables.crosstab,
        ("counts", "dropped"),
        "each pooled cell count that reaches m (else 0; all 0 if a party's own count is from 1 to "
        "m - 1), to the job's recipients",
        categorical=True,
        params=tables.CrosstabParams,
        aggregates=True,
    ),
    ProtocolSpec(
        "stats-quantiles",
        "3",
        order.quantiles,
        ("count", "dropped", "quantiles"),
        f"the quantiles at the grid resolution {_GATED} and none is nearer 0 or 1 than m / N "
        "unless every policy allows a minimum or maximum, also to the parties; N to the recipients",
        params=order.QuantileParams,
        aggregates=True,
    ),
    ProtocolSpec(
        "stats-correlation-vertical",
        "2",
        vertical.correlation,
        ("count", "correlation"),
        "N and the correlation matrix of columns held by different parties (column split)",
        params=vertical.VerticalParams,
    ),
    ProtocolSpec(
        "stats-covariance-vertical",
        "2",
        vertical.covariance,
        ("count", "correlation", "stdev"),
        "N, the correlation matrix and the standard deviations (column split)",
        params=vertical.VerticalParams,
    ),
)

BY_STATISTIC = {
    "count": "stats-count",
    "sum": "stats-mean",
    "mean": "stats-mean",
    "variance": "stats-variance",
    "stdev": "stats-variance",
    "pvariance": "stats-variance",
    "pstdev": "stats-variance",
    "covariance": "stats-covariance",
    "correlation": "stats-covariance",
    "min": "stats-minmax",
    "max": "stats-minmax",
    "histogram": "stats-histogram",
    "crosstab": "stats-crosstab",
    "median": "stats-quantiles",
    "quantiles": "stats-quantiles",
}
"""The protocol that answers each statistic an analyst may ask for."""

BY_COLUMN_SPLIT = {
    "correlation": "stats-correlation-vertical",
    "covariance": "stats-covariance-vertical",
}
"""The protocol that answers each statistic over column-split data."""

MEDIAN = (0.5,)
"""The probabilities of ``median``: a quantiles job at 1/2."""


def protocol(name: str) -> ProtocolSpec:
    """The statistics protocol called ``name``."""
    for spec in PROTOCOLS:
        if spec.name == name:
            return spec
    raise KeyError(f"no statistics protocol {name!r}")


def statistic_protocol(statistic: str, *, column_split: bool = False) -> ProtocolSpec:
    """The protocol that answers ``statistic``; a clear StatisticsParamsError for an unknown one."""
    table = BY_COLUMN_SPLIT if column_split else BY_STATISTIC
    name = table.get(statistic)
    if name is None:
        choices = ", ".join(sorted(table))
        raise StatisticsParamsError(f"unknown statistic {statistic!r}; choose one of {choices}")
    return protocol(name)


def job_params(
    statistic: str, given: Mapping[str, Any] | Params | None = None, *, column_split: bool = False
) -> Params:
    """The parameters of a job for ``statistic``, checked; ``median`` asks for the 1/2 quantile."""
    spec = statistic_protocol(statistic, column_split=column_split)
    if statistic == "median" and isinstance(given, Mapping | None):
        given = {"probabilities": list(MEDIAN), **(given or {})}
    return spec.params.from_mapping(given)


def _count(value: np.ndarray) -> int | None:
    """A gated count: None when suppressed (0 means below the minimum, or empty)."""
    n = int(np.asarray(value).reshape(-1)[0])
    return n if n > 0 else None


def summarise(
    name: str, outputs: Mapping[str, np.ndarray], *, complete: bool = False
) -> dict[str, Any]:
    """The statistics behind the revealed outputs of protocol ``name``.

    ``dropped`` is the number of rows left out for a missing value, or None
    when fewer than m (suppressed); 0 when the job itself says that no row
    can miss a value (``complete``, e.g. its filter keeps only rows that have
    every requested column), which is then public by construction. Sample
    statistics divide by N - 1, population ones by N, as in Python's
    ``statistics``.
    """
    out: dict[str, Any] = {}
    if "dropped" in outputs:
        out["dropped"] = 0 if complete else _count(outputs["dropped"])
    if name in ("stats-histogram", "stats-crosstab"):
        counts = np.asarray(outputs["counts"]).astype(np.int64)
        out["counts"] = counts
        out["suppressed"] = counts == 0
        return out
    n = _count(outputs["count"])
    if n is None:
        return {**out, "suppressed": True}
    out.update(count=n, suppressed=False)
    if name == "stats-mean":
        out["sum"] = np.asarray(outputs["sum"], dtype=np.float64)
        out["mean"] = out["sum"] / n
    elif name in ("stats-variance", "stats-covariance"):
        key = "pvariance" if name == "stats-variance" else "pcovariance"
        spread = np.asarray(outputs[key], dtype=np.float64)
        out["mean"] = np.asarray(outputs["mean"], dtype=np.float64)
        if name == "stats-variance":
            out["pvariance"] = spread
            out["variance"] = spread * n / (n - 1)
            out["pstdev"] = np.sqrt(np.maximum(spread, 0.0))
            out["stdev"] = np.sqrt(np.maximum(out["variance"], 0.0))
        else:
            out["pcovariance"] = spread
            out["covariance"] = spread * n / (n - 1)
            out["correlation"] = _correlation(spread)
    elif name == "stats-minmax":
        out["min"] = np.asarray(outputs["min"], dtype=np.float64)
        out["max"] = np.asarray(outputs["max"], dtype=np.float64)
    elif name == "stats-quantiles":
        out["quantiles"] = np.asarray(outputs["quantiles"], dtype=np.float64)
    elif name in ("stats-correlation-vertical", "stats-covariance-vertical"):
        out["correlation"] = np.asarray(outputs["correlation"], dtype=np.float64)
        if "stdev" in outputs:
            sd = np.asarray(outputs["stdev"], dtype=np.float64)
            out["stdev"] = sd
            out["covariance"] = out["correlation"] * np.outer(sd, sd)
    return out


def describe(
    statistic: str,
    outputs: Mapping[str, np.ndarray],
    *,
    column_split: bool = False,
    complete: bool = False,
) -> dict[str, Any]:
    """:func:`summarise` the outputs of the job that answered ``statistic`` (``median`` too)."""
    spec = statistic_protocol(statistic, column_split=column_split)
    out = summarise(spec.name, outputs, complete=complete)
    if statistic == "median" and "quantiles" in out:
        out["median"] = float(out["quantiles"][0])
    return out


def _correlation(cov: np.ndarray) -> np.ndarray:
    scale = np.sqrt(np.maximum(np.diag(cov), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return cov / np.outer(scale, scale)


def contexts(
    parts: Sequence[np.ndarray],
    columns: Sequence[str] | Sequence[Sequence[str]],
    *,
    params: Mapping[str, Any] | Params | None = None,
    text: Sequence[Mapping[str, np.ndarray]] | None = None,
    min_cell_size: int | Sequence[int] = 5,
    allow_min_max: bool | Sequence[bool] = False,
    names: Sequence[str] | None = None,
) -> list[JobContext]:
    """One JobContext per party for an in-process run: its rows of ``columns``.

    ``columns`` names every party's columns, or gives one list per party
    (column-split data); ``params`` is the protocol's Params (or the job's
    mapping); ``min_cell_size`` and ``allow_min_max`` give every party's
    policy, or one value per party.
    """
    given = params.to_mapping() if isinstance(params, Params) else dict(params or {})
    per_party = bool(columns) and not isinstance(columns[0], str)
    held = [
        tuple(str(c) for c in (columns[i] if per_party else columns)) for i in range(len(parts))
    ]
    names = list(names) if names is not None else [f"party-{i}" for i in range(len(parts))]
    sizes = [min_cell_size] * len(parts) if isinstance(min_cell_size, int) else list(min_cell_size)
    allowed = (
        [allow_min_max] * len(parts) if isinstance(allow_min_max, bool) else list(allow_min_max)
    )
    return [
        JobContext(
            params=given,
            parties=tuple(names),
            party=names[i],
            columns=held[i],
            values=np.asarray(part, dtype=np.float64).reshape(len(part), len(held[i])),
            selections=dict(zip(names, held, strict=True)),
            min_cell_size=sizes[i],
            allow_min_max=allowed[i],
            text=dict(text[i]) if text is not None else {},
        )
        for i, part in enumerate(parts)
    ]


def opened(spec: ProtocolSpec) -> Callable[[Runtime, JobContext], dict[str, np.ndarray]]:
    """A party function that runs ``spec`` and opens every output to every party."""

    def run(rt: Runtime, ctx: JobContext) -> dict[str, np.ndarray]:
        shared = spec.run(rt, ctx).revealed
        return {key: rt.open(shared[key]) for key in spec.outputs if key in shared}

    return run


def run_local(
    fed: LocalFederation, name: str, ctxs: Sequence[JobContext]
) -> tuple[dict[str, Any], JobResult]:
    """Run protocol ``name`` on an in-process federation; the summary and the job's costs."""
    spec = protocol(name)
    job = fed.run(opened(spec), inputs=list(ctxs))
    return summarise(name, job.results[0]), job
