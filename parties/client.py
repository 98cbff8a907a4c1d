"""The analyst's client: build a job, check and sign it, submit it, get numpy results.

::

    from parties.client import Client
    from parties.config import load_config

    client = Client(load_config("fed/analyst.toml"))
    result = client.statistics("mean", ["age"], where="age >= 50")
    result["count"], result["mean"]  # or result["suppressed"] is True below the minimum

    spec = protocols.statistics.protocol("stats-mean")
    job = client.job(spec.name, spec.version, inputs={h: ["age"] for h in ("h-a", "h-b")})
    outcome = client.submit(job)  # the raw outputs, each hospital's shares added up

Every job is checked here before it is signed, by the code the parties run:
its parameters (the protocol's ``Params``), each filter's syntax, the
columns it selects, and no text column (one the filter compares with a
string) where the protocol reads numbers. Such a mistake is a
``JobParamsError`` naming the field, and nothing is sent.

The client receives one share of each output from every party and adds them;
a single party's reply reveals nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from parties.config import MemberConfig, dns_name
from parties.data.errors import DataSourceError
from parties.data.filters import Filter, parse_filter
from parties.jobs.spec import InputSpec, JobSpec, SignedJob, sign_job
from parties.service import tls, wire_pb2, wire_pb2_grpc
from parties.service.mesh import MAX_FRAME_BYTES
from protocols import glm, glm_fit, logistic, statistics, vertical
from protocols.context import JobParamsError, Params, ProtocolSpec
from protocols.disclosure import StatisticsParamsError
from protocols.registry import lookup
from smpc import ring_reference
from smpc.errors import PeerTimeoutError, ProtocolAbort
from smpc.fixedpoint import FixedPoint

_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * MAX_FRAME_BYTES),
    ("grpc.max_send_message_length", MAX_FRAME_BYTES),
]


@dataclass(frozen=True)
class JobOutcome:
    """A finished job: its id, the decoded outputs, and what each party reported."""

    job: str
    outputs: dict[str, np.ndarray]
    replies: dict[str, wire_pb2.SubmitReply]
    seconds: float


_CONSEQUENCES = frozenset({"party aborted", "party unreachable", "timed out"})


class JobFailed(ProtocolAbort):
    """A job ended without outputs at some party; names the job, the party and the kind."""


def _input_spec(value: object) -> InputSpec:
    """Columns, or (columns, filter), or an InputSpec as it is."""
    if isinstance(value, InputSpec):
        return value
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and not isinstance(value[0], str)
        and (value[1] is None or isinstance(value[1], str))
    ):
        return InputSpec(tuple(value[0]), value[1])
    return InputSpec(tuple(value))  # type: ignore[arg-type]


def _filter(where: str) -> Filter:
    """The parsed filter; a JobParamsError naming ``where`` if it does not parse."""
    try:
        return parse_filter(where)
    except DataSourceError as exc:
        raise JobParamsError(f"is not a valid filter: {exc}", "where") from None


def check_job(
    protocol: ProtocolSpec,
    params: Mapping[str, object] | Params | None,
    inputs: Mapping[str, InputSpec],
    parties: Sequence[str],
) -> Params:
    """The job's parameters, checked with its inputs before it is signed.

    Everything here is decided from the job alone, as each party decides it
    again: the protocol's parameters, each filter's syntax, the selected
    columns, and no column the filter compares with a string (a text
    column) where the protocol reads numbers. Raises ``JobParamsError``
    naming the field (``params.<name>``, ``where`` or ``columns``).
    """
    typed = protocol.params.from_mapping(params)
    for spec in inputs.values():
        if spec.where is None:
            continue
        text = _filter(spec.where).text_columns
        named = [c for c in spec.columns if c in text]
        if named and not protocol.categorical:
            raise typed.error(
                f"include {named[0]!r}, which the filter compares with a string, but "
                f"{protocol.name} reads numbers",
                "columns",
            )
    typed.check_inputs(parties, {p: spec.columns for p, spec in inputs.items()})
    return typed


class Client:
    """Submits jobs on behalf of one analyst of a federation."""

    def __init__(self, member: MemberConfig, *, frac_bits: int = 16) -> None:
        if member.role != "analyst":
            raise ValueError(f"{member.name} is a {member.role}; jobs are signed by analysts")
        self.member = member
        self.fxp = FixedPoint(frac_bits)
        self._channels: dict[str, grpc.Channel] = {}
        self._pool: futures.ThreadPoolExecutor | None = None

    def job(
        self,
        protocol: str,
        version: str,
        *,
        inputs: Mapping[str, Sequence[str] | tuple[Sequence[str], str | None]],
        outputs: Mapping[str, Sequence[str]] | None = None,
        params: Mapping[str, object] | Params | None = None,
        parties: Sequence[str] | None = None,
        deadline_s: float = 60.0,
        reveal_probabilities: bool = False,
    ) -> JobSpec:
        """A job spec, checked by :func:`check_job`; ``inputs`` maps a party to its columns or
        (columns, filter), and ``params`` is the protocol's Params or its mapping.

        Outputs go to this analyst unless ``outputs`` names other recipients.
        The job's consent scope, the purpose hospitals check their patients'
        consent for, is the protocol's own.
        """
        specs = {party: _input_spec(value) for party, value in inputs.items()}
        chosen = lookup(protocol, version)
        members = tuple(parties if parties is not None else inputs)
        typed = check_job(chosen, params, specs, members)
        now = int(time.time() * 1000)
        return JobSpec(
            federation=self.member.federation,
            protocol=chosen.name,
            protocol_version=chosen.version,
            analyst=self.member.name,
            parties=members,
            inputs=specs,
            params=typed.to_mapping(),
            outputs={
                k: tuple(v)
                for k, v in (outputs or {n: [self.member.name] for n in chosen.outputs}).items()
            },
            deadline_ms=now + int(deadline_s * 1000),
            created_ms=now,
            reveal_probabilities=reveal_probabilities,
            scope=chosen.scope,
        )

    def inference_job(
        self,
        model_owner: str,
        features: Sequence[str],
        rows: Mapping[str, int],
        *,
        probabilities: bool = False,
        label_column: str | None = None,
        metrics_to: Sequence[str] = (),
        min_cell_size: int = 5,
        deadline_s: float = 60.0,
    ) -> JobSpec:
        """A logistic-regression inference job: each hospital in ``rows`` scores its rows.

        ``rows`` declares each hospital's row count (public); labels, and
        probabilities when asked, go to each hospital for its own rows. With
        ``label_column`` (0/1 at every hospital), the confusion counts over
        all rows go to ``metrics_to`` (this analyst by default; all -1, i.e.
        suppressed, if any cell is below ``min_cell_size``).
        """
        params = logistic.RowInferenceParams(
            model_owner=model_owner,
            features=tuple(features),
            rows=dict(rows),
            label_column=label_column,
            min_cell_size=min_cell_size,
        )
        spec = logistic.ROW_SPLIT
        return self.job(
            spec.name,
            spec.version,
            inputs={h: list(params.columns) for h in params.hospitals},
            parties=[*params.hospitals, model_owner],
            outputs=params.outputs(probabilities, list(metrics_to) or [self.member.name]),
            params=params,
            deadline_s=deadline_s,
            reveal_probabilities=probabilities,
        )

    def column_inference_job(
        self,
        model_owner: str,
        features: Sequence[str],
        holders: Mapping[str, Sequence[str]],
        id_column: str,
        patients: Sequence[int],
        recipients: Sequence[str],
        *,
        probabilities: bool = False,
        label_holder: str | None = None,
        label_column: str | None = None,
        metrics_to: Sequence[str] = (),
        min_cell_size: int = 5,
        deadline_s: float = 60.0,
    ) -> JobSpec:
        """Inference on column-split data: ``holders`` maps each hospital to its features.

        Every holder selects ``id_column`` (a study pseudonym, never a raw
        identifier) and its features; rows are aligned by ``patients``. The
        labels of all rows go to ``recipients`` (computing parties); with
        ``label_holder`` and ``label_column``, the confusion counts go to
        ``metrics_to``.
        """
        params = logistic.ColumnInferenceParams(
            model_owner=model_owner,
            features=tuple(features),
            holders={h: tuple(cols) for h, cols in holders.items()},
            id_column=id_column,
            patients=tuple(patients),
            label_holder=label_holder,
            label_column=label_column,
            min_cell_size=min_cell_size,
        )
        spec = logistic.COLUMN_SPLIT
        return self.job(
            spec.name,
            spec.version,
            inputs={h: list(params.columns(h)) for h in params.holder_names},
            parties=params.parties(),
            outputs=params.outputs(
                recipients, probabilities, list(metrics_to) or [self.member.name]
            ),
            params=params,
            deadline_s=deadline_s,
            reveal_probabilities=probabilities,
        )

    def statistics(
        self,
        statistic: str,
        columns: Sequence[str],
        *,
        where: str | None = None,
        hospitals: Sequence[str] | None = None,
        params: Mapping[str, object] | Params | None = None,
        deadline_s: float = 60.0,
    ) -> dict[str, Any]:
        """A joint statistic over the hospitals' selected rows, with disclosure control.

        ``statistic`` is a key of ``protocols.statistics.BY_STATISTIC`` (e.g.
        "count", "sum", "mean", "stdev", "histogram" with
        ``params={"edges": [...]}``, "crosstab" with
        ``params={"levels": [[...], [...]]}``, "median"); ``params`` may also be
        the protocol's Params (e.g. ``protocols.tables.HistogramParams``).
        Every hospital of the federation takes part unless ``hospitals`` says
        otherwise. Returns ``protocols.statistics.describe`` of the outputs
        (``{"suppressed": True, ...}`` below the minimum cell size) with the
        job id and its seconds.
        """
        summary, _ = self.statistics_outcome(
            statistic,
            columns,
            where=where,
            hospitals=hospitals,
            params=params,
            deadline_s=deadline_s,
        )
        return summary

    def statistics_outcome(
        self,
        statistic: str,
        columns: Sequence[str],
        *,
        where: str | None = None,
        hospitals: Sequence[str] | None = None,
        params: Mapping[str, object] | Params | None = None,
        deadline_s: float = 60.0,
    ) -> tuple[dict[str, Any], JobOutcome]:
        """:meth:`statistics`, and the job's outcome with each party's costs."""
        spec = statistics.statistic_protocol(statistic)
        typed = statistics.job_params(statistic, params)
        if hospitals is None:
            hospitals = [p.name for p in self.member.computing_peers if p.role == "hospital"]
        job = self.job(
            spec.name,
            spec.version,
            inputs={h: (list(columns), where) for h in hospitals},
            params=typed,
            deadline_s=deadline_s,
        )
        outcome = self.submit(job)
        present = _filter(where).present_columns if where is not None else frozenset()
        summary = statistics.describe(
            statistic, outcome.outputs, complete=bool(columns) and present.issuperset(columns)
        )
        return {**summary, "job": outcome.job, "seconds": outcome.seconds}, outcome

    def glm(
        self,
        columns: str | Sequence[str],
        outcome: str | None = None,
        *,
        family: str = "binomial",
        where: str | None = None,
        hospitals: Sequence[str] | None = None,
        max_iter: int = 25,
        tol: float = 1e-8,
        positive: str | None = None,
        parameter_ratio: float | None = None,
        deadline_s: float = 120.0,
    ) -> glm_fit.GLMFit:
        """A regression fitted across the hospitals without revealing any hospital's aggregates.

        ``columns`` is a formula ``"outcome ~ a + b"`` or the feature columns
        with ``outcome`` named apart; ``family`` is "binomial" (logistic) or
        "gaussian" (linear); ``positive`` reads a text outcome (the event is the
        outcome equal to it, e.g. "M"; job ``stats-glm-text``);
        ``parameter_ratio`` sets a stricter bound than the default 0.33 on the
        coefficients per pooled row (a fit beyond it is suppressed). Rows with a
        missing value in any of these columns are dropped. Returns a
        :class:`protocols.glm_fit.GLMFit` (``summary()``, ``to_model()``);
        raises ``GLMFitError`` (``FitSuppressed`` below the minimum cell
        size) if the fit is refused. See ``protocols.glm`` for
        what the job reveals.
        """
        fit, _ = self.glm_outcome(
            columns,
            outcome,
            family=family,
            where=where,
            hospitals=hospitals,
            max_iter=max_iter,
            tol=tol,
            positive=positive,
            parameter_ratio=parameter_ratio,
            deadline_s=deadline_s,
        )
        return fit

    def glm_outcome(
        self,
        columns: str | Sequence[str],
        outcome: str | None = None,
        *,
        family: str = "binomial",
        where: str | None = None,
        hospitals: Sequence[str] | None = None,
        max_iter: int = 25,
        tol: float = 1e-8,
        positive: str | None = None,
        parameter_ratio: float | None = None,
        deadline_s: float = 120.0,
    ) -> tuple[glm_fit.GLMFit, JobOutcome]:
        """:meth:`glm`, and the job's outcome with each party's costs."""
        if isinstance(columns, str):
            if outcome is not None:
                raise StatisticsParamsError("give a formula or an outcome, not both", "outcome")
            outcome, features = glm.parse_formula(columns)
        else:
            if outcome is None:
                raise StatisticsParamsError("must name the outcome column", "outcome")
            features = tuple(columns)
        params = glm.params_for(
            {"outcome": outcome, "family": family, "max_iter": max_iter, "tol": tol}
            | ({} if positive is None else {"positive": positive})
            | ({} if parameter_ratio is None else {"parameter_ratio": parameter_ratio})
        )
        selected = [*features, outcome]
        spec = glm.protocol_for(params)
        if hospitals is None:
            hospitals = [p.name for p in self.member.computing_peers if p.role == "hospital"]
        job = self.job(
            spec.name,
            spec.version,
            inputs={h: (selected, where) for h in hospitals},
            params=params,
            deadline_s=deadline_s,
        )
        done = self.submit(job)
        return glm_fit.read_fit(done.outputs, params, selected), done

    def column_split(
        self,
        statistic: str,
        columns: Mapping[str, Sequence[str]],
        *,
        key: str,
        ids: Sequence[int],
        deadline_s: float = 60.0,
    ) -> dict[str, Any]:
        """Correlation or covariance of columns held by different hospitals.

        ``columns`` maps each hospital to the columns it holds; every hospital
        puts its rows in the order of the patient ``ids`` found in its ``key``
        column (the order travels with the job and is public).
        """
        spec = statistics.statistic_protocol(statistic, column_split=True)
        params = vertical.VerticalParams(
            columns={h: tuple(cols) for h, cols in columns.items()}, key=key, ids=tuple(ids)
        )
        job = self.job(
            spec.name, spec.version, inputs=params.inputs(), params=params, deadline_s=deadline_s
        )
        outcome = self.submit(job)
        summary = statistics.describe(statistic, outcome.outputs, column_split=True)
        return {**summary, "job": outcome.job, "seconds": outcome.seconds}

    def submit(self, spec: JobSpec) -> JobOutcome:
        """Sign ``spec``, send it to every party at once, and decode the outputs sent to us."""
        signed = sign_job(spec, self.member.tls.key, self.member.tls.cert)
        return self.submit_signed(signed, spec)

    def replies(
        self, signed: SignedJob, spec: JobSpec
    ) -> tuple[dict[str, wire_pb2.SubmitReply], dict[str, grpc.RpcError]]:
        """Send a signed job to every party at once; each party's reply, or its call error.

        This is everything the analyst sees of a job, as it arrived.
        """
        payload = wire_pb2.SubmitRequest(signed_job=signed.to_json().encode())
        timeout = max(1.0, spec.seconds_left() + 5)
        # Blocking calls on threads kept between jobs: gRPC's futures (and a pool per job)
        # started a thread per party for every job, a few ms on a busy machine. Idle
        # threads are reused; jobs submitted at once from several threads get their own,
        # so one job's calls never queue behind another's.
        if self._pool is None:
            self._pool = futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="submit")
        calls = {
            party: self._pool.submit(self._stub(party).Submit, payload, timeout=timeout)
            for party in spec.parties
        }
        replies: dict[str, wire_pb2.SubmitReply] = {}
        unreachable: dict[str, grpc.RpcError] = {}
        for party, call in calls.items():
            try:
                replies[party] = call.result()
            except grpc.RpcError as exc:
                unreachable[party] = exc
        return replies, unreachable

    def submit_signed(self, signed: SignedJob, spec: JobSpec) -> JobOutcome:
        """Send an already signed job; raise JobFailed if any party failed it."""
        start = time.perf_counter()
        replies, unreachable = self.replies(signed, spec)
        seconds = time.perf_counter() - start
        # A party's own account names who failed and how; the root cause before the
        # parties that only heard of it.
        failed = sorted(
            (r for r in replies.values() if not r.ok),
            key=lambda r: r.failure_kind in _CONSEQUENCES,
        )
        if failed:
            raise JobFailed(
                signed.job_id, failed[0].party, failed[0].failure_kind, failed[0].failure
            )
        if unreachable:
            party, exc = next(iter(unreachable.items()))
            raise PeerTimeoutError(
                signed.job_id, party, "unreachable", f"{exc.code().name}: {exc.details()}"
            )
        return JobOutcome(signed.job_id, self._decode(replies), replies, seconds)

    def _decode(self, replies: Mapping[str, wire_pb2.SubmitReply]) -> dict[str, np.ndarray]:
        by_name: dict[str, list[wire_pb2.Tensor]] = {}
        for reply in replies.values():
            for tensor in reply.outputs:
                by_name.setdefault(tensor.name, []).append(tensor)
        decoded = {}
        for name, parts in by_name.items():
            if len(parts) != len(replies):
                raise ProtocolAbort("-", "client", "incomplete output", f"{name}: missing shares")
            shape = tuple(parts[0].shape)
            # a few output values: numpy, so the analyst's process never waits for Numba
            total = ring_reference.sum_shares(
                [np.frombuffer(p.data, dtype="<u8").reshape(shape) for p in parts]
            )
            scale = parts[0].frac_bits
            decoded[name] = total.view(np.int64) if scale == 0 else self.fxp.decode(total, scale)
        return decoded

    def _stub(self, party: str) -> wire_pb2_grpc.PartyStub:
        channel = self._channels.get(party)
        if channel is None:
            peer = self.member.peer(party)
            options = [
                *_OPTIONS,
                ("grpc.ssl_target_name_override", dns_name(peer.federation, peer.name)),
            ]
            channel = grpc.secure_channel(
                peer.address, tls.channel_credentials(self.member), options
            )
            self._channels[party] = channel
        return wire_pb2_grpc.PartyStub(channel)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
