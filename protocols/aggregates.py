"""Pooled counts and sums over the hospitals' rows (row-split data).

Each hospital shares local aggregates of its selected rows, never the rows:
the cost does not depend on the number of patients. Rows with a missing value
in any requested column are dropped locally.
"""

from __future__ import annotations

import numpy as np

from protocols.registry import JobContext, ProtocolSpec
from smpc.runtime import Runtime
from smpc.shares import SharedTensor


def _complete_rows(ctx: JobContext) -> np.ndarray:
    values = ctx.values
    return values[~np.isnan(values).any(axis=1)] if values.size else values


def _pooled(rt: Runtime, local: np.ndarray, *, integer: bool) -> SharedTensor:
    shares = rt.input_all(local, local.shape, integer=integer)
    total = shares[0]
    for share in shares[1:]:
        total = total + share
    return total


def pooled_count(rt: Runtime, ctx: JobContext) -> dict[str, SharedTensor]:
    """Output ``count``: the number of selected rows over all hospitals. One round."""
    rows = _complete_rows(ctx)
    return {"count": _pooled(rt, np.array([len(rows)]), integer=True)}


def pooled_sum(rt: Runtime, ctx: JobContext) -> dict[str, SharedTensor]:
    """Outputs ``count`` and ``sum`` (one per column) over all hospitals. Two rounds."""
    rows = _complete_rows(ctx)
    width = len(ctx.columns)
    sums = rows.sum(axis=0) if len(rows) else np.zeros(width)
    return {
        "count": _pooled(rt, np.array([len(rows)]), integer=True),
        "sum": _pooled(rt, sums.reshape(width), integer=False),
    }


PROTOCOLS = (
    ProtocolSpec(
        "pooled-count",
        "1",
        pooled_count,
        ("count",),
        "the pooled number of selected rows, to the job's recipients",
    ),
    ProtocolSpec(
        "pooled-sum",
        "1",
        pooled_sum,
        ("count", "sum"),
        "the pooled row count and per-column sums, to the job's recipients",
    ),
)
