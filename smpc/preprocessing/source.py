"""The abstract source of correlated randomness a party draws from, and the dry-run recorder."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from math import prod
from typing import TypeVar

import numpy as np

from smpc.errors import PlanMismatchError, PreprocessingExhausted
from smpc.preprocessing.items import (
    BinaryTriple,
    ComparisonMask,
    HeldTriple,
    MatrixTriple,
    Triple,
    TruncationTuple,
)
from smpc.preprocessing.plan import Plan, Request

_ItemT = TypeVar(
    "_ItemT", Triple, MatrixTriple, HeldTriple, TruncationTuple, BinaryTriple, ComparisonMask
)


def component_shapes(request: Request, party: int | None = None) -> tuple[tuple[int, ...], ...]:
    """Shapes of the arrays of an item at ``party`` (None: as its holders have them), in the
    order its type hands them out.

    The arrays the first party receives as corrections come last. Only a
    held triple's shapes depend on the party: A (m x k) at its holder and B
    (k x n) at its owner, no rows of either elsewhere.
    """
    if request.kind == "matrix_triple":
        m, k, n = request.shape
        return (m, k), (k, n), (m, n)
    if request.kind == "held_triple":
        m, k, n = request.shape
        holder, owner = request.parties
        a_rows = m if party is None or party == holder else 0
        b_rows = k if party is None or party == owner else 0
        return (a_rows, k), (b_rows, n), (m, n)
    if request.kind == "comparison_mask":
        packed = ((prod(request.shape) + 63) // 64,)
        return request.shape, packed, request.shape, request.shape
    return (request.shape,) * 3


class PreprocessingSource(ABC):
    """Hands out a job's correlated randomness in plan order, each item once."""

    def __init__(self, plan: Plan | None) -> None:
        self.plan = plan
        self.position = 0

    def triple(self, shape: Sequence[int]) -> Triple:
        """A Beaver triple for an elementwise product of the given shape."""
        return self._next(self._request("triple", shape), Triple)

    def matrix_triple(self, m: int, k: int, n: int) -> MatrixTriple:
        """A Beaver triple for an (m x k) by (k x n) matrix product."""
        return self._next(Request("matrix_triple", (int(m), int(k), int(n))), MatrixTriple)

    def held_triple(self, m: int, k: int, n: int, holder: int, owner: int) -> HeldTriple:
        """A (m x k) known to ``holder``, B (k x n) known to ``owner``, shares of C = A @ B."""
        request = Request("held_triple", (int(m), int(k), int(n)), 0, (int(holder), int(owner)))
        return self._next(request, HeldTriple)

    def truncation(self, shape: Sequence[int], frac_bits: int) -> TruncationTuple:
        """A truncation tuple for removing ``frac_bits`` fractional bits."""
        return self._next(self._request("truncation", shape, frac_bits), TruncationTuple)

    def binary_triple(self, shape: Sequence[int]) -> BinaryTriple:
        """XOR shares of a binary Beaver triple on uint64 words of the given shape."""
        return self._next(Request("binary_triple", tuple(int(d) for d in shape)), BinaryTriple)

    def comparison_mask(self, shape: Sequence[int]) -> ComparisonMask:
        """A mask with its bits and a daBit, for comparing a tensor of the given shape."""
        return self._next(Request("comparison_mask", tuple(int(d) for d in shape)), ComparisonMask)

    def _request(self, kind: str, shape: Sequence[int], frac_bits: int = 0) -> Request:
        """The request for ``kind`` at ``shape``: the plan's own when it is the next one
        (the common case, without building and checking a new one)."""
        plan, index = self.plan, self.position
        if plan is not None and index < len(plan.requests):
            planned = plan.requests[index]
            same = planned.kind == kind and planned.frac_bits == frac_bits
            if same and type(shape) is tuple and planned.shape == shape:
                return planned
        return Request(kind, tuple(int(d) for d in shape), int(frac_bits))

    def _next(self, request: Request, item_type: type[_ItemT]) -> _ItemT:
        index = self.position
        plan = self.plan
        # a request taken from the plan by _request is the planned one: nothing to check
        if plan is not None and not (
            index < len(plan.requests) and plan.requests[index] is request
        ):
            if index >= len(plan):
                raise PreprocessingExhausted(
                    f"the job asked for preprocessing item #{index} ({request.kind}) but its plan "
                    f"has {len(plan)}; the plan must come from a dry run of the same protocol "
                    "with the same shapes"
                )
            if plan[index] != request:
                raise PlanMismatchError(
                    f"preprocessing item #{index}: asked for {request.kind} {request.shape}, "
                    f"the plan has {plan[index].kind} {plan[index].shape}"
                )
        self.position += 1
        return item_type(index, *self._materialize(index, request))

    @abstractmethod
    def _materialize(self, index: int, request: Request) -> tuple[np.ndarray, ...]:
        """This party's arrays for plan item ``index``."""


class RecordingSource(PreprocessingSource):
    """Dry-run source: records every request as the plan and returns zeros."""

    def __init__(self) -> None:
        super().__init__(plan=None)
        self.requests: list[Request] = []

    def _materialize(self, index: int, request: Request) -> tuple[np.ndarray, ...]:
        self.requests.append(request)
        return tuple(np.zeros(s, dtype=np.uint64) for s in component_shapes(request))

    def recorded_plan(self) -> Plan:
        return Plan(tuple(self.requests))


class DeferredSource(PreprocessingSource):
    """A source made when its first item is asked for, by ``make``.

    The rounds before a job's first product or comparison (sharing inputs,
    agreeing on parameters) use no correlated randomness, so they can run
    while the party's seed is still on its way from the dealer.
    """

    def __init__(self, plan: Plan, make: Callable[[], PreprocessingSource]) -> None:
        super().__init__(plan)
        self._make = make
        self._source: PreprocessingSource | None = None

    @property
    def made(self) -> bool:
        """True once the underlying source exists."""
        return self._source is not None

    def _materialize(self, index: int, request: Request) -> tuple[np.ndarray, ...]:
        if self._source is None:
            self._source = self._make()
        return self._source._materialize(index, request)
