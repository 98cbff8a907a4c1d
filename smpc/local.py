"""An in-process federation for scripting, tests and benchmarks.

``LocalFederation(3).run(fn, inputs=[x0, x1, x2])`` runs ``fn(rt, x_i)`` for
every party in its own thread, over in-memory queues, with the real seed-based
dealer and per-channel transcripts. The same ``fn`` runs unchanged over gRPC
between hospital processes. Kernels release the GIL, so parties use both
cores of a small machine.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from smpc import ring
from smpc.deadline import Deadline
from smpc.errors import ProtocolAbort
from smpc.fixedpoint import FixedPoint
from smpc.jobs import SeenJobs
from smpc.preprocessing import Dealer
from smpc.prg import random_ring
from smpc.runtime import Runtime, dry_run
from smpc.shares import SharedTensor
from smpc.transcript import Transcript
from smpc.transport import InMemoryTransport, LocalNetwork


@dataclass(frozen=True)
class JobResult:
    """What every party returned, and what each spent."""

    job: str
    results: list[Any]
    rounds: list[int]
    bytes_sent: list[int]
    transcripts: list[Transcript | None]
    seconds: float


class LocalFederation:
    """n parties in one process, each in its own thread."""

    def __init__(
        self,
        n_parties: int,
        *,
        frac_bits: int = 16,
        transcripts: bool = True,
        timeout: float = 300.0,
        name: str = "local",
    ) -> None:
        if n_parties < 2:
            raise ValueError("a federation needs at least 2 computing parties")
        self.n_parties = n_parties
        self.fxp = FixedPoint(frac_bits)
        self.transcripts = transcripts
        self.timeout = timeout
        self.name = name
        self._jobs = SeenJobs()

    def share(self, value: object, *, integer: bool = False) -> list[SharedTensor]:
        """Split a plaintext held in this process into every party's share (no network)."""
        ring_value = self.fxp.encode_int(value) if integer else self.fxp.encode(value)
        shares = [random_ring(ring_value.shape) for _ in range(self.n_parties - 1)]
        first = ring_value.copy()
        for s in shares:
            first -= s
        scale = 0 if integer else self.fxp.frac_bits
        return [SharedTensor(s, i, self.fxp, scale) for i, s in enumerate([first, *shares])]

    def prepare(
        self,
        fn: Callable[..., Any],
        inputs: Sequence[Any] | None = None,
        *,
        args: Sequence[Any] = (),
        job: str | None = None,
        prefetch: bool = False,
    ) -> PreparedJob:
        """Plan the job by a dry run, make its dealer, and start its parties waiting."""
        job = job if job is not None else uuid.UUID(bytes=random_ring(2).tobytes()).hex
        self._jobs.admit(job)
        if inputs is not None and len(inputs) != self.n_parties:
            raise ValueError(f"inputs has {len(inputs)} entries for {self.n_parties} parties")
        per_party = [
            ((inputs[i],) if inputs is not None else ()) + tuple(args)
            for i in range(self.n_parties)
        ]
        plan = dry_run(fn, self.n_parties, *per_party[0], fxp=self.fxp, job=job).plan
        sources = Dealer(self.name, job, self.n_parties, plan).local_sources(prefetch=prefetch)
        network = LocalNetwork(self.n_parties)
        runtimes = []
        for i, source in enumerate(sources):
            transcript = Transcript(job, i, self.n_parties) if self.transcripts else None
            transport = InMemoryTransport(network, job, i, transcript=transcript)
            runtimes.append(Runtime(transport, source, self.fxp))
        return PreparedJob(job, fn, runtimes, per_party, network, self.timeout)

    def run(
        self,
        fn: Callable[..., Any],
        inputs: Sequence[Any] | None = None,
        *,
        args: Sequence[Any] = (),
        job: str | None = None,
        prefetch: bool = False,
    ) -> JobResult:
        """Run ``fn(rt, inputs[i], *args)`` at every party and collect the results."""
        return self.prepare(fn, inputs, args=args, job=job, prefetch=prefetch).run()


class PreparedJob:
    """A planned job whose party threads wait for :meth:`run`."""

    def __init__(
        self,
        job: str,
        fn: Callable[..., Any],
        runtimes: list[Runtime],
        per_party: list[tuple[Any, ...]],
        network: LocalNetwork,
        timeout: float,
    ) -> None:
        self.job = job
        self.runtimes = runtimes
        self._fn = fn
        self._args = per_party
        self._network = network
        self._timeout = timeout
        self._go = threading.Event()
        self._results: list[Any] = [None] * len(runtimes)
        self._errors: list[BaseException | None] = [None] * len(runtimes)
        self._threads = [
            threading.Thread(target=self._party, args=(i,), name=f"{job[:8]}-p{i}", daemon=True)
            for i in range(len(runtimes))
        ]
        for t in self._threads:
            t.start()
        self._ran = False

    def _party(self, i: int) -> None:
        self._go.wait()
        rt = self.runtimes[i]
        rt.transport.deadline = Deadline.after(self._timeout).at
        try:
            self._results[i] = self._fn(rt, *self._args[i])
        except BaseException as exc:
            self._errors[i] = exc
            if not isinstance(exc, ProtocolAbort):
                self._network.abort(rt.transport.names[i], type(exc).__name__)

    @property
    def errors(self) -> list[BaseException | None]:
        """Each party's exception after :meth:`run` (None where it finished)."""
        return list(self._errors)

    def run(self) -> JobResult:
        """Let the parties go, wait for all of them, raise the first real failure."""
        if self._ran:
            raise RuntimeError(f"job {self.job} has already run")
        self._ran = True
        start = time.perf_counter()
        self._go.set()
        for t in self._threads:
            t.join()
        seconds = time.perf_counter() - start
        failures = [e for e in self._errors if e is not None]
        if failures:
            root = [e for e in failures if not isinstance(e, ProtocolAbort)]
            raise (root or failures)[0]
        return JobResult(
            self.job,
            self._results,
            [rt.transport.rounds for rt in self.runtimes],
            [rt.transport.bytes_sent for rt in self.runtimes],
            [rt.transport.transcript for rt in self.runtimes],
            seconds,
        )


def reconstruct(shares: Sequence[SharedTensor]) -> np.ndarray:
    """The ring value behind every party's share (tests and debugging only)."""
    return ring.sum_shares([s.share for s in shares])
