"""Logistic-regression inference: a model owner's secret model on hospitals' secret rows.

Horizontal split: every hospital scores its own patients. Reveals to each
hospital the labels of its own rows (1 iff the logit is > 0) and, only when
asked (``probabilities=True``, flagged in the job because probabilities of 31
rows reveal the 30 weights and the bias), their probabilities. Nothing else.

Steps:

1. The model owner folds the standardisation into the model locally
   (w / scale, b - sum(w mean / scale)) and every hospital shares its rows,
   all in one round (``input_each``). Folded weights of features with a
   large scale are tiny (1/570 for a tumour's area), so the owner shares
   them with 32 fractional bits instead of F; the bias with F.
2. The logits X @ w + b for all hospitals' rows at once: one Beaver matrix
   product in the ring (1 round) and one truncation by 32 bits (1 round).
   Range: the sum of |x_j w_j| must stay below 2^14 (x with F = 16 and w
   with 32 fractional bits fill 62 bits), far above any useful logit.
3. Labels by one exact batched comparison, [-logit < 0] (8 rounds), and, if
   asked, probabilities by the 8-round sigmoid of ``smpc.approx``.
4. One round reveals each hospital's block of rows to that hospital only.

Rounds: 12 for labels, 21 with probabilities (the sigmoid runs after the
comparison and its reveal). Features are range-checked when they are
encoded; a NaN or an out-of-range value fails the job before any round.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protocols.model import LogisticModel
from protocols.registry import JobContext, ProtocolSpec
from smpc import approx, compare
from smpc.errors import ShapeMismatchError
from smpc.runtime import Runtime
from smpc.shares import SharedTensor, concatenate
from smpc.steps import drive, truncations

WEIGHT_BITS = 32  # fractional bits of the folded weights, shared as integers

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
) -> dict[str, np.ndarray] | None:
    """Run at every party; a hospital gets {"labels", ["probabilities"]} for its rows."""
    if len(hospitals) != len(rows):
        raise ValueError("give one row count per hospital")
    shapes: list[tuple[int, ...] | None] = [None] * rt.n_parties
    for h, n in zip(hospitals, rows, strict=True):
        shapes[h] = (n, n_features)
    shapes[owner] = (n_features + 1, 1)
    mine = None
    if rt.party == owner:
        if model is None:
            raise ValueError("the model owner must pass its model")
        if len(model.feature_names) != n_features:
            raise ShapeMismatchError(
                f"the model has {len(model.feature_names)} features, the job declares {n_features}"
            )
        weights, bias = model.folded()
        # Encoded with F fractional bits, w * 2^(WEIGHT_BITS - F) is w with WEIGHT_BITS.
        extra = 2.0 ** (WEIGHT_BITS - rt.fxp.frac_bits)
        mine = np.concatenate([weights * extra, [bias]]).reshape(-1, 1)
    elif rt.party in hospitals:
        mine = np.asarray(features, dtype=np.float64)
        if mine.ndim != 2 or mine.shape[1] != n_features:
            raise ShapeMismatchError(
                f"features have shape {mine.shape}, the model expects {n_features} columns"
            )
    shared = rt.input_each(mine, shapes)
    x = concatenate([shared[h] for h in hospitals])
    wb = shared[owner]
    # x carries F fractional bits and the weights WEIGHT_BITS: multiply them as
    # ring integers (one round), then drop WEIGHT_BITS (one round) to leave F.
    product = rt.matmul(rt.shared(x.share, 0), rt.shared(wb[:n_features].share, 0))
    (dropped,) = drive(
        rt, truncations(rt, [product.share.reshape(-1)], [WEIGHT_BITS]), "truncation"
    )
    logits = rt.shared(dropped.reshape(product.shape), rt.fxp.frac_bits) + wb[n_features:].reshape(
        1, 1
    )
    labels = compare.ltz(rt, -logits)
    result = {"labels": rt.open_parts(labels, hospitals, rows)}
    if probabilities:
        result["probabilities"] = rt.open_parts(approx.sigmoid(rt, logits), hospitals, rows)
    if rt.party not in hospitals:
        return None
    return {k: v.reshape(-1) for k, v in result.items()}


def logistic_inference(rt: Runtime, ctx: JobContext) -> dict[str, SharedTensor]:
    """The registered protocol: parameters from the job, outputs delivered to each hospital.

    ``params``: ``model_owner`` (a party name), ``rows`` ({hospital: row
    count}, declared public), ``features`` (the model's feature names, in
    order). Probabilities are revealed only if the job's flag asks for them.
    """
    params = ctx.params
    names = ctx.parties
    owner = names.index(str(params["model_owner"]))
    rows = {str(h): int(n) for h, n in dict(params["rows"]).items()}
    hospitals = [names.index(h) for h in sorted(rows)]
    counts = [rows[names[h]] for h in hospitals]
    features = tuple(str(f) for f in params["features"])
    model = ctx.model if rt.party == owner else None
    if model is not None and tuple(model.feature_names) != features:
        raise ShapeMismatchError("the model's feature names differ from the job's features")
    if rt.party in hospitals and ctx.columns != features:
        raise ShapeMismatchError("this hospital's columns differ from the model's features")
    got = infer(
        rt,
        owner,
        model,
        hospitals,
        counts,
        ctx.values if rt.party in hospitals else None,
        len(features),
        probabilities=ctx.reveal_probabilities,
    )
    if got is not None:
        ctx.delivered.update(got)
    return {}


PROTOCOLS = (
    ProtocolSpec(
        "logistic-inference",
        "1",
        logistic_inference,
        ("labels", "probabilities"),
        "each hospital's own rows' labels (and probabilities if the job says so), to it only",
    ),
)
