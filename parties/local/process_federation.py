"""Real party processes on this machine, driven from one coordinating process.

``ProcessFederation(members).run(fn, inputs)`` is the process twin of
:class:`smpc.local.LocalFederation`: every computing member runs in its own
OS process with its own :class:`parties.service.dataplane.DataPlane`, so every
message crosses a mutual TLS 1.3 socket on loopback, exactly as between
hospitals (each process listens on a free port of its member's host and the
coordinator tells every process where the others listen). The same
protocol function runs unchanged; it must be importable (a module-level
function), since it is sent to the processes by reference.

The coordinator plays the dealer for tests, scripting and benchmarks: it
plans the job with a dry run, hands each party its own seed over that
party's private pipe, and streams the first party's corrections ahead of
use. It holds no party's input. Hospitals use the dealer service instead.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from parties.config import MemberConfig
from parties.threads import limit_threads
from smpc.deadline import Deadline
from smpc.errors import PeerTimeoutError, ProtocolAbort, SMPCError
from smpc.fixedpoint import FixedPoint
from smpc.jobs import SeenJobs
from smpc.preprocessing import CorrectionFeed, Dealer, Plan, SeededSource
from smpc.prg import random_ring
from smpc.runtime import dry_run


@dataclass(frozen=True)
class PartyReport:
    """What one party process returned and spent on one job."""

    result: Any
    rounds: int
    bytes_sent: int
    wire_bytes_sent: int
    seconds: float
    transcript: dict[str, dict[int, str]] | None


@dataclass(frozen=True)
class ProcessJobResult:
    """Every party's report, in party order, and the coordinator's wall time."""

    job: str
    parties: list[str]
    reports: list[PartyReport]
    seconds: float

    @property
    def results(self) -> list[Any]:
        return [r.result for r in self.reports]


class ProcessFederation:
    """One OS process per computing member, linked by mutual TLS sockets."""

    def __init__(
        self,
        members: Sequence[MemberConfig],
        *,
        frac_bits: int = 16,
        transcripts: bool = True,
        timeout: float = 60.0,
        prefetch: bool = False,
    ) -> None:
        """``prefetch``: each party expands all of a job's preprocessing before its first
        round (benchmarks of the online phase) instead of on a background thread."""
        if len(members) < 2:
            raise ValueError("a federation needs at least 2 computing parties")
        self.members = sorted(members, key=lambda m: m.name)
        self.names = [m.name for m in self.members]
        self.federation = self.members[0].federation
        self.fxp = FixedPoint(frac_bits)
        self.transcripts = transcripts
        self.timeout = timeout
        self.prefetch = prefetch
        self._jobs = SeenJobs()
        self._procs: list[mp.process.BaseProcess] = []
        self._commands: list[Connection] = []
        self._corrections: Connection | None = None

    def __enter__(self) -> ProcessFederation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, connect_timeout: float = 30.0) -> ProcessFederation:
        """Start every party process and wait until each has a connection to every peer."""
        limit_threads()  # inherited by the spawned processes
        ctx = mp.get_context("spawn")
        for i, member in enumerate(self.members):
            ours, theirs = ctx.Pipe()
            corr_ours, corr_theirs = ctx.Pipe() if i == 0 else (None, None)
            proc = ctx.Process(
                target=_party_main,
                args=(member, theirs, corr_theirs),
                name=f"party-{member.name}",
                daemon=True,
            )
            proc.start()
            self._procs.append(proc)
            self._commands.append(ours)
            if corr_ours is not None:
                self._corrections = corr_ours
        deadline = time.monotonic() + connect_timeout
        ports = {}
        for step in ("listening", "ready"):
            for name, conn in zip(self.names, self._commands, strict=True):
                if not conn.poll(max(0.0, deadline - time.monotonic())):
                    self.stop()
                    raise PeerTimeoutError(
                        "-", name, "did not start", f"within {connect_timeout} s"
                    )
                try:
                    status, detail = conn.recv()
                except EOFError:
                    status, detail = "failed", "the process exited during start-up"
                if status != step:
                    self.stop()
                    raise SMPCError(f"party {name} could not join the federation: {detail}")
                ports[name] = detail
            if step == "listening":
                for conn in self._commands:
                    conn.send(("peers", dict(ports)))
        return self

    def stop(self) -> None:
        """Ask every party process to leave, then make sure it has."""
        for conn in self._commands:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(("stop",))
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        self._procs.clear()
        self._commands.clear()

    @property
    def processes(self) -> list[mp.process.BaseProcess]:
        return list(self._procs)

    def run(
        self,
        fn: Callable[..., Any],
        inputs: Sequence[Any] | None = None,
        *,
        job: str | None = None,
    ) -> ProcessJobResult:
        """Run ``fn(rt, inputs[i])`` at every party process (party order = sorted names)."""
        if not self._procs:
            raise RuntimeError("start the federation first")
        n = len(self.members)
        job = job if job is not None else uuid.UUID(bytes=random_ring(2).tobytes()).hex
        self._jobs.admit(job)
        args = list(inputs) if inputs is not None else [None] * n
        if len(args) != n:
            raise ValueError(f"inputs has {len(args)} entries for {n} parties")
        plan = dry_run(fn, n, args[0], fxp=self.fxp, job=job).plan
        dealer = Dealer(self.federation, job, n, plan)
        start = time.perf_counter()
        for i, conn in enumerate(self._commands):
            conn.send(
                (
                    "job",
                    job,
                    self.names,
                    fn,
                    args[i],
                    dealer.seed_for(i),
                    plan.to_json(),
                    self.fxp.frac_bits,
                    self.transcripts,
                    self.timeout,
                    self.prefetch,
                )
            )
        feeder = threading.Thread(target=self._feed, args=(dealer, len(plan)), daemon=True)
        feeder.start()
        reports: list[PartyReport | BaseException] = []
        for name, conn in zip(self.names, self._commands, strict=True):
            if not conn.poll(self.timeout + 10):
                reports.append(PeerTimeoutError(job, name, "no answer", "the process is silent"))
                continue
            try:
                status, payload = conn.recv()
            except EOFError:
                status, payload = "error", ("ProcessExited", "the party process is gone")
            reports.append(payload if status == "ok" else _as_error(job, name, payload))
        seconds = time.perf_counter() - start
        feeder.join(timeout=5)
        failures = [r for r in reports if isinstance(r, BaseException)]
        if failures:
            root = [e for e in failures if not isinstance(e, PeerTimeoutError | ProtocolAbort)]
            raise (root or failures)[0]
        return ProcessJobResult(job, self.names, reports, seconds)  # type: ignore[arg-type]

    def _feed(self, dealer: Dealer, items: int) -> None:
        assert self._corrections is not None
        for index in range(items):
            try:
                self._corrections.send((index, dealer.corrections(index)))
            except (BrokenPipeError, OSError):
                return


def _as_error(job: str, name: str, payload: tuple[str, str]) -> BaseException:
    kind, message = payload
    if kind == "PeerTimeoutError":
        return PeerTimeoutError(job, name, "timed out", message)
    return ProtocolAbort(job, name, kind, message)


class _PipeFeed(CorrectionFeed):
    """The first party's corrections, arriving in plan order on a pipe from the dealer."""

    def __init__(self, conn: Connection, timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout

    def corrections(self, index: int) -> list[np.ndarray]:
        if not self._conn.poll(self._timeout):
            raise PeerTimeoutError("-", "dealer", "timed out", f"no correction #{index}")
        got, arrays = self._conn.recv()
        if got != index:
            raise SMPCError(f"the dealer sent correction #{got} where #{index} was due")
        return arrays


def _party_main(member: MemberConfig, conn: Connection, corrections: Connection | None) -> None:
    """A party process: listen, connect to every peer, then run jobs until told to stop."""
    from parties.service.dataplane import DataPlane
    from parties.service.socket_transport import SocketTransport
    from smpc.runtime import Runtime
    from smpc.transcript import Transcript

    ports: dict[str, int] = {}
    hosts = {p.name: p.address.rpartition(":")[0].strip("[]") for p in member.peers}

    def locate(peer: str) -> tuple[str, int]:
        if peer not in ports:
            raise OSError(f"the coordinator has not said where {peer} listens yet")
        return hosts[peer], ports[peer]

    try:
        plane = DataPlane(member, locate=locate).start()
    except Exception as exc:  # reported to the coordinator, which stops
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    try:
        conn.send(("listening", plane.port))
        command = conn.recv()
        if command[0] != "peers":
            return
        ports.update(command[1])
        conn.send(("ready", None) if plane.wait_connected(30) else ("failed", "peers unreachable"))
        while True:
            command = conn.recv()
            if command[0] == "stop":
                return
            _, job, names, fn, arg, seed, plan_json, frac_bits, transcripts, timeout, prefetch = (
                command
            )
            plan = Plan.from_json(plan_json)
            index = names.index(member.name)
            feed = _PipeFeed(corrections, timeout) if corrections is not None else None
            source = SeededSource(index, seed, plan, feed)
            if prefetch:
                source.prefetch()
            else:
                source.expand_ahead()
            transcript = Transcript(job, index, len(names)) if transcripts else None
            transport = SocketTransport(
                plane, job, names, transcript=transcript, deadline=Deadline.after(timeout).at
            )
            start = time.perf_counter()
            try:
                result = fn(Runtime(transport, source, FixedPoint(frac_bits)), arg)
                seconds = time.perf_counter() - start
                conn.send(
                    (
                        "ok",
                        PartyReport(
                            result,
                            transport.rounds,
                            transport.bytes_sent,
                            transport.wire_bytes_sent,
                            seconds,
                            transcript.digests() if transcript is not None else None,
                        ),
                    )
                )
            except Exception as exc:  # reported by kind; the process serves the next job
                conn.send(("error", (type(exc).__name__, str(exc))))
            finally:
                transport.close()
    finally:
        plane.stop()
