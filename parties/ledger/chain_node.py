"""A hospital's chain node inside its party process: a replica, its stores, a clock.

:class:`ChainNode` drives a :class:`smpc.chain.consensus.Replica` (the rules)
with the process's real clock, a ticker thread and one sender thread per peer,
so handling a message never waits on the network. It stores final blocks in
``<member folder>/chain.db`` (the file ``smpc chain verify --config`` reads)
and what it sealed in ``seals.db``, committed before a seal leaves; it checks
job records' signed jobs against the federation CA of the genesis
(:mod:`parties.ledger.job_check`). Messages
travel as canonical bytes (:mod:`smpc.chain.messages`), those one event sends
one peer (a proposal and the proposer's seal) as one batch; the party's gRPC
server hands incoming ones to :meth:`ChainNode.deliver` with the sender's name
taken from its TLS certificate, and ``send`` carries outgoing ones.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from parties.config import MemberConfig
from parties.ledger.chain_store import SqliteChainStore, SqliteSealLog
from parties.ledger.job_check import job_check
from smpc.chain.consensus import Outbox, Replica, recipients
from smpc.chain.errors import ChainEncodingError, ChainError
from smpc.chain.genesis import Genesis
from smpc.chain.keys import load_private_key
from smpc.chain.messages import (
    MAX_MESSAGE_BYTES,
    Batch,
    decode_message,
    encode_batch,
    encode_message,
)
from smpc.chain.records import record_id

log = logging.getLogger(__name__)

CHAIN_DB_FILE = "chain.db"
SEAL_LOG_FILE = "seals.db"
TICK_S = 0.05
QUEUE_LIMIT = 10_000
"""Messages waiting for one peer; past it the oldest are dropped (the rules recover)."""


def _batched(datas: list[bytes]) -> list[bytes]:
    """Encoded messages for one peer as one batch, unless one or too many bytes for one."""
    if len(datas) == 1:
        return datas
    batch = encode_batch(datas)
    return datas if len(batch) > MAX_MESSAGE_BYTES else [batch]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ChainNode:
    """One hospital's replica, fed by the network and a ticker, storing to SQLite."""

    def __init__(
        self,
        member: MemberConfig,
        genesis: Genesis,
        peers: Sequence[str],
        send: Callable[[str, bytes], None],
        *,
        round_ms: int = 2000,
    ) -> None:
        if member.chain_key is None:
            raise ChainError(f"{member.name} has no chain key: only hospitals run chain nodes")
        folder = member.home
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.name = member.name
        self.store = SqliteChainStore(folder / CHAIN_DB_FILE)
        self.seal_log = SqliteSealLog(folder / SEAL_LOG_FILE)
        key = load_private_key(member.chain_key.read_bytes())
        self.replica = Replica(
            member.name,
            genesis,
            self.store,
            key,
            self.seal_log,
            now_ms,
            round_ms=round_ms,
            jobs=job_check(genesis),
        )
        self.peers = [p for p in peers if p != member.name]
        self._send = send
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._queues: dict[str, queue.Queue[bytes]] = {
            p: queue.Queue(QUEUE_LIMIT) for p in self.peers
        }
        self._threads: list[threading.Thread] = []

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> ChainNode:
        for peer in self.peers:
            self._spawn(self._sender, peer, f"chain-send-{peer}")
        self._spawn(self._ticker, None, "chain-tick")
        with self._lock:
            self._dispatch(self.replica.catch_up())
        return self

    def stop(self) -> None:
        self._stop.set()
        for q in self._queues.values():
            if not q.full():
                q.put_nowait(b"")  # wakes the sender so it sees the stop
        for thread in self._threads:
            thread.join(timeout=2.0)
        with self._lock:  # no message is being handled while the stores close
            self.store.close()
            self.seal_log.close()

    # -- what the party process calls ---------------------------------------------
    def submit(self, record: bytes) -> bytes:
        """Put a record on the way to the chain; returns its id (SHA-256 of its bytes)."""
        with self._lock:
            if self._stop.is_set():
                raise ChainError(f"{self.name}'s chain node has stopped")
            self._dispatch(self.replica.submit(record))
            self._changed.notify_all()
        return record_id(record)

    def deliver(self, sender: str, data: bytes) -> None:
        """A message from ``sender`` (its TLS identity); malformed ones are refused and logged."""
        try:
            decoded = decode_message(data)
        except ChainEncodingError as exc:
            log.warning("%s: refused a chain message from %s: %s", self.name, sender, exc)
            return
        messages = decoded.messages if isinstance(decoded, Batch) else (decoded,)
        with self._lock:
            if self._stop.is_set():
                return
            outbox: Outbox = []
            for message in messages:  # each of a batch as if it came alone, in order
                outbox += self.replica.handle(sender, message)
            self._dispatch(outbox)
            self._changed.notify_all()

    def wait_final(self, rid: bytes, timeout: float) -> int | None:
        """The height of the final block holding record ``rid``, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                height = self.replica.state.records_seen.get(rid)
                left = deadline - time.monotonic()
                if height is not None or left <= 0:
                    return height
                self._changed.wait(min(left, TICK_S))

    def final(self, rids: Iterable[bytes]) -> set[bytes]:
        """Those of ``rids`` whose records are in final blocks."""
        with self._lock:
            seen = self.replica.state.records_seen
            return {rid for rid in rids if rid in seen}

    def authority_keys(self) -> dict[str, bytes]:
        """Each authority's chain public key, by name, in the set in force now (votes applied)."""
        with self._lock:
            return {a.name: a.public_key for a in self.replica.state.authorities}

    @property
    def height(self) -> int:
        with self._lock:
            return self.replica.state.height

    # -- internals ----------------------------------------------------------------
    def _spawn(self, target: Callable, arg: str | None, name: str) -> None:
        thread = threading.Thread(
            target=target, args=() if arg is None else (arg,), name=name, daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _dispatch(self, outbox: Outbox) -> None:
        """Queue ``outbox`` for the senders: what one peer gets from it goes as one batch."""
        per_peer: dict[str, list[bytes]] = {}
        for dest, message in outbox:
            peers = recipients(dest, self.peers)
            if peers:
                data = encode_message(message)  # once, whatever the number of peers
                for peer in peers:
                    per_peer.setdefault(peer, []).append(data)
        batches: dict[tuple[int, ...], list[bytes]] = {}
        for peer, datas in per_peer.items():
            key = tuple(map(id, datas))  # peers sent the same messages share one batch
            if key not in batches:
                batches[key] = _batched(datas)
            q = self._queues[peer]
            for data in batches[key]:
                if q.full():
                    q.get_nowait()
                q.put_nowait(data)

    def _sender(self, peer: str) -> None:
        q = self._queues[peer]
        while not self._stop.is_set():
            data = q.get()
            if not data:
                continue
            try:
                self._send(peer, data)
            except Exception as exc:  # a peer that is down: the rules recover
                log.debug("%s: chain message to %s not delivered: %s", self.name, peer, exc)

    def _ticker(self) -> None:
        while not self._stop.wait(TICK_S):
            with self._lock:
                if self._stop.is_set():
                    return
                self._dispatch(self.replica.tick())
                self._changed.notify_all()
