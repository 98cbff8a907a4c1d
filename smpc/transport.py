"""The Transport interface, its accounting, and an in-memory implementation.

A transport is a tagged, ordered channel between the fixed parties of one
job. Protocol code talks to it only through :meth:`Transport.exchange`, one
call per round, so round and byte counts (defined in the architecture: a round
is every party sending at most one message to each peer, then waiting; bytes
are payload bytes handed to the transport) live here, in the base class, for
every implementation. The gRPC implementation lives in ``parties/``.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from smpc.errors import MalformedMessageError, PeerTimeoutError, ProtocolAbort, UnknownPartyError
from smpc.transcript import Envelope, Transcript


@dataclass(frozen=True, slots=True)
class Expect:
    """What a receiver expects from one peer in a round: dtype and element count."""

    dtype: np.dtype
    count: int

    @staticmethod
    def like(array: np.ndarray) -> Expect:
        return _expect(array.dtype, array.size)


@functools.lru_cache(maxsize=256)
def _expect(dtype: np.dtype, count: int) -> Expect:
    """One shared, immutable Expect per (dtype, count): a round makes one, and rounds repeat."""
    return Expect(dtype, count)


class Transport(ABC):
    """Round-structured messaging for one party in one job, with accounting."""

    counting = False  # True for the dry-run transport that only counts

    def __init__(
        self,
        job: str,
        party: int,
        n_parties: int,
        *,
        names: Sequence[str] | None = None,
        transcript: Transcript | None = None,
        deadline: float | None = None,
    ) -> None:
        if not 0 <= party < n_parties:
            raise UnknownPartyError(f"party index {party} is not in 0..{n_parties - 1}")
        self.job = job
        self.party = party
        self.n_parties = n_parties
        self.names = list(names) if names is not None else [f"party {i}" for i in range(n_parties)]
        self.transcript = transcript
        self.deadline = deadline
        self.rounds = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.messages_sent = 0
        self._sent_seq = [0] * n_parties
        self._recv_seq = [0] * n_parties
        self._peers = [p for p in range(n_parties) if p != party]

    @property
    def peers(self) -> list[int]:
        """Every other party of the job."""
        return self._peers.copy()

    def check_party(self, index: int) -> int:
        """Return ``index`` if it names a party of this job, else raise UnknownPartyError."""
        if not isinstance(index, int | np.integer) or not 0 <= index < self.n_parties:
            raise UnknownPartyError(
                f"job {self.job}: there is no party {index!r}; parties are 0..{self.n_parties - 1}"
            )
        return int(index)

    def exchange(
        self,
        outgoing: Mapping[int, np.ndarray],
        incoming: Mapping[int, Expect],
        purpose: str,
    ) -> dict[int, np.ndarray]:
        """One round: send each peer at most one message, then receive the expected ones."""
        self.rounds += 1
        n_parties = self.n_parties
        transcript = self.transcript
        sent: list[tuple[Envelope, np.ndarray]] = []
        for peer, payload in outgoing.items():
            if not (type(peer) is int and 0 <= peer < n_parties):  # the common case, cheaply
                peer = self.check_party(peer)
            if peer == self.party:
                raise UnknownPartyError("a party does not send to itself")
            env = Envelope(self.job, self.rounds, self._sent_seq[peer], self.party, peer, purpose)
            self._sent_seq[peer] += 1
            self._send(env, payload)
            self.bytes_sent += payload.nbytes
            self.messages_sent += 1
            if transcript is not None:
                sent.append((env, payload))
        # hashed once every message is on its way, so that no peer waits for the hashing
        # (a sent payload is not changed after exchange, as every transport requires)
        if transcript is not None:
            for env, payload in sent:
                transcript.record(env, payload)
        received: dict[int, np.ndarray] = {}
        at = self.deadline  # a monotonic instant, as Deadline.at
        for peer, expect in incoming.items():
            if not (type(peer) is int and 0 <= peer < n_parties):
                peer = self.check_party(peer)
            left = None if at is None else max(0.0, at - time.monotonic())  # Deadline.left
            env, payload = self._receive(peer, expect, purpose, left)
            seq = self._recv_seq[peer]
            # the common case in two comparisons; _validate says what differs
            if env != (self.job, self.rounds, seq, peer, self.party, purpose) or (
                payload.dtype != expect.dtype or payload.size != expect.count
            ):
                self._validate(peer, purpose, expect, env, payload)
            self._recv_seq[peer] = seq + 1
            if transcript is not None:
                transcript.record(env, payload)
            self.bytes_received += payload.nbytes
            received[peer] = payload
        return received

    def _validate(
        self, peer: int, purpose: str, expect: Expect, env: Envelope, payload: np.ndarray
    ) -> None:
        problem = None
        if env.job != self.job or env.sender != peer or env.receiver != self.party:
            problem = "message addressed to another job or party"
        elif env.round != self.rounds or env.seq != self._recv_seq[peer]:
            problem = f"out of order: round {env.round} seq {env.seq}, expected round {self.rounds}"
        elif env.purpose != purpose:
            problem = f"purpose {env.purpose!r} where {purpose!r} was expected"
        elif payload.dtype != expect.dtype or payload.size != expect.count:
            problem = (
                f"payload of {payload.size} x {payload.dtype} where {expect.count} x "
                f"{np.dtype(expect.dtype)} was expected"
            )
        if problem is not None:
            raise MalformedMessageError(self.job, self.names[peer], "malformed message", problem)

    def timeout_error(self, peer: int) -> PeerTimeoutError:
        """The error raised when ``peer`` owes a message past the deadline."""
        return PeerTimeoutError(
            self.job, self.names[peer], "timed out", f"no message in round {self.rounds}"
        )

    @abstractmethod
    def _send(self, env: Envelope, payload: np.ndarray) -> None:
        """Hand one message to the channel towards ``env.receiver``."""

    @abstractmethod
    def _receive(
        self, peer: int, expect: Expect, purpose: str, timeout: float | None
    ) -> tuple[Envelope, np.ndarray]:
        """The next message from ``peer``; raise ``timeout_error(peer)`` past ``timeout``.

        ``expect`` and ``purpose`` say what the round expects; implementations
        may use them to allocate, never to skip the checks done by the base.
        """


class _Abort:
    """Queued in place of a message when a party of the job fails."""

    def __init__(self, party: str, kind: str) -> None:
        self.party = party
        self.kind = kind


class LocalNetwork:
    """Queues between the n parties of one in-process job."""

    def __init__(self, n_parties: int) -> None:
        self.n_parties = n_parties
        self._queues: dict[tuple[int, int], queue.SimpleQueue[object]] = {
            (s, r): queue.SimpleQueue()
            for s in range(n_parties)
            for r in range(n_parties)
            if s != r
        }
        self._lock = threading.Lock()
        self.aborted: _Abort | None = None

    def put(self, env: Envelope, payload: np.ndarray) -> None:
        self._queues[(env.sender, env.receiver)].put((env, payload))

    def get(self, sender: int, receiver: int, timeout: float | None) -> object:
        return self._queues[(sender, receiver)].get(timeout=timeout)

    def abort(self, party: str, kind: str) -> None:
        """Wake every waiting receiver with an abort naming the failed party."""
        with self._lock:
            if self.aborted is not None:
                return
            self.aborted = _Abort(party, kind)
        for q in self._queues.values():
            q.put(self.aborted)


class InMemoryTransport(Transport):
    """A transport over a :class:`LocalNetwork`; payloads are passed, not copied."""

    def __init__(self, network: LocalNetwork, job: str, party: int, **kwargs: object) -> None:
        super().__init__(job, party, network.n_parties, **kwargs)  # type: ignore[arg-type]
        self.network = network

    def _send(self, env: Envelope, payload: np.ndarray) -> None:
        frozen = payload.view()
        frozen.flags.writeable = False
        self.network.put(env, frozen)

    def _receive(
        self, peer: int, expect: Expect, purpose: str, timeout: float | None
    ) -> tuple[Envelope, np.ndarray]:
        try:
            item = self.network.get(peer, self.party, timeout)
        except queue.Empty:
            raise self.timeout_error(peer) from None
        if isinstance(item, _Abort):
            raise ProtocolAbort(self.job, item.party, item.kind)
        return item  # type: ignore[return-value]


class CountingTransport(Transport):
    """A null transport for dry runs: sends nowhere, receives zeros, only counts."""

    counting = True

    def _send(self, env: Envelope, payload: np.ndarray) -> None:
        pass

    def _receive(
        self, peer: int, expect: Expect, purpose: str, timeout: float | None
    ) -> tuple[Envelope, np.ndarray]:
        env = Envelope(self.job, self.rounds, self._recv_seq[peer], peer, self.party, purpose)
        return env, np.zeros(expect.count, dtype=expect.dtype)
