"""One party's keystream for a whole job, cut into consecutive slices, one per plan item.

From a party's job seed one key is derived (HKDF-SHA256, label
``"plan-stream"``), and that key's AES-256-CTR keystream holds all of the
party's seeded arrays: plan item k takes the words right after item k - 1's,
its arrays in order. The first party's layout leaves out the arrays it gets as
corrections (they are not drawn from its seed at all), so its items are
shorter than the others'. The dealer derives the same key from the same seed
and cuts the keystream the same way, so both hold bit-identical arrays.

Items read in plan order continue one cipher; an item read out of order opens
the keystream at its first word (the AES counter set to that block). Either
way every item reads its own range of words, disjoint from every other item's,
and each item can be expanded once: asking again is a ``ReuseError``.

Earlier, every item of every party had its own HKDF key and cipher: about
20 microseconds per item and party, most of the dealer's work for a job of
small items.
"""

from __future__ import annotations

import threading
from itertools import accumulate
from math import prod

import numpy as np

from smpc.errors import ReuseError
from smpc.preprocessing.plan import Plan, Request
from smpc.preprocessing.source import component_shapes
from smpc.prg import Stream, derive_key


def seeded_count(kind: str) -> int:
    """How many of an item's arrays the first party expands from its seed."""
    return 1 if kind == "truncation" else 2


def seeded_shapes(request: Request, party: int) -> tuple[tuple[int, ...], ...]:
    """The shapes of the arrays party ``party`` expands from its seed for ``request``.

    Every party gets all of an item's arrays from its stream, except the first
    party, which gets only the leading ones and receives the rest as
    corrections (one array for triples, two for truncation tuples and
    comparison masks). A held triple's A and B have rows only at their holder
    and owner (:func:`~smpc.preprocessing.source.component_shapes`).
    """
    shapes = component_shapes(request, party)
    return shapes[: seeded_count(request.kind)] if party == 0 else shapes


class PlanStream:
    """A party's seeded arrays of one job's plan, from one keystream (see the module docstring)."""

    def __init__(self, seed: bytes, plan: Plan, party: int) -> None:
        self._key = derive_key(seed, "plan-stream")
        self._items = len(plan)
        self._shapes = [seeded_shapes(r, party) for r in plan.requests]
        self._sizes = [[prod(shape) for shape in shapes] for shapes in self._shapes]
        self._starts = list(accumulate((sum(sizes) for sizes in self._sizes), initial=0))
        self._stream: Stream | None = None
        self._at = 0  # the word the open stream reads next
        self._expanded: set[int] = set()
        self._lock = threading.Lock()

    def item(self, index: int) -> list[np.ndarray]:
        """The party's seeded arrays of plan item ``index``; each item only once.

        The arrays are consecutive pieces of one array read from the keystream
        in one call: a job of small items pays the reading once per item.
        """
        if not 0 <= index < self._items:
            raise IndexError(f"the plan has no item #{index}")
        with self._lock:
            if index in self._expanded:
                raise ReuseError(f"the random stream of item #{index} was already used in this job")
            self._expanded.add(index)
            start = self._starts[index]
            if self._stream is None or self._at != start:
                self._stream = Stream(self._key, start)
            end = self._starts[index + 1]
            words = self._stream.words(end - start)
            self._at = end
        parts, at = [], 0
        for shape, size in zip(self._shapes[index], self._sizes[index], strict=True):
            parts.append(words[at : at + size].reshape(shape))
            at += size
        return parts

    def __repr__(self) -> str:  # never show the key
        return f"PlanStream(items={self._items}, expanded={len(self._expanded)})"
