"""The seed-based dealer and the party-side source that expands its seeds.

Per job the dealer draws a fresh 256-bit nonce; party i's seed is HKDF of
(nonce, federation, job, i), and one keystream derived from that seed holds
all of party i's items, the k-th plan item taking the slice after item
k - 1's (:mod:`smpc.preprocessing.streams`). Every party expands all of its
shares locally from its seed, except that the first party (index 0) does not
expand the components that make the correlation hold (c for triples, matrix,
held and binary triples; (r mod 2^63) >> F and r's top bit for truncation;
r's bits and the daBit's additive share for a comparison mask): the dealer
computes those from everybody's seeds and sends them as the one *correction*
per value, in bulk, ahead of use. A held triple's A is expanded by its holder
alone and its B by its owner alone: the first party's C is A @ B minus the
others'. For XOR sharing the correction is the value XOR the other parties'
shares. Dealer traffic is therefore one ring element per product, two per
truncation, one word per 64 AND gates and two per comparison, all to party 0,
and never on the critical path of an online round.

Trust: the dealer knows every seed. It must collude with no hospital; dealer
plus any one party learns everything (see the README's security model).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from smpc import ring
from smpc.errors import PreprocessingExhausted, UnknownPartyError
from smpc.preprocessing.ahead import Ahead
from smpc.preprocessing.plan import Plan, Request
from smpc.preprocessing.source import PreprocessingSource
from smpc.preprocessing.streams import PlanStream
from smpc.prg import derive_key, fresh_seed


def party_seed(nonce: bytes, federation: str, job: str, party: int) -> bytes:
    """Party ``party``'s preprocessing seed for one job."""
    return derive_key(nonce, "party-seed", federation, job, party)


class CorrectionFeed(ABC):
    """Where the first party gets its corrections: in process, or from the dealer service."""

    @abstractmethod
    def corrections(self, index: int) -> list[np.ndarray]:
        """The first party's corrected arrays for plan item ``index``."""


class AheadFeed(CorrectionFeed):
    """Another feed's corrections, computed in plan order on a background thread.

    This is how the dealer stays off the critical path in one process: it
    works through the plan while the parties compute, and the first party
    blocks only if it catches up with the dealer.
    """

    def __init__(self, source: CorrectionFeed, items: int) -> None:
        self._ahead = Ahead(source.corrections, items, "dealer-ahead")

    def corrections(self, index: int) -> list[np.ndarray]:
        return self._ahead.get(index)


class Dealer(CorrectionFeed):
    """Makes one job's seeds and the first party's corrections for its plan."""

    def __init__(self, federation: str, job: str, n_parties: int, plan: Plan) -> None:
        if n_parties < 2:
            raise ValueError("a job needs at least 2 computing parties")
        self.federation = federation
        self.job = job
        self.n_parties = n_parties
        self.plan = plan
        self._nonce = fresh_seed()
        self._streams = [PlanStream(self.seed_for(i), plan, i) for i in range(n_parties)]

    def seed_for(self, party: int) -> bytes:
        """The seed the dealer gives party ``party`` (over an authenticated channel)."""
        if not 0 <= party < self.n_parties:
            raise UnknownPartyError(f"job {self.job} has no party {party}")
        return party_seed(self._nonce, self.federation, self.job, party)

    def corrections(self, index: int) -> list[np.ndarray]:
        if not 0 <= index < len(self.plan):
            raise PreprocessingExhausted(
                f"job {self.job}: no correction #{index}; the plan has {len(self.plan)} items"
            )
        request = self.plan[index]
        shares = [stream.item(index) for stream in self._streams]
        others = shares[1:]
        if request.kind == "truncation":
            low, top = ring.truncation_corrections(
                [s[0] for s in shares],
                [s[1] for s in others],
                [s[2] for s in others],
                request.frac_bits,
            )
            return [low, top]
        if request.kind == "triple":
            a_shares, b_shares = [s[0] for s in shares], [s[1] for s in shares]
            return [ring.triple_correction(a_shares, b_shares, [s[2] for s in others])]
        if request.kind == "binary_triple":
            a_shares, b_shares = [s[0] for s in shares], [s[1] for s in shares]
            return [ring.binary_triple_correction(a_shares, b_shares, [s[2] for s in others])]
        if request.kind == "comparison_mask":
            r_bits, s = ring.comparison_corrections(
                [s[0] for s in shares],
                [s[1] for s in shares],
                [s[2] for s in others],
                [s[3] for s in others],
            )
            return [r_bits, s]
        if request.kind == "held_triple":
            holder, owner = request.parties
            a, b = shares[holder][0], shares[owner][1]
        else:
            a = ring.sum_shares([s[0] for s in shares])
            b = ring.sum_shares([s[1] for s in shares])
        return [ring.sub(ring.matmul(a, b), ring.sum_shares([s[2] for s in others]))]

    def local_sources(self, *, prefetch: bool = False) -> list[SeededSource]:
        """Every party's source, for parties that share this process with the dealer.

        With ``prefetch`` everything is expanded now; otherwise the dealer and
        every party work through the plan on background threads, ahead of use.
        """
        feed = self if prefetch else AheadFeed(self, len(self.plan))
        sources = [
            SeededSource(i, self.seed_for(i), self.plan, feed if i == 0 else None)
            for i in range(self.n_parties)
        ]
        for source in sources:
            if prefetch:
                source.prefetch()
            else:
                source.expand_ahead()
        return sources

    def __repr__(self) -> str:  # never show the nonce or seeds
        return f"Dealer(job={self.job!r}, parties={self.n_parties}, items={len(self.plan)})"


class SeededSource(PreprocessingSource):
    """A party's preprocessing: expanded from its seed, plus corrections at party 0."""

    def __init__(
        self, party: int, seed: bytes, plan: Plan, feed: CorrectionFeed | None = None
    ) -> None:
        super().__init__(plan)
        if party == 0 and feed is None:
            raise ValueError("the first party needs a correction feed from the dealer")
        self.party = party
        self._stream = PlanStream(seed, plan, party)
        self._feed = feed
        self._ready: dict[int, tuple[np.ndarray, ...]] = {}
        self._ahead: Ahead[tuple[np.ndarray, ...]] | None = None

    def expand_ahead(self) -> None:
        """Expand the plan's items on a background thread while the party computes."""
        if self.position or self._ready or self._ahead is not None:
            raise RuntimeError("expand_ahead must be called once, before any item is used")
        assert self.plan is not None
        plan = self.plan
        self._ahead = Ahead(
            lambda i: self._expand(i, plan[i]), len(plan), f"expand-ahead-{self.party}"
        )

    def prefetch(self) -> None:
        """Expand (and fetch corrections for) every remaining plan item now."""
        if self._ahead is not None:
            raise RuntimeError("the items are already being expanded ahead")
        assert self.plan is not None
        for index in range(self.position, len(self.plan)):
            if index not in self._ready:
                self._ready[index] = self._expand(index, self.plan[index])

    def _materialize(self, index: int, request: Request) -> tuple[np.ndarray, ...]:
        if self._ahead is not None:
            return self._ahead.get(index)
        ready = self._ready.pop(index, None)
        return ready if ready is not None else self._expand(index, request)

    def _expand(self, index: int, request: Request) -> tuple[np.ndarray, ...]:
        parts = self._stream.item(index)
        if self.party == 0:
            assert self._feed is not None
            parts += self._feed.corrections(index)
        for part in parts:  # read-only, as the ring kernels take them: no view made per use
            part.flags.writeable = False
        return tuple(parts)
