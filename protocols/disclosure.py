"""Disclosure control shared by the statistics protocols: minimum sizes, decided inside MPC.

Every statistic applies the minimum cell size m of the job, the largest of
the parties' policies (:func:`agree`), to complete rows (rows left after
dropping those with a missing value):

1. To each party's own contribution: a party whose complete rows number from
   1 to m - 1 does not refuse (a refusal would tell the analyst that it holds
   a few such rows, e.g. that a given patient has no missing value). It
   casts a secret veto bit instead (:func:`small_contribution`), in the round
   that shares its aggregates (:func:`agree_and_pool`), and any veto
   suppresses every output of the job inside MPC. An empty
   contribution adds nothing and casts no veto. (A party process also
   refuses at admission, before any round, a selection below its own
   policy's minimum, counted before missing values are dropped.)
2. To pooled counts and cells (:func:`gate`): each count is compared with m
   by the exact comparison of ``smpc.compare`` and every value that depends
   on it is multiplied by the outcome, in the same 8 rounds.

So a small contribution, a small pooled count and an empty one all come out
as 0, read "suppressed"; which of them it was is never opened.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

import numpy as np

from protocols.context import JobContext, JobParamsError, Params
from smpc import compare
from smpc.errors import SMPCError
from smpc.shares import SharedTensor
from smpc.steps import drive, lockstep, products

if TYPE_CHECKING:
    from smpc.runtime import Runtime

_P = TypeVar("_P", bound="StatisticsParams")

REFUSAL = "contribution below the minimum cohort size"
"""The one reason a party gives for a small own contribution: it must not reveal the count."""

VALUE_BOUND = 2.0**14
"""Numeric inputs of the statistics must satisfy |x| < 2^14 = 16384 (costs up to 10^4 fit)."""


VETO_WEIGHT = 2**48
"""A veto's weight in :func:`gate`: larger than any count or minimum it is compared with."""


class DisclosureRefused(SMPCError):
    """A party refuses to contribute: its policy forbids what the job would reveal."""


class PolicyRefused(DisclosureRefused):
    """A party's policy forbids the statistic itself: decided by the job alone, never by data."""


class StatisticsInputError(SMPCError, statistics.StatisticsError):
    """A party's data or the job's parameters do not fit the statistic; names column and row.

    A ``statistics.StatisticsError`` (hence a ValueError), as in Python's module.
    """


class StatisticsParamsError(StatisticsInputError, JobParamsError):
    """The job's parameters or columns do not fit the statistic (the job alone decides it)."""


@dataclass(frozen=True)
class StatisticsParams(Params):
    """Parameters of a row-split statistic; this base takes none beyond the columns.

    Every party selects the same columns (:func:`same_selection`); a
    subclass says which columns its statistic takes in :meth:`check_columns`.
    """

    error: ClassVar[type[JobParamsError]] = StatisticsParamsError

    def check_columns(self, columns: Sequence[str]) -> None:
        """Raise StatisticsParamsError if the statistic cannot take ``columns``."""
        if not columns:
            raise StatisticsParamsError("must name at least one column", "columns")

    def check_inputs(self, parties: Sequence[str], selections: Mapping[str, Sequence[str]]) -> None:
        self.check_columns(same_selection(parties, selections))


@dataclass(frozen=True)
class Policy:
    """What the job's parties agreed to reveal: the strictest of their policies."""

    min_cell_size: int
    """m, the largest minimum cell size over the parties."""
    allow_min_max: bool
    """True only if every party's policy permits revealing a minimum or maximum."""


def agree_policy(
    rt: Runtime, ctx: JobContext, extra: Sequence[int] = (), *, same_columns: bool = True
) -> Policy:
    """The job's :class:`Policy`, from every party's own; one round of public values.

    The round also carries a digest of the columns each party selected (and
    ``extra`` public integers), so parties that were asked for different
    columns stop with an error instead of computing on mismatched tensors
    (``same_columns=False`` for column-split data, where they differ).
    """
    mine = _policy_words(ctx, extra, same_columns)
    return _policy_from(rt, ctx, mine, rt.exchange_all(mine, "policy"))


def _policy_words(ctx: JobContext, extra: Sequence[int], same_columns: bool) -> np.ndarray:
    """This party's policy, the digest of its columns and ``extra``, as public words."""
    names = "\x00".join(ctx.columns) if same_columns else ""
    digest = hashlib.sha256(names.encode()).digest()[:8]
    return np.array(
        [ctx.min_cell_size, int(ctx.allow_min_max), int.from_bytes(digest, "little"), *extra],
        dtype=np.uint64,
    )


def _policy_from(
    rt: Runtime, ctx: JobContext, mine: np.ndarray, heard: Sequence[np.ndarray]
) -> Policy:
    """The strictest of the policies heard; an error naming a party whose columns differ."""
    if rt.planning:
        return Policy(max(1, ctx.min_cell_size), ctx.allow_min_max)
    for party, theirs in enumerate(heard):
        if not np.array_equal(theirs[2:], mine[2:]):
            raise StatisticsInputError(
                f"party {ctx.parties[party] if party < len(ctx.parties) else party} selected "
                "different columns or parameters; every party must select the same ones"
            )
    return Policy(
        min_cell_size=int(max(int(h[0]) for h in heard)),
        allow_min_max=all(int(h[1]) == 1 for h in heard),
    )


def agree(
    rt: Runtime, ctx: JobContext, extra: Sequence[int] = (), *, same_columns: bool = True
) -> int:
    """The job's minimum cell size m (see :func:`agree_policy`); one round."""
    return agree_policy(rt, ctx, extra, same_columns=same_columns).min_cell_size


def agree_and_share(
    rt: Runtime, ctx: JobContext, local: np.ndarray, rows: int, extra: Sequence[int] = ()
) -> tuple[Policy, list[SharedTensor], SharedTensor]:
    """The job's :class:`Policy`, every party's shared ``local`` integers (in party order),
    and the pooled veto count (the :func:`small_contribution` bits of ``rows``); one round.

    The policies (as :func:`agree_policy` has them, with ``extra``) travel in
    the round that shares ``local``. A veto bit needs m, known only once that
    round is in, so it is not shared: each party holds its own bit as its
    additive share of the veto count. That share is not uniform, but the veto
    count is only ever an operand of :func:`gate`, where it is added to the
    uniformly shared counts and leaves a party only inside the comparison's
    first message, masked by the comparison's fresh random mask; so it
    reveals what a shared bit did: nothing but its effect on the gate.
    """
    mine = _policy_words(ctx, extra, True)
    flat = np.asarray(local, dtype=np.int64).reshape(-1)
    parts, heard = rt.input_all_announcing(flat, flat.shape, mine, integer=True)
    policy = _policy_from(rt, ctx, mine, heard)
    veto = np.array([small_contribution(rows, policy.min_cell_size)], dtype=np.uint64)
    return policy, list(parts), rt.shared(veto, 0)


def agree_and_pool(
    rt: Runtime, ctx: JobContext, local: np.ndarray, rows: int, extra: Sequence[int] = ()
) -> tuple[Policy, SharedTensor, SharedTensor]:
    """As :func:`agree_and_share`, with the parties' ``local`` integers summed; one round."""
    policy, parts, vetoes = agree_and_share(rt, ctx, local, rows, extra)
    pooled = parts[0]
    for part in parts[1:]:
        pooled = pooled + part
    return policy, pooled, vetoes


def same_selection(
    parties: Sequence[str], selections: Mapping[str, Sequence[str]]
) -> tuple[str, ...]:
    """The columns every party selects, as the signed job says; an error naming a party if not.

    Names first a party without input, else the first whose columns differ
    from those most parties select. It names a party, never a count or a shape.
    """
    chosen = [tuple(selections.get(party, ())) for party in parties]
    for party, columns in zip(parties, chosen, strict=True):
        if not columns:
            raise StatisticsParamsError(
                f"every party must select the same columns; {party} selects none"
            )
    if not chosen:
        return ()
    usual = Counter(chosen).most_common(1)[0][0]
    for party, columns in zip(parties, chosen, strict=True):
        if columns != usual:
            raise StatisticsParamsError(
                f"every party must select the same columns; {party} selects other ones"
            )
    return usual


def check_same_selection(ctx: JobContext) -> None:
    """Every party of the job selects the same columns, as the signed job says.

    Decided from the job itself, which every party holds, so each party stops
    with the same error before its dry run, its dealer request or any share
    (see :func:`same_selection`).
    """
    if ctx.selections:
        same_selection(ctx.parties, ctx.selections)


def job_params(ctx: JobContext, kind: type[_P]) -> _P:
    """The job's parameters of statistic ``kind``, checked with the columns every party selects.

    Decided from the signed job alone, so every party stops with the same
    StatisticsParamsError, before its dry run, its dealer request or any share.
    """
    check_same_selection(ctx)
    params = kind.from_mapping(ctx.params)
    params.check_columns(ctx.columns)
    return params


def complete_rows(values: np.ndarray) -> tuple[np.ndarray, int]:
    """The rows without a missing (NaN) value in any requested column, and how many were dropped."""
    if values.size == 0:
        return values.reshape(len(values), values.shape[1] if values.ndim == 2 else 0), 0
    if not np.isnan(values.sum(axis=0)).any():  # a NaN anywhere makes its column's sum NaN
        return values, 0
    keep = ~np.isnan(values).any(axis=1)
    dropped = int(len(values) - np.count_nonzero(keep))
    return (values if dropped == 0 else values[keep]), dropped


def small_contribution(rows: int, m: int) -> int:
    """1 if this party's own contribution of ``rows`` complete rows is from 1 to m - 1, else 0.

    Never opened: the pooled sum of these bits is the job's veto count
    (:func:`agree_and_pool`), which :func:`gate` folds into every count.
    """
    return int(0 < rows < m)


def check_values(values: np.ndarray, columns: Sequence[str], bound: float = VALUE_BOUND) -> None:
    """Every value is finite and below ``bound`` in magnitude; names column and row, not value."""
    if values.size == 0 or (-bound < values.min() and values.max() < bound):
        return
    bad = ~(np.abs(values) < bound)
    if bad.any():
        row, col = np.unravel_index(int(np.argmax(bad)), values.shape)
        name = columns[int(col)] if col < len(columns) else str(col)
        raise StatisticsInputError(
            f"column {name!r} row {row} of the selection: value out of range; statistics take "
            f"|x| < {bound:g}"
        )


def gate(
    rt: Runtime,
    counts: SharedTensor,
    minimum: np.ndarray | int,
    factors: Sequence[tuple[SharedTensor, int | None]] = (),
    vetoes: SharedTensor | None = None,
) -> tuple[SharedTensor, list[SharedTensor]]:
    """Flags [count < minimum] and factors kept only where their count reaches it; 8 rounds.

    ``counts`` is a flat integer tensor of k pooled counts; ``minimum`` a
    public integer or k of them. Each factor comes with the index of the
    count that gates all of it, or None when it has k rows, row j gated by
    count j. The sign bit b of count - minimum comes from
    ``compare.sign_bit_steps``; b * y for every factor element is
    d y + (1 - 2 d) s y with the daBit s, whose Beaver product s * y rides in
    the comparison's first round (as ``compare.relu`` does). Returns the
    flags (1 = suppressed, integers) and the gated factors (0 where
    suppressed), all still shared. Reveals nothing.

    ``vetoes`` (one shared integer, the pooled :func:`small_contribution`
    bits) suppresses everything when it is not 0: each count is compared as
    count - 2^48 vetoes, which is negative for any veto since counts and
    minimums stay below 2^48 (rows below 2^24, probability numerators
    below 2^14). No extra round.
    """
    if counts.scale != 0 or counts.ndim != 1:
        raise ValueError("gate compares a flat tensor of integer counts")
    k = counts.size
    limits = np.broadcast_to(np.asarray(minimum, dtype=np.int64), (k,))
    compared = counts - limits
    if vetoes is not None:
        if vetoes.scale != 0 or vetoes.size != 1:
            raise ValueError("vetoes must be one shared integer")
        compared = compared - vetoes.reshape(1)[np.zeros(k, dtype=np.int64)] * VETO_WEIGHT
    s, bit = compare.sign_bit_steps(rt, compared)
    lanes = []
    for y, index in factors:
        if index is None:
            if y.shape[:1] != (k,):
                raise ValueError(f"a gated factor needs {k} rows, got shape {y.shape}")
            lanes.append(np.repeat(np.arange(k), y.size // k))
        else:
            lanes.append(np.full(y.size, index))
    flat = [y.share.reshape(-1) for y, _ in factors]
    if flat:
        pairs = [(s[lane], f) for lane, f in zip(lanes, flat, strict=True)]
        d, sy = drive(rt, lockstep(bit, products(rt, pairs, [0] * len(pairs))), "gate")
    else:
        d, sy = drive(rt, bit, "gate"), []
    flags = rt.shared(rt.ring.xor_public_bit(d, s, rt.first), 0)
    gated = []
    for (y, _), lane, f, y_s in zip(factors, lanes, flat, sy, strict=True):
        below = rt.ring.dabit_product(np.asarray(d)[lane], f, y_s)
        gated.append(rt.shared(rt.ring.sub(f, below).reshape(y.shape), y.scale))
    return flags, gated


def public(rt: Runtime, value: np.ndarray, scale: int) -> SharedTensor:
    """A value every party already knows, as a shared tensor (party 0 holds it) for the outputs."""
    encoded = np.asarray(value, dtype=np.float64) * float(1 << scale)
    raw = np.rint(encoded).astype(np.int64).view(np.uint64)
    share = raw if rt.first else np.zeros_like(raw)
    return rt.shared(share, scale)
