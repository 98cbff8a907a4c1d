"""Joint statistics on 2, 3 and 5 in-process parties against numpy on the pooled plaintext."""

from __future__ import annotations

import numpy as np
import pytest

from protocols import order
from protocols.descriptive import fixed
from protocols.disclosure import (
    DisclosureRefused,
    StatisticsInputError,
    StatisticsParamsError,
    gate,
)
from protocols.statistics import contexts, protocol, run_local
from protocols.synthetic import DIAGNOSES, SEXES, cohort
from smpc.errors import FixedPointRangeError
from smpc.local import LocalFederation
from smpc.runtime import dry_run

COLUMNS = ["age", "systolic_bp", "cholesterol", "creatinine", "cost"]
SIZES = [2, 3, 5]


@pytest.fixture(scope="module")
def data():
    return cohort(4000, seed=11)


def _parts(data, parties: int):
    return data.split(parties, seed=parties)


def _pooled(parts, columns):
    rows = np.vstack([p.numeric(columns) for p in parts])
    keep = ~np.isnan(rows).any(axis=1)
    return rows[keep], int((~keep).sum())


def _run(parties: int, name: str, parts, columns, **kwargs):
    fed = LocalFederation(parties)
    return run_local(fed, name, contexts([p.numeric(columns) for p in parts], columns, **kwargs))


@pytest.mark.parametrize("parties", SIZES)
def test_count_mean_variance_and_deviations_match_numpy(data, parties: int) -> None:
    parts = _parts(data, parties)
    rows, dropped = _pooled(parts, COLUMNS)
    counted, _ = _run(parties, "stats-count", parts, COLUMNS)
    assert counted["count"] == len(rows) and counted["dropped"] == dropped
    mean, _ = _run(parties, "stats-mean", parts, COLUMNS)
    assert mean["count"] == len(rows)
    np.testing.assert_allclose(mean["sum"], rows.sum(axis=0), rtol=1e-4)
    np.testing.assert_allclose(mean["mean"], rows.mean(axis=0), rtol=1e-4)
    spread, _ = _run(parties, "stats-variance", parts, COLUMNS)
    assert spread["count"] == len(rows) and spread["dropped"] == dropped
    np.testing.assert_allclose(spread["mean"], rows.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(spread["variance"], rows.var(axis=0, ddof=1), rtol=1e-4)
    np.testing.assert_allclose(spread["pvariance"], rows.var(axis=0), rtol=1e-4)
    np.testing.assert_allclose(spread["stdev"], rows.std(axis=0, ddof=1), rtol=1e-4)
    np.testing.assert_allclose(spread["pstdev"], rows.std(axis=0), rtol=1e-4)


@pytest.mark.parametrize("parties", SIZES)
def test_covariance_and_correlation_matrices_match_numpy(data, parties: int) -> None:
    parts = _parts(data, parties)
    rows, _ = _pooled(parts, COLUMNS)
    result, _ = _run(parties, "stats-covariance", parts, COLUMNS)
    expected = np.cov(rows, rowvar=False, ddof=1)
    scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
    # relative to sqrt(var_j var_k), the size of a covariance; near-zero ones have no relative error
    assert np.max(np.abs(result["covariance"] - expected) / scale) < 1e-4
    np.testing.assert_allclose(np.diag(result["covariance"]), np.diag(expected), rtol=1e-4)
    np.testing.assert_allclose(result["correlation"], np.corrcoef(rows, rowvar=False), atol=1e-3)


@pytest.mark.parametrize("parties", SIZES)
def test_histogram_and_contingency_table_are_exact(data, parties: int) -> None:
    parts = _parts(data, parties)
    edges = [0.0, 100.0, 120.0, 140.0, 160.0, 300.0]
    result, _ = _run(parties, "stats-histogram", parts, ["systolic_bp"], params={"edges": edges})
    expected, _ = np.histogram(data.numeric(["systolic_bp"])[:, 0], edges)
    assert np.array_equal(np.where(expected >= 5, expected, 0), result["counts"])
    assert np.array_equal(result["suppressed"], expected < 5)
    levels = [list(DIAGNOSES), list(SEXES)]
    table, _ = run_local(
        LocalFederation(parties),
        "stats-crosstab",
        contexts(
            [np.full((len(p), 2), np.nan) for p in parts],
            ["diagnosis", "sex"],
            params={"levels": levels},
            text=[p.text for p in parts],
        ),
    )
    expected = np.zeros((len(DIAGNOSES), len(SEXES)), dtype=int)
    for d, s in zip(data.text["diagnosis"], data.text["sex"], strict=True):
        expected[levels[0].index(d), levels[1].index(s)] += 1
    assert np.array_equal(table["counts"], expected)


@pytest.mark.parametrize("parties", SIZES)
def test_median_and_quartiles_are_within_the_documented_resolution(data, parties: int) -> None:
    parts = _parts(data, parties)
    lo, hi, bits = 0.0, 256.0, 16
    for column in ("age", "cholesterol"):
        rows, _ = _pooled(parts, [column])
        result, job = _run(
            parties, "stats-quantiles", parts, [column], params={"range": [lo, hi], "bits": bits}
        )
        exact = np.quantile(rows[:, 0], [0.25, 0.5, 0.75], method="inverted_cdf")
        resolution = (hi - lo) / 2**bits
        assert np.max(np.abs(result["quantiles"] - exact)) <= resolution / 2 + 1e-9
        assert result["count"] == len(rows)
        assert job.rounds[0] == order.rounds(bits) + 3  # + the three output openings


@pytest.mark.parametrize("parties", [2, 3])
def test_minimum_and_maximum_where_every_policy_allows(data, parties: int) -> None:
    parts = _parts(data, parties)
    rows, _ = _pooled(parts, COLUMNS)
    result, _ = _run(parties, "stats-minmax", parts, COLUMNS, allow_min_max=True)
    np.testing.assert_allclose(result["min"], rows.min(axis=0), atol=2**-16)
    np.testing.assert_allclose(result["max"], rows.max(axis=0), atol=2**-16)
    with pytest.raises(DisclosureRefused, match="does not permit"):
        _run(parties, "stats-minmax", parts, COLUMNS)  # off by default


@pytest.mark.parametrize("parties", [2, 3, 5])
def test_column_split_correlation_and_covariance(data, parties: int) -> None:
    columns = ["age", "systolic_bp", "cost", "age", "systolic_bp"]  # the last two repeat
    x = data.numeric(columns)
    held = [[c] for c in columns[:parties]]
    if parties == 2:
        held = [["age", "systolic_bp"], ["cost"]]
    names = {f"party-{i}": cols for i, cols in enumerate(held)}
    parts = [data.numeric(cols) for cols in held]
    ctxs = contexts(parts, held, params={"columns": names, "rows": len(x)})
    result, _ = run_local(LocalFederation(parties), "stats-covariance-vertical", ctxs)
    pooled = np.hstack(parts)
    np.testing.assert_allclose(result["correlation"], np.corrcoef(pooled, rowvar=False), atol=1e-3)
    expected = np.cov(pooled, rowvar=False)
    scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
    assert np.max(np.abs(result["covariance"] - expected) / scale) < 1e-4
    assert result["count"] == len(x)


def test_column_split_rows_follow_the_jobs_patient_order(data) -> None:
    x = data.numeric(["age", "cost"])[:300]
    ids = np.arange(1000, 1300, dtype=float)
    shuffled = np.random.default_rng(5).permutation(300)
    parts = [np.column_stack([ids, x[:, 0]]), np.column_stack([ids[shuffled], x[shuffled, 1]])]
    params = {"columns": {"party-0": ["age"], "party-1": ["cost"]}, "key": "id"}
    params["ids"] = [int(i) for i in ids]
    ctxs = contexts(parts, [["id", "age"], ["id", "cost"]], params=params)
    result, job = run_local(LocalFederation(2), "stats-correlation-vertical", ctxs)
    assert result["correlation"][0, 1] == pytest.approx(np.corrcoef(x.T)[0, 1], abs=1e-3)
    assert "stdev" not in job.results[0]  # the correlation job does not reveal the scales


def _rounds(name: str, parties: int, columns, **kwargs) -> int:
    ctx = contexts([np.ones((6, len(columns)))] * parties, columns, **kwargs)[0]
    return dry_run(protocol(name).run, parties, ctx).rounds


def test_round_counts_are_as_documented() -> None:
    assert _rounds("stats-count", 3, ["a"]) == 9
    assert _rounds("stats-mean", 3, ["a", "b"]) == 9
    assert _rounds("stats-variance", 3, ["a", "b"]) == 14
    assert _rounds("stats-covariance", 5, ["a", "b"]) == 14
    assert _rounds("stats-histogram", 3, ["a"], params={"edges": [0, 1, 2]}) == 9
    assert _rounds("stats-minmax", 3, ["a"], allow_min_max=True) == 1 + 2 * 8 + 8
    assert _rounds("stats-quantiles", 3, ["a"], params={"bits": 8}) == order.rounds(8) == 30


def test_gate_suppresses_small_and_empty_counts_inside_mpc() -> None:
    counts = np.array([0, 1, 4, 5, 6, 1000])
    values = np.arange(12.0).reshape(6, 2) + 0.5

    def fn(rt, _):
        c = rt.input(counts if rt.party == 0 else None, 0, (6,), integer=True)
        v = rt.input(values if rt.party == 1 else None, 1, (6, 2))
        flags, (kept_c, kept_v) = gate(rt, c, 5, [(c, None), (v, None)])
        return rt.open(flags), rt.open(kept_c), rt.open(kept_v)

    job = LocalFederation(3).run(fn, inputs=[None] * 3)
    flags, kept_c, kept_v = job.results[0]
    small = counts < 5
    assert np.array_equal(flags, small.astype(int))
    assert np.array_equal(kept_c, np.where(small, 0, counts))
    np.testing.assert_allclose(kept_v, np.where(small[:, None], 0.0, values))
    assert job.rounds[0] == 2 + 8 + 3


def test_an_empty_cohort_reads_suppressed_with_every_output_zero() -> None:
    empty = [np.zeros((0, 2))] * 3
    for name in ("stats-count", "stats-mean", "stats-variance", "stats-covariance"):
        result, job = run_local(LocalFederation(3), name, contexts(empty, ["a", "b"]))
        assert result["suppressed"] is True and result["dropped"] is None
        assert all(not np.any(v) for v in job.results[0].values())


def test_a_pooled_cohort_below_the_minimum_is_suppressed_not_refused() -> None:
    # every party may contribute one row (its policy's minimum is 1), but a sample
    # variance needs two: the pooled N = 1 is suppressed inside MPC
    parts = [np.array([[3.0]]), np.zeros((0, 1)), np.zeros((0, 1))]
    result, job = run_local(
        LocalFederation(3), "stats-variance", contexts(parts, ["a"], min_cell_size=1)
    )
    assert result == {"dropped": None, "suppressed": True}
    assert not any(np.any(v) for v in job.results[0].values())
    # cells below the minimum are suppressed one by one, the others revealed
    parts = [np.array([[1.0]] * 6 + [[5.0]] * 2), np.array([[1.0]] * 5 + [[5.0]])]
    table, _ = run_local(
        LocalFederation(2), "stats-histogram", contexts(parts, ["a"], params={"edges": [0, 2, 9]})
    )
    assert list(table["counts"]) == [11, 0] and list(table["suppressed"]) == [False, True]


def test_a_small_own_contribution_is_suppressed_inside_mpc_not_refused() -> None:
    # a refusal would tell the analyst that a party holds 1 to m - 1 complete rows
    for rows in (1, 4):
        parts = [np.ones((rows, 1)), np.ones((50, 1)), np.ones((50, 1))]
        for name in ("stats-count", "stats-mean", "stats-variance"):
            result, job = run_local(LocalFederation(3), name, contexts(parts, ["a"]))
            assert result == {"dropped": None, "suppressed": True}, (name, rows)
            assert not any(np.any(v) for v in job.results[0].values())
    # the job's minimum is the largest policy: 6 rows pass m = 5 but not another party's 8
    parts = [np.ones((6, 1)), np.ones((50, 1))]
    ctxs = contexts(parts, ["a"], min_cell_size=[5, 8])
    assert run_local(LocalFederation(2), "stats-count", ctxs)[0]["suppressed"] is True
    ctxs = contexts([np.ones((8, 1)), np.ones((50, 1))], ["a"], min_cell_size=[5, 8])
    assert run_local(LocalFederation(2), "stats-count", ctxs)[0]["count"] == 58


def _lone_patient() -> list[np.ndarray]:
    """Ten rows with a missing value at each of three parties, and one complete row at the first."""
    gaps = np.column_stack([np.arange(10.0), np.full(10, np.nan)])
    return [np.vstack([gaps, [[1.0, 10.38]]]), gaps.copy(), gaps.copy()]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("stats-count", {}),
        ("stats-mean", {}),
        ("stats-variance", {}),
        ("stats-covariance", {}),
        ("stats-minmax", {}),
        ("stats-histogram", {"edges": [0.0, 20.0]}),
        ("stats-quantiles", {"probabilities": [0.5], "range": [0, 64]}),
    ],
)
def test_one_complete_row_among_missing_ones_is_suppressed(name: str, params) -> None:
    parts = _lone_patient()
    rows = np.vstack(parts)
    complete = rows[~np.isnan(rows).any(axis=1)]
    assert len(complete) == 1  # numpy: the selection isolates one patient
    columns = ["id", "texture"]
    if name in ("stats-histogram", "stats-quantiles"):
        parts, columns = [p[:, 1:] for p in parts], ["texture"]
    ctxs = contexts(parts, columns, params=params, allow_min_max=True)
    result, job = run_local(LocalFederation(3), name, ctxs)
    if name == "stats-histogram":
        assert result["suppressed"].all() and not result["counts"].any()
    else:
        assert result["suppressed"] is True and "count" not in result
    assert result["dropped"] is None  # a veto suppresses every output of the job
    revealed = np.concatenate([np.ravel(v) for k, v in job.results[0].items() if k != "dropped"])
    assert not np.isclose(revealed, 10.38, atol=0.01).any()


def test_parties_selecting_different_columns_stop_before_the_dry_run_ends() -> None:
    parts = [np.ones((10, 1))] * 3
    ctxs = contexts(parts, ["a"])
    for ctx in ctxs:
        ctx.selections["party-2"] = ("b",)  # what the signed job says party-2 selects
    with pytest.raises(StatisticsInputError, match=r"same columns; party-2 selects other ones"):
        dry_run(protocol("stats-mean").run, 3, ctxs[0])
    for ctx in ctxs:
        ctx.selections["party-0"] = ("b",)  # now most parties select b: party-1 differs
    with pytest.raises(StatisticsInputError, match=r"same columns; party-1 selects other ones"):
        dry_run(protocol("stats-mean").run, 3, ctxs[1])
    for ctx in ctxs:
        del ctx.selections["party-2"]
    with pytest.raises(StatisticsInputError, match=r"same columns; party-2 selects none$"):
        run_local(LocalFederation(3), "stats-count", ctxs)


def _quantile_job(parts, probabilities, allow, **kwargs):
    params = {"probabilities": probabilities, "range": [0.0, 128.0], "bits": 12}
    ctxs = contexts(parts, ["a"], params=params, allow_min_max=allow, **kwargs)
    return run_local(LocalFederation(len(parts)), "stats-quantiles", ctxs)[0]


def test_quantiles_nearer_an_end_than_m_over_n_need_min_and_max_allowed() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.uniform(1.0, 100.0, (n, 1)) for n in (30, 40, 30)]  # N = 100, m = 5
    x = np.vstack(parts)[:, 0]
    resolution = 128.0 / 2**12
    for q in (0.0001, 0.04, 0.96, 0.9999):  # q N < 5 or (1 - q) N < 5
        assert _quantile_job(parts, [q], False)["suppressed"] is True, q
        assert _quantile_job(parts, [0.5, q], [True, True, False])["suppressed"] is True, q
        allowed = _quantile_job(parts, [q], True)
        expected = np.quantile(x, q, method="inverted_cdf")
        assert abs(allowed["quantiles"][0] - expected) <= resolution / 2 + 1e-9
    assert _quantile_job(parts, [0.0001], True)["quantiles"][0] == pytest.approx(
        x.min(), abs=resolution / 2
    )
    inside = _quantile_job(parts, [0.05, 0.5, 0.95], False)  # q N = 5 = m: one of m values
    expected = np.quantile(x, [0.05, 0.5, 0.95], method="inverted_cdf")
    assert np.max(np.abs(inside["quantiles"] - expected)) <= resolution / 2 + 1e-9
    assert inside["count"] == 100
    # the median of N = 9 < 2m is one of the 5 smallest and of the 5 largest values
    small = [np.arange(1.0, 6.0).reshape(5, 1), np.arange(6.0, 10.0).reshape(4, 1) + 0.5]
    assert _quantile_job(small, [0.5], False, min_cell_size=[5, 4])["suppressed"] is True


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bits": 33}, "params.bits must be an integer from 1 to 32"),
        ({"bits": 0}, "params.bits must be an integer from 1 to 32"),
        ({"bits": True}, "params.bits must be an integer from 1 to 32"),
        ({"probabilities": [0.00001]}, r"must each lie in \[1/10000, 1 - 1/10000\]"),
        ({"probabilities": [1.0]}, "strictly between 0 and 1"),
        ({"range": [0.0]}, "params.range must be two finite numbers"),
        ({"range": ["a", "b"]}, "params.range must be two finite numbers"),
        ({"range": [5, 1]}, "params.range must be two finite numbers lo < hi"),
        ({"bins": 3}, r"params\.bins is not a parameter of this protocol \(it takes probabilities"),
    ],
)
def test_bad_quantile_parameters_are_refused_before_any_round(params, message) -> None:
    ctx = contexts([np.ones((10, 1))] * 2, ["a"], params=params)[0]
    with pytest.raises(StatisticsParamsError, match=message):
        dry_run(protocol("stats-quantiles").run, 2, ctx)


def test_gate_vetoes_suppress_every_count() -> None:
    counts = np.array([5, 1000])

    def fn(rt, veto):
        c = rt.input(counts if rt.party == 0 else None, 0, (2,), integer=True)
        v = rt.input_all(np.array([veto]), (1,), integer=True)
        total = v[0] + v[1]
        flags, (kept,) = gate(rt, c, 5, [(c, None)], total)
        return rt.open(flags), rt.open(kept)

    for vetoes, expected in (([0, 0], [5, 1000]), ([1, 0], [0, 0]), ([1, 1], [0, 0])):
        flags, kept = LocalFederation(2).run(fn, inputs=vetoes).results[0]
        assert kept.tolist() == expected
        assert flags.tolist() == [int(e == 0) for e in expected]


def test_dropped_rows_are_reported_only_from_the_minimum_on() -> None:
    rows = np.arange(40.0).reshape(20, 2)
    few, many = rows.copy(), rows.copy()
    few[:3, 1] = np.nan
    many[:7, 0] = np.nan
    for part, expected in ((few, None), (many, 7)):
        result, _ = run_local(LocalFederation(2), "stats-mean", contexts([part, rows], ["a", "b"]))
        assert result["dropped"] == expected
        kept = np.vstack([part[~np.isnan(part).any(axis=1)], rows])
        np.testing.assert_allclose(result["mean"], kept.mean(axis=0), rtol=1e-6)


def test_out_of_range_and_non_finite_values_name_column_and_row() -> None:
    bad = np.ones((10, 2))
    bad[4, 1] = 1e5
    with pytest.raises(StatisticsInputError, match=r"column 'b' row 4") as caught:
        run_local(
            LocalFederation(2), "stats-variance", contexts([bad, np.ones((10, 2))], ["a", "b"])
        )
    assert "100000" not in str(caught.value)
    bad[4, 1] = np.inf
    with pytest.raises(StatisticsInputError, match=r"column 'b' row 4"):
        run_local(LocalFederation(2), "stats-mean", contexts([bad, np.ones((10, 2))], ["a", "b"]))


def test_fixed_point_encoding_refuses_what_it_cannot_represent() -> None:
    rng = np.random.default_rng(0)
    ok = rng.normal(size=50) * 2.0**20
    np.testing.assert_array_equal(fixed(ok, 32), np.rint(ok * 2.0**32).astype(np.int64))
    assert fixed([-(2.0**29)], 32)[0] == -(2**61)  # the largest magnitude kept, exactly
    for bad in (np.inf, -np.inf, np.nan, 2.0**30, -(2.0**30), 1e300):
        with pytest.raises(FixedPointRangeError, match="at 32 fractional bits") as caught:
            fixed([1.0, bad], 32)
        assert "1e+300" not in str(caught.value) and "inf" not in str(caught.value)


def test_bad_parameters_and_categories_are_named() -> None:
    parts = [np.ones((10, 1))] * 2
    with pytest.raises(StatisticsParamsError, match=r"params\.edges must be strictly increasing"):
        run_local(
            LocalFederation(2), "stats-histogram", contexts(parts, ["a"], params={"edges": [3, 1]})
        )
    text = [{"s": np.array(["F"] * 9 + ["X"]), "d": np.array(["a"] * 10)}] * 2
    with pytest.raises(StatisticsInputError, match=r"column 's' row 9 .* not one of"):
        run_local(
            LocalFederation(2),
            "stats-crosstab",
            contexts(
                [np.full((10, 2), np.nan)] * 2,
                ["s", "d"],
                params={"levels": [["F", "M"], ["a"]]},
                text=text,
            ),
        )
    with pytest.raises(StatisticsInputError, match="different columns"):
        ctxs = contexts(parts, ["a"])
        ctxs[1] = ctxs[1].__class__(**{**ctxs[1].__dict__, "columns": ("b",)})
        run_local(LocalFederation(2), "stats-count", ctxs)
    varied = [np.arange(10.0).reshape(10, 1)] * 2
    held = {"party-0": ["a"], "party-1": ["z"]}
    with pytest.raises(StatisticsParamsError, match=r"columns of party-1 must include \['z'\]"):
        ctxs = contexts(varied, ["a"], params={"columns": held, "rows": 10})
        run_local(LocalFederation(2), "stats-correlation-vertical", ctxs)
    with pytest.raises(StatisticsInputError, match="column 'a' is constant"):
        ctxs = contexts(
            parts, ["a"], params={"columns": {"party-0": ["a"], "party-1": ["a"]}, "rows": 10}
        )
        run_local(LocalFederation(2), "stats-correlation-vertical", ctxs)


def test_every_statistics_protocol_is_installed_and_says_what_it_reveals() -> None:
    from protocols.registry import installed
    from protocols.statistics import PROTOCOLS

    for spec in PROTOCOLS:
        assert installed()[spec.name] is spec
        assert "Reveals" in (spec.run.__doc__ or ""), spec.name
