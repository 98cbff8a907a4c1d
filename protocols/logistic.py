"""Logistic-regression inference: a model owner's secret model on hospitals' secret rows.

Row split (:func:`infer`, protocol ``logistic-inference``): every hospital
scores its own patients. Column split (:func:`infer_columns`, protocol
``logistic-inference-columns``): the features of the same patients are at
different hospitals, rows aligned by a patient order the job gives (values of
a study pseudonym column every holder has, never raw identifiers).

Reveals, by default, only labels (1 iff the logit is > 0): in the row split
each hospital gets its own rows' labels; in the column split the parties the
job names get every row's label. Probabilities only when asked
(``probabilities=True``, flagged in the job because probabilities of 31 rows
reveal the 30 weights and the bias). Optionally, aggregate metrics against
0/1 labels that hospitals hold: the confusion counts [TP, FP, FN, TN] over
all scored rows, to the job's named recipient; if any cell is below the
minimum cell size, every cell reads -1 ("suppressed"; with the row count
public, one small cell could be recovered from the other three). Nothing else.

Steps:

1. The model owner folds the standardisation into the model locally
   (w / scale, b - sum(w mean / scale)). Folded weights of features with a
   large scale are tiny (1/570 for a tumour's area), so the owner encodes
   them with 32 fractional bits instead of F; the bias with F.
2. The logits X @ w + b for all rows at once, in two rounds, without
   sharing X or w first: a hospital knows its rows in the clear and the
   owner its weights, so each (hospital, owner) pair forms its block of
   X @ w as a held product (``smpc.held``): the owner sends the hospital
   its weights minus a dealer mask only the owner knows (the round every
   party joins in), the hospital sends the owner its rows minus a mask
   only it knows (X_h - A_h, uniform to the owner, as a share of an input
   is), and every party ends with shares of X_h @ w. A hospital's rows
   cost 30 words per row to the owner alone (a Beaver product of shared X
   cost every party 30 words per row of every hospital to every peer, and
   sharing X a round before it). In the column split the holders' blocks
   of columns add up instead. The owner adds b to its share. Range: the
   sum of |x_j w_j| and |b| must stay below 2^14 (x with F = 16 and w with
   32 fractional bits fill 62 bits), far above any useful logit.
3. Labels by one exact batched comparison of the logits as they are, with
   F + 32 fractional bits, [-logit < 0] (8 rounds): the sign needs no
   truncation, so it is exact on the encoded values. Probabilities, if
   asked, from logits truncated by 32 bits (1 round) by the 8-round
   sigmoid of ``smpc.approx``.
4. One round reveals each hospital's block of rows to that hospital only
   (row split) or all rows to the named parties (column split).
5. Metrics: the 0/1 label column is shared first (1 round, before step 2);
   TP = sum(label x truth) (1 round), the other cells by sums; one batched
   comparison of the four cells with the minimum (8 rounds); whether any
   is small (2 rounds) and the cells or -1 (1 round).

Rounds: 11 for labels, 21 with probabilities (truncation, sigmoid and their
reveal after the labels'), 13 more for metrics. Bytes per row, at 10^5 rows
of 30 features and three hospitals: a hospital sends 240 to the owner for
each of its own rows, and every party about 118 per row (the comparison,
39.4 to each of 3 peers) and 8 per row of each hospital's reveal. Features
are range-checked when they are encoded; a NaN or an out-of-range value
fails the job before any round.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from protocols.context import (
    JobContext,
    JobParamsError,
    Outcome,
    Params,
    ProtocolSpec,
    is_integer,
    is_number,
    plain_number,
)
from protocols.model import LogisticModel
from smpc import approx, compare
from smpc.errors import ShapeMismatchError, SMPCError
from smpc.held import held_products
from smpc.runtime import Runtime
from smpc.shares import SharedTensor, concatenate
from smpc.steps import drive, truncations

WEIGHT_BITS = 32  # fractional bits of the folded weights, encoded as integers
METRICS_ROUNDS = 13
"""Rounds metrics add: sharing the label column 1, the confusion table 12."""
SUPPRESSED = -1.0
"""What every confusion cell reads when any cell is below the minimum cell size."""


class AlignmentError(SMPCError, ValueError):
    """A column-split job's patient order does not match a holder's rows."""


def _owner_weights(
    rt: Runtime, model: LogisticModel | None, n_features: int
) -> tuple[np.ndarray, np.ndarray]:
    """The owner's folded weights (WEIGHT_BITS fractional bits, a column) and bias (F), encoded."""
    if model is None:
        raise ValueError("the model owner must pass its model")
    if len(model.feature_names) != n_features:
        raise ShapeMismatchError(
            f"the model has {len(model.feature_names)} features, the job declares {n_features}"
        )
    weights, bias = model.folded()
    # Encoded with F fractional bits, w * 2^(WEIGHT_BITS - F) is w with WEIGHT_BITS.
    extra = 2.0 ** (WEIGHT_BITS - rt.fxp.frac_bits)
    encoded = rt.encode(np.concatenate([weights * extra, [bias]]).reshape(-1, 1))
    return encoded[:n_features], encoded[n_features:]


def _local_block(values: np.ndarray | None, columns: int, what: str) -> np.ndarray:
    mine = np.asarray(values, dtype=np.float64)
    if mine.ndim != 2 or mine.shape[1] != columns:
        raise ShapeMismatchError(
            f"{what} have shape {mine.shape}, the job expects {columns} columns"
        )
    return mine


def _check_truth(truth: np.ndarray) -> None:
    if not np.all((truth == 0.0) | (truth == 1.0)):
        raise ValueError("the label column must hold only 0 and 1 (no missing values)")


def _logits(
    rt: Runtime,
    owner: int,
    holders: Sequence[int],
    shapes: Sequence[tuple[int, int, int]],
    mine: np.ndarray | list[np.ndarray] | None,
    bias: np.ndarray | None,
    combine: Callable[[list[np.ndarray]], np.ndarray],
) -> np.ndarray:
    """Shares of x @ w + b with F + WEIGHT_BITS fractional bits, as a column; 2 rounds.

    Every holder's block is a product held in the clear by it and the owner
    (``smpc.held``); ``combine`` joins the blocks (rows one after another, or
    a sum over column blocks). The owner adds the bias to its share.
    """
    z = combine(held_products(rt, owner, holders, shapes, mine))
    if bias is not None:  # the owner: b with F bits, shifted to F + WEIGHT_BITS
        z = rt.ring.add(z, bias.reshape(1, 1) << np.uint64(WEIGHT_BITS))
    return z


def confusion(
    rt: Runtime, labels: SharedTensor, truth: SharedTensor, min_cell_size: int
) -> SharedTensor:
    """Shared [TP, FP, FN, TN] of 0/1 labels (scale 0) against 0/1 truth (scale F); 12 rounds.

    Every cell is -1 if any is below ``min_cell_size``: decided inside MPC,
    so a small table reveals only that it is small. The row count is public.
    """
    if labels.shape != truth.shape:
        raise ShapeMismatchError(f"labels {labels.shape} and truth {truth.shape} differ")
    n = float(labels.size)
    tp = rt.mul(labels, truth).sum().reshape(1)  # scale F: a label times a fixed-point 0/1
    count = labels.sum().reshape(1).share  # integers, scale 0
    predicted = rt.shared(count << np.uint64(rt.fxp.frac_bits), rt.fxp.frac_bits)
    fp, fn = predicted - tp, truth.sum().reshape(1) - tp
    cells = concatenate([tp, fp, fn, n - tp - fp - fn])
    small = compare.ltz(rt, cells - float(min_cell_size))  # 4 bits, scale 0
    keep = 1 - small
    pair = rt.mul(keep[0:2], keep[2:4])
    none_small = rt.mul(pair[0:1], pair[1:2])  # 1 iff every cell is large enough
    factor = concatenate([none_small] * 4)
    # cells where none is small, else -1: (cells + 1) * none_small - 1
    return rt.mul(factor, cells + 1.0) - 1.0


def _held(shared: Sequence[SharedTensor | None], party: int) -> SharedTensor:
    """The tensor ``party`` shared in ``input_each``; every party given a shape has one."""
    tensor = shared[party]
    if tensor is None:
        raise ValueError(f"party {party} shared no input")
    return tensor


def _score(
    rt: Runtime,
    z: np.ndarray,
    probabilities: bool,
    reveal: Callable[[SharedTensor], np.ndarray | None],
) -> tuple[SharedTensor, dict[str, np.ndarray | None]]:
    """Shared labels of every logit in z (shares with F + WEIGHT_BITS fractional bits), and
    what ``reveal`` opened of them (and of the probabilities)."""
    labels = compare.ltz(rt, rt.shared(rt.ring.neg(z), 0))  # exact: no truncation first
    opened = {"labels": reveal(labels)}
    if probabilities:
        (dropped,) = drive(rt, truncations(rt, [z.reshape(-1)], [WEIGHT_BITS]), "truncation")
        logits = rt.shared(dropped.reshape(z.shape), rt.fxp.frac_bits)
        opened["probabilities"] = reveal(approx.sigmoid(rt, logits))
    return labels, opened


LABEL_ROUNDS = 11
"""Rounds of :func:`infer` for labels: product 2, comparison 8, reveal 1."""

PROBABILITY_ROUNDS = 10
"""Rounds probabilities add: truncation 1, sigmoid 8, reveal 1."""


def infer(
    rt: Runtime,
    owner: int,
    model: LogisticModel | None,
    hospitals: Sequence[int],
    rows: Sequence[int],
    features: np.ndarray | None,
    n_features: int,
    *,
    probabilities: bool = False,
    truth: bool = False,
    min_cell_size: int = 5,
) -> tuple[dict[str, np.ndarray] | None, SharedTensor | None]:
    """Row split, run at every party; a hospital gets {"labels", ["probabilities"]} for its rows.

    With ``truth``, each hospital's ``features`` carry one more, last column
    of 0/1 labels, and the second result is the shared confusion table of
    :func:`confusion` over all rows (None otherwise), for the caller to open.
    """
    if len(hospitals) != len(rows):
        raise ValueError("give one row count per hospital")
    mine: np.ndarray | list[np.ndarray] | None = None
    bias = truth_share = None
    if rt.party == owner:
        weights, bias = _owner_weights(rt, model, n_features)
        mine = [weights] * len(hospitals)
    elif rt.party in hospitals:
        block = _local_block(features, n_features + int(truth), "features")
        if truth:
            _check_truth(block[:, -1])
            truth_share = block[:, -1:]
        mine = rt.encode(block[:, :n_features])
    truths = None
    if truth:  # the label column is shared first: the confusion table needs it
        shapes: list[tuple[int, ...] | None] = [None] * rt.n_parties
        for h, n in zip(hospitals, rows, strict=True):
            shapes[h] = (n, 1)
        shared = rt.input_each(truth_share, shapes)
        truths = concatenate([_held(shared, h) for h in hospitals])
    z = _logits(
        rt,
        owner,
        hospitals,
        [(n, n_features, 1) for n in rows],
        mine,
        bias,
        lambda blocks: np.concatenate(blocks),
    )
    labels, opened = _score(rt, z, probabilities, lambda t: rt.open_parts(t, hospitals, rows))
    cells = None if truths is None else confusion(rt, labels, truths, min_cell_size)
    if rt.party not in hospitals:
        return None, cells
    return {k: v.reshape(-1) for k, v in opened.items() if v is not None}, cells


def infer_columns(
    rt: Runtime,
    owner: int,
    model: LogisticModel | None,
    holders: Sequence[int],
    columns: Sequence[Sequence[int]],
    n_rows: int,
    features: np.ndarray | None,
    recipients: Sequence[int],
    *,
    probabilities: bool = False,
    truth_holder: int | None = None,
    min_cell_size: int = 5,
) -> tuple[dict[str, np.ndarray] | None, SharedTensor | None]:
    """Column split, run at every party: holder k has the model's features ``columns[k]``.

    Every holder passes its ``n_rows`` rows in the job's patient order; the
    ``truth_holder`` (if any) appends a last column of 0/1 labels. Every
    party in ``recipients`` gets {"labels", ["probabilities"]} for all rows;
    the second result is the shared confusion table (None without truth).
    """
    if len(holders) != len(columns):
        raise ValueError("give the model's feature indices for every holder")
    order = [i for held in columns for i in held]
    if sorted(order) != list(range(len(order))):
        raise ShapeMismatchError("the holders' columns must cover every model feature once")
    if truth_holder is not None and truth_holder not in holders:
        raise ValueError("the label holder must be one of the holders")
    mine: np.ndarray | list[np.ndarray] | None = None
    bias = truth_share = None
    if rt.party == owner:
        weights, bias = _owner_weights(rt, model, len(order))
        mine = [weights[list(held)] for held in columns]
    elif rt.party in holders:
        width = len(columns[holders.index(rt.party)])
        block = _local_block(features, width + int(rt.party == truth_holder), "features")
        if rt.party == truth_holder:
            _check_truth(block[:, -1])
            truth_share = block[:, -1:]
        mine = rt.encode(block[:, :width])
    truths = None
    if truth_holder is not None:  # the label column is shared first
        shapes: list[tuple[int, ...] | None] = [None] * rt.n_parties
        shapes[truth_holder] = (n_rows, 1)
        truths = _held(rt.input_each(truth_share, shapes), truth_holder)
    z = _logits(
        rt,
        owner,
        holders,
        [(n_rows, len(held), 1) for held in columns],
        mine,
        bias,
        lambda blocks: functools.reduce(rt.ring.add, blocks),
    )
    labels, opened = _score(rt, z, probabilities, lambda t: rt.open(t, to=list(recipients)))
    cells = None if truths is None else confusion(rt, labels, truths, min_cell_size)
    if rt.party not in recipients:
        return None, cells
    return {k: v.reshape(-1) for k, v in opened.items() if v is not None}, cells


def _name(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _names(value: object) -> tuple[str, ...] | None:
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        return None
    return tuple(value) if all(_name(v) for v in value) else None


@dataclass(frozen=True)
class _InferenceParams(Params):
    """What both inference jobs take: the model owner, the model's features, the metrics' m."""

    model_owner: str
    features: tuple[str, ...]
    label_column: str | None = None
    min_cell_size: int = 5

    def __post_init__(self) -> None:
        if not _name(self.model_owner):
            raise self.invalid("model_owner", "must name the party that holds the model")
        features = _names(self.features)
        if features is None or len(set(features)) != len(features):
            raise self.invalid("features", "must list the model's distinct feature names")
        object.__setattr__(self, "features", features)
        if self.label_column is not None and not _name(self.label_column):
            raise self.invalid("label_column", "must name a 0/1 column")
        if not is_integer(self.min_cell_size) or self.min_cell_size < 1:
            raise self.invalid("min_cell_size", "must be a positive integer")
        object.__setattr__(self, "min_cell_size", int(self.min_cell_size))

    def _check_parties(self, parties: Sequence[str], holders: Sequence[str]) -> None:
        if self.model_owner not in parties:
            raise self.invalid("model_owner", "must be a party of the job")
        if self.model_owner in holders:
            raise self.invalid("model_owner", "must not also hold features")
        outside = [h for h in holders if h not in parties]
        if outside:
            raise self.error(f"are not parties of the job: {outside}", "hospitals")

    def _check_selection(
        self, selections: Mapping[str, Sequence[str]], party: str, expected: Sequence[str]
    ) -> None:
        if tuple(selections.get(party, ())) != tuple(expected):
            raise self.error(f"of {party} must be {list(expected)}", "columns")


@dataclass(frozen=True)
class RowInferenceParams(_InferenceParams):
    """Row split: ``rows`` declares each scoring hospital's row count (public).

    Every hospital selects the ``features``, then ``label_column`` if given.
    """

    rows: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        rows = self.rows
        if not isinstance(rows, Mapping) or not rows:
            raise self.invalid("rows", "must give each scoring hospital's row count")
        if not all(_name(h) and is_integer(n) and n >= 0 for h, n in rows.items()):
            raise self.invalid("rows", "must map hospital names to non-negative row counts")
        object.__setattr__(self, "rows", {h: int(n) for h, n in rows.items()})

    @property
    def hospitals(self) -> list[str]:
        """The scoring hospitals, sorted."""
        return sorted(self.rows or {})

    @property
    def columns(self) -> tuple[str, ...]:
        """What every hospital selects: the features, then the label column if any."""
        return self.features + ((self.label_column,) if self.label_column is not None else ())

    def outputs(self, probabilities: bool, metrics_to: Sequence[str]) -> dict[str, list[str]]:
        """Labels (and probabilities) to the hospitals; metrics to ``metrics_to``."""
        outputs = {"labels": self.hospitals}
        if probabilities:
            outputs["probabilities"] = self.hospitals
        if self.label_column is not None:
            outputs["metrics"] = list(metrics_to)
        return outputs

    def check_inputs(self, parties: Sequence[str], selections: Mapping[str, Sequence[str]]) -> None:
        self._check_parties(parties, self.hospitals)
        for hospital in self.hospitals:
            self._check_selection(selections, hospital, self.columns)


@dataclass(frozen=True)
class ColumnInferenceParams(_InferenceParams):
    """Column split: ``holders`` maps each hospital to the features it holds.

    Every holder selects ``id_column`` (a study pseudonym) and its features;
    ``patients`` gives the row order; the ``label_holder`` also selects
    ``label_column`` last.
    """

    holders: Mapping[str, tuple[str, ...]] | None = None
    id_column: str | None = None
    patients: tuple[int | float, ...] = ()
    label_holder: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        holders = self.holders
        if not isinstance(holders, Mapping) or not holders:
            raise self.invalid("holders", "must map each hospital to the features it holds")
        held = {str(h): _names(cols) for h, cols in holders.items()}
        if any(cols is None for cols in held.values()):
            raise self.invalid("holders", "must give each hospital a list of feature names")
        order = [c for cols in held.values() for c in cols or ()]
        if sorted(order) != sorted(self.features):
            raise self.invalid("holders", "must hold every model feature exactly once")
        object.__setattr__(self, "holders", held)
        if not _name(self.id_column):
            raise self.invalid("id_column", "must name the study pseudonym column")
        patients = self.patients
        if isinstance(patients, str) or not isinstance(patients, list | tuple):
            raise self.invalid("patients", "must list the patients' pseudonyms in row order")
        if not all(is_number(v) for v in patients) or len(set(patients)) != len(patients):
            raise self.invalid("patients", "must list distinct numeric pseudonyms")
        object.__setattr__(self, "patients", tuple(plain_number(v) for v in patients))
        if (self.label_holder is None) != (self.label_column is None):
            raise self.invalid("label_holder", "and params.label_column go together")
        if self.label_holder is not None and self.label_holder not in held:
            raise self.invalid("label_holder", "must be one of the holders")

    @property
    def holder_names(self) -> list[str]:
        """The feature holders, sorted."""
        return sorted(self.holders or {})

    def parties(self) -> list[str]:
        """The job's parties: the holders and the model owner, sorted."""
        return sorted({*self.holder_names, self.model_owner})

    def columns(self, holder: str) -> tuple[str, ...]:
        """What ``holder`` selects: the pseudonym, its features, the label column if it holds it."""
        label = (self.label_column,) if holder == self.label_holder else ()
        return (str(self.id_column), *(self.holders or {})[holder], *label)

    def outputs(
        self, recipients: Sequence[str], probabilities: bool, metrics_to: Sequence[str]
    ) -> dict[str, list[str]]:
        """Labels (and probabilities) to ``recipients`` (parties of the job); metrics as asked."""
        outside = [r for r in recipients if r not in self.parties()]
        if outside:
            raise self.error(f"must be parties of the job, not {outside}", "outputs.labels")
        outputs = {"labels": list(recipients)}
        if probabilities:
            outputs["probabilities"] = list(recipients)
        if self.label_holder is not None:
            outputs["metrics"] = list(metrics_to)
        return outputs

    def check_inputs(self, parties: Sequence[str], selections: Mapping[str, Sequence[str]]) -> None:
        self._check_parties(parties, self.holder_names)
        for holder in self.holder_names:
            self._check_selection(selections, holder, self.columns(holder))


def _min_cell_size(ctx: JobContext, params: _InferenceParams) -> int:
    """The job's minimum cell size; a party whose own policy asks for more refuses the job."""
    m = params.min_cell_size
    if m < ctx.min_cell_size:
        raise ValueError(
            f"the job's minimum cell size {m} is below {ctx.party}'s policy {ctx.min_cell_size}"
        )
    return m


def _check_model(model: LogisticModel | None, features: tuple[str, ...]) -> None:
    if model is not None and tuple(model.feature_names) != features:
        raise ShapeMismatchError("the model's feature names differ from the job's features")


def logistic_inference(rt: Runtime, ctx: JobContext) -> Outcome:
    """Row split as a job: labels delivered to each hospital, metrics returned for the recipients.

    Parameters: :class:`RowInferenceParams`. Reveals to each hospital its own
    rows' labels (and probabilities only if the job's flag asks for them);
    with a label column, the confusion counts (or all -1) to the job's
    ``metrics`` recipients.
    """
    params = RowInferenceParams.from_mapping(ctx.params)
    params.check_inputs(ctx.parties, ctx.selections)
    names = ctx.parties
    owner = names.index(params.model_owner)
    hospitals = [names.index(h) for h in params.hospitals]
    counts = [(params.rows or {})[h] for h in params.hospitals]
    m = _min_cell_size(ctx, params)
    for output in ("labels", "probabilities") if ctx.reveal_probabilities else ("labels",):
        if set(ctx.recipients(output)) != set(hospitals):
            raise JobParamsError(f"the job's {output} must go to exactly the scoring hospitals")
    model = ctx.model if rt.party == owner else None
    _check_model(model, params.features)
    got, cells = infer(
        rt,
        owner,
        model,
        hospitals,
        counts,
        ctx.values if rt.party in hospitals else None,
        len(params.features),
        probabilities=ctx.reveal_probabilities,
        truth=params.label_column is not None,
        min_cell_size=m,
    )
    return Outcome({} if cells is None else {"metrics": cells}, got or {})


def align(ids: np.ndarray, patients: Sequence[float], party: str) -> np.ndarray:
    """Row indices of ``patients`` (pseudonyms) in a holder's ``ids`` column, in job order."""
    ids = np.asarray(ids, dtype=np.float64)
    if np.unique(ids).size != ids.size:
        raise AlignmentError(f"{party}: the patient pseudonym column has duplicate values")
    order = np.argsort(ids)
    wanted = np.asarray(patients, dtype=np.float64)
    at = np.searchsorted(ids, wanted, sorter=order)
    found = (at < ids.size) & (ids[order[np.minimum(at, ids.size - 1)]] == wanted)
    if not np.all(found):
        raise AlignmentError(
            f"{party}: {int((~found).sum())} of the job's {wanted.size} patients "
            "are not in its rows"
        )
    return order[at]


def logistic_inference_columns(rt: Runtime, ctx: JobContext) -> Outcome:
    """Column split as a job: every row's label to the named parties, metrics for the recipients.

    Parameters: :class:`ColumnInferenceParams`. The labels (and probabilities
    if the job's flag asks for them) go to the recipients the job's
    ``outputs`` name for them, and to no one else. Reveals, with a label
    holder, the confusion counts (or all -1) to the ``metrics`` recipients.
    """
    params = ColumnInferenceParams.from_mapping(ctx.params)
    params.check_inputs(ctx.parties, ctx.selections)
    names = ctx.parties
    owner = names.index(params.model_owner)
    holders = params.holder_names
    held = params.holders or {}
    columns = [[params.features.index(c) for c in held[h]] for h in holders]
    m = _min_cell_size(ctx, params)
    recipients = ctx.recipients("labels")
    if ctx.reveal_probabilities and set(ctx.recipients("probabilities")) != set(recipients):
        raise JobParamsError("the job's probabilities must go to the recipients of its labels")
    model = ctx.model if rt.party == owner else None
    _check_model(model, params.features)
    me = names[rt.party]
    block = None
    if me in held:
        block = ctx.values[align(ctx.values[:, 0], params.patients, me), 1:]
    got, cells = infer_columns(
        rt,
        owner,
        model,
        [names.index(h) for h in holders],
        columns,
        len(params.patients),
        block,
        recipients,
        probabilities=ctx.reveal_probabilities,
        truth_holder=None if params.label_holder is None else names.index(params.label_holder),
        min_cell_size=m,
    )
    return Outcome({} if cells is None else {"metrics": cells}, got or {})


ROW_SPLIT = ProtocolSpec(
    "logistic-inference",
    "4",
    logistic_inference,
    ("labels", "probabilities", "metrics"),
    "each hospital's own rows' labels (and probabilities if the job says so), to it only; "
    "with a label column, the confusion counts or 'suppressed' to the metrics recipients",
    params=RowInferenceParams,
    scope="model-inference",
)
COLUMN_SPLIT = ProtocolSpec(
    "logistic-inference-columns",
    "3",
    logistic_inference_columns,
    ("labels", "probabilities", "metrics"),
    "every aligned row's label (and probabilities if the job says so) to the recipients "
    "the job's outputs name; with a label holder, the confusion counts or 'suppressed' to "
    "the metrics recipients",
    params=ColumnInferenceParams,
    scope="model-inference",
)
PROTOCOLS = (ROW_SPLIT, COLUMN_SPLIT)
