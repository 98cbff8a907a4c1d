"""``stats-glm`` on in-process hospitals against statsmodels' GLM on the pooled plaintext.

The oracle is statsmodels fitted to the pooled complete rows. Its default
stopping rule (deviance change below 1e-8) leaves its own standard errors
about 3e-6 from the fixed point of its iteration, which moves a p-value of
z = 6 by about 1e-4; so coefficients and standard errors are compared with
the default fit and p-values with statsmodels run to ``tol=1e-13``.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm

from protocols import glm
from protocols.disclosure import StatisticsInputError, StatisticsParamsError
from protocols.glm_fit import FitSuppressed, GLMFitError, run_local
from protocols.local_data import ColumnFacts
from protocols.statistics import contexts, opened
from protocols.synthetic import cohort
from smpc.local import LocalFederation
from smpc.runtime import dry_run
from smpc.steps import drive

DATA = Path(__file__).resolve().parents[2] / "parties" / "local" / "data" / "breast_cancer.csv"
FEATURES = [
    "mean_radius",
    "mean_texture",
    "mean_smoothness",
    "mean_symmetry",
    "mean_concave_points",
]


@pytest.fixture(scope="module")
def breast() -> tuple[np.ndarray, list[str], np.ndarray]:
    """Features and the 0/1 outcome ``malignant``, and each row's patient id."""
    with DATA.open() as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    x = np.array([[float(r[header.index(c)]) for c in FEATURES] for r in body])
    y = np.array([1.0 if r[1] == "M" else 0.0 for r in body])
    ids = np.array([int(r[0]) for r in body])
    return np.column_stack([x, y]), [*FEATURES, "malignant"], ids


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """The synthetic cohort (correlated columns, missing values) with a 0/1 ``event``."""
    data = cohort(n, seed=seed)
    age, sbp, chol, crea, cost = data.values.T
    eta = -9 + 0.04 * age + 0.03 * sbp + 0.3 * np.nan_to_num(chol, nan=5.0)
    eta = eta - 0.004 * np.nan_to_num(crea, nan=90.0) + 1e-4 * cost
    event = (np.random.default_rng(seed).random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return np.column_stack([data.values, event]), [*data.columns, "event"]


def _oracle(values: np.ndarray, columns: list[str], outcome: str, family: str, **fit_args):
    keep = ~np.isnan(values).any(axis=1)
    at = columns.index(outcome)
    x = sm.add_constant(np.delete(values[keep], at, axis=1))
    kind = sm.families.Binomial() if family == "binomial" else sm.families.Gaussian()
    return sm.GLM(values[keep, at], x, family=kind).fit(**fit_args), int((~keep).sum())


def _fit(parts, columns, outcome: str, family: str = "binomial", max_iter: int = 25, **kwargs):
    params = {"outcome": outcome, "family": family, "max_iter": max_iter}
    ctxs = contexts(parts, columns, params=params, **kwargs)
    return run_local(LocalFederation(len(parts)), ctxs)


def _compare(fit, values, columns, outcome, family) -> None:
    ref, dropped = _oracle(values, columns, outcome, family)
    tight, _ = _oracle(values, columns, outcome, family, tol=1e-13)
    assert fit.nobs == int(ref.nobs)
    assert fit.dropped == (dropped if dropped >= 5 else None)
    np.testing.assert_allclose(fit.coef, ref.params, rtol=1e-4)
    np.testing.assert_allclose(fit.bse, ref.bse, rtol=1e-4)
    np.testing.assert_allclose(fit.coef, tight.params, rtol=1e-6)
    np.testing.assert_allclose(fit.bse, tight.bse, rtol=1e-5)
    np.testing.assert_allclose(fit.tvalues, tight.tvalues, rtol=1e-5)
    np.testing.assert_allclose(fit.pvalues, tight.pvalues, rtol=1e-4, atol=1e-300)
    np.testing.assert_allclose(fit.conf_int(), tight.conf_int(), rtol=1e-5)
    np.testing.assert_allclose(fit.deviance, tight.deviance, rtol=1e-6)
    np.testing.assert_allclose(fit.null_deviance, tight.null_deviance, rtol=1e-6)
    np.testing.assert_allclose(fit.llf, tight.llf, rtol=1e-6)
    np.testing.assert_allclose(fit.aic, tight.aic, rtol=1e-6)
    np.testing.assert_allclose(fit.scale, tight.scale, rtol=1e-6)


def test_breast_cancer_logistic_fit_matches_statsmodels(breast) -> None:
    values, columns, ids = breast
    parts = [values[(ids - 1) % 3 == k] for k in range(3)]
    fit, _ = _fit(parts, columns, "malignant")
    _compare(fit, values, columns, "malignant", "binomial")
    assert fit.names == ("const", *FEATURES)
    assert fit.iterations <= 10
    assert "mean_concave_points" in fit.summary()


@pytest.mark.parametrize("hospitals", [3, 5])
@pytest.mark.parametrize(
    ("family", "outcome", "columns"),
    [
        ("binomial", "event", ["age", "systolic_bp", "cholesterol", "creatinine", "cost", "event"]),
        ("gaussian", "systolic_bp", ["age", "cholesterol", "creatinine", "cost", "systolic_bp"]),
    ],
)
def test_synthetic_hospitals_with_missing_values_match_statsmodels(
    hospitals: int, family: str, outcome: str, columns: list[str]
) -> None:
    values, names = _synthetic(5000, seed=hospitals)
    chosen = values[:, [names.index(c) for c in columns]]
    owner = np.random.default_rng(hospitals).integers(0, hospitals, len(chosen))
    parts = [chosen[owner == k] for k in range(hospitals)]
    assert np.isnan(chosen).any(axis=1).sum() > 100  # rows with a missing value are dropped
    fit, _ = _fit(parts, columns, outcome, family)
    _compare(fit, chosen, columns, outcome, family)


def test_a_text_outcome_counts_its_positive_value_as_the_event(breast) -> None:
    values, columns, ids = breast
    diagnosis = np.where(values[:, -1] == 1.0, "M", "B")
    diagnosis[[4, 40]] = ""  # a missing diagnosis drops its row
    text_values = values.copy()
    text_values[:, -1] = np.nan  # what a hospital's source gives for a text column
    names = [*FEATURES, "diagnosis"]
    owner = [(ids - 1) % 3 == k for k in range(3)]
    text = [
        {**{c: values[o, j].astype(str) for j, c in enumerate(FEATURES)}, "diagnosis": diagnosis[o]}
        for o in owner
    ]
    ctxs = contexts(
        [text_values[o] for o in owner],
        names,
        params={"outcome": "diagnosis", "positive": "M"},
        text=text,
    )
    fit, _ = run_local(LocalFederation(3), ctxs)
    kept = np.ones(len(values), dtype=bool)
    kept[[4, 40]] = False
    ref, _ = _oracle(values[kept], columns, "malignant", "binomial")
    assert fit.nobs == kept.sum()
    np.testing.assert_allclose(fit.coef, ref.params, rtol=1e-4)
    np.testing.assert_allclose(fit.bse, ref.bse, rtol=1e-4)
    with pytest.raises(StatisticsParamsError, match=r"params\.positive applies to the binomial"):
        glm.TextGLMParams(outcome="y", family="gaussian", positive="M")
    with pytest.raises(StatisticsParamsError, match="stats-glm-text fits"):
        glm.GLMParams(outcome="y", positive="M")
    with pytest.raises(StatisticsParamsError, match=r"params\.positive is required"):
        glm.TextGLMParams(outcome="y")


def test_ten_hospitals_one_of_them_empty() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 3)) * [1.0, 10.0, 100.0] + [0.0, 50.0, 1000.0]
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    y = (rng.random(3000) < 1 / (1 + np.exp(-(z @ [0.5, -1.0, 0.3] - 2.0)))).astype(float)
    values = np.column_stack([x, y])
    parts = [values[k::9] for k in range(9)] + [np.zeros((0, 4))]  # an empty hospital casts no veto
    fit, _ = _fit(parts, ["a", "b", "c", "y"], "y")
    _compare(fit, values, ["a", "b", "c", "y"], "y", "binomial")


def test_the_fit_is_a_model_for_secure_inference(breast) -> None:
    values, columns, ids = breast
    parts = [values[(ids - 1) % 3 == k] for k in range(3)]
    fit, _ = _fit(parts, columns, "malignant")
    model = fit.to_model()
    ref, _ = _oracle(values, columns, "malignant", "binomial")
    linear = sm.add_constant(values[:, :-1]) @ ref.params
    np.testing.assert_allclose(model.logits(values[:, :-1]), linear, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(model.scaler_mean, fit.center)


def test_too_few_events_in_a_class_suppress_the_fit() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 2))
    y = np.zeros(300)
    y[[3, 50, 120, 260]] = 1.0  # 4 events, below m = 5
    values = np.column_stack([x, y])
    parts = [values[k::3] for k in range(3)]
    with pytest.raises(FitSuppressed, match="suppressed"):
        _fit(parts, ["a", "b", "y"], "y")


def test_a_small_hospital_vetoes_the_fit() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 2))
    y = (rng.random(400) < 0.4).astype(float)
    values = np.column_stack([x, y])
    parts = [values[:200], values[200:397], values[397:]]  # the last holds 3 complete rows
    with pytest.raises(FitSuppressed):
        _fit(parts, ["a", "b", "y"], "y")


def test_separation_is_refused_not_a_huge_coefficient() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 2))
    y = (x[:, 0] > 0.1).astype(float)  # x0 separates the classes perfectly
    parts = [np.column_stack([x, y])[k::3] for k in range(3)]
    with pytest.raises(GLMFitError, match="separated"):
        _fit(parts, ["a", "b", "y"], "y")


def test_collinear_and_constant_columns_are_refused() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 2))
    y = (rng.random(300) < 1 / (1 + np.exp(-x[:, 0]))).astype(float)
    collinear = np.column_stack([x, 2 * x[:, 0] - x[:, 1], y])
    parts = [collinear[k::3] for k in range(3)]
    with pytest.raises(GLMFitError, match="singular or too ill-conditioned"):
        _fit(parts, ["a", "b", "c", "y"], "y")
    constant = np.column_stack([x, np.full(300, 7.0), y])
    parts = [constant[k::3] for k in range(3)]
    with pytest.raises(GLMFitError, match="constant"):
        _fit(parts, ["a", "b", "c", "y"], "y")


def test_an_exact_linear_fit_is_refused_as_saturated() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 2))
    values = np.column_stack([x, 3.0 + 2.0 * x[:, 0] - x[:, 1]])
    parts = [values[k::3] for k in range(3)]
    with pytest.raises(GLMFitError, match="saturated"):
        _fit(parts, ["a", "b", "y"], "y", "gaussian")


def test_bad_outcomes_and_values_are_clear_errors() -> None:
    rng = np.random.default_rng(5)
    values = np.column_stack([rng.normal(size=(90, 2)), rng.integers(0, 3, 90)])
    parts = [values[k::3] for k in range(3)]
    with pytest.raises(StatisticsInputError, match=r"'y' row \d+ .* must be 0 or 1"):
        _fit(parts, ["a", "b", "y"], "y")
    values[:, 2] = values[:, 2] > 0
    values[7, 0] = np.inf
    parts = [values[k::3] for k in range(3)]
    with pytest.raises(StatisticsInputError, match=r"'a' row \d+ .* out of range"):
        _fit(parts, ["a", "b", "y"], "y")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"family": "binomial"}, "params.outcome is required"),
        ({"outcome": "y", "family": "poisson"}, "params.family must be one of"),
        ({"outcome": "y", "max_iter": 0}, "params.max_iter must be an integer"),
        ({"outcome": "y", "tol": float("nan")}, "params.tol must be a number"),
        ({"outcome": "z"}, "columns must include the outcome column 'z'"),
        ({"outcome": "y", "link": "probit"}, "params.link is not a parameter"),
    ],
)
def test_bad_parameters_name_the_field(params, message: str) -> None:
    with pytest.raises(StatisticsParamsError, match=message):
        typed = glm.GLMParams.from_mapping(params)
        typed.check_columns(["a", "b", "y"])


def test_a_formula_names_the_outcome_and_the_features() -> None:
    assert glm.parse_formula(" y ~ a + b_2 ") == ("y", ("a", "b_2"))
    for bad in ("y = a", "y ~ a * b", "y ~ log(a)", "~ a", "y ~ a ~ b", "y ~ a + "):
        with pytest.raises(StatisticsParamsError, match=r"formula .* is not of the form"):
            glm.parse_formula(bad)


def test_hospitals_that_select_different_columns_are_refused() -> None:
    rng = np.random.default_rng(9)
    values = np.column_stack([rng.normal(size=(90, 2)), rng.integers(0, 2, 90)])
    parts = [values[k::3] for k in range(3)]
    columns = [["a", "b", "y"], ["a", "b", "y"], ["b", "a", "y"]]
    with pytest.raises(StatisticsParamsError, match="party-2 selects other ones"):
        _fit(parts, columns, "y")


def test_columns_are_checked() -> None:
    params = glm.GLMParams(outcome="y")
    with pytest.raises(StatisticsParamsError, match="at least one feature"):
        params.check_columns(["y"])
    with pytest.raises(StatisticsParamsError, match="twice"):
        params.check_columns(["a", "a", "y"])
    with pytest.raises(StatisticsParamsError, match="at most 30 features"):
        params.check_columns([f"x{i}" for i in range(31)] + ["y"])


def test_every_iteration_costs_the_documented_rounds() -> None:
    def plan(max_iter: int) -> int:
        ctxs = contexts(
            [np.zeros((0, 3))] * 3, ["a", "b", "y"], params={"outcome": "y", "max_iter": max_iter}
        )
        return dry_run(glm.fit, 3, ctxs[0]).rounds

    assert plan(3) - plan(2) == glm.ITERATION_ROUNDS == 88


def test_stats_glm_is_installed_and_says_what_it_reveals() -> None:
    from protocols.registry import installed

    numeric, text = installed()["stats-glm"], installed()["stats-glm-text"]
    assert (numeric, text) == glm.PROTOCOLS
    assert text.categorical and not numeric.categorical  # only a text outcome reads text
    for spec in glm.PROTOCOLS:
        assert spec.scope == "model-training" and "coefficient iterates" in spec.reveals
        assert set(spec.outputs) == set(glm.OUTPUTS)


def _spd_trace_one(q: int, smallest: float, seed: int) -> np.ndarray:
    """A random SPD matrix with trace 1 whose smallest eigenvalue is ``smallest``."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(q, q)))
    rest = np.geomspace(0.05, 1.0, q - 1)
    eigen = np.concatenate([[smallest], rest / rest.sum() * (1.0 - smallest)])
    return (basis * eigen) @ basis.T


def _one_iteration(a: np.ndarray, g: np.ndarray, hospitals: int = 3):
    """The check bits, the step and the variance factors of one Newton iteration on (A, g),
    and the pooled 32-bit A that the hospitals' roundings make of A.

    A and g are split among the hospitals and each rounds its part as
    stats-glm does, so the 22- and 32-bit copies of the pooled A differ by
    the hospitals' roundings.
    """
    q = len(g)
    rng = np.random.default_rng(q)
    cuts = rng.dirichlet(np.ones(hospitals))
    local = []
    for w in cuts:
        hi = glm.fixed(w * g, glm.WORK_BITS)
        lo = glm.fixed(w * g - hi / 2.0**glm.WORK_BITS, glm.LOW_BITS)
        local.append(
            np.concatenate(
                [
                    glm.fixed(w * a, glm.WORK_BITS).reshape(-1),
                    glm.fixed(w * a, glm.FINE_BITS).reshape(-1),
                    np.column_stack([hi, lo]).reshape(-1),
                ]
            )
        )
    direction = np.full(q, 1.0 / np.sqrt(q))

    def fn(rt, mine):
        summed = np.ascontiguousarray(glm.pooled_integers(rt, mine).share)
        a22 = summed[: q * q].reshape(q, q)
        a32 = summed[q * q : 2 * q * q].reshape(q, q)
        gradient = np.ascontiguousarray(summed[2 * q * q :].reshape(q, 2))
        steps = glm._iteration(rt, a22, a32, gradient, direction)
        check, step, variance = drive(rt, steps, "test")
        return [
            rt.open_ring(rt.shared(m, 0)).view(np.int64) / 2.0**bits
            for m, bits in ((check, 0), (step, glm.RESIDUAL_BITS), (variance, glm.OUT_BITS))
        ]

    fine = sum(part[q * q : 2 * q * q] for part in local).reshape(q, q) / 2.0**glm.FINE_BITS
    return *LocalFederation(hospitals).run(fn, inputs=local).results[0], fine


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("exponent", [13, 13.7, 15, 16, 17, 18], ids=lambda e: f"2^-{e}")
def test_the_inverse_check_passes_accurate_inverses_and_refuses_tiny_eigenvalues(
    exponent: float, seed: int
) -> None:
    # Newton-Schulz inverts A for eigenvalues from 2^-15 (the documented bound); the check
    # must let the well-conditioned ones through, refuse those whose inverse would leave
    # the ring's range (trace Y >= 2^15.5), and pass nothing inaccurate. (The check of
    # |trace(I - A_32 Y)| < 2^-10 alone refused most A at 2^-13 and 2^-13.7 and let some
    # through at 2^-17 with an error of 1e-3.)
    q = 4
    a = _spd_trace_one(q, 2.0**-exponent, seed)
    g = np.random.default_rng(seed).normal(size=q) * 0.1
    check, step, variance, fine = _one_iteration(a, g)
    passed = bool((check == 1).all())
    if exponent <= 13.7:
        assert passed
    if exponent >= 16:  # trace Y >= 1 / lambda_min >= 2^16
        assert not passed
    if passed:  # the oracle: numpy's inverse of the pooled 32-bit matrix
        exact = np.linalg.inv(fine)
        assert np.abs(step - exact @ g).max() < 1e-4 * np.abs(exact @ g).max()
        np.testing.assert_allclose(variance[1:], np.diag(exact)[1:], rtol=1e-4)
        t = np.full(q, 1.0 / np.sqrt(q))  # the direction _one_iteration passes
        np.testing.assert_allclose(variance[0], t @ exact @ t, rtol=1e-4)


def test_strongly_correlated_features_inside_the_bound_match_statsmodels() -> None:
    # two features with correlation 0.9995: the scaled information's smallest eigenvalue
    # is about 2^-13, inside the documented 2^-15, and statsmodels fits them with small
    # coefficients
    rng = np.random.default_rng(0)
    a = rng.normal(size=3000)
    x = np.column_stack([a, a + 0.03 * rng.normal(size=3000), rng.normal(size=3000)])
    y = (rng.random(3000) < 1 / (1 + np.exp(-(0.3 * a + 0.5 * x[:, 2] - 0.5)))).astype(float)
    values = np.column_stack([x, y])
    fit, _ = _fit([values[k::3] for k in range(3)], ["a", "b", "c", "y"], "y")
    tight, _ = _oracle(values, ["a", "b", "c", "y"], "y", "binomial", tol=1e-13)
    np.testing.assert_allclose(fit.coef, tight.params, rtol=1e-4)
    np.testing.assert_allclose(fit.bse, tight.bse, rtol=1e-4)


def _outputs(parts, columns, params) -> dict[str, np.ndarray]:
    """Every output of the job as the recipients receive it."""
    ctxs = contexts(parts, columns, params=params)
    spec = glm.protocol_for(glm.params_for(ctxs[0].params))
    return LocalFederation(len(parts)).run(opened(spec), inputs=ctxs).results[0]


def test_a_suppressed_fit_reveals_nothing_but_zeros() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 2)) * 10 + 50
    y = np.zeros(300)
    y[[3, 50, 120, 260]] = 1.0  # 4 events, below m = 5
    values = np.column_stack([x, y])
    out = _outputs([values[k::3] for k in range(3)], ["a", "b", "y"], {"outcome": "y"})
    assert int(out["status"][0]) == glm.SUPPRESSED
    for name in glm.OUTPUTS:
        if name != "status":
            assert not np.asarray(out[name]).any(), name  # not the counts, means or SDs either


def test_max_iter_reached_stops_and_reveals_no_coefficient(breast) -> None:
    values, columns, ids = breast
    parts = [values[(ids - 1) % 3 == k] for k in range(3)]
    out = _outputs(parts, columns, {"outcome": "malignant", "max_iter": 2})
    assert int(out["status"][0]) == glm.NOT_CONVERGED and int(out["iterations"][0]) == 2
    assert not out["coef"].any() and not out["variance"].any() and not out["deviance"].any()
    with pytest.raises(GLMFitError, match="did not converge in 2 iterations"):
        _fit(parts, columns, "malignant", max_iter=2)


def test_a_text_feature_is_an_error_naming_the_column(breast) -> None:
    values, _, ids = breast
    names = [*FEATURES, "diagnosis"]
    parts, text = [], []
    for k in range(3):
        mine = values[(ids - 1) % 3 == k].copy()
        cells = {c: mine[:, j].astype(str) for j, c in enumerate(FEATURES)}
        cells["diagnosis"] = np.where(mine[:, -1] == 1.0, "M", "B")
        if k == 1:
            cells["mean_texture"][7] = "high"  # a text cell in a feature
            mine[7, 1] = np.nan
        mine[:, -1] = np.nan
        parts.append(mine)
        text.append(cells)
    ctxs = contexts(parts, names, params={"outcome": "diagnosis", "positive": "M"}, text=text)
    with pytest.raises(StatisticsInputError, match="column 'mean_texture' row 7: a feature must"):
        run_local(LocalFederation(3), ctxs)


def test_a_huge_coefficient_from_collinear_features_is_not_called_separation(breast) -> None:
    # radius and perimeter are almost proportional: statsmodels converges, with standardised
    # coefficients beyond the bound of 20, and no feature separates the classes
    values, _, ids = breast
    with DATA.open() as f:
        rows = list(csv.reader(f))
    perimeter = np.array([float(r[rows[0].index("mean_perimeter")]) for r in rows[1:]])
    chosen = np.column_stack([values[:, 0], perimeter, values[:, 1], values[:, -1]])
    names = ["mean_radius", "mean_perimeter", "mean_texture", "malignant"]
    ref, _ = _oracle(chosen, names, "malignant", "binomial")
    assert ref.converged and np.abs(ref.params[1:] * chosen[:, :3].std(axis=0)).max() > 20
    parts = [chosen[(ids - 1) % 3 == k] for k in range(3)]
    with pytest.raises(GLMFitError, match="or the features are nearly collinear"):
        _fit(parts, names, "malignant")


def test_rare_events_with_many_features_match_statsmodels() -> None:
    # 20 independent features and 0.5% events: every eigenvalue of the scaled information is
    # about 2^-10 (weights near 0.005, not 1/4), so trace Y is about 2^14.7 although no
    # direction is ill-conditioned
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 20))
    y = (rng.random(20000) < 1 / (1 + np.exp(-(np.log(0.005 / 0.995) + 0.2 * x[:, 0])))).astype(
        float
    )
    values = np.column_stack([x, y])
    names = [f"x{j}" for j in range(20)] + ["y"]
    fit, _ = _fit([values[k::3] for k in range(3)], names, "y")
    tight, _ = _oracle(values, names, "y", "binomial", tol=1e-13)
    np.testing.assert_allclose(fit.coef, tight.params, rtol=1e-4)
    np.testing.assert_allclose(fit.bse, tight.bse, rtol=1e-4)


def test_intercept_se_with_collinearity_orthogonal_to_the_intercept_matches_statsmodels() -> None:
    # c = a + b + d + small noise, no constant: the nearly singular direction of the
    # information (scaled smallest eigenvalue about 2^-14.4) has no intercept component in
    # raw units, so the intercept's variance t'Yt is small beside Y's largest eigenvalue.
    # Rounding the weights t t' entry by entry let that eigenvalue through (the variance
    # was 3.8e-4 off here, the standard error 1.9e-4).
    rng = np.random.default_rng(14)
    means, sds = rng.uniform(100, 1000, 3), rng.uniform(1, 5, 3)
    x = rng.normal(size=(4000, 3)) * sds + means
    c = x.sum(axis=1) + rng.normal(size=4000) * 0.14
    y = 2.0 + x @ [0.3, -0.2, 0.1] + rng.normal(size=4000)
    values = np.column_stack([x, c, y])
    names = ["a", "b", "d", "c", "y"]
    fit, _ = _fit([values[k::3] for k in range(3)], names, "y", "gaussian")
    tight, _ = _oracle(values, names, "y", "gaussian", tol=1e-13)
    np.testing.assert_allclose(fit.coef, tight.params, rtol=1e-4)
    np.testing.assert_allclose(fit.bse, tight.bse, rtol=1e-4)


@pytest.mark.parametrize("bits", [11, 20])
def test_a_gaussian_coefficient_beyond_the_bound_is_refused(monkeypatch, bits: int) -> None:
    # a step that wrapped around and passed the check by chance (about 2^-19), injected by
    # shifting party 0's share of the opened step by 2^bits in one coefficient: the fit is
    # refused, not continued from a huge iterate (at 2^20 the next iteration's deviance left
    # the fixed-point range; at 2^11 the next step undid the shift, the repeated shift made
    # it look converged, and the fit came out 2^11 off)
    original = glm._iteration

    def wrapped(rt, *args):
        check, step, variance = yield from original(rt, *args)
        if rt.first:
            shift = np.zeros(len(step), dtype=np.uint64)
            shift[1] = np.uint64(1 << (glm.RESIDUAL_BITS + bits))
            step = rt.ring.add(step, shift)
        return check, step, variance

    monkeypatch.setattr(glm, "_iteration", wrapped)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 2))
    values = np.column_stack([x, 1.0 + x @ [0.5, -0.3] + rng.normal(size=300)])
    parts = [values[k::3] for k in range(3)]
    with pytest.raises(GLMFitError, match="exceeded 1024, beyond any least-squares fit"):
        _fit(parts, ["a", "b", "y"], "y", "gaussian")


@pytest.mark.parametrize("hospitals", [3, 10])
def test_a_narrow_column_far_from_zero_is_fitted_and_a_constant_one_refused(
    hospitals: int,
) -> None:
    # mean 310, SD 0.05: well above the resolution of the pooled variance (the hospitals'
    # sums over N rounded to 2^-32), though 2^-12 |mean| = 0.076 called it constant
    rng = np.random.default_rng(hospitals)
    a = rng.normal(size=3000)
    b = 310.0 + 0.05 * rng.normal(size=3000)
    eta = -0.3 + 0.8 * a + 0.6 * (b - 310.0) / 0.05
    y = (rng.random(3000) < 1 / (1 + np.exp(-eta))).astype(float)
    values = np.column_stack([a, b, y])
    parts = [values[k::hospitals] for k in range(hospitals)]
    fit, _ = _fit(parts, ["a", "b", "y"], "y")
    tight, _ = _oracle(values, ["a", "b", "y"], "y", "binomial", tol=1e-13)
    np.testing.assert_allclose(fit.coef, tight.params, rtol=1e-4)
    np.testing.assert_allclose(fit.bse, tight.bse, rtol=1e-4)
    gaussian = np.column_stack([a, b + 0.01 * a + 0.02 * rng.normal(size=3000)])
    fit, _ = _fit([gaussian[k::hospitals] for k in range(hospitals)], ["a", "y"], "y", "gaussian")
    tight, _ = _oracle(gaussian, ["a", "y"], "y", "gaussian", tol=1e-13)
    np.testing.assert_allclose(fit.coef, tight.params, rtol=1e-4)
    np.testing.assert_allclose(fit.bse, tight.bse, rtol=1e-4)
    for level in (310.0, 1e4, -(2.0**13), 0.0):  # a constant feature, and a constant outcome
        constant = values.copy()
        constant[:, 1] = level
        with pytest.raises(GLMFitError, match="constant"):
            _fit([constant[k::hospitals] for k in range(hospitals)], ["a", "b", "y"], "y")
        with pytest.raises(GLMFitError, match="constant"):
            flat = np.column_stack([a, np.full(3000, level)])
            _fit([flat[k::hospitals] for k in range(hospitals)], ["a", "y"], "y", "gaussian")


@pytest.mark.parametrize(
    ("rows", "ratio"), [(18, None), (19, None), (19, 0.1), (60, 0.1), (200, 0.03)]
)
def test_more_parameters_than_the_ratio_of_n_allows_are_suppressed(
    rows: int, ratio: float | None
) -> None:
    # DataSHIELD's nfilter.glm: the q = 6 coefficients may be at most 0.33 N (the default)
    # or the job's stricter ratio; decided inside MPC from the pooled count
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, 5))
    values = np.column_stack([x, x @ [0.5, -0.2, 0.1, 0.3, 0.0] + rng.normal(size=rows)])
    names = ["a", "b", "c", "d", "e", "y"]
    parts = [values[k::3] for k in range(3)]
    params = {"outcome": "y", "family": "gaussian"}
    if ratio is not None:
        params["parameter_ratio"] = ratio
    allowed = (0.33 if ratio is None else ratio) * rows >= 6  # q = 6
    ctxs = contexts(parts, names, params=params)
    if not allowed:
        with pytest.raises(FitSuppressed, match="parameters"):
            run_local(LocalFederation(3), ctxs)
        return
    fit, _ = run_local(LocalFederation(3), ctxs)
    tight, _ = _oracle(values, names, "y", "gaussian", tol=1e-13)
    np.testing.assert_allclose(fit.coef, tight.params, rtol=1e-4)


@pytest.mark.parametrize("ratio", [0.0, -0.1, 0.34, 1.0, float("nan"), "a third"])
def test_the_parameter_ratio_can_only_be_made_stricter(ratio) -> None:
    with pytest.raises(StatisticsParamsError, match=r"params\.parameter_ratio must be"):
        glm.GLMParams.from_mapping({"outcome": "y", "parameter_ratio": ratio})


@pytest.mark.parametrize(
    ("fact", "message"),
    [
        ({"y": ColumnFacts(not_binary=42)}, r"'y' data row 42: a binomial outcome must be 0 or 1"),
        ({"a": ColumnFacts(out_of_range=9)}, r"'a' data row 9: value out of range"),
    ],
)
def test_a_bad_value_outside_the_selected_rows_is_refused(fact, message: str) -> None:
    # The source checked the whole column (ColumnFacts): its selected rows are all valid,
    # yet the refusal is the same as if the filter had kept the bad row.
    rng = np.random.default_rng(8)
    x = rng.normal(size=(90, 2))
    values = np.column_stack([x, (x[:, 0] + rng.normal(size=90) > 0).astype(float)])
    parts = [values[k::3] for k in range(3)]
    params = {"outcome": "y", "family": "binomial", "max_iter": 25}
    ctxs = contexts(parts, ["a", "b", "y"], params=params)
    ctxs[1] = dataclasses.replace(ctxs[1], facts=fact)
    with pytest.raises(StatisticsInputError, match=message):
        run_local(LocalFederation(3), ctxs)
