"""A computing party's process: serves its peers and runs the jobs it admits.

For each submitted job the node, in order: checks the analyst's signature,
finds the protocol at its pinned version, runs every admission check of its
policy that needs no data (analyst, protocol, version, consent scope,
recipients, probabilities, deadline, replay, the analyst's query budget) and
checks the job's columns and filter against its source's header; only then
selects its own rows with the job's local filter and checks its own
contribution against the minimum cohort size; plans the job with a dry run,
fetches its seed (and, as party 0, the corrections) from the dealer, runs the
protocol over the data plane (mutual TLS sockets; every frame names its job,
so the first round is also where the parties agree on the job id), reveals each output only to its
recipients, and answers the caller with the caller's shares. A failure
anywhere ends the job at every party with an error naming the job, the party
and the kind of failure; no partial output is revealed, and the node serves
the next job.
Logs carry one line per job event, never a value, share or key.

A failure that depends on the data (a small contribution, a value that does
not parse or is out of range, a shape or alignment that does not match the
job) reaches the analyst, the peers and the chain as one fixed kind,
``local-data``, with one fixed reason, whatever the cause and whenever it
happens: otherwise a filter that selects one patient only when a condition on
their value holds would turn the answer into a test of that value. The cause
goes to this party's own log only (column and row, never a value).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from parties.config import RESULTS_DIR, MemberConfig
from parties.data import consent
from parties.data.base import DataSource, InPlaceData
from parties.data.errors import DataSourceError
from parties.data.kinds import open_source
from parties.data.model_file import load_model
from parties.jobs.budget import BUDGET_DB_FILE, QueryBudget
from parties.jobs.spec import (
    LOCAL_DATA_REASON,
    JobFormatError,
    JobRejected,
    JobSpec,
    LocalDataError,
    SignedJob,
    admit,
    check_cohort,
    verify_job,
)
from parties.ledger.chain_node import ChainNode
from parties.ledger.genesis import load_genesis
from parties.ledger.patients import PatientLedger
from parties.ledger.record_store import RecordStore, records_path
from parties.service import job_record, warmup, wire_pb2
from parties.service.dataplane import DataPlane
from parties.service.dealer_service import DealerConnection, DealerLink
from parties.service.mesh import Mesh, after_reply
from parties.service.socket_transport import SocketTransport
from protocols.disclosure import PolicyRefused
from protocols.local_data import ColumnFacts
from protocols.registry import (
    JobContext,
    JobParamsError,
    ProtocolSpec,
    UnknownProtocolError,
    lookup,
)
from smpc.chain.keys import load_private_key
from smpc.chain.records import Failure, JobRecord
from smpc.deadline import Deadline
from smpc.errors import JobReplayError, ProtocolAbort
from smpc.fixedpoint import FixedPoint
from smpc.jobs import SeenJobs
from smpc.plans import PlanCache
from smpc.preprocessing import DeferredSource, PreprocessingSource, SeededSource
from smpc.preprocessing.plan import AHEAD_WORDS
from smpc.runtime import Runtime, dry_run
from smpc.transcript import Transcript

log = logging.getLogger(__name__)

FEED_S = 0.5
"""How often pending records are handed to the chain node."""


class PartyNode:
    """A hospital or model owner: a mesh, a data plane, a data source, a ledger of job ids."""

    def __init__(self, member: MemberConfig, *, frac_bits: int = 16) -> None:
        self.member = member
        self.fxp = FixedPoint(frac_bits)
        hospital = member.role == "hospital"
        self.mesh = Mesh(
            member,
            on_submit=self.submit,
            on_chain=self._chain_message if hospital else None,
            on_health=self._peer_up,
        )
        self.plane = DataPlane(member, locate=self.mesh.locate, port=member.data_port)
        self.chain: ChainNode | None = None
        self._handoffs: queue.SimpleQueue[JobRecord | None] = queue.SimpleQueue()
        self.source: DataSource | None = (
            open_source(member.data)
            if member.data.kind in ("csv", "sqlite", "postgresql")
            else None
        )
        model_file = member.data.path if member.data.kind == "model" else None
        self.model = load_model(model_file) if model_file is not None else None
        self.results = member.home / RESULTS_DIR
        self.ledger = SeenJobs()
        self.plans = PlanCache()
        self.genesis = genesis = load_genesis(member.genesis)
        self.chain_keys = {a.name: a.public_key for a in genesis.authorities}
        self.consent_mode = genesis.consent_mode
        self.consent = consent.ConsentView(member.name, genesis.consent_mode)
        self.chain_key = (
            load_private_key(member.chain_key.read_bytes()) if member.chain_key else None
        )
        self.records = RecordStore(records_path(member))
        self.patients = PatientLedger(member)
        policy = member.policy
        self.budget = QueryBudget(
            member.home / BUDGET_DB_FILE,
            policy.query_budget,
            policy.query_window_s * 1000,
        )
        if member.data.patient_id is not None:
            consent.check_patient_column(member)

    def start(self) -> PartyNode:
        if self.member.role == "hospital":
            # Every hospital in the config, not only the genesis authorities: a hospital
            # added later follows the chain until a vote makes it an authority.
            names = {a.name for a in self.genesis.authorities}
            names.update(p.name for p in self.member.peers if p.role == "hospital")
            self.chain = ChainNode(self.member, self.genesis, sorted(names), self.mesh.chain_send)
        self.mesh.data_port = self.plane.start().port
        self.mesh.start()
        if self.chain is not None:
            self.chain.start()
            self._feeding = threading.Event()
            threading.Thread(target=self._feed_chain, name="chain-feed", daemon=True).start()
            threading.Thread(target=self._hand_off, name="record-to-chain", daemon=True).start()
        self.dealer = DealerLink(self.member)
        warmup.warm(self.mesh, self.plane, self.dealer)
        return self

    def _peer_up(self, caller: str) -> None:
        """A computing peer that asks for this node's health is up: if this node dials it and
        the link is down, dial now rather than after the backoff (e.g. the peer restarted)."""
        if any(p.name == caller for p in self.member.computing_peers):
            self.plane.need(caller)

    def _feed_chain(self) -> None:
        """Hand pending records (kept here, or by ``smpc consent``) to the chain node.

        Job records leave the pending table once a final block holds them;
        consent records stay, as this hospital's own consent book.
        """
        assert self.chain is not None
        handed: set[bytes] = set()
        while not self._feeding.wait(FEED_S):
            try:
                pending = self.records.pending()
                seen = self.chain.final(rid for rid, _ in pending)
                for rid, data in pending:
                    if rid not in handed and rid not in seen:
                        self.chain.submit(data)
                        handed.add(rid)
                final_jobs = [rid for rid, _ in self.records.pending("job") if rid in seen]
                if final_jobs:
                    self.records.remove_pending(final_jobs)
            except Exception as exc:  # the node keeps serving; the next pass tries again
                log.warning("%s: handing records to the chain failed: %s", self.member.name, exc)

    def stop(self, grace: float = 1.0) -> None:
        if self.chain is not None:
            self._feeding.set()
            self._handoffs.put(None)
            self.chain.stop()
        self.mesh.stop(grace)
        self.plane.stop()
        self.dealer.close()
        self.records.close()
        self.patients.close()
        self.budget.close()

    def _chain_message(self, sender: str, data: bytes) -> None:
        if self.chain is not None:  # None only while starting: the sender retries by the rules
            self.chain.deliver(sender, data)

    def __enter__(self) -> PartyNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one job ------------------------------------------------------------------
    def submit(self, request: wire_pb2.SubmitRequest, caller: str) -> wire_pb2.SubmitReply:
        """Admit and run one job; the reply carries the caller's output shares or the failure.

        Once a job this party admitted (or refused for a reason other than a
        replay) ends, its record is assembled with the other parties and kept
        as pending: before the reply for a finished job (one more round, so the
        record exists when the caller has its result), on a thread of its own
        for an aborted one (so the failure is reported at once). Handing the
        kept record to the chain happens after, off the reply.
        """
        name = self.member.name
        job_id, spec, ctx, transcript = "unknown", None, None, None
        start = time.perf_counter()
        try:
            signed = SignedJob.from_json(request.signed_job)
            job_id = signed.job_id
            spec = verify_job(signed, self.member)
            if name in spec.parties:
                transcript = Transcript(job_id, spec.parties.index(name), len(spec.parties))
            if caller != spec.analyst:
                raise JobRejected(job_id, "unknown-analyst", f"{caller!r} did not sign this job")
            protocol = lookup(spec.protocol, spec.protocol_version)
            admit(spec, self.member, self, scope=protocol.scope, budget=self.budget)
            protocol.params.from_mapping(spec.params)  # the job's own parameters, before any row
            self._check_request(spec)
            ctx = self._context(
                spec, categorical=protocol.categorical, aggregates=protocol.aggregates
            )
            log.info(
                "%s: job %s admitted: %s v%s from %s",
                name,
                job_id,
                spec.protocol,
                spec.protocol_version,
                caller,
            )
            if transcript is None:  # admit refuses such a job already; kept for the type checker
                raise JobRejected(job_id, "not-a-party", f"{name!r} is not a party")
            try:
                reply, delivered = self._run(
                    request.signed_job, spec, protocol, ctx, caller, transcript
                )
            finally:
                if ctx.data is not None:  # the database snapshot ends with the job
                    ctx.data.close()
            if delivered:  # per-row outputs for this party, kept only once the job succeeded
                self._keep(job_id, delivered)
            reply.output_key = secrets.token_bytes(32)
            tag = job_record.output_tag(reply.output_key, reply.outputs)
            self._record(spec, request.signed_job, ctx, transcript, tag, None, reply.output_key)
            reply.seconds = time.perf_counter() - start
            log.info("%s: job %s finished in %.3f s", name, job_id, reply.seconds)
            return reply
        except Exception as exc:  # every failure becomes a reply; the node keeps serving
            kind, reason = public_failure(exc)
            log.warning("%s: job %s failed: %s: %s", name, job_id, kind, exc)
            if spec is not None:
                self.plane.abort_job(job_id, spec.parties, kind)
                if transcript is not None and kind != "refused: replay":
                    blamed = exc.party if isinstance(exc, ProtocolAbort) and exc.party else name
                    failure = Failure(blamed, kind)
                    self._record_later(spec, request.signed_job, ctx, transcript, b"", failure)
            return wire_pb2.SubmitReply(
                job=job_id,
                party=name,
                ok=False,
                failure_kind=kind,
                failure=f"job {job_id}: party {name}: {kind}: {reason}",
            )

    def _record_later(self, spec: JobSpec, *args: Any) -> None:
        """Assemble an aborted job's record on a thread of its own."""
        threading.Thread(
            target=self._record, args=(spec, *args), name=f"record-{spec.job_id[:8]}", daemon=True
        ).start()

    def _record(
        self,
        spec: JobSpec,
        signed_job: bytes,
        ctx: JobContext | None,
        transcript: Transcript,
        tag: bytes,
        failure: Failure | None,
        output_key: bytes = b"",
    ) -> None:
        """Assemble the job's record with the other parties and keep it as pending.

        The private notes (salt, transcript hashes, output key) are written in
        the transaction that keeps the record, after the exchange, so the view
        leaves without waiting for a write; if the record cannot be made, they
        are kept alone. A crash before that write loses nothing a restart
        needs: the job was running since its admission with no note on disk
        either, its peers keep their records, and a replay of its id is
        refused by them.
        """
        name = self.member.name
        try:
            if ctx is None:  # failed before its inputs were chosen: it used none
                ctx = JobContext(params={}, parties=spec.parties, party=name)
            commit, salt = job_record.input_commitment(spec.job_id, ctx)
            patients, patient_notes = self.patients.commit(spec.job_id)
            view = job_record.view_of(
                name, spec.parties, transcript, commit, tag, failure, patients
            )
            notes = {
                "party": name,
                "salt": salt.hex(),
                "input_commitment": commit.hex(),
                "sent": view.sent,
                "received": view.received,
                "output_key": output_key.hex(),
                **patient_notes,
            }
            roles = {
                p: self.member.role if p == name else self.member.peer(p).role for p in spec.parties
            }
            keys = self.chain.authority_keys() if self.chain is not None else self.chain_keys
            try:
                record = job_record.assemble(
                    self.plane, spec, signed_job, roles, view, self.chain_key, keys
                )
                self.patients.kept(spec.job_id)  # the leaves are stored before the record is kept
            except BaseException:
                self.records.keep_notes(spec.job_id, notes)
                raise
            if self.records.add_pending(record, job=spec.job_id, notes=notes):
                self._hand_to_chain(record)
            log.info(
                "%s: job %s: record kept (%s, %d of %d contributions)",
                name,
                spec.job_id,
                record.status,
                len(record.contributions),
                len(spec.parties),
            )
        except Exception as exc:  # a record that cannot be made must not take the node down
            log.warning(
                "%s: job %s: no record kept: %s: %s", name, spec.job_id, type(exc).__name__, exc
            )

    def _hand_to_chain(self, record: JobRecord) -> None:
        """Give a kept record to the chain node once the job's reply has been sent.

        The chain node may propose a block at once (signing it, storing its
        seal with an fsync): CPU work that, started before the reply, held
        the interpreter for about 4 ms of a 25 ms job. So the record goes to
        the hand-off thread only after gRPC has sent the reply. It is already
        committed as pending, and the feed hands it again if this fails or the
        process stops first.
        """
        if self.chain is not None:
            after_reply(functools.partial(self._handoffs.put, record))

    def _hand_off(self) -> None:
        """The hand-off thread: records to the chain node, in the order they were kept."""
        chain = self.chain
        assert chain is not None
        while (record := self._handoffs.get()) is not None:
            try:
                chain.submit(record.encode())
            except Exception as exc:  # the feed tries again
                log.warning("%s: handing a record to the chain failed: %s", self.member.name, exc)

    def admit(self, job: str) -> None:
        """Record a job id, refusing one seen since start or kept in the records file.

        The records file outlives the process, so a restarted node still
        refuses a job it took part in before.
        """
        if self.records.notes(job) is not None or self.records.job_record(job) is not None:
            raise JobReplayError(f"job id {job} was already used; every job needs a fresh id")
        self.ledger.admit(job)

    def _keep(self, job_id: str, outputs: Mapping[str, np.ndarray]) -> None:
        self.results.mkdir(mode=0o700, exist_ok=True)
        path = self.results / f"{job_id}.npz"
        np.savez(path, allow_pickle=True, **outputs)  # the default; named, the stub types **outputs
        log.info("%s: job %s: kept %s in %s", self.member.name, job_id, ", ".join(outputs), path)

    def _check_request(self, spec: JobSpec) -> None:
        """Refuse a job whose columns or filter do not fit this party's source, reading no row."""
        mine = spec.inputs.get(self.member.name)
        if mine is None:
            return
        if self.source is None:
            raise JobRejected(spec.job_id, "bad-request", "this party has no data source")
        try:
            self.source.check(mine.columns, mine.where)
        except DataSourceError as exc:
            raise JobRejected(spec.job_id, "bad-request", str(exc)) from None

    def _context(
        self, spec: JobSpec, *, categorical: bool = False, aggregates: bool = False
    ) -> JobContext:
        """This party's selected rows (after consent) as the protocol sees them.

        For a protocol that reads only local aggregates, a source that can
        compute them in place (a database) answers them there, and the context
        carries that instead of rows. Any failure here depends on the data, so
        it leaves as LocalDataError; the cause is logged here only.
        """
        mine = spec.inputs.get(self.member.name)
        columns: tuple[str, ...] = ()
        values = np.zeros((0, 0))
        text: dict[str, np.ndarray] = {}
        facts: dict[str, ColumnFacts] = {}  # validity over all rows: refusals ignore the filter
        data: InPlaceData | None = None
        if mine is not None:
            assert self.source is not None  # _check_request refused the job otherwise
            consented = ""
            try:
                if aggregates:
                    data, consented = self._in_place(spec, categorical=categorical)
                if data is not None:
                    columns = tuple(mine.columns)
                    values = np.zeros((0, len(columns)))
                    # the cohort check runs on the database's first pass, before any share
                    data.admit(functools.partial(self._admit_rows, spec, consented))
                    log.info(
                        "%s: job %s: local aggregates computed in the database",
                        self.member.name,
                        spec.job_id,
                    )
                else:
                    selection = self.source.select(
                        mine.columns, mine.where, numeric=not categorical
                    )
                    keep, consented = self._consented(spec)
                    columns, values = tuple(selection.columns), selection.values[keep]
                    facts = selection.facts
                    if categorical:  # the protocol reads text columns, e.g. a contingency table
                        text = {c: selection.categorical(c)[keep] for c in columns}
                    self._admit_rows(spec, consented, len(values))
            except LocalDataError:  # the cohort check's refusal, logged by _admit_rows
                if data is not None:
                    data.close()
                raise
            except Exception as exc:
                if data is not None:
                    data.close()
                log.warning(
                    "%s: job %s: its selected rows cannot be used: %s: %s",
                    self.member.name,
                    spec.job_id,
                    type(exc).__name__,
                    exc,
                )
                raise LocalDataError(spec.job_id) from None
        return JobContext(
            params=spec.params,
            parties=spec.parties,
            party=self.member.name,
            columns=columns,
            values=values,
            selections={p: tuple(s.columns) for p, s in spec.inputs.items()},
            min_cell_size=self.member.policy.min_cell_size,
            allow_min_max=self.member.policy.allow_min_max,
            text=text,
            model=self.model,
            reveal_probabilities=spec.reveal_probabilities,
            outputs=spec.outputs,
            data=data,
            facts=facts,
        )

    def _admit_rows(self, spec: JobSpec, consented: str, rows: int) -> None:
        """The cohort check on this party's rows after filter and consent (counted here or in
        the database); the cause goes to this hospital's log only, the analyst and peers
        get the fixed reason."""
        try:
            check_cohort(spec, self.member, rows)
        except LocalDataError:
            log.warning(
                "%s: job %s: contribution below the minimum cohort size: %d rows after"
                " filter and consent, minimum %d%s",
                self.member.name,
                spec.job_id,
                rows,
                self.member.policy.min_cell_size,
                f"; {consented}" if consented else "",
            )
            raise

    def _in_place(self, spec: JobSpec, *, categorical: bool) -> tuple[InPlaceData | None, str]:
        """The job's local aggregates computed where the data lives, consent applied; None if
        the source reads rows (CSV, SQLite) or cannot keep the meaning in place. With them,
        for this hospital's log only, how many rows consent left out.

        With a patient column, the source streams that one column of the kept
        rows, consent is decided here as for rows, the source is restricted to
        the consenting patients, and their identifiers go to the patient ledger.
        """
        assert self.source is not None
        mine = spec.inputs[self.member.name]
        data = self.source.aggregates(mine.columns, mine.where, categorical=categorical)
        if data is None:
            return None, ""
        try:
            column = self.member.data.patient_id
            records, book = self.consent.read(self.records)
            if column is None:
                if records:
                    raise consent.ConsentError(
                        f"{self.member.name} keeps consent records but its data config names no"
                        " patient_id column, so it cannot apply them; set data.patient_id"
                    )
                return data, ""
            ids = data.patient_ids(column)
            if ids is None:  # a patient column SQL cannot compare as the rows would
                data.close()
                return None, ""
            keep, note = self._consent_mask(spec, book, ids)
            data.restrict(column, ids, keep)
        except BaseException:
            data.close()  # the job's connection, if a query opened it
            raise
        return data, note

    def _consented(self, spec: JobSpec) -> tuple[np.ndarray | slice, str]:
        """Which selected rows belong to patients who consent to the job's scope.

        Consent rules live in parties.data.consent.

        A boolean mask over the job's selection, or every row where consent does not
        apply; and, for this hospital's log only, how many rows consent left out.
        """
        name, column = self.member.name, self.member.data.patient_id
        records, book = self.consent.read(self.records)
        if column is None:
            if records:
                raise consent.ConsentError(
                    f"{name} keeps consent records but its data config names no patient_id"
                    " column, so it cannot apply them; set data.patient_id"
                )
            return slice(None), ""
        assert self.source is not None
        where = spec.inputs[name].where
        selected = self.source.select([column], where, numeric=False, levels=False)
        patients = selected.categorical(column)
        return self._consent_mask(spec, book, patients)

    def _consent_mask(
        self, spec: JobSpec, book: consent.ConsentBook, ids: np.ndarray
    ) -> tuple[np.ndarray, str]:
        """Which of the selected patients ``ids`` consent to the job's scope, and the log note.

        The consenting ones go to the patient ledger; the note (how many consent
        left out, and why) is logged here and goes nowhere else.
        """
        secret = consent.load_secret(self.member)
        kept_keys: np.ndarray | None = None
        if secret is None:
            keep = book.rows(None, ids, spec.scope)
        else:
            keys = self.patients.keys.array(secret, ids)
            keep = book.allowed(keys, spec.scope)
            kept_keys = keys[keep]
        self.patients.selected(spec.job_id, ids[keep], kept_keys)
        note = consent.exclusion_note(
            len(keep) - int(keep.sum()), len(keep), self.consent_mode, spec.scope
        )
        if note:
            log.info("%s: job %s: %s", self.member.name, spec.job_id, note)
        return keep, note

    def _run(
        self,
        signed_job: bytes,
        spec: JobSpec,
        protocol: ProtocolSpec,
        ctx: JobContext,
        caller: str,
        transcript: Transcript,
    ) -> tuple[wire_pb2.SubmitReply, Mapping[str, np.ndarray]]:
        """Run the job; the caller's reply and the per-row outputs this party received."""
        job_id, names = spec.job_id, spec.parties
        index = names.index(self.member.name)
        body = functools.partial(_job_body, protocol=protocol, spec=spec, caller=caller)
        plan = self.plans.plan(
            plan_key(spec, ctx, index, self.fxp.frac_bits),
            lambda: dry_run(body, len(names), ctx, party=index, fxp=self.fxp, job=job_id).plan,
        )
        deadline = Deadline.after(spec.seconds_left())
        if deadline.passed:
            raise JobRejected(job_id, "expired", "the job's deadline has passed")
        # A small plan's seed arrives while the job's first rounds run (see AHEAD_WORDS).
        ahead = plan.words > AHEAD_WORDS
        dealer = self.dealer.provision(
            job_id, signed_job, plan, timeout=deadline.left(), wait=ahead
        )
        try:
            source: PreprocessingSource
            if ahead:
                feed = dealer.feed() if index == 0 else None
                source = SeededSource(index, dealer.seed, plan, feed)
                source.expand_ahead()
            else:
                source = DeferredSource(plan, functools.partial(_expanded, index, dealer))
            transport = SocketTransport(
                self.plane,
                job_id,
                names,
                transcript=transcript,
                deadline=deadline.at,
            )
            online = time.perf_counter()
            try:
                shares, delivered = body(Runtime(transport, source, self.fxp), ctx)
            finally:
                transport.close()
            online = time.perf_counter() - online
            dealer.wait()  # a job that used no item still needs the dealer's consent
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
        reply = wire_pb2.SubmitReply(
            job=job_id,
            party=self.member.name,
            ok=True,
            outputs=outputs,
            rounds=transport.rounds,
            payload_bytes=transport.bytes_sent,
            wire_bytes=transport.wire_bytes_sent,
            online_seconds=online,
        )
        return reply, delivered


def _expanded(index: int, dealer: DealerConnection) -> SeededSource:
    """This party's whole plan expanded from its seed (party 0: with its corrections)."""
    feed = dealer.feed(ahead=False) if index == 0 else None
    source = SeededSource(index, dealer.seed, dealer.plan, feed)
    source.prefetch()
    return source


def _job_body(
    rt: Runtime, ctx: JobContext, *, protocol: ProtocolSpec, spec: JobSpec, caller: str
) -> tuple[dict[str, tuple[np.ndarray, int]], Mapping[str, np.ndarray]]:
    """The job as every party runs it: compute, reveal to the recipients.

    The job id is agreed in the first round, with no round of its own: every
    frame carries its job id in its header, and the data plane files it by
    (job, authenticated peer) before anything reads its payload, so a message
    is only ever used by the job it names; a peer running another job never
    joins this one, and the job aborts naming it ("peer did not join"). The
    transcript of each channel starts from the job id as well.

    Returns the caller's shares of its outputs and what this party was delivered.
    """
    outcome = protocol.run(rt, ctx)
    outputs = outcome.revealed
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
    return for_caller, outcome.delivered


def plan_key(spec: JobSpec, ctx: JobContext, party: int, frac_bits: int) -> Hashable:
    """What can shape a job's dry run at one party: its public description, input shapes.

    Protocol and version, parameters, parties (so their number), outputs and
    flags, this party's index and policy, and the layout (never the numbers)
    of this party's rows, text columns and model. The job id, nonce and
    deadline are left out: they change no plan.
    """
    return (
        spec.protocol,
        spec.protocol_version,
        json.dumps(dict(spec.params), sort_keys=True, default=str),
        spec.parties,
        party,
        frac_bits,
        _layout(spec.outputs),
        spec.reveal_probabilities,
        ctx.min_cell_size,
        ctx.allow_min_max,
        ctx.columns,
        _layout(ctx.selections),
        _layout(ctx.values),
        _layout(ctx.text),
        _layout(ctx.model),
    )


def _layout(value: object) -> Hashable:
    """Array shapes and dtypes, names, integers and flags of ``value``; no real number.

    Runs for every job at every party, so the common cases come first and cost
    no Python loop over a value's elements: an array by its dtype and shape, a
    list of names (a job's columns, a model's features) as it is.
    """
    if value is None or isinstance(value, _NAMES_AND_COUNTS):
        return value
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape)
    if isinstance(value, list | tuple):
        if all(isinstance(v, str) for v in value):
            return ("seq", *value)
        return ("seq", *(_layout(v) for v in value))
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return ("map", *((str(k), _layout(v)) for k, v in items))
    names = _field_names(type(value))
    if names is not None:
        return (type(value).__qualname__, *((n, _layout(getattr(value, n))) for n in names))
    return type(value).__qualname__


_NAMES_AND_COUNTS = (bool, int, str)
"""What :func:`_layout` keeps as it is: a real number never, whatever its type."""


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(kind: type) -> tuple[str, ...] | None:
    """The field names of a dataclass, None for any other type (looked up once per type)."""
    if kind not in _FIELD_NAMES:
        fields = dataclasses.fields(kind) if dataclasses.is_dataclass(kind) else None
        _FIELD_NAMES[kind] = None if fields is None else tuple(f.name for f in fields)
    return _FIELD_NAMES[kind]


_REQUEST_ERRORS = (UnknownProtocolError, JobFormatError, JobParamsError, PolicyRefused)
"""Failures that depend on the job alone, never on data: their message may go out as it is."""


def public_failure(exc: BaseException) -> tuple[str, str]:
    """The kind and reason of a failure as the analyst, the peers and the chain may see them.

    A refusal by policy, a peer's abort and a malformed request depend on the
    job alone; anything else may depend on this party's rows, so it reads as
    ``local-data`` with one fixed reason, and its cause stays in the log.
    """
    if isinstance(exc, JobRejected):
        return f"refused: {exc.kind}", exc.reason
    if isinstance(exc, ProtocolAbort):
        return exc.kind, f"party {exc.party}: {exc.kind}"
    if isinstance(exc, _REQUEST_ERRORS):
        return type(exc).__name__, str(exc)
    return LocalDataError.kind, LOCAL_DATA_REASON
