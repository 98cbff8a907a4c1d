"""Secure logistic-regression inference against the plaintext model on the breast cancer data."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from protocols.context import JobContext, JobParamsError
from protocols.logistic import (
    LABEL_ROUNDS,
    METRICS_ROUNDS,
    PROBABILITY_ROUNDS,
    AlignmentError,
    ColumnInferenceParams,
    RowInferenceParams,
    align,
    infer,
    infer_columns,
    logistic_inference_columns,
)
from protocols.model import LogisticModel, train
from smpc import compare
from smpc.errors import FixedPointRangeError, ShapeMismatchError
from smpc.local import LocalFederation

DATA = Path(__file__).resolve().parents[2] / "parties" / "local" / "data" / "breast_cancer.csv"
HOSPITALS = [0, 1, 2]
OWNER = 3


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, list[str]]:
    with DATA.open() as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    names = header[2:]
    x = np.array([[float(v) for v in r[2:]] for r in body])
    y = np.array([1.0 if r[1] == "M" else 0.0 for r in body])
    return x, y, names


@pytest.fixture(scope="module")
def model(data) -> LogisticModel:
    x, y, names = data
    return train(x, y, names, l2=1.0)


def _run(model, parts, *, probabilities: bool = False, n_features: int = 30):
    rows = [len(p) for p in parts]
    inputs = [parts[0], parts[1], parts[2], model]

    def fn(rt, mine):
        is_owner = rt.party == OWNER
        return infer(
            rt,
            OWNER,
            mine if is_owner else None,
            HOSPITALS,
            rows,
            None if is_owner else mine,
            n_features,
            probabilities=probabilities,
        )[0]

    return LocalFederation(4).run(fn, inputs=inputs)


def test_secure_labels_and_probabilities_match_the_plaintext_model(data, model) -> None:
    x, y, _ = data
    parts = [x[i::3] for i in range(3)]  # rows split disjointly over 3 hospitals
    res = _run(model, parts, probabilities=True)
    assert res.results[OWNER] is None  # the model owner learns nothing
    for h in HOSPITALS:
        logits = model.logits(parts[h])
        plain_labels = (logits > 0).astype(int)
        plain_prob = 1 / (1 + np.exp(-logits))
        got = res.results[h]
        clear = np.abs(logits) > 0.01
        np.testing.assert_array_equal(got["labels"][clear], plain_labels[clear])
        assert np.abs(got["probabilities"] - plain_prob).max() <= 1e-3
    assert res.rounds[0] == LABEL_ROUNDS + PROBABILITY_ROUNDS
    accuracy = np.mean(
        np.concatenate([res.results[h]["labels"] for h in HOSPITALS])
        == np.concatenate([y[i::3] for i in range(3)])
    )
    assert accuracy > 0.95  # the trained model itself is good on its training data


def test_labels_only_by_default_in_eleven_rounds_equal_the_plaintext_labels_on_every_row(
    data, model
) -> None:
    """The sign is compared before any truncation: every row's label is the plaintext one."""
    x, _, _ = data
    parts = [x[i::3] for i in range(3)]
    res = _run(model, parts)
    for h in HOSPITALS:
        assert set(res.results[h]) == {"labels"}
        np.testing.assert_array_equal(res.results[h]["labels"], model.logits(parts[h]) > 0)
    assert res.rounds == [LABEL_ROUNDS] * 4 and LABEL_ROUNDS == 11


def test_a_hospital_sends_its_rows_masked_to_the_model_owner_only(data, model) -> None:
    """A hospital sends 30 words per own row (to the owner); the owner 30 words per hospital.

    Every party sends the same comparison messages; the reveal costs each
    party one word per row of every other hospital's block.
    """
    x, _, _ = data
    parts = [x[i::3] for i in range(3)]
    res = _run(model, parts)
    n = len(x)
    comparison = res.bytes_sent[OWNER] - 8 * 30 * 3 - 8 * n
    # per peer: 39.375 bytes per element, and each tree level rounded up to whole words
    assert 3 * 39 * n <= comparison <= 3 * (compare.BYTES_PER_ELEMENT["ltz"] * n + 128)
    for h in HOSPITALS:
        rows = len(parts[h])
        assert res.bytes_sent[h] == 8 * 30 * rows + comparison + 8 * (n - rows)


def test_a_feature_count_that_does_not_match_the_model_is_refused(data, model) -> None:
    x, _, _ = data
    with pytest.raises(ShapeMismatchError):
        _run(model, [x[i::3, :29] for i in range(3)], n_features=30)


def test_nan_in_features_is_a_clear_error_and_reveals_nothing(data, model) -> None:
    x, _, _ = data
    parts = [x[i::3].copy() for i in range(3)]
    parts[1][4, 7] = np.nan
    with pytest.raises(FixedPointRangeError, match="row 4"):
        _run(model, parts)


def _confusion(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The plaintext oracle: [TP, FP, FN, TN]."""
    p, t = predicted.astype(bool), truth.astype(bool)
    return np.array([(p & t).sum(), (p & ~t).sum(), (~p & t).sum(), (~p & ~t).sum()], float)


def _run_metrics(model, parts, truths, min_cell_size: int):
    """Row split with a label column at every hospital; the table opened to the model owner."""
    rows = [len(p) for p in parts]
    inputs = [np.column_stack([p, t]) for p, t in zip(parts, truths, strict=True)] + [model]

    def fn(rt, mine):
        is_owner = rt.party == OWNER
        got, cells = infer(
            rt,
            OWNER,
            mine if is_owner else None,
            HOSPITALS,
            rows,
            None if is_owner else mine,
            30,
            truth=True,
            min_cell_size=min_cell_size,
        )
        return got, rt.open(cells, to=[OWNER])

    return LocalFederation(4).run(fn, inputs=inputs)


def test_confusion_counts_match_the_plaintext_labels(data, model) -> None:
    x, y, _ = data
    parts, truths = [x[i::3] for i in range(3)], [y[i::3] for i in range(3)]
    plain = np.concatenate([(model.logits(p) > 0).astype(int) for p in parts])
    smallest = int(_confusion(plain, np.concatenate(truths)).min())  # 2 false positives
    res = _run_metrics(model, parts, truths, min_cell_size=smallest)
    predicted = np.concatenate([res.results[h][0]["labels"] for h in HOSPITALS])
    want = _confusion(predicted, np.concatenate(truths))
    np.testing.assert_array_equal(res.results[OWNER][1], want)
    assert all(res.results[h][1] is None for h in HOSPITALS)  # only the recipient learns it
    assert res.rounds[0] == LABEL_ROUNDS + METRICS_ROUNDS + 1  # labels, metrics, opening


def test_a_cell_below_the_minimum_suppresses_the_whole_table(data, model) -> None:
    x, y, _ = data
    parts, truths = [x[i::3] for i in range(3)], [y[i::3] for i in range(3)]
    predicted = np.concatenate([(model.logits(p) > 0).astype(int) for p in parts])
    smallest = _confusion(predicted, np.concatenate(truths)).min()
    res = _run_metrics(model, parts, truths, min_cell_size=int(smallest) + 1)
    np.testing.assert_array_equal(res.results[OWNER][1], [-1.0] * 4)


def test_a_label_column_that_is_not_zero_or_one_is_refused(data, model) -> None:
    x, y, _ = data
    truths = [y[i::3].copy() for i in range(3)]
    truths[2][0] = 0.5
    with pytest.raises(ValueError, match="only 0 and 1"):
        _run_metrics(model, [x[i::3] for i in range(3)], truths, 5)


# -- column split ----------------------------------------------------------------------
SPLIT = [list(range(0, 10)), list(range(10, 18)), list(range(18, 30))]  # features by hospital


def _run_columns(model, x, y, *, probabilities=False, columns=SPLIT):
    inputs = [x[:, columns[0]], x[:, columns[1]], np.column_stack([x[:, columns[2]], y]), model]

    def fn(rt, mine):
        is_owner = rt.party == OWNER
        got, cells = infer_columns(
            rt,
            OWNER,
            mine if is_owner else None,
            HOSPITALS,
            columns,
            len(x),
            None if is_owner else mine,
            recipients=[0],
            probabilities=probabilities,
            truth_holder=2,
            min_cell_size=2,  # the model makes 2 false positives on its training data
        )
        return got, rt.open(cells, to=[0])

    return LocalFederation(4).run(fn, inputs=inputs)


def test_column_split_labels_and_probabilities_match_the_plaintext_model(data, model) -> None:
    x, y, _ = data
    res = _run_columns(model, x, y, probabilities=True)
    logits = model.logits(x)
    got = res.results[0][0]
    clear = np.abs(logits) > 0.01
    np.testing.assert_array_equal(got["labels"][clear], (logits > 0)[clear])
    assert np.abs(got["probabilities"] - 1 / (1 + np.exp(-logits))).max() <= 1e-3
    assert all(res.results[p][0] is None for p in (1, 2, OWNER))  # only the named recipient
    np.testing.assert_array_equal(res.results[0][1], _confusion(got["labels"], y))


def test_column_split_refuses_columns_that_miss_a_feature(data, model) -> None:
    x, y, _ = data
    with pytest.raises(ShapeMismatchError, match="the model has 30 features, the job declares 29"):
        _run_columns(model, x, y, columns=[SPLIT[0], SPLIT[1], SPLIT[2][:-1]])


def test_align_orders_rows_by_the_jobs_pseudonyms_and_names_missing_ones() -> None:
    ids = np.array([30.0, 10.0, 20.0, 40.0])
    np.testing.assert_array_equal(align(ids, [20, 40, 10], "h1"), [2, 3, 1])
    with pytest.raises(AlignmentError, match="h1: 2 of the job's 3 patients"):
        align(ids, [20, 50, 60], "h1")
    with pytest.raises(AlignmentError, match="duplicate"):
        align(np.array([1.0, 1.0]), [1], "h1")


def _column_job(model, x, ids, outputs, *, probabilities: bool = False, **extra):
    """The column-split job at 2 holders and the model owner; what each party kept."""
    parties = ("alpha", "beta", "owner")
    names = list(model.feature_names)
    params = {
        "model_owner": "owner",
        "features": names,
        "holders": {"alpha": names[:10], "beta": names[10:]},
        "id_column": "id",
        "patients": [int(i) for i in ids],
        **extra,
    }
    values = {
        "alpha": np.column_stack([ids, x[:, :10]]),
        "beta": np.column_stack([ids, x[:, 10:]]),
    }
    selections = {"alpha": ("id", *names[:10]), "beta": ("id", *names[10:])}
    contexts = [
        JobContext(
            params=params,
            parties=parties,
            party=p,
            columns=selections.get(p, ()),
            values=values.get(p, np.zeros((0, 0))),
            selections=selections,
            model=model if p == "owner" else None,
            reveal_probabilities=probabilities,
            outputs=outputs,
        )
        for p in parties
    ]
    done = LocalFederation(3).run(logistic_inference_columns, inputs=contexts)
    return {ctx.party: dict(out.delivered) for ctx, out in zip(contexts, done.results, strict=True)}


def test_column_split_job_delivers_to_the_outputs_recipients_only(data, model) -> None:
    x, _, _ = data
    x, ids = x[:40], np.arange(1, 41, dtype=float)
    kept = _column_job(model, x, ids, {"labels": ("alpha",)})
    assert kept["owner"] == {} and kept["beta"] == {}
    logits = model.logits(x)
    clear = np.abs(logits) > 0.01
    np.testing.assert_array_equal(kept["alpha"]["labels"][clear], (logits > 0)[clear])


def test_column_split_probabilities_go_where_the_labels_go(data, model) -> None:
    x, _, _ = data
    with pytest.raises(ValueError, match="recipients of its labels"):
        _column_job(
            model,
            x[:20],
            np.arange(1, 21, dtype=float),
            {"labels": ("alpha",), "probabilities": ("owner",)},
            probabilities=True,
        )


def test_a_parameter_the_protocol_does_not_take_is_refused(data, model) -> None:
    x, _, _ = data
    with pytest.raises(JobParamsError, match=r"params\.recipients is not a parameter"):
        _column_job(model, x[:20], np.arange(1, 21, dtype=float), {}, recipients=["owner"])


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (
            {"holders": {"alpha": ["nope"], "beta": ["f1", "f2"]}},
            "params.holders must hold every model",
        ),
        ({"patients": [1, 1]}, "params.patients must list distinct"),
        ({"label_holder": "alpha"}, "params.label_holder and params.label_column go together"),
        ({"model_owner": "alpha"}, "params.model_owner must not also hold features"),
        ({"min_cell_size": 0}, "params.min_cell_size must be a positive integer"),
    ],
)
def test_column_split_parameters_are_checked_on_the_job_alone(changes, says) -> None:
    names = ["f0", "f1", "f2"]
    given = {
        "model_owner": "owner",
        "features": names,
        "holders": {"alpha": names[:1], "beta": names[1:]},
        "id_column": "id",
        "patients": [1, 2, 3],
        **changes,
    }
    selections = {"alpha": ("id", "f0"), "beta": ("id", "f1", "f2")}
    with pytest.raises(JobParamsError, match=re.escape(says)):
        ColumnInferenceParams.from_mapping(given).check_inputs(
            ("alpha", "beta", "owner"), selections
        )


def test_row_split_parameters_name_a_hospital_selecting_other_columns() -> None:
    params = RowInferenceParams.from_mapping(
        {"model_owner": "owner", "features": ["a", "b"], "rows": {"h1": 10, "h2": 12}}
    )
    assert params.to_mapping()["rows"] == {"h1": 10, "h2": 12}
    assert RowInferenceParams.from_mapping(params.to_mapping()) == params
    with pytest.raises(JobParamsError, match=r"columns of h2 must be \['a', 'b'\]"):
        params.check_inputs(("h1", "h2", "owner"), {"h1": ("a", "b"), "h2": ("b", "a")})
    with pytest.raises(JobParamsError, match=r"params\.rows must map hospital names"):
        RowInferenceParams.from_mapping({"model_owner": "o", "features": ["a"], "rows": {"h": -1}})
