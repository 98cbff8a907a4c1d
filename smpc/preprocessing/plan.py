"""What correlated randomness a job will consume, in order.

A plan comes from a dry run of the protocol on a counting runtime with the
job's declared shapes (``smpc.runtime.dry_run``). The dealer makes exactly the
plan; a party asking for anything else, or for more, is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from math import prod
from typing import Any

KINDS = (
    "triple",
    "matrix_triple",
    "truncation",
    "binary_triple",
    "comparison_mask",
    "held_triple",
)

AHEAD_WORDS = 1 << 15
"""A plan of more ring elements per party is expanded ahead, on background threads while
the job computes, and the dealer sends its seed alone before it makes any correction (a plan
of 10^5-row items kept the first party waiting about 10 ms for the dealer's first
correction). A smaller one is expanded at once when its first item is needed: a thread
would cost more to start than the work it took over."""


@dataclass(frozen=True, slots=True)
class Request:
    """One item of correlated randomness.

    ``shape`` is the tensor shape for ``triple``, ``truncation`` and
    ``comparison_mask``, (m, k, n) for a ``matrix_triple`` of an (m x k) by
    (k x n) product, and the shape of the uint64 words (64 AND gates each)
    for a ``binary_triple``. A ``held_triple`` has shape (m, k, n) too, and
    ``parties`` names (holder, owner): the parties that hold its A and its B
    in the clear.
    """

    kind: str
    shape: tuple[int, ...]
    frac_bits: int = 0
    parties: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown preprocessing kind {self.kind!r}; known: {KINDS}")
        if self.kind in ("matrix_triple", "held_triple") and len(self.shape) != 3:
            raise ValueError(f"a {self.kind} request has shape (m, k, n)")
        held = self.kind == "held_triple"
        if held != bool(self.parties):
            raise ValueError("a held_triple request, and only one, names its (holder, owner)")
        if held and (
            len(self.parties) != 2 or self.parties[0] == self.parties[1] or min(self.parties) < 0
        ):
            raise ValueError("a held_triple's holder and owner are two distinct parties")
        if any(int(d) < 0 for d in self.shape):
            raise ValueError("dimensions must be non-negative")
        if not 0 <= self.frac_bits <= 62:
            raise ValueError(f"frac_bits must be in 0..62, got {self.frac_bits}")

    @property
    def words(self) -> int:
        """Ring elements one party holds for this item."""
        if self.kind in ("matrix_triple", "held_triple"):  # at most, for a held triple
            m, k, n = self.shape
            return m * k + k * n + m * n
        if self.kind == "comparison_mask":
            size = prod(self.shape)
            return 3 * size + (size + 63) // 64  # r, r's bits, daBit s; s's packed XOR shares
        return 3 * prod(self.shape)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "kind": self.kind,
            "shape": list(self.shape),
            "frac_bits": self.frac_bits,
        }
        if self.parties:
            data["parties"] = list(self.parties)
        return data

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Request:
        return Request(
            str(data["kind"]),
            tuple(int(d) for d in data["shape"]),
            int(data["frac_bits"]),
            tuple(int(p) for p in data.get("parties", ())),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """The ordered requests of one job."""

    requests: tuple[Request, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.requests)

    def __getitem__(self, index: int) -> Request:
        return self.requests[index]

    @property
    def words(self) -> int:
        """Ring elements one party holds for the whole plan."""
        return sum(r.words for r in self.requests)

    def to_json(self) -> str:
        """Canonical JSON of the plan (sorted keys, no spaces)."""
        return json.dumps(
            [r.to_json() for r in self.requests], sort_keys=True, separators=(",", ":")
        )

    @staticmethod
    def from_json(text: str) -> Plan:
        return Plan(tuple(Request.from_json(r) for r in json.loads(text)))
