"""Correlation and covariance of columns held by different hospitals (column-split data).

The same N patients, in the order the job gives, have some columns at one
hospital and other columns at another (record linkage is out of scope: the
job carries the order). The job's public parameters say which columns each
party holds, ``params["columns"] = {party: [names]}``, and either
``params["rows"]`` (each party's selected rows are already in the job's
order) or ``params["key"]`` and ``params["ids"]`` (each party selects the key
column too and puts its rows in the order of ``ids``).

1. Policies and N (1 round). N is public, so a job below max(m, 2) rows is
   refused openly with the generic reason.
2. Each hospital standardises its own columns locally,
   z = (x - mean) / sqrt(sum (x - mean)^2), so every column of Z has unit
   length, and shares Z (N x p_i) with 24 fractional bits and its columns'
   sample standard deviations with 16 (1 round).
3. The whole correlation matrix is Z^T Z for Z = [Z_1 | Z_2 | ...]: one
   Beaver matrix product in the ring (1 round), the blocks across hospitals
   being the secure products, then one truncation from 48 to 32 fractional
   bits (1 round). |r| <= 1, so the product stays below 2^48; the encoding
   error of Z adds at most 2^-25 sqrt(N) per entry (3e-5 for N = 10^6),
   about 2^-25 in practice.

Rounds: 4. Missing values cannot be dropped row-wise here without telling
the other hospitals which of their rows to drop, so a missing value is an
error at its holder naming the column and row. Reveals to the job's
recipients: N and the correlation matrix, and (for the covariance protocol)
each column's sample standard deviation, from which the covariance matrix
is R_jk s_j s_k; to the computing parties: m and N, which the job declares.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protocols.descriptive import check_frac_bits, fixed
from protocols.disclosure import (
    REFUSAL,
    DisclosureRefused,
    StatisticsInputError,
    StatisticsParamsError,
    agree,
    check_values,
    public,
)
from protocols.registry import JobContext
from smpc.runtime import Runtime
from smpc.shares import SharedTensor, concatenate
from smpc.steps import drive, truncations

Z_BITS = 24
"""Fractional bits of the standardised columns."""


def _layout(ctx: JobContext) -> tuple[list[list[str]], int]:
    held = ctx.params.get("columns")
    if not isinstance(held, dict) or set(held) != set(ctx.parties):
        raise StatisticsParamsError("params.columns must name every party's columns")
    widths = [list(held[p]) for p in ctx.parties]
    if "ids" in ctx.params:
        ids = ctx.params["ids"]
        if not isinstance(ids, list) or len(set(map(str, ids))) != len(ids):
            raise StatisticsParamsError("params.ids must list distinct patient ids")
        return widths, len(ids)
    rows = ctx.params.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise StatisticsParamsError("params.rows (or params.key and params.ids) must give N")
    return widths, rows


def _aligned(ctx: JobContext, names: Sequence[str], n: int) -> np.ndarray:
    """This party's columns ``names`` with its rows in the job's patient order."""
    values = np.asarray(ctx.values, dtype=np.float64)
    missing = [c for c in names if c not in ctx.columns]
    if missing:
        raise StatisticsParamsError(f"{ctx.party}: columns {missing} are not in its selection")
    picked = values[:, [ctx.columns.index(c) for c in names]] if names else values[:, :0]
    if "ids" in ctx.params:
        key = ctx.params.get("key")
        if key not in ctx.columns:
            raise StatisticsParamsError(f"{ctx.party}: select the key column {key!r} too")
        keys = values[:, ctx.columns.index(key)]
        where = {float(k): i for i, k in enumerate(keys)}
        order = []
        for position, patient in enumerate(ctx.params["ids"]):
            row = where.get(float(patient))
            if row is None:
                raise StatisticsInputError(
                    f"{ctx.party}: patient at position {position} of the job's order is not "
                    "in its selection"
                )
            order.append(row)
        picked = picked[order]
    if len(picked) != n:
        raise StatisticsInputError(
            f"{ctx.party}: selected {len(picked)} rows, the job's order has {n}"
        )
    gaps = np.isnan(picked)
    if gaps.any():
        gap_row, gap_col = (int(i) for i in np.unravel_index(int(np.argmax(gaps)), gaps.shape))
        raise StatisticsInputError(
            f"{ctx.party}: column {names[gap_col]!r} row {gap_row} of the job's order is missing; "
            "column-split statistics need complete rows"
        )
    check_values(picked, names)
    return picked


def correlation(
    rt: Runtime, ctx: JobContext, *, deviations: bool = False
) -> dict[str, SharedTensor]:
    """Outputs ``count`` and ``correlation`` (and ``stdev`` with ``deviations``); 4 rounds.

    Reveals to the job's recipients: N and the correlation matrix (and each
    column's sample standard deviation with ``deviations``); to the computing
    parties: m and N, which the job declares. See the module for the steps.
    """
    check_frac_bits(rt)
    widths, n = _layout(ctx)
    me = ctx.parties.index(ctx.party) if ctx.party in ctx.parties else rt.party
    m = agree(rt, ctx, [n, *(len(w) for w in widths)], same_columns=False)
    if n < max(m, 2):
        raise DisclosureRefused(REFUSAL)
    names = widths[me]
    x = _aligned(ctx, names, n)
    centred = x - x.mean(axis=0) if n else x
    norms = np.sqrt((centred**2).sum(axis=0))
    if (norms == 0).any():
        column = names[int(np.argmax(norms == 0))]
        raise StatisticsInputError(f"{ctx.party}: column {column!r} is constant")
    z = centred / norms
    sd = norms / np.sqrt(n - 1)
    mine = np.concatenate([fixed(z, Z_BITS).reshape(-1), fixed(sd, rt.fxp.frac_bits)])
    shapes = [(n * len(w) + len(w),) for w in widths]
    parts = rt.input_each(mine, shapes, integer=True)
    blocks, deviation = [], []
    for w, part in zip(widths, parts, strict=True):
        if part is None or not w:
            continue
        blocks.append(part[: n * len(w)].reshape(n, len(w)))
        deviation.append(part[n * len(w) :])
    z_all = concatenate(blocks, axis=1)
    product = rt.matmul(z_all.T, z_all)
    shift = 2 * Z_BITS - 2 * rt.fxp.frac_bits
    (r,) = drive(rt, truncations(rt, [product.share.reshape(-1)], [shift]), "correlation")
    total = sum(len(w) for w in widths)
    out: dict[str, SharedTensor] = {
        "count": public(rt, np.array([n]), 0),
        "correlation": rt.shared(r.reshape(total, total), 2 * rt.fxp.frac_bits),
    }
    if deviations:
        out["stdev"] = rt.shared(concatenate(deviation).share.copy(), rt.fxp.frac_bits)
    return out


def covariance(rt: Runtime, ctx: JobContext) -> dict[str, SharedTensor]:
    """Outputs ``count``, ``correlation`` and ``stdev``: the covariance is R_jk s_j s_k.

    Reveals to the job's recipients: N, the correlation matrix and the sample
    standard deviations, together exactly the covariance matrix.
    """
    return correlation(rt, ctx, deviations=True)
