"""Histograms over public bin edges; frequency and contingency tables of categorical columns.

Each hospital counts its own complete rows into the public cells and shares
the cell counts (with its dropped-row count and its veto bit, see
:mod:`protocols.disclosure`) in one round; every pooled cell is compared with
m inside MPC in one batch (8 rounds). Rounds: 10 (policies, input,
comparison). A cell below m, or empty, comes out as 0: "suppressed"; a veto
suppresses every cell.
Cells are suppressed independently: a suppressed cell can be recovered by
subtraction from a total published elsewhere (e.g. by a count job), which
disclosure control per cell does not prevent.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from protocols.context import JobContext, Outcome, is_number
from protocols.descriptive import check_frac_bits, own_data
from protocols.disclosure import (
    StatisticsParams,
    StatisticsParamsError,
    agree_and_pool,
    gate,
    job_params,
)
from smpc.runtime import Runtime

ROUNDS = 9
"""Rounds of :func:`histogram` and :func:`crosstab`: policies with the input 1, comparison 8."""


def _gated_cells(
    rt: Runtime, ctx: JobContext, cells: np.ndarray, rows: int, dropped: int, extra: Sequence[int]
) -> Outcome:
    flat = np.concatenate([cells.reshape(-1), [dropped]]).astype(np.int64)
    policy, counts, vetoes = agree_and_pool(rt, ctx, flat, rows, extra)
    _, (kept,) = gate(rt, counts, policy.min_cell_size, [(counts, None)], vetoes)
    return Outcome({"counts": kept[:-1].reshape(*cells.shape), "dropped": kept[-1:]})


@dataclass(frozen=True)
class HistogramParams(StatisticsParams):
    """``edges``: the public bin edges, at least two finite numbers, strictly increasing."""

    edges: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        edges = self.edges
        if isinstance(edges, str) or not isinstance(edges, list | tuple) or len(edges) < 2:
            raise self.invalid("edges", "must list at least two finite bin edges")
        if not all(is_number(e) and math.isfinite(e) for e in edges):
            raise self.invalid("edges", "must list at least two finite bin edges")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise self.invalid("edges", "must be strictly increasing")
        object.__setattr__(self, "edges", tuple(float(e) for e in edges))

    def check_columns(self, columns: Sequence[str]) -> None:
        if len(columns) != 1:
            raise StatisticsParamsError("must name exactly one column for a histogram", "columns")


def histogram(rt: Runtime, ctx: JobContext) -> Outcome:
    """Outputs ``counts`` (one per bin) and ``dropped`` for one column; 9 rounds.

    Bins as ``numpy.histogram`` with the job's ``params["edges"]``: half-open
    [e_j, e_j+1), the last one closed; values outside the edges fall in no
    bin. Reveals to the job's recipients: each pooled bin count that reaches m
    (else 0) and the dropped count if it reaches m (else 0); nothing to the
    computing parties but m.
    """
    check_frac_bits(rt)
    edges = np.array(job_params(ctx, HistogramParams).edges)
    data = own_data(rt, ctx)
    if data is None:
        return _gated_cells(rt, ctx, np.zeros(len(edges) - 1, dtype=np.int64), 0, 0, [len(edges)])
    counted, cells = data.histogram(edges)
    return _gated_cells(rt, ctx, cells, counted.rows, counted.dropped, [len(edges)])


@dataclass(frozen=True)
class CrosstabParams(StatisticsParams):
    """``levels``: one list of distinct, non-empty category names per column (one or two)."""

    levels: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        given = self.levels
        if isinstance(given, str) or not isinstance(given, list | tuple) or not given:
            raise self.invalid("levels", "must give one list of levels per column")
        out = []
        for j, names in enumerate(given):
            if isinstance(names, str) or not isinstance(names, list | tuple) or not names:
                raise self.invalid("levels", f"for column {j + 1} must be a non-empty list")
            if not all(isinstance(v, str) for v in names):
                raise self.invalid("levels", f"for column {j + 1} must be text")
            texts = tuple(v.strip() for v in names)
            if len(set(texts)) != len(texts) or "" in texts:
                raise self.invalid("levels", f"for column {j + 1} must be distinct and non-empty")
            out.append(texts)
        object.__setattr__(self, "levels", tuple(out))

    def check_columns(self, columns: Sequence[str]) -> None:
        if len(columns) not in (1, 2):
            raise StatisticsParamsError(
                "must name one or two columns for a frequency or contingency table", "columns"
            )
        if len(self.levels) != len(columns):
            raise self.invalid(
                "levels",
                f"must give one list of levels per column: {len(columns)}, not {len(self.levels)}",
            )


def crosstab(rt: Runtime, ctx: JobContext) -> Outcome:
    """Outputs ``counts`` (one cell per level, or per pair of levels) and ``dropped``; 9 rounds.

    One categorical column (a frequency table, e.g. patients by diagnosis) or
    two (a contingency table), read from ``JobContext.text``, and their public
    levels in ``params["levels"]``; a row missing a value is dropped, a value that
    is not one of the levels is an error naming the column and the row of the
    selection. Reveals to the job's recipients: each pooled cell count that
    reaches m (else 0) and the dropped count if it reaches m (else 0); nothing
    to the computing parties but m.
    """
    check_frac_bits(rt)
    names = job_params(ctx, CrosstabParams).levels
    shape = tuple(len(n) for n in names)
    data = own_data(rt, ctx)
    if data is None:
        return _gated_cells(rt, ctx, np.zeros(shape, dtype=np.int64), 0, 0, list(shape))
    counted, cells = data.crosstab(names)
    return _gated_cells(rt, ctx, cells, counted.rows, counted.dropped, list(shape))
