"""A computing party's process: serves its peers and runs the jobs it admits.

For each submitted job the node, in order: checks the analyst's signature,
finds the protocol at its pinned version, selects its own rows from its data
source with the job's local filter, runs the admission checks of its policy
(including its own contribution against the minimum cohort size), plans the
job with a dry run, fetches its seed (and, as party 0, the corrections) from
the dealer, agrees on the job id with every peer before the first round, runs
the protocol over the gRPC mesh, reveals each output only to its recipients,
and answers the caller with the caller's shares. A failure anywhere ends the
job at every party with an error naming the job, the party and the kind of
failure; no partial output is revealed, and the node serves the next job.
Logs carry one line per job event, never a value, share or key.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import numpy as np

from parties import wire_pb2
from parties.config import MemberConfig
from parties.datasource import DataSource, open_source
from parties.dealer_service import DealerLink
from parties.grpc_transport import GrpcTransport
from parties.jobs import JobLedger, JobRejected, JobSpec, SignedJob, admit, verify_job
from parties.mesh import Mesh
from protocols.model import LogisticModel
from protocols.registry import JobContext, ProtocolSpec, lookup
from smpc.errors import ProtocolAbort, SMPCError
from smpc.fixedpoint import FixedPoint
from smpc.preprocessing import SeededSource
from smpc.runtime import Runtime, dry_run
from smpc.transcript import Transcript

log = logging.getLogger(__name__)

HELLO = "hello"


class PartyNode:
    """A hospital or model owner: one mesh, one data source, one ledger of job ids."""

    def __init__(self, member: MemberConfig, *, frac_bits: int = 16) -> None:
        self.member = member
        self.fxp = FixedPoint(frac_bits)
        self.mesh = Mesh(member, on_submit=self.submit)
        self.source: DataSource | None = (
            open_source(member.data) if member.data.kind in ("csv", "sqlite") else None
        )
        self.model = LogisticModel.load(member.data.path) if member.data.kind == "model" else None
        self.results = member.tls.key.parent / "results"
        self.ledger = JobLedger()

    def start(self) -> PartyNode:
        self.mesh.start()
        self.dealer = DealerLink(self.member)
        return self

    def stop(self, grace: float = 1.0) -> None:
        self.mesh.stop(grace)
        self.dealer.close()

    def __enter__(self) -> PartyNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one job ------------------------------------------------------------------
    def submit(self, request: wire_pb2.SubmitRequest, caller: str) -> wire_pb2.SubmitReply:
        """Admit and run one job; the reply carries the caller's output shares or the failure."""
        name = self.member.name
        job_id, spec = "unknown", None
        start = time.perf_counter()
        try:
            signed = SignedJob.from_json(request.signed_job)
            job_id = signed.job_id
            spec = verify_job(signed, self.member)
            if caller != spec.analyst:
                raise JobRejected(job_id, "unknown-analyst", f"{caller!r} did not sign this job")
            protocol = lookup(spec.protocol, spec.protocol_version)
            ctx = self._context(spec, categorical=protocol.categorical)
            mine = spec.inputs.get(name)
            admit(spec, self.member, self.ledger, own_rows=len(ctx.values) if mine else None)
            log.info(
                "%s: job %s admitted: %s v%s from %s",
                name,
                job_id,
                spec.protocol,
                spec.protocol_version,
                caller,
            )
            reply = self._run(request.signed_job, spec, protocol, ctx, caller)
            if ctx.delivered:  # per-row outputs for this party, kept only once the job succeeded
                self._keep(job_id, ctx.delivered)
            reply.seconds = time.perf_counter() - start
            log.info("%s: job %s finished in %.3f s", name, job_id, reply.seconds)
            return reply
        except Exception as exc:  # every failure becomes a reply; the node keeps serving
            kind = failure_kind(exc)
            log.warning("%s: job %s failed: %s: %s", name, job_id, kind, exc)
            if spec is not None:
                self.mesh.abort_job(job_id, spec.parties, kind)
            return wire_pb2.SubmitReply(
                job=job_id,
                party=name,
                ok=False,
                failure_kind=kind,
                failure=f"job {job_id}: party {name}: {kind}: {exc}",
            )

    def _keep(self, job_id: str, outputs: dict[str, np.ndarray]) -> None:
        self.results.mkdir(mode=0o700, exist_ok=True)
        path = self.results / f"{job_id}.npz"
        np.savez(path, **outputs)
        log.info("%s: job %s: kept %s in %s", self.member.name, job_id, ", ".join(outputs), path)

    def _context(self, spec: JobSpec, *, categorical: bool = False) -> JobContext:
        mine = spec.inputs.get(self.member.name)
        columns: tuple[str, ...] = ()
        values = np.zeros((0, 0))
        text: dict[str, np.ndarray] = {}
        if mine is not None:
            if self.source is None:
                raise SMPCError(f"{self.member.name} has no data source configured")
            selection = self.source.select(mine.columns, mine.where, numeric=not categorical)
            columns, values = tuple(selection.columns), selection.values
            if categorical:  # the protocol reads text columns, e.g. a contingency table
                text = {c: selection.categorical(c) for c in columns}
        return JobContext(
            params=spec.params,
            parties=spec.parties,
            party=self.member.name,
            columns=columns,
            values=values,
            min_cell_size=self.member.policy.min_cell_size,
            allow_min_max=self.member.policy.allow_min_max,
            text=text,
            model=self.model,
            reveal_probabilities=spec.reveal_probabilities,
        )

    def _run(
        self,
        signed_job: bytes,
        spec: JobSpec,
        protocol: ProtocolSpec,
        ctx: JobContext,
        caller: str,
    ) -> wire_pb2.SubmitReply:
        job_id, names = spec.job_id, spec.parties
        index = names.index(self.member.name)
        body = functools.partial(_job_body, protocol=protocol, spec=spec, caller=caller)
        plan = dry_run(body, len(names), ctx, party=index, fxp=self.fxp, job=job_id).plan
        remaining = spec.deadline_ms / 1000 - time.time()
        if remaining <= 0:
            raise JobRejected(job_id, "expired", "the job's deadline has passed")
        dealer = self.dealer.provision(job_id, signed_job, plan, timeout=remaining)
        try:
            source = SeededSource(index, dealer.seed, plan, dealer.feed() if index == 0 else None)
            source.expand_ahead()
            transport = GrpcTransport(
                self.mesh,
                job_id,
                names,
                transcript=Transcript(job_id, index, len(names)),
                deadline=time.monotonic() + remaining,
            )
            try:
                shares = body(Runtime(transport, source, self.fxp), ctx)
            finally:
                transport.close()
        finally:
            dealer.close()
        outputs = [
            wire_pb2.Tensor(
                name=key,
                dtype="<u8",
                shape=list(share.shape),
                frac_bits=scale,
                data=np.ascontiguousarray(share).tobytes(),
            )
            for key, (share, scale) in shares.items()
        ]
        return wire_pb2.SubmitReply(
            job=job_id,
            party=self.member.name,
            ok=True,
            outputs=outputs,
            rounds=transport.rounds,
            payload_bytes=transport.bytes_sent,
            wire_bytes=transport.wire_bytes_sent,
        )


def _job_body(
    rt: Runtime, ctx: JobContext, *, protocol: ProtocolSpec, spec: JobSpec, caller: str
) -> dict[str, tuple[np.ndarray, int]]:
    """The job as every party runs it: agree on the id, compute, reveal to the recipients."""
    hello = np.frombuffer(bytes.fromhex(spec.job_id), dtype=np.uint8)
    heard = rt.exchange_all(hello, HELLO)
    if not rt.planning:
        for peer, digest in enumerate(heard):
            if not np.array_equal(digest, hello):
                raise ProtocolAbort(
                    spec.job_id,
                    spec.parties[peer],
                    "job mismatch",
                    "the peer is running a different job",
                )
    outputs = protocol.run(rt, ctx)
    for_caller: dict[str, tuple[np.ndarray, int]] = {}
    for name in protocol.outputs:
        value = outputs.get(name)
        if value is None:  # delivered by the protocol itself (e.g. each hospital's own rows)
            continue
        recipients = spec.outputs.get(name, ())
        inside = [spec.parties.index(r) for r in recipients if r in spec.parties]
        if inside:
            rt.open(value, to=inside)  # a computing recipient learns it; logged, never printed
        if caller in recipients:
            for_caller[name] = (value.share.copy(), value.scale)
    return for_caller


def failure_kind(exc: BaseException) -> str:
    """The kind of a failure, safe to send to peers and to the chain (no data)."""
    if isinstance(exc, JobRejected):
        return f"refused: {exc.kind}"
    if isinstance(exc, ProtocolAbort):
        return exc.kind
    return type(exc).__name__


def serve_forever(member: MemberConfig, stop: Any) -> None:
    """Run a party until ``stop`` (a threading.Event) is set."""
    with PartyNode(member):
        stop.wait()
