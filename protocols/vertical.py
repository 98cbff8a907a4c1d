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
error at its holder naming the column and row. That refusal, like a patient
of ``ids`` absent from the selection and a constant column, is about the
job's named rows by design, so it cannot be decided on the whole column: an
analyst who names a patient learns whether their value is missing. A value
outside |x| < 2^14 is refused over the whole column (``ColumnFacts``), so it
is not such an oracle. Reveals to the job's
recipients: N and the correlation matrix, and (for the covariance protocol)
each column's sample standard deviation, from which the covariance matrix
is R_jk s_j s_k; to the computing parties: m and N, which the job declares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from protocols.context import JobContext, Outcome, is_integer, is_number, plain_number
from protocols.descriptive import check_frac_bits, fixed
from protocols.disclosure import (
    REFUSAL,
    DisclosureRefused,
    StatisticsInputError,
    StatisticsParams,
    StatisticsParamsError,
    agree,
    check_values,
    public,
)
from protocols.local_data import check_range
from smpc.runtime import Runtime
from smpc.shares import SharedTensor, concatenate
from smpc.steps import drive, truncations

Z_BITS = 24
"""Fractional bits of the standardised columns."""


def _names(value: object) -> tuple[str, ...] | None:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        return None
    return tuple(value) if all(isinstance(v, str) and v for v in value) else None


@dataclass(frozen=True)
class VerticalParams(StatisticsParams):
    """``columns`` each party holds; N as ``rows``, or as the patient order ``ids`` with ``key``."""

    columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    key: str | None = None
    ids: tuple[float, ...] | None = None
    rows: int | None = None

    def __post_init__(self) -> None:
        held = self.columns
        if not isinstance(held, Mapping) or not held:
            raise self.invalid("columns", "must name every party's columns")
        named = {str(party): _names(cols) for party, cols in held.items()}
        if any(cols is None for cols in named.values()):
            raise self.invalid("columns", "must give each party a list of column names")
        object.__setattr__(self, "columns", named)
        if self.ids is not None:
            ids = self.ids
            numbers = isinstance(ids, list | tuple) and all(is_number(i) for i in ids)
            if not numbers or len({float(i) for i in ids}) != len(ids):
                raise self.invalid("ids", "must list distinct patient ids (numbers)")
            if not isinstance(self.key, str) or not self.key:
                raise self.invalid("key", "must name the key column that holds the ids")
            object.__setattr__(self, "ids", tuple(plain_number(i) for i in ids))
        elif self.key is not None:
            raise self.invalid("ids", "must list the patient order the key column is matched to")
        else:
            rows = self.rows
            if rows is None or not is_integer(rows) or rows < 0:
                raise self.invalid("rows", "(or params.key and params.ids) must give N")
            object.__setattr__(self, "rows", int(rows))

    def inputs(self) -> dict[str, list[str]]:
        """What each party selects: the key column (if any), then the columns it holds."""
        key = [self.key] if self.key is not None else []
        return {party: [*key, *cols] for party, cols in self.columns.items()}

    @property
    def n(self) -> int:
        """N, the number of aligned rows."""
        return len(self.ids) if self.ids is not None else int(self.rows or 0)

    def check_inputs(self, parties: Sequence[str], selections: Mapping[str, Sequence[str]]) -> None:
        if set(self.columns) != set(parties):
            raise self.invalid("columns", "must name every party's columns")
        for party in parties:
            needed = [*self.columns[party], *([self.key] if self.key is not None else [])]
            missing = [c for c in needed if c not in selections.get(party, ())]
            if missing:
                raise StatisticsParamsError(f"of {party} must include {missing}", "columns")


def _aligned(ctx: JobContext, params: VerticalParams, names: Sequence[str]) -> np.ndarray:
    """This party's columns ``names`` with its rows in the job's patient order."""
    values = np.asarray(ctx.values, dtype=np.float64)
    n = params.n
    picked = values[:, [ctx.columns.index(c) for c in names]] if names else values[:, :0]
    if params.ids is not None and params.key is not None:
        keys = values[:, ctx.columns.index(params.key)]
        where = {float(k): i for i, k in enumerate(keys)}
        order = []
        for position, patient in enumerate(params.ids):
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
    check_range(ctx.facts, names)  # the whole column, whichever rows were selected
    check_values(picked, names)
    return picked


def correlation(rt: Runtime, ctx: JobContext, *, deviations: bool = False) -> Outcome:
    """Outputs ``count`` and ``correlation`` (and ``stdev`` with ``deviations``); 4 rounds.

    Reveals to the job's recipients: N and the correlation matrix (and each
    column's sample standard deviation with ``deviations``); to the computing
    parties: m and N, which the job declares. See the module for the steps.
    """
    check_frac_bits(rt)
    params = VerticalParams.from_mapping(ctx.params)
    me = ctx.parties.index(ctx.party) if ctx.party in ctx.parties else rt.party
    params.check_inputs(ctx.parties, {**ctx.selections, ctx.party: ctx.columns})
    widths, n = [list(params.columns[p]) for p in ctx.parties], params.n
    m = agree(rt, ctx, [n, *(len(w) for w in widths)], same_columns=False)
    if n < max(m, 2):
        raise DisclosureRefused(REFUSAL)
    names = widths[me]
    x = _aligned(ctx, params, names)
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
    return Outcome(out)


def covariance(rt: Runtime, ctx: JobContext) -> Outcome:
    """Outputs ``count``, ``correlation`` and ``stdev``: the covariance is R_jk s_j s_k.

    Reveals to the job's recipients: N, the correlation matrix and the sample
    standard deviations, together exactly the covariance matrix.
    """
    return correlation(rt, ctx, deviations=True)
