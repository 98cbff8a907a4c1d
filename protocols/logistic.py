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
   (w / scale, b - sum(w mean / scale)) and every hospital shares its rows,
   all in one round (``input_each``). Folded weights of features with a
   large scale are tiny (1/570 for a tumour's area), so the owner shares
   them with 32 fractional bits instead of F; the bias with F.
2. The logits X @ w + b for all rows at once: one Beaver matrix product in
   the ring (1 round) and one truncation by 32 bits (1 round). Range: the sum
   of |x_j w_j| must stay below 2^14 (x with F = 16 and w with 32 fractional
   bits fill 62 bits), far above any useful logit.
3. Labels by one exact batched comparison, [-logit < 0] (8 rounds), and, if
   asked, probabilities by the 8-round sigmoid of ``smpc.approx``.
4. One round reveals each hospital's block of rows to that hospital only
   (row split) or all rows to the named parties (column split).
5. Metrics: TP = sum(label x truth) (1 round), the other cells by sums; one
   batched comparison of the four cells with the minimum (8 rounds); whether
   any is small (2 rounds) and the cells or -1 (1 round).

Rounds: 12 for labels, 21 with probabilities (the sigmoid runs after the
comparison and its reveal), 12 more for metrics. Features are range-checked
when they are encoded; a NaN or an out-of-range value fails the job before
any round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from protocols.model import LogisticModel
from protocols.registry import JobContext, JobParamsError, ProtocolSpec
from smpc import approx, compare
from smpc.errors import ShapeMismatchError, SMPCError
from smpc.runtime import Runtime
from smpc.shares import SharedTensor, concatenate
from smpc.steps import drive, truncations

WEIGHT_BITS = 32  # fractional bits of the folded weights, shared as integers
METRICS_ROUNDS = 12
SUPPRESSED = -1.0
"""What every confusion cell reads when any cell is below the minimum cell size."""


class AlignmentError(SMPCError, ValueError):
    """A column-split job's patient order does not match a holder's rows."""


def _owner_block(rt: Runtime, model: LogisticModel | None, order: Sequence[int]) -> np.ndarray:
    """The owner's input: folded weights (in ``order``, WEIGHT_BITS) and the bias, as a column."""
    if model is None:
        raise ValueError("the model owner must pass its model")
    if len(model.feature_names) != len(order):
        raise ShapeMismatchError(
            f"the model has {len(model.feature_names)} features, the job declares {len(order)}"
        )
    weights, bias = model.folded()
    # Encoded with F fractional bits, w * 2^(WEIGHT_BITS - F) is w with WEIGHT_BITS.
    extra = 2.0 ** (WEIGHT_BITS - rt.fxp.frac_bits)
    return np.concatenate([weights[list(order)] * extra, [bias]]).reshape(-1, 1)


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


def _logits(rt: Runtime, x: SharedTensor, wb: SharedTensor) -> SharedTensor:
    """x @ w + b for x with F and w with WEIGHT_BITS fractional bits; 2 rounds."""
    n_features = x.shape[1]
    product = rt.matmul(rt.shared(x.share, 0), rt.shared(wb[:n_features].share, 0))
    (dropped,) = drive(
        rt, truncations(rt, [product.share.reshape(-1)], [WEIGHT_BITS]), "truncation"
    )
    bias = wb[n_features:].reshape(1, 1)
    return rt.shared(dropped.reshape(product.shape), rt.fxp.frac_bits) + bias


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
    x: SharedTensor,
    wb: SharedTensor,
    probabilities: bool,
    reveal: Callable[[SharedTensor], np.ndarray | None],
) -> tuple[SharedTensor, dict[str, np.ndarray | None]]:
    """Shared labels of every row of x, and what ``reveal`` opened of them (and probabilities)."""
    logits = _logits(rt, x, wb)
    labels = compare.ltz(rt, -logits)
    opened = {"labels": reveal(labels)}
    if probabilities:
        opened["probabilities"] = reveal(approx.sigmoid(rt, logits))
    return labels, opened


LABEL_ROUNDS = 12
"""Rounds of :func:`infer` for labels: input 1, product 2, comparison 8, reveal 1."""


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
    width = n_features + int(truth)
    shapes: list[tuple[int, ...] | None] = [None] * rt.n_parties
    for h, n in zip(hospitals, rows, strict=True):
        shapes[h] = (n, width)
    shapes[owner] = (n_features + 1, 1)
    mine = None
    if rt.party == owner:
        mine = _owner_block(rt, model, range(n_features))
    elif rt.party in hospitals:
        mine = _local_block(features, width, "features")
        if truth:
            _check_truth(mine[:, -1])
    shared = rt.input_each(mine, shapes)
    x = concatenate([_held(shared, h) for h in hospitals])
    labels, opened = _score(
        rt,
        x[:, :n_features],
        _held(shared, owner),
        probabilities,
        lambda t: rt.open_parts(t, hospitals, rows),
    )
    cells = confusion(rt, labels, x[:, n_features:], min_cell_size) if truth else None
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
    shapes: list[tuple[int, ...] | None] = [None] * rt.n_parties
    held_width = {
        h: len(held) + int(h == truth_holder) for h, held in zip(holders, columns, strict=True)
    }
    for h, w in held_width.items():
        shapes[h] = (n_rows, w)
    shapes[owner] = (len(order) + 1, 1)
    mine = None
    if rt.party == owner:
        mine = _owner_block(rt, model, order)
    elif rt.party in holders:
        mine = _local_block(features, held_width[rt.party], "features")
        if rt.party == truth_holder:
            _check_truth(mine[:, -1])
    shared = rt.input_each(mine, shapes)
    blocks = [_held(shared, h) for h in holders]
    widths = [len(held) for held in columns]
    x = concatenate([b[:, :w] for b, w in zip(blocks, widths, strict=True)], axis=1)
    labels, opened = _score(
        rt, x, _held(shared, owner), probabilities, lambda t: rt.open(t, to=list(recipients))
    )
    cells = None
    if truth_holder is not None:
        cells = confusion(rt, labels, _held(shared, truth_holder)[:, -1:], min_cell_size)
    if rt.party not in recipients:
        return None, cells
    return {k: v.reshape(-1) for k, v in opened.items() if v is not None}, cells


def _min_cell_size(ctx: JobContext) -> int:
    """The job's minimum cell size; a party whose own policy asks for more refuses the job."""
    m = int(ctx.params.get("min_cell_size", 5))
    if m < ctx.min_cell_size:
        raise ValueError(
            f"the job's minimum cell size {m} is below {ctx.party}'s policy {ctx.min_cell_size}"
        )
    return m


def _check_model(ctx: JobContext, model: LogisticModel | None, features: tuple[str, ...]) -> None:
    if model is not None and tuple(model.feature_names) != features:
        raise ShapeMismatchError("the model's feature names differ from the job's features")


def logistic_inference(rt: Runtime, ctx: JobContext) -> dict[str, SharedTensor]:
    """Row split as a job: labels delivered to each hospital, metrics returned for the recipients.

    ``params``: ``model_owner`` (a party name), ``rows`` ({hospital: row
    count}, declared public), ``features`` (the model's feature names, in
    order); optional ``label_column`` (every hospital then selects it after
    the features, and the confusion table is the ``metrics`` output) and
    ``min_cell_size`` (default 5; at least every party's policy).
    Probabilities are revealed only if the job's flag asks for them.
    """
    params = ctx.params
    names = ctx.parties
    owner = names.index(str(params["model_owner"]))
    rows = {str(h): int(n) for h, n in dict(params["rows"]).items()}
    hospitals = [names.index(h) for h in sorted(rows)]
    counts = [rows[names[h]] for h in hospitals]
    features = tuple(str(f) for f in params["features"])
    label = params.get("label_column")
    m = _min_cell_size(ctx)
    for output in ("labels", "probabilities") if ctx.reveal_probabilities else ("labels",):
        if set(ctx.recipients(output)) != set(hospitals):
            raise JobParamsError(f"the job's {output} must go to exactly the scoring hospitals")
    model = ctx.model if rt.party == owner else None
    _check_model(ctx, model, features)
    expected = features + ((str(label),) if label is not None else ())
    if rt.party in hospitals and ctx.columns != expected:
        raise ShapeMismatchError("this hospital's columns differ from the model's features")
    got, cells = infer(
        rt,
        owner,
        model,
        hospitals,
        counts,
        ctx.values if rt.party in hospitals else None,
        len(features),
        probabilities=ctx.reveal_probabilities,
        truth=label is not None,
        min_cell_size=m,
    )
    if got is not None:
        ctx.delivered.update(got)
    return {} if cells is None else {"metrics": cells}


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


def logistic_inference_columns(rt: Runtime, ctx: JobContext) -> dict[str, SharedTensor]:
    """Column split as a job: every row's label to the named parties, metrics for the recipients.

    ``params``: ``model_owner``; ``features`` (the model's names, in order);
    ``holders`` ({hospital: the feature names it holds}); ``id_column`` (a
    study pseudonym column every holder selects first) and ``patients``
    (pseudonyms, the row order); optional ``label_holder`` with
    ``label_column`` (selected last) for the ``metrics`` output, and
    ``min_cell_size``. The labels (and probabilities) go to the recipients the
    job's ``outputs`` name for them, and to no one else.
    """
    params = ctx.params
    names = ctx.parties
    owner = names.index(str(params["model_owner"]))
    features = tuple(str(f) for f in params["features"])
    held = {str(h): [str(c) for c in cols] for h, cols in dict(params["holders"]).items()}
    holders = sorted(held)
    unknown = [c for cols in held.values() for c in cols if c not in features]
    if unknown:
        raise ShapeMismatchError(f"holders name columns the model does not have: {unknown}")
    columns = [[features.index(c) for c in held[h]] for h in holders]
    label_holder = params.get("label_holder")
    label = params.get("label_column")
    patients = list(params["patients"])
    m = _min_cell_size(ctx)
    recipients = ctx.recipients("labels")
    if ctx.reveal_probabilities and set(ctx.recipients("probabilities")) != set(recipients):
        raise JobParamsError("the job's probabilities must go to the recipients of its labels")
    model = ctx.model if rt.party == owner else None
    _check_model(ctx, model, features)
    me = names[rt.party]
    block = None
    if me in held:
        expected = (
            str(params["id_column"]),
            *held[me],
            *([str(label)] if me == label_holder else []),
        )
        if ctx.columns != expected:
            raise ShapeMismatchError(f"{me} selected {ctx.columns}, the job expects {expected}")
        block = ctx.values[align(ctx.values[:, 0], patients, me), 1:]
    got, cells = infer_columns(
        rt,
        owner,
        model,
        [names.index(h) for h in holders],
        columns,
        len(patients),
        block,
        recipients,
        probabilities=ctx.reveal_probabilities,
        truth_holder=None if label_holder is None else names.index(str(label_holder)),
        min_cell_size=m,
    )
    if got is not None:
        ctx.delivered.update(got)
    return {} if cells is None else {"metrics": cells}


PROTOCOLS = (
    ProtocolSpec(
        "logistic-inference",
        "3",
        logistic_inference,
        ("labels", "probabilities", "metrics"),
        "each hospital's own rows' labels (and probabilities if the job says so), to it only; "
        "with a label column, the confusion counts or 'suppressed' to the metrics recipients",
        scope="model-inference",
    ),
    ProtocolSpec(
        "logistic-inference-columns",
        "2",
        logistic_inference_columns,
        ("labels", "probabilities", "metrics"),
        "every aligned row's label (and probabilities if the job says so) to the recipients "
        "the job's outputs name; with a label holder, the confusion counts or 'suppressed' to "
        "the metrics recipients",
        scope="model-inference",
    ),
)
