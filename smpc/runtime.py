"""The party runtime: who this party is, its peers, input, opening, and rounds.

A :class:`Runtime` is made per job and passed explicitly to protocol code; no
runtime exists at import time, so several federations can live in one
process. Protocol functions are written once, ``fn(rt, ...)``, and run on the
in-memory transport, on gRPC between hospitals, and on the counting runtime
that produces a job's preprocessing plan (:func:`dry_run`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, overload

import numpy as np

from smpc import beaver, ring, ring_null, truncation
from smpc.errors import ShapeMismatchError
from smpc.fixedpoint import FixedPoint
from smpc.preprocessing import Plan, PreprocessingSource, RecordingSource
from smpc.prg import SEED_BYTES, Stream, derive_key, fresh_seed
from smpc.shares import SharedTensor
from smpc.transport import CountingTransport, Expect, Transport

_U64 = np.dtype(np.uint64)
_SEED = Expect(np.dtype(np.uint8), SEED_BYTES)

INPUT_ROUNDS = 1
"""Rounds of :meth:`Runtime.input` (and ``input_all``, ``input_each``), for any size."""

OPEN_ROUNDS = 1
"""Rounds of :meth:`Runtime.open` (and ``open_ring``, ``open_parts``), for any size."""


class Runtime:
    """One party's view of one job: transport, preprocessing, encoder."""

    def __init__(
        self, transport: Transport, prep: PreprocessingSource, fxp: FixedPoint | None = None
    ) -> None:
        self.transport = transport
        self.prep = prep
        self.fxp = fxp if fxp is not None else FixedPoint()
        # The kernels protocol steps call: the null back end computes only shapes.
        self.ring: ModuleType = ring_null if transport.counting else ring

    # -- identity -------------------------------------------------------------
    @property
    def party(self) -> int:
        """This party's index in the job (0 adds public constants)."""
        return self.transport.party

    @property
    def n_parties(self) -> int:
        return self.transport.n_parties

    @property
    def job(self) -> str:
        return self.transport.job

    @property
    def first(self) -> bool:
        """True at the party that adds public constants and gets the dealer's corrections."""
        return self.transport.party == 0

    @property
    def planning(self) -> bool:
        """True during the dry run that plans a job.

        The dry run computes shapes only: inputs are not encoded, kernels come
        from the null back end, and opened values are zeros. Code that derives
        public values from an opening (a division by an opened count, say)
        must give them a harmless stand-in while planning.
        """
        return self.transport.counting

    @property
    def rounds(self) -> int:
        return self.transport.rounds

    def shared(self, share: np.ndarray, scale: int) -> SharedTensor:
        """Wrap a raw share array of this party."""
        return SharedTensor(share, self.party, self.fxp, scale)

    # -- communication primitives -----------------------------------------------
    def exchange_all(self, payload: np.ndarray, purpose: str) -> list[np.ndarray]:
        """One round: send ``payload`` to every peer; return every party's, in index order."""
        t = self.transport
        peers = t.peers
        expect = Expect.like(payload)
        got = t.exchange(dict.fromkeys(peers, payload), dict.fromkeys(peers, expect), purpose)
        got[t.party] = payload
        return [got[p] for p in range(t.n_parties)]

    def input(
        self,
        value: object | None,
        owner: int,
        shape: Sequence[int] | None = None,
        *,
        integer: bool = False,
        columns: Sequence[str] | None = None,
    ) -> SharedTensor:
        """Secret-share ``value`` held by party ``owner``; one round.

        The owner passes the value (reals are encoded with F fractional bits,
        or as integers with ``integer=True``); every other party passes None
        and the public ``shape``. The owner sends each peer a fresh 32-byte
        seed from which that peer expands its share; the owner keeps the
        value minus the peers' shares. Reveals nothing but the shape.
        """
        owner = self.transport.check_party(owner)
        if self.party == owner and value is None:
            raise ValueError(f"party {owner} owns this input and must pass its value")
        if self.party != owner and shape is None:
            raise ValueError(f"the input of party {owner} needs its public shape here")
        return self._inputs([owner], value, {owner: shape}, integer, columns)[0][0]

    def input_all(
        self,
        value: object,
        shape: Sequence[int],
        *,
        integer: bool = False,
        columns: Sequence[str] | None = None,
    ) -> list[SharedTensor]:
        """Every party secret-shares its own tensor of one public shape; one round.

        Returns the shared tensors in party order. Reveals nothing but the shape.
        """
        everyone = list(range(self.n_parties))
        shared, _ = self._inputs(everyone, value, dict.fromkeys(everyone, shape), integer, columns)
        return shared

    def input_all_announcing(
        self, value: object, shape: Sequence[int], public: np.ndarray, *, integer: bool = False
    ) -> tuple[list[SharedTensor], list[np.ndarray]]:
        """:meth:`input_all`, and every party's public uint64 words in the same round.

        ``public`` has one length at every party (e.g. its policy, which a
        protocol needs before it can use the shares). Returns the shared
        tensors and every party's public words, both in party order.
        """
        everyone = list(range(self.n_parties))
        words = np.ascontiguousarray(public, dtype="<u8").reshape(-1)
        shared, heard = self._inputs(
            everyone, value, dict.fromkeys(everyone, shape), integer, None, words
        )
        return shared, heard

    def input_each(
        self,
        value: object | None,
        shapes: Sequence[Sequence[int] | None],
        *,
        integer: bool = False,
        columns: Sequence[str] | None = None,
    ) -> list[SharedTensor | None]:
        """Every party whose ``shapes`` entry is not None shares its own tensor; one round.

        Shapes may differ between parties (e.g. each hospital's row count);
        returns the shared tensors in party order, None for parties without one.
        """
        if len(shapes) != self.n_parties:
            raise ValueError(f"shapes has {len(shapes)} entries for {self.n_parties} parties")
        owners = [p for p, shape in enumerate(shapes) if shape is not None]
        if self.party in owners and value is None:
            raise ValueError(f"party {self.party} must pass the value it shares")
        shared, _ = self._inputs(owners, value, dict(enumerate(shapes)), integer, columns)
        result: list[SharedTensor | None] = [None] * self.n_parties
        for owner, tensor in zip(owners, shared, strict=True):
            result[owner] = tensor
        return result

    def _inputs(
        self,
        owners: list[int],
        value: object | None,
        shapes: Mapping[int, Sequence[int] | None],
        integer: bool,
        columns: Sequence[str] | None,
        public: np.ndarray | None = None,
    ) -> tuple[list[SharedTensor], list[np.ndarray]]:
        """Share the owners' tensors in one round; ``shapes`` declares each owner's shape.

        With ``public`` (uint64 words of one length at every party; every party
        an owner), each message carries those words before the seed, and every
        party's words come back in party order (else an empty list).
        """
        t = self.transport
        head = b"" if public is None else public.tobytes()
        expect = _SEED if public is None else Expect(np.dtype(np.uint8), len(head) + SEED_BYTES)

        def shape_of(owner: int) -> tuple[int, ...] | None:
            declared = shapes.get(owner)
            return None if declared is None else tuple(declared)

        outgoing: dict[int, np.ndarray] = {}
        if self.party in owners:
            ring_value = self.encode(value, integer=integer, columns=columns)
            declared = shape_of(self.party)
            if declared is not None and declared != ring_value.shape:
                raise ShapeMismatchError(
                    f"input has shape {ring_value.shape}, the job declares {declared}"
                )
            outgoing = {p: np.frombuffer(head + fresh_seed(), dtype=np.uint8) for p in t.peers}
        got = t.exchange(outgoing, {o: expect for o in owners if o != self.party}, "input")
        seeds = {o: message[len(head) :] for o, message in got.items()}
        outgoing = {p: message[len(head) :] for p, message in outgoing.items()}
        heard: list[np.ndarray] = []
        if public is not None:
            got[self.party] = np.frombuffer(head, dtype=np.uint8)
            heard = [got[p][: len(head)].view("<u8") for p in range(self.n_parties)]
        scale = 0 if integer else self.fxp.frac_bits
        result = []
        for owner in owners:
            if owner == self.party:
                share = ring_value.copy()
                for p, seed in outgoing.items():
                    share -= self._input_share(seed, p, share.shape)
            else:
                theirs = shape_of(owner)
                if theirs is None:
                    raise ValueError(f"the input of party {owner} needs its public shape here")
                share = self._input_share(seeds[owner], self.party, theirs)
            result.append(self.shared(share, scale))
        return result, heard

    def encode(
        self, value: object, *, integer: bool = False, columns: Sequence[str] | None = None
    ) -> np.ndarray:
        """This party's own value as ring elements (F fractional bits, or integers); range
        checked. While planning, zeros of its shape: the dry run never reads the data."""
        if self.planning:  # the dry run needs the shape only, never the data
            return np.zeros(np.asarray(value).shape, dtype=np.uint64)
        return self.fxp.encode_int(value) if integer else self.fxp.encode(value, columns=columns)

    def _input_share(self, seed: np.ndarray, party: int, shape: tuple[int, ...]) -> np.ndarray:
        if self.planning:
            return np.zeros(shape, dtype=np.uint64)
        return Stream(derive_key(seed.tobytes(), "input-share", self.job, party)).words(shape)

    @overload
    def open_ring(self, x: SharedTensor, to: None = None) -> np.ndarray: ...
    @overload
    def open_ring(self, x: SharedTensor, to: Sequence[int]) -> np.ndarray | None: ...

    def open_ring(self, x: SharedTensor, to: Sequence[int] | None = None) -> np.ndarray | None:
        """Reveal the ring value of ``x`` to every party, or only to ``to``; one round.

        Non-recipients get None. Every party must call this with the same ``to``.
        """
        t = self.transport
        if to is None:
            shares = self.exchange_all(x.share, "open")
        else:
            recipients = sorted({t.check_party(p) for p in to})
            outgoing = {p: x.share for p in recipients if p != self.party}
            receiving = self.party in recipients
            incoming = {p: Expect.like(x.share) for p in t.peers} if receiving else {}
            got = t.exchange(outgoing, incoming, "open")
            if not receiving:
                return None
            got[self.party] = x.share
            shares = [got[p] for p in range(self.n_parties)]
        return self.ring.sum_shares(shares).reshape(x.shape)

    def open_parts(
        self, x: SharedTensor, recipients: Sequence[int], sizes: Sequence[int]
    ) -> np.ndarray | None:
        """Reveal consecutive blocks of rows of ``x``, block k only to ``recipients[k]``; one round.

        Returns this party's own block decoded (or None if it receives none).
        """
        t = self.transport
        if len(recipients) != len(sizes) or sum(sizes) != x.shape[0]:
            raise ShapeMismatchError(f"blocks of {list(sizes)} rows do not split {x.shape[0]} rows")
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        mine = [k for k, r in enumerate(recipients) if t.check_party(r) == self.party]
        if len(mine) > 1:
            raise ValueError("each party receives at most one block")
        outgoing = {
            r: np.ascontiguousarray(x.share[starts[k] : starts[k + 1]]).reshape(-1)
            for k, r in enumerate(recipients)
            if r != self.party
        }
        incoming = {}
        if mine:
            block = x.share[starts[mine[0]] : starts[mine[0] + 1]]
            incoming = {p: Expect(np.dtype(np.uint64), block.size) for p in t.peers}
        got = t.exchange(outgoing, incoming, "open")
        if not mine:
            return None
        got[self.party] = np.ascontiguousarray(block).reshape(-1)
        raw = self.ring.sum_shares([got[p] for p in range(self.n_parties)]).reshape(block.shape)
        return raw.view(np.int64) if x.scale == 0 else self.fxp.decode(raw, x.scale)

    @overload
    def open(self, x: SharedTensor, to: None = None) -> np.ndarray: ...
    @overload
    def open(self, x: SharedTensor, to: Sequence[int]) -> np.ndarray | None: ...

    def open(self, x: SharedTensor, to: Sequence[int] | None = None) -> np.ndarray | None:
        """Reveal ``x`` decoded: reals for fixed point, int64 for integers; one round."""
        raw = self.open_ring(x, to)
        if raw is None:
            return None
        if x.scale == 0:
            return raw.view(np.int64)
        return self.fxp.decode(raw, x.scale)

    # -- products -------------------------------------------------------------
    def mul(self, x: SharedTensor, y: SharedTensor) -> SharedTensor:
        """Elementwise product; two rounds for fixed point (Beaver, truncation), else one."""
        return beaver.mul(self, x, y)

    def matmul(self, x: SharedTensor, y: SharedTensor) -> SharedTensor:
        """Matrix product; two rounds for fixed point, else one."""
        return beaver.matmul(self, x, y)

    def truncate(self, x: SharedTensor) -> SharedTensor:
        """Remove F fractional bits from a product; one round, exact up to 1 ulp."""
        return truncation.truncate(self, x)


@dataclass(frozen=True)
class DryRun:
    """What a dry run learned: the plan, and one party's rounds and bytes."""

    plan: Plan
    rounds: int
    bytes_sent: int
    result: Any


def dry_run(
    fn: Callable[..., Any],
    n_parties: int,
    *args: Any,
    party: int = 0,
    fxp: FixedPoint | None = None,
    job: str = "dry-run",
    **kwargs: Any,
) -> DryRun:
    """Run ``fn(rt, *args)`` on a counting runtime: no peers, zeros for every message."""
    transport = CountingTransport(job, party, n_parties)
    source = RecordingSource()
    result = fn(Runtime(transport, source, fxp), *args, **kwargs)
    return DryRun(source.recorded_plan(), transport.rounds, transport.bytes_sent, result)
