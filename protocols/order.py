"""Median and quantiles of one column by secure bisection over a public value range.

The q-quantile here is the smallest value v with F(v) = #{x <= v} / N >= q
(the inverse of the empirical distribution function, numpy's
``method="inverted_cdf"``; for q = 1/2 the lower median, as
``statistics.median_low``). It is searched on the grid
lo + j (hi - lo) / 2^bits, j = 0 .. 2^bits, of the job's public
``params["range"] = [lo, hi]`` (default [-2^14, 2^14]) with
``params["bits"]`` (default 20) bits: the reported value is the middle of
the grid interval (lo + (j - 1) w, lo + j w] that holds the quantile,
w = (hi - lo) / 2^bits, so it is within **w / 2 = (hi - lo) / 2^(bits + 1)**
of the exact one. Values outside the range count as lo or hi.

1. Policies (1 round); hospital i shares [n_i, dropped_i] (1 round); the
   pooled N and dropped count are gated by m (8 rounds) and the flag
   [N >= m] is opened to every computing party (1 round). A suppressed job
   goes on with zeros, so every job takes the same rounds.
2. Each step narrows every quantile's interval 16-fold: for 15 public
   thresholds v per quantile, each hospital counts its own values <= v (in
   the clear, on its sorted column) and shares the counts (1 round); one
   batched exact comparison of b C(v) - a N_g with 0, for q = a / b and the
   gated N_g = N [N >= m] (8 rounds, ``smpc.compare.ltz``); the comparison
   bits are opened to every computing party (1 round).
   ceil(bits / 4) steps: 10 rounds each.

Rounds: 11 + 10 ceil(bits / 4), 61 for the default 20 bits. Reveals to every
computing party and to the job's recipients: whether N >= m and, if so,
each quantile at the grid resolution (each opened bit says on which side of
a threshold a quantile lies, which the result implies); to the recipients
also N and the dropped count (gated as in ``protocols.descriptive.count``).
N itself stays secret from the computing parties.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from protocols.descriptive import check_frac_bits, local_rows, pooled_integers
from protocols.disclosure import (
    VALUE_BOUND,
    StatisticsInputError,
    agree,
    check_contribution,
    gate,
    public,
)
from protocols.registry import JobContext
from smpc import compare
from smpc.runtime import Runtime
from smpc.shares import SharedTensor

STEP_BITS = 4
"""Bits of the grid index resolved per step: 2^4 - 1 = 15 thresholds per quantile."""

DEFAULT_BITS = 20
DEFAULT_PROBABILITIES = (0.25, 0.5, 0.75)


def rounds(bits: int = DEFAULT_BITS) -> int:
    """Rounds of :func:`quantiles` (without the job's own agreement and output rounds)."""
    return 11 + 10 * math.ceil(bits / STEP_BITS)


def _params(ctx: JobContext) -> tuple[list[Fraction], float, float, int]:
    qs = ctx.params.get("probabilities", list(DEFAULT_PROBABILITIES))
    if not isinstance(qs, list | tuple) or not qs:
        raise StatisticsInputError("params.probabilities must list at least one probability")
    fractions = []
    for q in qs:
        if not isinstance(q, int | float) or not 0 < q < 1:
            raise StatisticsInputError("each probability must lie strictly between 0 and 1")
        fractions.append(Fraction(q).limit_denominator(10_000))
    lo, hi = ctx.params.get("range", [-VALUE_BOUND, VALUE_BOUND])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise StatisticsInputError("params.range must be two finite numbers lo < hi")
    if max(abs(lo), abs(hi)) > VALUE_BOUND:
        raise StatisticsInputError(f"params.range must lie within +-{VALUE_BOUND:g}")
    bits = ctx.params.get("bits", DEFAULT_BITS)
    if not isinstance(bits, int) or not 1 <= bits <= 40:
        raise StatisticsInputError("params.bits must be an integer from 1 to 40")
    return fractions, float(lo), float(hi), bits


def quantiles(rt: Runtime, ctx: JobContext) -> dict[str, SharedTensor]:
    """Outputs ``count``, ``dropped`` and ``quantiles`` (one per probability); see the module.

    Reveals to every computing party and the job's recipients: whether
    N >= m and the quantiles at the grid resolution; to the recipients also
    N and the dropped count, each gated by m.
    """
    check_frac_bits(rt)
    qs, lo, hi, bits = _params(ctx)
    if len(ctx.columns) != 1:
        raise StatisticsInputError("quantiles take exactly one column")
    rows, dropped = local_rows(rt, ctx, bounded=False)
    values = np.sort(np.clip(rows[:, 0], lo, hi))
    m = agree(rt, ctx)
    check_contribution(len(values), m)
    counts = pooled_integers(rt, np.array([len(values), dropped]))
    flags, (kept,) = gate(rt, counts, m, [(counts, None)])
    opened = rt.open(flags[:1])
    ok = rt.planning or (opened is not None and int(opened[0]) == 0)
    a = np.array([q.numerator for q in qs], dtype=np.int64)
    b = np.array([q.denominator for q in qs], dtype=np.int64)
    width = (hi - lo) / 2**bits
    ways = 2**STEP_BITS - 1
    # The quantile's grid index j* (grid point lo + j width) lies in (low, high].
    low = np.zeros(len(qs), dtype=np.int64)
    high = np.full(len(qs), 2**bits, dtype=np.int64)
    lanes = len(qs) * ways
    n_lanes = kept[np.zeros(lanes, dtype=np.int64)]
    for step in range(math.ceil(bits / STEP_BITS)):
        left = bits - STEP_BITS * step
        gap = 2 ** max(left - STEP_BITS, 0)
        offsets = np.minimum(np.arange(1, ways + 1), 2 ** min(left, STEP_BITS) - 1)
        points = low[:, None] + gap * offsets[None, :]
        local = np.searchsorted(values, (lo + points * width).reshape(-1), side="right")
        pooled = pooled_integers(rt, local if ok else np.zeros(lanes, dtype=np.int64))
        lane_value = pooled * np.repeat(b, ways) - n_lanes * np.repeat(a, ways)
        opened_bits = rt.open(compare.ltz(rt, lane_value))
        short = np.asarray(opened_bits).reshape(len(qs), ways).astype(bool)
        for j in range(len(qs)):
            below = np.flatnonzero(short[j])
            above = np.flatnonzero(~short[j])
            if len(below):
                low[j] = points[j, below[-1]]
            if len(above):
                high[j] = points[j, above[0]]
    middle = lo + (high - 0.5) * width
    middle = middle if ok and not rt.planning else np.zeros_like(middle)
    return {
        "count": kept[:1],
        "dropped": kept[1:],
        "quantiles": public(rt, middle, 2 * rt.fxp.frac_bits),
    }
