"""Microbenchmark behind the data plane's I/O design: all-to-all rounds over TLS 1.3 sockets.

Three OS processes on 127.0.0.1-3 hold one mutually authenticated TLS 1.3
connection per pair (the federation's certificates, made afresh) and run
all-to-all rounds of small messages, each framed by a 4-byte length. Each
design is timed as the p50 of two consecutive rounds at party 0:

- ``reader-threads``: one thread per peer reads frames into a queue; the
  caller sends with ``sendall`` of header and payload joined;
- ``selector-thread``: one I/O thread serves every peer with ``selectors``
  and hands frames over through a queue;
- ``inline-joined``: the caller itself sends (``sendall`` of header and
  payload joined) and reads each peer's frame from its socket;
- ``inline-two-writes``: the same, header and payload in two writes (two TLS
  records; ``sendmsg`` is not available on ``ssl`` sockets);
- ``inline-nonblocking``: as ``inline-joined`` on non-blocking sockets, each
  read preceded by ``select`` (what the data plane does).

Run: ``python -m parties.bench.socket_io [--repetitions N] [--bytes B]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import select
import selectors
import socket
import ssl
import struct
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

DESIGNS = (
    "reader-threads",
    "selector-thread",
    "inline-joined",
    "inline-two-writes",
    "inline-nonblocking",
)
_LENGTH = struct.Struct("<I")


def _contexts(ca: str, cert: str, key: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    out = []
    for purpose in (ssl.Purpose.CLIENT_AUTH, ssl.Purpose.SERVER_AUTH):
        ctx = ssl.create_default_context(purpose, cafile=ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_cert_chain(cert, key)
        out.append(ctx)
    return out[0], out[1]


def _read_exact(sock: ssl.SSLSocket, n: int) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise ConnectionError("peer closed")
        got += k
    return bytes(buf)


def _read_frame(sock: ssl.SSLSocket) -> bytes:
    (n,) = _LENGTH.unpack(_read_exact(sock, 4))
    return _read_exact(sock, n)


def _read_nonblocking(sock: ssl.SSLSocket) -> bytes:
    buf = bytearray()
    while len(buf) < 4 or len(buf) < 4 + _LENGTH.unpack(buf[:4])[0]:
        if not sock.pending():
            select.select([sock], [], [])
        try:
            buf += sock.recv(1 << 16)
        except ssl.SSLWantReadError:
            continue
    return bytes(buf[4:])


def _party(
    index: int,
    addrs: list[tuple[str, int]],
    files: tuple[str, str, str],
    design: str,
    reps: int,
    size: int,
    out: mp.Queue,
) -> None:
    server_ctx, client_ctx = _contexts(*files)
    listener = socket.create_server(addrs[index])
    socks: dict[int, ssl.SSLSocket] = {}
    for peer in range(len(addrs)):
        if peer > index:  # the smaller index dials
            for _ in range(100):
                try:
                    raw = socket.create_connection(addrs[peer])
                    break
                except OSError:
                    time.sleep(0.05)
            socks[peer] = client_ctx.wrap_socket(raw)
            socks[peer].sendall(bytes([index]))
    while len(socks) < len(addrs) - 1:
        raw, _ = listener.accept()
        tls_sock = server_ctx.wrap_socket(raw, server_side=True)
        socks[_read_exact(tls_sock, 1)[0]] = tls_sock
    for s in socks.values():
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = bytes(size)
    inbox: dict[int, queue.SimpleQueue[bytes]] = {p: queue.SimpleQueue() for p in socks}
    if design == "reader-threads":

        def read_all(p: int, s: ssl.SSLSocket) -> None:
            for _ in range(2 * reps):
                inbox[p].put(_read_frame(s))

        for p, s in socks.items():
            threading.Thread(target=read_all, args=(p, s), daemon=True).start()
    elif design == "selector-thread":

        def serve() -> None:
            sel = selectors.DefaultSelector()
            for p, s in socks.items():
                sel.register(s, selectors.EVENT_READ, p)
            left = 2 * reps * len(socks)
            while left:
                for key, _ in sel.select():
                    s = socks[key.data]
                    inbox[key.data].put(_read_frame(s))
                    left -= 1
                    while s.pending() and left:
                        inbox[key.data].put(_read_frame(s))
                        left -= 1

        threading.Thread(target=serve, daemon=True).start()

    if design == "inline-nonblocking":
        for s in socks.values():
            s.setblocking(False)

    def send(s: ssl.SSLSocket) -> None:
        if design == "inline-nonblocking":
            data = memoryview(_LENGTH.pack(size) + payload)
            while data:
                try:
                    data = data[s.send(data) :]
                except ssl.SSLWantWriteError:
                    select.select([], [s], [])
        elif design == "inline-two-writes":
            s.sendall(_LENGTH.pack(size))
            s.sendall(payload)
        else:
            s.sendall(_LENGTH.pack(size) + payload)

    def receive(p: int) -> bytes:
        if design in ("reader-threads", "selector-thread"):
            return inbox[p].get()
        if design == "inline-nonblocking":
            return _read_nonblocking(socks[p])
        return _read_frame(socks[p])

    times = np.empty(reps)
    warm = reps // 10
    for i in range(reps):
        start = time.perf_counter()
        for _ in range(2):
            for s in socks.values():
                send(s)
            for p in socks:
                receive(p)
        times[i] = time.perf_counter() - start
    if index == 0:
        out.put(float(np.median(times[warm:])))
    time.sleep(0.2)


def run(design: str, reps: int, size: int) -> float:
    """p50 seconds of two all-to-all rounds among three processes."""
    from parties.federation import free_port, init_federation

    with tempfile.TemporaryDirectory() as tmp:
        members = init_federation("io", ["a", "b", "c"], [], [], Path(tmp) / "fed", base_port=0)
        addrs = [(f"127.0.0.{i + 1}", free_port(f"127.0.0.{i + 1}")) for i in range(3)]
        files = [(str(m.tls.ca_cert), str(m.tls.cert), str(m.tls.key)) for m in members[:3]]
        spawn = mp.get_context("spawn")
        out: mp.Queue = spawn.Queue()
        procs = [
            spawn.Process(target=_party, args=(i, addrs, files[i], design, reps, size, out))
            for i in range(3)
        ]
        for p in procs:
            p.start()
        result = out.get(timeout=300)
        for p in procs:
            p.join(timeout=30)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=2000)
    parser.add_argument("--bytes", type=int, default=64)
    parser.add_argument("--designs", default=",".join(DESIGNS))
    args = parser.parse_args()
    for design in args.designs.split(","):
        seconds = run(design, args.repetitions, args.bytes)
        print(f"{design:18s} {args.bytes:>9d} B  two rounds p50 {seconds * 1e3:.3f} ms", flush=True)


if __name__ == "__main__":
    main()
