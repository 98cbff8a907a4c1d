"""The data plane: a job's messages between computing parties, over mutual TLS 1.3 sockets.

One connection per pair of computing parties carries every job's frames
(:mod:`parties.service.frames`) both ways; the party whose name sorts first
dials, the other accepts. Both sides present their member certificate and
require one from the federation CA (TLS 1.3 only); the peer's identity is
read only from its certificate's URI SAN. The acceptor refuses a peer that is
not a configured computing party or that should have waited to be dialled;
the dialer refuses a certificate that names another member than the one it
dialled. The acceptor greets an admitted peer with a hello frame, so a
dialer knows it was accepted. Refusals are logged; the process keeps serving.
A dropped connection is dialled again (the peer's port is asked of
``locate`` each time, so a restarted peer may listen elsewhere).

Inbound frames go to bounded per-(job, peer) mailboxes
(:mod:`parties.service.mailboxes`); a frame longer than ``MAX_FRAME_BYTES``
closes the connection before its body is read.

I/O is driven by whoever waits (measured: ``python -m parties.bench.socket_io``).
A job's thread writes its frames itself, without blocking (what the socket
does not take at once stays queued), and, while it waits for a peer, reads
that peer's socket itself and flushes every queued frame. Only one thread
reads a connection at a time; a frame for the job whose thread reads goes
straight to that thread (counted and checked as if filed, its box being
empty), and another job's thread waiting on the same peer is handed its
frames through the mailbox. When no job has waited on a peer
for :data:`IDLE_S`, the peer's own thread reads and flushes instead, so that
aborts, late frames and a closed connection are noticed between jobs.
Every use of a TLS connection's state holds that connection's I/O lock,
which is never held while waiting.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from parties.config import MemberConfig, PeerConfig
from parties.service import tls
from parties.service.frames import (
    ABORT,
    DATA,
    HELLO,
    Frame,
    FrameError,
    FrameReader,
    PeerClosed,
    encode,
)
from parties.service.mailboxes import Mailboxes, Rejection
from parties.service.mesh import ABORT_KIND_CHARS, CHUNK_BYTES, DEFAULT_JOB_BYTES
from smpc.errors import PeerAuthenticationError

log = logging.getLogger(__name__)

Locate = Callable[[str], tuple[str, int]]
"""Where a peer's data plane listens now: ``(host, port)``; raises OSError if unknown."""

IDLE_S = 0.02
"""How long after a job last waited on a peer its connection is left to the peer's thread."""
POLL_S = 0.25
"""The longest a thread waits on a socket before it looks at its state again."""
HANDSHAKE_S = 5.0
"""How long a TLS handshake and the hello may take before the connection is dropped."""
HANDSHAKES = 16
"""Connections being admitted at once; beyond, new ones are closed at once."""
QUEUED_WHILE_DOWN = 64 << 20
"""Frame bytes kept for a peer whose connection is down; beyond, new frames are dropped."""


class _Peer:
    """One computing peer: its current connection, queued frames and who is reading it."""

    def __init__(self, config: PeerConfig) -> None:
        self.config = config
        self.name = config.name
        self.cond = threading.Condition()  # guards sock, reading, wanting
        self.io = threading.Lock()  # guards the TLS object, reader and out queue
        self.sock: ssl.SSLSocket | None = None
        self.reader = FrameReader()
        self.polled: tuple[ssl.SSLSocket | None, select.poll] = (None, select.poll())
        """The connection and a poll object that waits for it to be readable."""
        self.out: deque[memoryview] = deque()
        self.out_bytes = 0
        self.reading: str | None = None  # "job" or "idle" while a thread reads
        self.wanting = 0
        self.last_wanted = 0.0
        self.down_since: float | None = time.monotonic()
        self.connected = threading.Event()
        self.dial_now = threading.Event()  # a job needs this peer: end the dial backoff early
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)

    def wake(self) -> None:
        """Make the peer's own thread leave its wait on the socket."""
        with contextlib.suppress(OSError):  # already woken (the buffer is full), or closed
            self.wake_w.send(b"\0")


class DataPlane:
    """One member's TLS connections to its computing peers, and the jobs' mailboxes."""

    def __init__(
        self,
        member: MemberConfig,
        *,
        locate: Locate | None = None,
        max_job_bytes: int = DEFAULT_JOB_BYTES,
        port: int = 0,
    ) -> None:
        self.member = member
        self.name = member.name
        self.locate = locate
        self.boxes = Mailboxes(member.name, max_job_bytes)
        self.host = member.address.rpartition(":")[0].strip("[]")
        self.port = port
        self._peers = {p.name: _Peer(p) for p in member.computing_peers}
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._handshakes = threading.BoundedSemaphore(HANDSHAKES)
        self._server_ctx = tls.socket_context(member, server=True)
        self._client_ctx = tls.socket_context(member, server=False)

    @property
    def max_job_bytes(self) -> int:
        return self.boxes.max_job_bytes

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> DataPlane:
        """Listen on the member's host (``self.port``, 0 for any) and keep every link up."""
        try:
            listener = socket.create_server((self.host, self.port))
        except OSError as exc:
            raise OSError(
                f"{self.name}: cannot listen for the data plane on {self.host}:{self.port}"
                f" ({exc.strerror}); set data_port to a free port, or 0 for any"
            ) from None
        listener.settimeout(POLL_S)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop, "dataplane-accept")
        for peer in self._peers.values():
            self._spawn(self._serve, f"dataplane-{peer.name}", peer)
        return self

    def stop(self) -> None:
        """Close every connection and stop listening."""
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        for peer in self._peers.values():
            peer.dial_now.set()
            peer.wake()
        for thread in self._threads:
            thread.join(timeout=2)
        for peer in self._peers.values():
            with peer.cond:
                sock, peer.sock = peer.sock, None
                peer.connected.clear()
            if sock is not None:
                with peer.io:
                    sock.close()
            peer.wake_r.close()
            peer.wake_w.close()

    def __enter__(self) -> DataPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_connected(self, timeout: float, peers: Iterable[str] | None = None) -> bool:
        """True once a connection to every computing peer (or each of ``peers``) is up."""
        deadline = time.monotonic() + timeout
        chosen = self._peers.values() if peers is None else [self._peer(p) for p in peers]
        return all(p.connected.wait(max(0.0, deadline - time.monotonic())) for p in chosen)

    def need(self, peer: str) -> None:
        """A job needs ``peer``: if its connection is down, dial it now, not after the backoff."""
        p = self._peer(peer)
        if p.sock is None:
            p.dial_now.set()

    def unreachable_for(self, peer: str) -> float:
        """Seconds since the connection to ``peer`` went down (0 while it is up)."""
        since = self._peer(peer).down_since
        return 0.0 if since is None else time.monotonic() - since

    # -- jobs ---------------------------------------------------------------------
    def open_job(self, job: str) -> None:
        """Mark a job as running here: if a peer's connection drops, the job hears at once."""
        self.boxes.open_job(job)

    def close_job(self, job: str) -> None:
        """Forget a job's mailboxes; its late frames are dropped."""
        self.boxes.close_job(job)

    def abort_job(self, job: str, peers: Iterable[str], kind: str) -> None:
        """Tell the job's other parties that it failed here (the kind only, never data)."""
        payload = kind.encode()[:ABORT_KIND_CHARS]
        for peer in peers:
            if peer != self.name and peer in self._peers:
                self.send(peer, Frame(ABORT, job, payload=payload, length=len(payload)))

    def send(self, peer: str, frame: Frame) -> int:
        """Queue a frame for ``peer`` and write what the socket takes now; its wire bytes."""
        return self.write(peer, encode(frame))

    def write(self, peer: str, data: bytes) -> int:
        """Queue one encoded frame (:func:`~parties.service.frames.encode`'s bytes, or a
        sender's own packing of the same layout) for ``peer``, and write what the socket
        takes now; its wire bytes."""
        p = self._peers.get(peer) or self._peer(peer)
        size = len(data)
        failed = None
        with p.io:
            sock = p.sock
            if sock is None:
                if p.out_bytes + size > QUEUED_WHILE_DOWN:
                    log.warning(
                        "%s: dropped a frame for %s: its connection is down", self.name, peer
                    )
                    return size
                p.out.append(memoryview(data))
                p.out_bytes += size
                return size
            if p.out:  # behind frames the socket did not take yet
                p.out.append(memoryview(data))
                p.out_bytes += size
                failed = self._flush_locked(p)
            else:  # the common case: written at once, never queued
                try:  # CPython's TLS object: SSLSocket.send is two Python calls more
                    tls = getattr(sock, "_sslobj", None)
                    n = sock.send(data) if tls is None else tls.write(data)
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    n = 0  # retried later with the same buffer, as TLS requires
                except (OSError, ssl.SSLError) as exc:
                    n = size
                    failed = (f"its connection failed: {type(exc).__name__}", "party unreachable")
                if n < size:
                    p.out.append(memoryview(data)[n:])
                    p.out_bytes += size - n
            pending = bool(p.out)
        if failed is not None:
            self._lost(p, sock, *failed)
        elif pending and p.reading == "idle":
            p.wake()  # the peer's thread waits for reading only; let it write too
        return size

    def receive(self, job: str, peer: str, timeout: float | None) -> Frame | Rejection:
        """The next frame (or rejection) from ``peer`` for ``job``; queue.Empty on timeout.

        Asking opens the job here: its mailboxes stay until :meth:`close_job`.
        """
        p = self._peers.get(peer) or self._peer(peer)
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = p.cond
        cond.acquire()  # not "with": Condition.__enter__ is one more Python call
        try:
            p.wanting += 1
            try:
                while True:
                    item = self.boxes.take(job, peer)
                    if item is not None:
                        return item
                    left = POLL_S if deadline is None else deadline - time.monotonic()
                    if left <= 0:
                        raise queue.Empty
                    sock = p.sock
                    if sock is None or p.reading is not None:
                        if p.reading == "idle":
                            p.wake()
                        p.cond.wait(min(left, POLL_S))
                        continue
                    p.reading = "job"
                    p.cond.release()
                    try:  # the job's box is empty: a frame of its own comes straight here
                        item = self._pump(p, sock, min(left, POLL_S), job)
                    finally:
                        p.cond.acquire()
                        p.reading = None
                        if p.wanting > 1:  # another job's thread waits for the reader's turn
                            p.cond.notify_all()
                    if item is not None:
                        return item
            finally:
                p.wanting -= 1
                p.last_wanted = time.monotonic()
        finally:
            cond.release()

    def _peer(self, name: str) -> _Peer:
        peer = self._peers.get(name)
        if peer is None:
            raise PeerAuthenticationError(
                f"{name!r} is not a computing party linked with {self.name}"
            )
        return peer

    # -- I/O ----------------------------------------------------------------------
    def _pump(
        self, p: _Peer, sock: ssl.SSLSocket, timeout: float, want: str | None = None
    ) -> Frame | Rejection | None:
        """As ``p``'s reader: read and file its frames, waiting up to ``timeout`` for its
        socket only if nothing has come yet, and flush every peer's queued frames on the way.

        A job's reader with nothing queued anywhere polls its socket first and
        reads once it is readable: a poll costs less than a TLS read that finds
        nothing (its exception included), and nothing is held above the kernel
        between reads (each read ends with TLS holding no plaintext and this
        reader no whole frame). Otherwise the first read comes before any wait:
        in a round the peer's frame has often arrived by the time its reader
        looks. The first frame of job ``want`` (whose box must be empty) is
        returned instead of filed.
        """
        polled = p.polled
        if polled[0] is sock and p.reading == "job":
            for q in self._peers.values():
                if q.out:
                    break
            else:  # the common wait: this socket alone, on its own poll object (no fd lists)
                if polled[1].poll(math.ceil(timeout * 1000)):
                    return self._read(p, sock, want)[1]
                return None
        came, item = self._read(p, sock, want)
        if came:
            for q in self._peers.values():
                if q is not p and q.out:
                    self._flush(q)
            return item
        reads: list[socket.socket] = [sock]
        if p.reading == "idle":
            reads.append(p.wake_r)
        writes = [q.sock for q in self._peers.values() if q.out and q.sock is not None]
        try:
            readable, writable, _ = select.select(reads, writes, [], timeout)
        except (OSError, ValueError):  # a socket closed under us: the read below says so
            readable, writable = [sock], []
        if p.wake_r in readable:
            with contextlib.suppress(OSError):
                p.wake_r.recv(4096)
        for q in self._peers.values():
            if q is not p and q.sock is not None and q.sock in writable:
                self._flush(q)
        if sock in readable:
            return self._read(p, sock, want)[1]
        return None

    def _read(
        self, p: _Peer, sock: ssl.SSLSocket, want: str | None = None
    ) -> tuple[bool, Frame | Rejection | None]:
        """Read and file what ``sock`` holds now and flush ``p``'s queue: whether anything
        came or the connection was retired, and the first frame of job ``want`` (not filed)."""
        frames: list[Frame] = []
        failed: tuple[str, str] | None = None
        with p.io:
            if p.sock is not sock:
                return True, None
            try:
                frames = p.reader.read(sock, drain=False)
            except PeerClosed:
                failed = ("its connection closed", "party unreachable")
            except FrameError as exc:
                failed = (str(exc), "malformed message")
            except (OSError, ssl.SSLError) as exc:
                failed = (f"its connection failed: {type(exc).__name__}", "party unreachable")
            if failed is None and p.out:
                failed = self._flush_locked(p)
        item: Frame | Rejection | None = None
        for frame in frames:
            if frame.kind == HELLO:
                continue
            reason = None
            if len(frame.payload) > CHUNK_BYTES and frame.kind == DATA:
                reason = f"chunk of {len(frame.payload)} bytes exceeds {CHUNK_BYTES}"
            if item is None and frame.job == want:
                item = self.boxes.admit(p.name, frame, reason, False)  # accept
            else:
                self.boxes.admit(p.name, frame, reason, True)  # file
        if failed is not None:
            self._lost(p, sock, *failed)
            return True, item
        return bool(frames), item

    def _flush(self, p: _Peer) -> None:
        with p.io:
            sock = p.sock
            failed = None if sock is None else self._flush_locked(p)
        if failed is not None and sock is not None:
            self._lost(p, sock, *failed)

    @staticmethod
    def _flush_locked(p: _Peer) -> tuple[str, str] | None:
        """Write queued frames until the socket would block (p.io held); a failure, or None."""
        assert p.sock is not None
        while p.out:
            view = p.out[0]
            try:
                n = p.sock.send(view)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return None  # retried later with the same buffer, as TLS requires
            except (OSError, ssl.SSLError) as exc:
                return (f"its connection failed: {type(exc).__name__}", "party unreachable")
            p.out_bytes -= n
            if n < len(view):
                p.out[0] = view[n:]
            else:
                p.out.popleft()
        return None

    def _lost(
        self, p: _Peer, sock: ssl.SSLSocket, reason: str, kind: str = "party unreachable"
    ) -> None:
        """Retire ``sock`` if it is still ``p``'s connection; its running jobs hear why."""
        with p.cond:
            if p.sock is not sock:
                return
            p.sock = None
            p.connected.clear()
            p.down_since = time.monotonic()
            with p.io:
                p.reader = FrameReader()
                p.out.clear()
                p.out_bytes = 0
                sock.close()
            self.boxes.peer_lost(p.name, Rejection(p.name, reason, kind))
            p.cond.notify_all()
        if not self._stopping.is_set():
            level = logging.WARNING if kind != "party unreachable" else logging.INFO
            log.log(level, "%s: connection to %s closed: %s", self.name, p.name, reason)

    def _install(self, p: _Peer, sock: ssl.SSLSocket) -> None:
        """Make ``sock`` the peer's connection (replacing an older one) and flush its queue."""
        sock.setblocking(False)
        with p.cond:
            old = p.sock
        if old is not None:
            self._lost(p, old, "it connected again")
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        with p.cond:
            with p.io:
                p.sock = sock
                p.reader = FrameReader()
                p.polled = (sock, poller)
            p.down_since = None
            p.connected.set()
            p.cond.notify_all()
        self._flush(p)

    # -- threads ------------------------------------------------------------------
    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _serve(self, p: _Peer) -> None:
        """The peer's own thread: dial it (if our name sorts first), read it while idle."""
        backoff = 0.05
        while not self._stopping.is_set():
            if p.sock is None:
                if self.name < p.name:
                    try:
                        self._dial(p)
                        backoff = 0.05
                    except PeerAuthenticationError as exc:
                        log.warning("%s: refused the connection to %s: %s", self.name, p.name, exc)
                    except (OSError, ssl.SSLError, FrameError, PeerClosed) as exc:
                        log.debug("%s: dialling %s failed: %s", self.name, p.name, exc)
                    except Exception as exc:  # e.g. a locate that fails: keep trying
                        log.warning("%s: dialling %s failed: %r", self.name, p.name, exc)
                    if p.sock is None:
                        # a job waiting for this peer ends the backoff: dial again at once
                        needed = p.dial_now.wait(backoff)
                        backoff = 0.05 if needed else min(2.0, backoff * 2)
                        p.dial_now.clear()
                else:
                    self._stopping.wait(POLL_S)
                continue
            self._stopping.wait(IDLE_S)
            with p.cond:
                sock = p.sock
                idle = time.monotonic() - p.last_wanted >= IDLE_S
                if sock is None or p.reading is not None or p.wanting or not idle:
                    continue
                p.reading = "idle"
            try:
                self._pump(p, sock, POLL_S)
            finally:
                with p.cond:
                    p.reading = None
                    p.cond.notify_all()

    def _dial(self, p: _Peer) -> None:
        if self.locate is None:
            raise OSError("no way to locate peers was given")
        host, port = self.locate(p.name)
        raw = socket.create_connection((host, port), timeout=HANDSHAKE_S)
        sock: socket.socket = raw
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = tls_sock = self._client_ctx.wrap_socket(raw)
            name = self._identity(sock)
            if name != p.name:
                raise PeerAuthenticationError(
                    f"the certificate at {host}:{port} names {name!r}, not {p.name!r}"
                )
            hello = FrameReader().read(tls_sock, limit=1)  # blocking, within HANDSHAKE_S
            if hello[0].kind != HELLO:
                raise FrameError("the peer did not greet")
        except BaseException:
            sock.close()
            raise
        self._install(p, tls_sock)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                raw, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            if not self._handshakes.acquire(blocking=False):
                log.warning(
                    "%s: refused a connection from %s: too many at once", self.name, address
                )
                raw.close()
                continue
            threading.Thread(
                target=self._admit, args=(raw, address), name="dataplane-admit", daemon=True
            ).start()

    def _admit(self, raw: socket.socket, address: object) -> None:
        """Handshake with a connecting peer; keep it if it is a computing peer that dials us."""
        sock: socket.socket = raw
        try:
            raw.settimeout(HANDSHAKE_S)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock = tls_sock = self._server_ctx.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                raise PeerAuthenticationError(f"TLS handshake failed: {exc}") from None
            name = self._identity(tls_sock)
            p = self._peers.get(name)
            if p is None:
                raise PeerAuthenticationError(f"{name!r} is not a computing party")
            if not name < self.name:
                raise PeerAuthenticationError(f"{name!r} must wait for {self.name!r} to dial")
            tls_sock.sendall(encode(Frame(HELLO, "")))
            self._install(p, tls_sock)
            log.info("%s: %s connected", self.name, name)
        except PeerAuthenticationError as exc:
            log.warning("%s: refused a connection from %s: %s", self.name, address, exc)
            sock.close()
        except OSError as exc:
            log.info("%s: a connection from %s failed: %s", self.name, address, exc)
            sock.close()
        finally:
            self._handshakes.release()

    def _identity(self, sock: ssl.SSLSocket) -> str:
        """The member named by the peer's verified certificate (its URI SAN only)."""
        cert = sock.getpeercert()
        if not cert:
            raise PeerAuthenticationError("the peer presented no certificate")
        uris = [str(entry[1]) for entry in cert.get("subjectAltName", ()) if entry[0] == "URI"]
        return tls.peer_from_sans(uris, self.member)
