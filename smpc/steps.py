"""Protocol steps as generators, and running independent steps in the same rounds.

A *step* is a generator that yields this party's message for a round,
receives every party's message of that round (in party order) and finally
returns its result. :func:`lockstep` merges independent steps into one
message per round, so their rounds overlap; :func:`drive` runs a step with one
``exchange_all`` per message. :func:`products` and :func:`truncations` are
Beaver products and truncations by any number of bits, as steps.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    from smpc.runtime import Runtime

T = TypeVar("T")
Steps = Generator[np.ndarray, list[np.ndarray], T]
"""A multi-round step: yields its message per round, receives every party's, returns."""

NO_MASK = np.empty(0, dtype=np.uint64)


def lockstep(*steps: Steps) -> Steps[list]:
    """Run independent steps side by side: one merged message per round.

    Each round concatenates the messages of the steps still running (in
    argument order), and hands each its slice of every party's message. The
    result lists each step's return value. Rounds = the longest step's.
    """
    results: list = [None] * len(steps)
    pending: dict[int, np.ndarray] = {}
    for i, step in enumerate(steps):
        try:
            pending[i] = next(step)
        except StopIteration as stop:
            results[i] = stop.value
    while pending:
        order = sorted(pending)
        opened = yield np.concatenate([pending[i] for i in order])
        offset = 0
        following: dict[int, np.ndarray] = {}
        for i in order:
            size = pending[i].size
            part = [m[offset : offset + size] for m in opened]
            offset += size
            try:
                following[i] = steps[i].send(part)
            except StopIteration as stop:
                results[i] = stop.value
        pending = following
    return results


def drive(rt: Runtime, steps: Steps[T], purpose: str) -> T:
    """Run a step to its end, one ``exchange_all`` per message it yields."""
    try:
        message = next(steps)
        while True:
            message = steps.send(rt.exchange_all(message, purpose))
    except StopIteration as stop:
        return stop.value


def products(
    rt: Runtime,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    shifts: Sequence[int],
    extra: Sequence[tuple[np.ndarray, int]] = (),
) -> Steps[list[np.ndarray]]:
    """Shares of (x * y) >> shift for raw flat shares, all pairs in 2 rounds.

    Round 1 opens every Beaver masking at once; round 2 opens every
    truncation at once (one truncation tuple per distinct shift). A product
    whose shift is 0 skips truncation. Requires |x * y| < 2^62 as ring values
    for the truncation to be exact up to one unit. ``extra`` values are
    truncated (value >> shift) in round 2 too; their results follow the
    products'.
    """
    ring = rt.ring
    sizes = [x.size for x, _ in pairs]
    total = sum(sizes)
    a, b, c = rt.prep.triple((total,)).consume()
    xs = np.concatenate([x for x, _ in pairs])
    ys = np.concatenate([y for _, y in pairs])
    opened = yield ring.beaver_masked(xs, a, ys, b)
    z = ring.beaver_product(opened, a, b, c, NO_MASK, rt.first)
    cuts = np.cumsum([0, *sizes])
    parts = [z[cuts[i] : cuts[i + 1]] for i in range(len(pairs))]
    values = parts + [value for value, _ in extra]
    return (yield from truncations(rt, values, [*shifts, *(shift for _, shift in extra)]))


def truncations(
    rt: Runtime, values: Sequence[np.ndarray], shifts: Sequence[int]
) -> Steps[list[np.ndarray]]:
    """Shares of value >> shift for raw flat shares, all in one round."""
    ring = rt.ring
    tuples = [
        rt.prep.truncation((v.size,), s).consume() if s else None
        for v, s in zip(values, shifts, strict=True)
    ]
    messages = [
        ring.truncation_masked(v, t[0], rt.first)
        for v, t in zip(values, tuples, strict=True)
        if t is not None
    ]
    if not messages:
        return list(values)
    opened = yield np.concatenate(messages)
    out = []
    offset = 0
    for v, s, t in zip(values, shifts, tuples, strict=True):
        if t is None:
            out.append(v)
            continue
        part = [m[offset : offset + v.size] for m in opened]
        offset += v.size
        out.append(ring.truncation_finish(part, t[1], t[2], s, rt.first))
    return out
