"""Counts, sums and means, variances and covariances, minimum and maximum over row-split data.

Each hospital shares local aggregates of its own complete rows (rows with a
missing value in any requested column are dropped locally), never the rows,
so the cost does not grow with the number of patients. It asks its data for
them through :mod:`protocols.local_data`: computed with numpy from its rows,
or by its database where the rows live. Disclosure control is
that of :mod:`protocols.disclosure`, all inside MPC: a veto from any party
whose own complete rows number 1 to m - 1, and a comparison of each pooled
count of complete rows with m; then the count and every value that depends
on it come out as 0, read "suppressed". The number of dropped rows is an
output too, 0 unless it reaches m (and no party vetoed).

Scales (F = 16; inputs |x| < 2^14, checked locally; 10^6 rows per hospital,
up to 2^24 pooled rows in all): counts are integers; sums carry 16 fractional
bits (|sum| < 2^14 * 2^24 = 2^38, so 2^54 in the ring); means, population
variances and covariances carry 32 (2F) and are formed from aggregates already
divided by the public N, so each is below 2^28 (a variance of values in
(-2^14, 2^14)) and below 2^60 in the ring. See :func:`moments` for the one
product that needs care.
"""

from __future__ import annotations

import numpy as np

from protocols.context import JobContext, Outcome
from protocols.disclosure import (
    PolicyRefused,
    StatisticsParams,
    agree_and_pool,
    agree_and_share,
    check_values,
    complete_rows,
    gate,
    job_params,
)
from protocols.local_data import Counted, LocalData, check_range, local_data
from smpc import compare
from smpc.errors import FixedPointRangeError
from smpc.runtime import Runtime
from smpc.shares import SharedTensor, concatenate
from smpc.steps import drive, products

SUM_BITS = 16
"""Fractional bits of pooled sums (and of the fixed-point operands of products)."""

MOMENT_BITS = 32
"""Fractional bits of means, population variances and covariances (2F)."""

WEIGHT_BITS = 32
"""Fractional bits of sqrt(n_i / N), a hospital's weight in the between-hospital term."""

MOMENTS_ROUNDS = 14
"""Rounds of :func:`variance` and :func:`covariance` (see :func:`moments`)."""


FIXED_RANGE_BITS = 62
"""An encoded value must stay below 2^62 in magnitude: the ring's range for truncation."""


def fixed(values: object, bits: int) -> np.ndarray:
    """round(values * 2^bits) as int64, for integer-encoded inputs at a chosen scale.

    A FixedPointRangeError (naming the scale, never a value) if any value is
    not finite or reaches 2^(62 - bits) in magnitude: the cast would turn it
    into an arbitrary integer, a wrong input that nothing downstream sees.
    """
    with np.errstate(over="ignore"):  # what overflows is inf, refused below
        scaled = np.asarray(values, dtype=np.float64) * float(2**bits)
    if not np.isfinite(scaled).all() or (np.abs(scaled) >= 2.0**FIXED_RANGE_BITS).any():
        raise FixedPointRangeError(
            f"a value to encode at {bits} fractional bits is not finite or not below "
            f"2^{FIXED_RANGE_BITS - bits} in magnitude; the local aggregates left the "
            "range the protocol's scales allow"
        )
    return np.rint(scaled).astype(np.int64)


def check_frac_bits(rt: Runtime) -> None:
    """The scales here are worked out for F = 16 fractional bits."""
    if rt.fxp.frac_bits != SUM_BITS:
        raise ValueError(f"the statistics protocols need F = {SUM_BITS} fractional bits")


def local_rows(rt: Runtime, ctx: JobContext, *, bounded: bool = True) -> tuple[np.ndarray, int]:
    """This party's complete rows of the requested columns and how many it dropped.

    For a protocol that needs the rows themselves (its spec does not set
    ``aggregates``, so ``ctx.values`` holds them). Call it after
    :func:`~protocols.disclosure.job_params`, which checks the selection on the
    signed job. The dry run that plans a job needs only shapes, which do not
    depend on the rows, so it skips the local work and sees no rows.
    """
    if rt.planning:
        return np.zeros((0, len(ctx.columns))), 0
    rows, dropped = complete_rows(np.asarray(ctx.values, dtype=np.float64))
    if bounded:
        check_range(ctx.facts, ctx.columns)  # the whole column, whichever rows were selected
        check_values(rows, ctx.columns)
    return rows, dropped


def own_data(rt: Runtime, ctx: JobContext) -> LocalData | None:
    """This party's data, asked for local aggregates; None in the dry run that plans a job.

    Call it after :func:`~protocols.disclosure.job_params`, which checks the
    selection on the signed job. The dry run needs only shapes, which do not
    depend on the rows, so it skips the local work and sees no rows.
    """
    return None if rt.planning else local_data(ctx)


def _counts(counted: Counted | None) -> tuple[int, int]:
    """(complete rows, dropped rows); zeros in the dry run."""
    return (0, 0) if counted is None else (counted.rows, counted.dropped)


def pooled_integers(rt: Runtime, local: np.ndarray) -> SharedTensor:
    """Every party shares an int64 vector of one public length; their shared sum. One round."""
    shares = rt.input_all(np.asarray(local, dtype=np.int64), (len(local),), integer=True)
    total = shares[0]
    for share in shares[1:]:
        total = total + share
    return total


def _as_scale(rt: Runtime, x: SharedTensor, scale: int) -> SharedTensor:
    """Relabel an integer-encoded tensor that carries ``scale`` fractional bits."""
    return rt.shared(np.ascontiguousarray(x.share), scale)


def count(rt: Runtime, ctx: JobContext) -> Outcome:
    """Outputs ``count`` and ``dropped``: the pooled number of complete rows; 9 rounds.

    Reveals to the job's recipients: the pooled count if it reaches m (else 0)
    and the pooled number of rows dropped for a missing value if it reaches m
    (else 0), both 0 if a party's own complete rows number 1 to m - 1.
    Nothing to the computing parties but m, the maximum of their policies.
    Rounds: policies with the input 1 (:func:`~protocols.disclosure.agree_and_pool`),
    comparison 8.
    """
    check_frac_bits(rt)
    job_params(ctx, StatisticsParams)
    data = own_data(rt, ctx)
    n, dropped = _counts(data.counts() if data is not None else None)
    policy, pooled, vetoes = agree_and_pool(rt, ctx, np.array([n, dropped]), n)
    _, (kept,) = gate(rt, pooled, policy.min_cell_size, [(pooled, None)], vetoes)
    return Outcome({"count": kept[:1], "dropped": kept[1:]})


def total(rt: Runtime, ctx: JobContext) -> Outcome:
    """Outputs ``count``, ``dropped`` and ``sum`` (per column); 9 rounds.

    Reveals to the job's recipients: the pooled count and per-column sums if
    the count reaches m (else 0), hence the means sum / count, and the dropped
    count, each suppressed as in :func:`count`. The sums carry 16 fractional
    bits. Nothing to the computing parties but m.
    """
    check_frac_bits(rt)
    job_params(ctx, StatisticsParams)
    data = own_data(rt, ctx)
    counted, sums = data.sums() if data is not None else (None, np.zeros(len(ctx.columns)))
    n, dropped = _counts(counted)
    local = np.concatenate([[n, dropped], fixed(sums, SUM_BITS)])
    policy, pooled, vetoes = agree_and_pool(rt, ctx, local, n)
    counts = pooled[:2]
    m = policy.min_cell_size
    _, (kept, sum_kept) = gate(rt, counts, m, [(counts, None), (pooled[2:], 0)], vetoes)
    return Outcome(
        {"count": kept[:1], "dropped": kept[1:], "sum": _as_scale(rt, sum_kept, rt.fxp.frac_bits)}
    )


def moments(rt: Runtime, ctx: JobContext, *, matrix: bool) -> Outcome:
    """Outputs ``count``, ``dropped``, ``mean`` and ``pvariance`` (or ``pcovariance``).

    Population variance (``matrix=False``, per column) or population
    covariance matrix (``matrix=True``) by the parallel formula of Chan,
    Golub and LeVeque ("Algorithms for computing the sample variance",
    The American Statistician 37(3), 1983), for k hospitals with weights
    w_i = n_i / N:

        C / N = sum_i C_i / N + sum_i w_i (mean_i - mean)(mean_i - mean)^T

    where C_i is hospital i's centred co-moment matrix (two-pass, local).

    1. Policies, and each hospital shares [n_i, dropped_i]; its veto bit is
       its own share of the veto count (1 round,
       :func:`~protocols.disclosure.agree_and_pool`).
    2. :func:`~protocols.disclosure.gate`: N against max(m, 2) and the dropped
       count against m, both 0 on a veto (8 rounds); the gated N is opened to every
       computing party (1 round): N is a declared public intermediate, needed
       to divide by. If it is 0 (suppressed) every party shares zeros below.
    3. Hospital i shares C_i / N (32 bits), w_i mean_i (16 and 32 bits),
       sqrt(w_i) (32 bits) and sqrt(w_i) mean_i (16 bits); 1 round. Locally
       mean = sum_i w_i mean_i and sum_i C_i / N.
    4. u_i = sqrt(w_i) mean_i - sqrt(w_i) * mean (one product per column,
       truncated by 32 bits: 2 rounds), then u_i u_i^T (1 round, kept at
       32 bits) summed over i. The differences mean_i - mean are formed
       before any product, so nothing large cancels: the error is about
       2^-16 |u_i| per term rather than 2^-16 |mean|.

    Rounds: 14. Range: |sqrt(w_i) * mean| * 2^48 < 2^62 since |mean| < 2^14.
    Reveals to the job's recipients: N, the means and the population
    (co)variances if N >= max(m, 2) (else 0), and the dropped count as in
    :func:`count`; to the computing parties: m and N (or 0 if suppressed).
    """
    check_frac_bits(rt)
    job_params(ctx, StatisticsParams)
    data = own_data(rt, ctx)
    p = len(ctx.columns)
    counted, mean_i, comoment = (
        data.moments(matrix=matrix) if data is not None else (None, np.zeros(p), np.zeros(0))
    )
    n, dropped = _counts(counted)
    policy, counts, vetoes = agree_and_pool(rt, ctx, np.array([n, dropped]), n)
    m = policy.min_cell_size
    _, (kept,) = gate(rt, counts, np.array([max(m, 2), m]), [(counts, None)], vetoes)
    opened = rt.open(kept[:1])
    pooled_n = 0 if opened is None else int(opened[0])
    width = p * p if matrix else p
    if pooled_n > 0 and n > 0:
        w = n / pooled_n
        local = np.concatenate(
            [
                fixed(w * mean_i, SUM_BITS),
                fixed(w * mean_i, MOMENT_BITS),
                fixed(np.sqrt(w) * mean_i, SUM_BITS),
                fixed([np.sqrt(w)], WEIGHT_BITS),
                fixed(np.asarray(comoment).reshape(-1) / pooled_n, MOMENT_BITS),
            ]
        )
    else:
        local = np.zeros(3 * p + 1 + width, dtype=np.int64)
    parts = rt.input_all(local, (len(local),), integer=True)
    pooled = parts[0]
    for part in parts[1:]:
        pooled = pooled + part
    mean16 = pooled[:p].share
    between = [(np.repeat(part[3 * p].share, p), mean16) for part in parts]
    scaled = drive(rt, products(rt, between, [WEIGHT_BITS] * len(parts)), "moments")
    u = [rt.ring.sub(part[2 * p : 3 * p].share, s) for part, s in zip(parts, scaled, strict=True)]
    pairs = [(np.repeat(v, p), np.tile(v, p)) for v in u] if matrix else [(v, v) for v in u]
    squares = drive(rt, products(rt, pairs, [0] * len(pairs)), "moments")
    spread = pooled[3 * p + 1 :]
    for sq in squares:
        spread = spread + rt.shared(sq, 0)
    name = "pcovariance" if matrix else "pvariance"
    shape = (p, p) if matrix else (p,)
    return Outcome(
        {
            "count": kept[:1],
            "dropped": kept[1:],
            "mean": _as_scale(rt, pooled[p : 2 * p], MOMENT_BITS),
            name: _as_scale(rt, spread.reshape(*shape), MOMENT_BITS),
        }
    )


def variance(rt: Runtime, ctx: JobContext) -> Outcome:
    """Per-column population variance (see :func:`moments`); 14 rounds.

    Reveals to the job's recipients: N, the means and the population
    variances if N >= max(m, 2) (else 0) and the gated dropped count; to the
    computing parties: m and N (0 if suppressed).
    """
    return moments(rt, ctx, matrix=False)


def covariance(rt: Runtime, ctx: JobContext) -> Outcome:
    """Population covariance matrix of the columns (see :func:`moments`); 14 rounds.

    Reveals to the job's recipients: N, the means and the population
    covariance matrix if N >= max(m, 2) (else 0) and the gated dropped count;
    to the computing parties: m and N (0 if suppressed).
    """
    return moments(rt, ctx, matrix=True)


def extremes(rt: Runtime, ctx: JobContext) -> Outcome:
    """Outputs ``count``, ``dropped``, ``min`` and ``max`` per column, where every policy allows.

    A minimum or a maximum is one patient's value, so each party refuses
    (:class:`PolicyRefused`) unless its policy sets ``allow_min_max``.

    1. Hospital i shares [n_i, dropped_i, -min_i, max_i] (an empty hospital
       shares -2^14 for both, which never wins), its policy in the same round
       and its veto bit as its own share
       (:func:`~protocols.disclosure.agree_and_share`; 1 round).
    2. A tournament of exact maxima (``compare.maximum``) over the hospitals,
       minima as maxima of negated values, all columns in one batch per level:
       8 rounds per level, ceil(log2 k) levels.
    3. :func:`~protocols.disclosure.gate` on N and the dropped count, with the
       vetoes (8 rounds).

    Reveals to the job's recipients: N and each column's minimum and maximum
    if N >= m (else 0), and the dropped count as in :func:`count`.
    """
    check_frac_bits(rt)
    if not ctx.allow_min_max:
        raise PolicyRefused("this party's policy does not permit a minimum or maximum")
    job_params(ctx, StatisticsParams)
    data = own_data(rt, ctx)
    p = len(ctx.columns)
    counted, low, high = data.extremes() if data is not None else (None, None, None)
    n, dropped = _counts(counted)
    if n and low is not None and high is not None:
        ends = np.concatenate([-low, high])
    else:
        ends = np.full(2 * p, -(2.0**14))
    local = np.concatenate([[n, dropped], fixed(ends, SUM_BITS)])
    policy, parts, vetoes = agree_and_share(rt, ctx, local, n)
    counts = parts[0][:2]
    for part in parts[1:]:
        counts = counts + part[:2]
    contenders = [_as_scale(rt, part[2:], rt.fxp.frac_bits) for part in parts]
    while len(contenders) > 1:
        pairs = len(contenders) // 2
        left = concatenate(contenders[0 : 2 * pairs : 2])
        right = concatenate(contenders[1 : 2 * pairs : 2])
        best = compare.maximum(rt, left, right)
        winners = [best[j * 2 * p : (j + 1) * 2 * p] for j in range(pairs)]
        contenders = winners + contenders[2 * pairs :]
    _, (kept, ends_kept) = gate(
        rt, counts, policy.min_cell_size, [(counts, None), (contenders[0], 0)], vetoes
    )
    return Outcome(
        {"count": kept[:1], "dropped": kept[1:], "min": -ends_kept[:p], "max": ends_kept[p:]}
    )
