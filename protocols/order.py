"""Median and quantiles of one column by secure bisection over a public value range.

The q-quantile here is the smallest value v with F(v) = #{x <= v} / N >= q
(the inverse of the empirical distribution function, numpy's
``method="inverted_cdf"``; for q = 1/2 the lower median, as
``statistics.median_low``). It is searched on the grid
lo + j (hi - lo) / 2^bits, j = 0 .. 2^bits, of the job's public
``params["range"] = [lo, hi]`` (default [-2^14, 2^14]) with
``params["bits"]`` (default 20, at most 32) bits: the reported value is the
middle of the grid interval (lo + (j - 1) w, lo + j w] that holds the
quantile, w = (hi - lo) / 2^bits, so it is within
**w / 2 = (hi - lo) / 2^(bits + 1)** of the exact one. Values outside the
range count as lo or hi. The bound on bits: 32 bits resolve the widest range
to 2^-18, finer than the 2^-16 at which the other statistics read their
inputs, in at most 90 rounds; a finer grid would cost rounds and add nothing.

Probabilities are rounded to fractions a / b with b <= 10^4 and must stay in
[1/10^4, 1 - 1/10^4]. A quantile at q with q N < m (or (1 - q) N < m) is one
of the m smallest (largest) values, at q -> 0 the minimum itself, so it is
revealed only where every party's policy sets ``allow_min_max``. Otherwise
the job is suppressed unless q* N >= m for q* = min over the probabilities of
min(q, 1 - q), compared inside MPC as a* N - b* m >= 0 (q* = a* / b*), in the
place of N >= m (which it implies): N is never opened to decide.

1. Hospital i shares [n_i, dropped_i], its policy in the same round and
   its veto bit as its own share (1 round); the pooled N (as a* N, see
   above) and dropped count are gated (8 rounds) and the flag [not
   suppressed] is opened to every computing party (1 round). A suppressed
   job goes on with zeros, so every job takes the same rounds.
2. Each step narrows every quantile's interval 16-fold: for 15 public
   thresholds v per quantile, each hospital counts its own values <= v (in
   the clear, on its sorted column) and shares the counts (1 round); one
   batched exact comparison of b C(v) - a N_g with 0, for q = a / b and the
   gated N_g = N [N >= m] (8 rounds, ``smpc.compare.ltz``); the comparison
   bits are opened to every computing party (1 round).
   ceil(bits / 4) steps: 10 rounds each.

Rounds: 10 + 10 ceil(bits / 4), 60 for the default 20 bits. Reveals to every
computing party and to the job's recipients: whether the job is suppressed
(N < m, a party's veto, or an extreme quantile not allowed) and, if not,
each quantile at the grid resolution (each opened bit says on which side of
a threshold a quantile lies, which the result implies); to the recipients
also N and the dropped count (gated as in ``protocols.descriptive.count``).
N itself stays secret from the computing parties.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from protocols.context import JobContext, Outcome, is_integer, is_number
from protocols.descriptive import check_frac_bits, own_data, pooled_integers
from protocols.disclosure import (
    VALUE_BOUND,
    StatisticsParams,
    StatisticsParamsError,
    agree_and_pool,
    gate,
    job_params,
    public,
)
from smpc import compare
from smpc.runtime import Runtime
from smpc.shares import concatenate

STEP_BITS = 4
"""Bits of the grid index resolved per step: 2^4 - 1 = 15 thresholds per quantile."""

DEFAULT_BITS = 20
MAX_BITS = 32
"""The finest grid a job may ask for (see the module)."""

DENOMINATOR = 10_000
"""Probabilities are rounded to fractions with at most this denominator."""

DEFAULT_PROBABILITIES = (0.25, 0.5, 0.75)


def rounds(bits: int = DEFAULT_BITS) -> int:
    """Rounds of :func:`quantiles` (without the job's own agreement and output rounds)."""
    return 10 + 10 * math.ceil(bits / STEP_BITS)


@dataclass(frozen=True)
class QuantileParams(StatisticsParams):
    """``probabilities`` in (0, 1), the search ``range`` [lo, hi] and the grid's ``bits``."""

    probabilities: tuple[float, ...] = DEFAULT_PROBABILITIES
    range: tuple[float, float] = (-VALUE_BOUND, VALUE_BOUND)
    bits: int = DEFAULT_BITS

    def __post_init__(self) -> None:
        qs = self.probabilities
        if isinstance(qs, str) or not isinstance(qs, list | tuple) or not qs:
            raise self.invalid("probabilities", "must list at least one probability")
        for q in qs:
            if not is_number(q) or not 0 < q < 1:
                raise self.invalid("probabilities", "must each lie strictly between 0 and 1")
            if not 0 < Fraction(q).limit_denominator(DENOMINATOR) < 1:
                raise self.invalid(
                    "probabilities",
                    f"must each lie in [1/{DENOMINATOR}, 1 - 1/{DENOMINATOR}]",
                )
        bounds = self.range
        if (
            isinstance(bounds, str)
            or not isinstance(bounds, list | tuple)
            or len(bounds) != 2
            or not all(is_number(v) and math.isfinite(v) for v in bounds)
            or not bounds[0] < bounds[1]
        ):
            raise self.invalid("range", "must be two finite numbers lo < hi")
        if max(abs(bounds[0]), abs(bounds[1])) > VALUE_BOUND:
            raise self.invalid("range", f"must lie within +-{VALUE_BOUND:g}")
        bits = self.bits
        if not is_integer(bits) or not 1 <= bits <= MAX_BITS:
            raise self.invalid("bits", f"must be an integer from 1 to {MAX_BITS}")
        object.__setattr__(self, "bits", int(bits))
        object.__setattr__(self, "probabilities", tuple(float(q) for q in qs))
        object.__setattr__(self, "range", (float(bounds[0]), float(bounds[1])))

    @property
    def fractions(self) -> list[Fraction]:
        """The probabilities as the fractions the protocol compares with (denominator <= 10^4)."""
        return [Fraction(q).limit_denominator(DENOMINATOR) for q in self.probabilities]

    def check_columns(self, columns: Sequence[str]) -> None:
        if len(columns) != 1:
            raise StatisticsParamsError("must name exactly one column for quantiles", "columns")


def nearest_end(qs: list[Fraction], allow_min_max: bool) -> Fraction:
    """q*: the smallest distance of a probability to 0 or 1, or 1 where min and max are allowed.

    The job goes on only if q* N >= m, so no quantile closer to an end than
    m / N is revealed unless every policy allows a minimum or maximum.
    """
    return Fraction(1) if allow_min_max else min(min(q, 1 - q) for q in qs)


def quantiles(rt: Runtime, ctx: JobContext) -> Outcome:
    """Outputs ``count``, ``dropped`` and ``quantiles`` (one per probability); see the module.

    Reveals to every computing party and the job's recipients: whether the
    job is suppressed and, if not, the quantiles at the grid resolution; to
    the recipients also N and the dropped count, each gated by m.
    """
    check_frac_bits(rt)
    params = job_params(ctx, QuantileParams)
    qs, (lo, hi), bits = params.fractions, params.range, params.bits
    data = own_data(rt, ctx)
    n, dropped, at_most = 0, 0, None
    if data is not None:
        counted, at_most = data.at_most(lo, hi)
        n, dropped = counted.rows, counted.dropped
    policy, counts, vetoes = agree_and_pool(rt, ctx, np.array([n, dropped]), n)
    m = policy.min_cell_size
    end = nearest_end(qs, policy.allow_min_max)
    compared = concatenate([counts[:1] * end.numerator, counts[1:]])
    minimum = np.array([end.denominator * m, m])
    flags, (kept,) = gate(rt, compared, minimum, [(counts, None)], vetoes)
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
        under = np.zeros(lanes, dtype=np.int64)
        if ok and at_most is not None:
            under = at_most((lo + points * width).reshape(-1))
        pooled = pooled_integers(rt, under)
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
    return Outcome(
        {
            "count": kept[:1],
            "dropped": kept[1:],
            "quantiles": public(rt, middle, 2 * rt.fxp.frac_bits),
        }
    )
