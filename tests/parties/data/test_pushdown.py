"""Statistics' local aggregates computed inside a real PostgreSQL server, against numpy.

The oracle is numpy on the very values written into the tables (kept here
as arrays), with each filter's meaning written out by hand in numpy; the
server is the ``postgres`` fixture (conftest.py), never a mock.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np
import psycopg
import pytest
from psycopg import sql

from parties.data import pushdown
from parties.data.errors import DataSourceError
from parties.data.postgresql_source import PostgresSource
from parties.data.pushdown import PostgresAggregates
from protocols.disclosure import StatisticsInputError
from protocols.statistics import contexts, run_local
from smpc.local import LocalFederation

ENV = "SMPC_TEST_PG_PASSWORD"
NUMERIC = ["x", "y", "z"]


@dataclasses.dataclass
class Table:
    """What a table holds, as numpy: NaN for NULL numbers, stripped text, "" where missing."""

    pid: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    dx: np.ndarray
    site: np.ndarray

    def numeric(self, mask: np.ndarray) -> np.ndarray:
        return np.column_stack([self.x, self.y, self.z])[mask]


def _connect(server) -> psycopg.Connection:
    return psycopg.connect(server.dsn, password=server.password, autocommit=True)


def _write(server, name: str, seed: int, rows: int = 300) -> Table:
    """A table with double, integer and numeric columns, text with padding and NA, NULLs."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(2.0, 3.0, rows), 3)
    y = rng.integers(0, 100, rows).astype(np.float64)
    z = np.round(rng.uniform(-50, 50, rows), 2)
    x[rng.random(rows) < 0.08] = np.nan
    y[rng.random(rows) < 0.05] = np.nan
    z[rng.random(rows) < 0.05] = np.nan
    raw_dx = rng.choice(np.array(["M", "B", " M ", "B\t", "NA", "", None], dtype=object), rows)
    site = rng.choice(np.array(["a", "b", "c"]), rows)
    with _connect(server) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (k integer PRIMARY KEY, pid text, x double precision,"
                " y integer, z numeric(8, 2), dx text, site varchar(4))"
            ).format(sql.Identifier(name))
        )
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s)").format(
                    sql.Identifier(name)
                ),
                [
                    (
                        i,
                        f"P{seed}-{i:04d}",
                        None if np.isnan(x[i]) else float(x[i]),
                        None if np.isnan(y[i]) else int(y[i]),
                        None if np.isnan(z[i]) else f"{z[i]:.2f}",
                        raw_dx[i],
                        str(site[i]),
                    )
                    for i in range(rows)
                ],
            )
    dx = np.array(
        ["" if v is None or v.strip() in ("", "NA", "NaN") else v.strip() for v in raw_dx]
    )
    pid = np.array([f"P{seed}-{i:04d}" for i in range(rows)])
    return Table(pid, x, y, z, dx, site.astype(str))


FILTERS: list[tuple[str | None, Callable[[Table], np.ndarray]]] = [
    (None, lambda t: np.ones(len(t.x), dtype=bool)),
    ("x > 0", lambda t: t.x > 0),
    ("dx == 'M' and y <= 50", lambda t: (t.dx == "M") & (t.y <= 50)),
    ("not (x < -1 or x is missing)", lambda t: ~((t.x < -1) | np.isnan(t.x))),
    ("z is missing or site != 'b'", lambda t: np.isnan(t.z) | (t.site != "b")),
    ("y >= 10 and dx is not missing", lambda t: (t.y >= 10) & (t.dx != "")),
    ("'B' < dx", lambda t: t.dx > "B"),
]


@pytest.fixture(autouse=True)
def _password(postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, postgres.password)


@pytest.fixture(scope="module")
def tables(postgres) -> Iterator[dict[str, Table]]:
    yield {name: _write(postgres, name, seed) for name, seed in (("h1", 1), ("h2", 2), ("h3", 3))}


def _source(server, table: str, **kw) -> PostgresSource:
    return PostgresSource(server.dsn, table, password_env=ENV, **kw)


def _aggregates(server, table: str, columns, where=None, **kw) -> PostgresAggregates:
    made = _source(server, table).aggregates(columns, where, **kw)
    assert isinstance(made, PostgresAggregates)
    return made


@pytest.mark.parametrize(("where", "meaning"), FILTERS)
def test_numeric_aggregates_equal_numpy_on_the_same_rows(postgres, tables, where, meaning) -> None:
    t = tables["h1"]
    kept = meaning(t)
    rows = t.numeric(kept)
    complete = rows[~np.isnan(rows).any(axis=1)]
    dropped = len(rows) - len(complete)
    assert len(complete) > 5  # each filter keeps enough rows to mean something

    data = _aggregates(postgres, "h1", NUMERIC, where)
    try:
        assert data.kept_rows() == int(kept.sum())
        counted = data.counts()
        assert (counted.rows, counted.dropped) == (len(complete), dropped)
        _, sums = data.sums()
        np.testing.assert_allclose(sums, complete.sum(axis=0), rtol=1e-12)
        _, mean, spread = data.moments(matrix=True)
        centred = complete - complete.mean(axis=0)
        np.testing.assert_allclose(mean, complete.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(spread, centred.T @ centred, rtol=1e-9, atol=1e-9)
        _, _, diagonal = data.moments(matrix=False)
        np.testing.assert_allclose(diagonal, (centred**2).sum(axis=0), rtol=1e-9)
        _, low, high = data.extremes()
        assert low.tolist() == complete.min(axis=0).tolist()
        assert high.tolist() == complete.max(axis=0).tolist()
    finally:
        data.close()


@pytest.mark.parametrize(("where", "meaning"), FILTERS)
def test_histogram_quantile_counts_and_crosstab_equal_numpy(
    postgres, tables, where, meaning, monkeypatch: pytest.MonkeyPatch
):
    t = tables["h2"]
    kept = meaning(t)
    x = t.x[kept]
    x = x[~np.isnan(x)]
    edges = np.array([-4.0, -1.0, 0.0, 0.5, 2.0, 5.0, 8.0])
    data = _aggregates(postgres, "h2", ["x"], where)
    try:
        counted, cells = data.histogram(edges)
        assert counted.rows == len(x)
        assert cells.tolist() == np.histogram(x, edges)[0].tolist()
        # values exactly on an edge, the last edge included
        assert data.histogram(np.sort(np.unique(x))[[0, 3, -1]])[1].tolist() == (
            np.histogram(x, np.sort(np.unique(x))[[0, 3, -1]])[0].tolist()
        )
    finally:
        data.close()
    lo, hi = -2.0, 6.0
    clipped = np.sort(np.clip(x, lo, hi))
    thresholds = np.array([hi, -2.0, 0.0, 0.0, 1.5, float(x[0]), 6.0, -3.0, 2.25])
    for limit in (pushdown.SORTED_VALUES_LIMIT, 0):  # values read once; counted in SQL
        monkeypatch.setattr(pushdown, "SORTED_VALUES_LIMIT", limit)
        data = _aggregates(postgres, "h2", ["x"], where)
        try:
            _, at_most = data.at_most(lo, hi)
            got = at_most(thresholds)
            assert got.tolist() == [int((clipped <= v).sum()) for v in thresholds]
            assert at_most(thresholds[::-1]).tolist() == got[::-1].tolist()
        finally:
            data.close()

    levels = [["M", "B"], ["a", "b", "c"]]
    table = _aggregates(postgres, "h2", ["dx", "site"], where, categorical=True)
    try:
        counted, cells = table.crosstab(levels)
    finally:
        table.close()
    pairs = Counter(zip(t.dx[kept], t.site[kept], strict=True))
    expected = np.array([[pairs[(d, s)] for s in levels[1]] for d in levels[0]])
    assert cells.tolist() == expected.tolist()
    assert counted.dropped == int((t.dx[kept] == "").sum())


def test_a_job_over_three_databases_equals_numpy_on_the_pooled_rows(postgres, tables) -> None:
    names = ["h1", "h2", "h3"]
    pooled = np.vstack([tables[n].numeric(tables[n].x > -2) for n in names])
    complete = pooled[~np.isnan(pooled).any(axis=1)]
    for protocol in ("stats-variance", "stats-covariance", "stats-mean"):
        datas = [_aggregates(postgres, n, NUMERIC, "x > -2") for n in names]
        ctxs = [
            dataclasses.replace(ctx, data=d)
            for ctx, d in zip(contexts([np.zeros((0, 3))] * 3, NUMERIC), datas, strict=True)
        ]
        try:
            result, _ = run_local(LocalFederation(3), protocol, ctxs)
        finally:
            for d in datas:
                d.close()
        assert result["count"] == len(complete)
        assert result["dropped"] == len(pooled) - len(complete)
        np.testing.assert_allclose(result["mean"], complete.mean(axis=0), rtol=1e-4)
        if protocol == "stats-variance":
            np.testing.assert_allclose(result["variance"], complete.var(axis=0, ddof=1), rtol=1e-4)
        if protocol == "stats-covariance":
            np.testing.assert_allclose(
                result["covariance"], np.cov(complete, rowvar=False), rtol=1e-3, atol=1e-3
            )


def test_quantiles_over_databases_equal_the_inverted_cdf(postgres, tables) -> None:
    names = ["h1", "h2", "h3"]
    datas = [_aggregates(postgres, n, ["z"]) for n in names]
    params = {"probabilities": [0.25, 0.5, 0.9], "range": [-60, 60], "bits": 16}
    ctxs = [
        dataclasses.replace(ctx, data=d)
        for ctx, d in zip(
            contexts([np.zeros((0, 1))] * 3, ["z"], params=params), datas, strict=True
        )
    ]
    try:
        result, _ = run_local(LocalFederation(3), "stats-quantiles", ctxs)
    finally:
        for d in datas:
            d.close()
    z = np.concatenate([tables[n].z for n in names])
    z = z[~np.isnan(z)]
    exact = np.quantile(z, [0.25, 0.5, 0.9], method="inverted_cdf")
    assert np.all(np.abs(result["quantiles"] - exact) <= 120 / 2**17 + 1e-9)


def test_consent_restricts_the_rows_by_bound_identifiers(postgres, tables) -> None:
    t = tables["h3"]
    data = _aggregates(postgres, "h3", ["x"], "site != 'c'")
    try:
        ids = data.patient_ids("pid")
        assert ids is not None
        assert ids.tolist() == t.pid[t.site != "c"].tolist()
        keep = np.array([int(p[-1]) % 3 != 0 for p in ids])  # every third patient says no
        data.restrict("pid", ids, keep)
        chosen = np.isin(t.pid, ids[keep])
        assert data.kept_rows() == int(chosen.sum())
        x = t.x[chosen]
        _, sums = data.sums()
        np.testing.assert_allclose(sums, [np.nansum(x)], rtol=1e-12)
    finally:
        data.close()
    # the shorter list is the one bound: most patients consent here
    data = _aggregates(postgres, "h3", ["x"])
    try:
        ids = data.patient_ids("pid")
        assert ids is not None
        keep = np.ones(len(ids), dtype=bool)
        keep[:4] = False
        data.restrict("pid", ids, keep)
        assert data.kept_rows() == len(ids) - 4
    finally:
        data.close()


@pytest.mark.parametrize("limit", [pushdown.SORTED_VALUES_LIMIT, 0])
def test_quantile_counts_read_the_kept_values_once_when_few(
    postgres, tables, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Few kept values: one more pass reads them and every step counts in memory; many
    (a limit of 0 here): a pass per step. Both count only consenting patients' values."""
    monkeypatch.setattr(pushdown, "SORTED_VALUES_LIMIT", limit)
    t = tables["h1"]
    queries: list[str] = []
    data = _aggregates(postgres, "h1", ["z"], "y >= 20")
    fetch = data._fetch

    def counted_fetch(query, extra=None, **kw):
        queries.append(repr(query))
        return fetch(query, extra, **kw)

    monkeypatch.setattr(data, "_fetch", counted_fetch)
    try:
        ids = data.patient_ids("pid")
        assert ids is not None
        keep = np.array([int(p[-1]) % 4 != 1 for p in ids])
        data.restrict("pid", ids, keep)
        chosen = np.isin(t.pid, ids[keep]) & (t.y >= 20) & ~np.isnan(t.z)
        z = np.sort(np.clip(t.z[chosen], -30.0, 30.0))
        before = len(queries)
        counted, at_most = data.at_most(-30.0, 30.0)
        assert counted.rows == len(z)
        steps = [np.linspace(-40.0, 40.0, 15) + k for k in range(5)]
        for step in steps:
            assert at_most(step).tolist() == np.searchsorted(z, step, side="right").tolist()
        passes = len(queries) - before
        assert passes == (2 if limit else 1 + len(steps))
        # what the party handed out is the counts, the same either way
        assert data.answered()[-15:].tolist() == np.searchsorted(z, steps[-1], "right").tolist()
    finally:
        data.close()


def test_quantile_counts_over_no_kept_value_are_zeros(postgres, tables) -> None:
    data = _aggregates(postgres, "h1", ["z"], "y > 1000")
    try:
        counted, at_most = data.at_most(-1.0, 1.0)
        assert counted.rows == 0
        assert at_most(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 0, 0]
    finally:
        data.close()


def _bad_table(server) -> None:
    with _connect(server) as conn:
        conn.execute("DROP TABLE IF EXISTS bad")
        conn.execute("CREATE TABLE bad (k integer PRIMARY KEY, v double precision, w real, t text)")
        rows = [(i, float(i), 1.0, "x") for i in range(1, 21)]
        rows[6] = (7, float("nan"), 1.0, "x")  # data row 7
        rows[11] = (12, 12.0, float("inf"), "7")  # data row 12
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO bad VALUES (%s, %s, %s, %s)", rows)


def test_non_finite_values_are_refused_naming_column_and_row(postgres) -> None:
    _bad_table(postgres)
    for where, column, row in [
        (None, "v", 7),  # a selected column, in a kept row
        ("w > 0", "w", 12),  # a column the filter compares with a number, any row
    ]:
        data = _aggregates(postgres, "bad", ["v"], where)
        try:
            with pytest.raises(DataSourceError, match=rf"'{column}'.*data row {row}$") as exc:
                data.sums()
        finally:
            data.close()
        assert "nan" not in str(exc.value).lower() and "inf" not in str(exc.value).lower()
        with pytest.raises(DataSourceError, match=rf"'{column}'.*data row {row}\b"):
            _source(postgres, "bad").select(["v"], where)  # the rows say the same
    # rows the filter drops are checked too: the refusal must not tell whether the
    # filter kept the NaN in data row 7 (a one-bit oracle on that patient's value)
    for where in ("k != 7", "k == 1", "k == 7"):
        data = _aggregates(postgres, "bad", ["v"], where)
        try:
            with pytest.raises(DataSourceError, match=r"'v'.*data row 7$"):
                data.sums()
        finally:
            data.close()
        with pytest.raises(DataSourceError, match=r"'v'.*data row 7\b"):
            _source(postgres, "bad").select(["v"], where)


def test_values_out_of_the_fixed_point_range_are_refused_without_the_value(postgres) -> None:
    with _connect(postgres) as conn:
        conn.execute("DROP TABLE IF EXISTS wide")
        conn.execute("CREATE TABLE wide (k integer PRIMARY KEY, a integer, b double precision)")
        rows = [(i, i, 0.5 * i) for i in range(1, 31)]
        rows[4] = (5, 5, -16384.0)  # data row 5, just outside |x| < 2^14
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO wide VALUES (%s, %s, %s)", rows)
    for ask in ("sums", "moments", "extremes"):
        data = _aggregates(postgres, "wide", ["a", "b"])
        try:
            with pytest.raises(
                StatisticsInputError, match=r"column 'b' data row 5: value out"
            ) as e:
                if ask == "moments":
                    data.moments(matrix=False)
                else:
                    getattr(data, ask)()
        finally:
            data.close()
        assert "16384." not in str(e.value)
    data = _aggregates(postgres, "wide", ["a", "b"])
    try:  # a count reads no value, and the filter can leave the row out
        assert data.counts().rows == 30
    finally:
        data.close()
    # a filter that leaves the row out is refused the same: the column is out of range
    for where in ("b > -100", "k == 1", "k == 5"):
        data = _aggregates(postgres, "wide", ["a", "b"], where)
        try:
            assert data.counts().rows == (1 if where.startswith("k") else 29)
            with pytest.raises(StatisticsInputError, match=r"column 'b' data row 5: value out"):
                data.sums()
        finally:
            data.close()


def test_a_level_outside_the_job_is_refused_naming_column_and_row(postgres, tables) -> None:
    data = _aggregates(postgres, "h1", ["site"], categorical=True)
    try:
        with pytest.raises(
            DataSourceError, match=r"column 'site' data row (\d+): value is not"
        ) as e:
            data.crosstab([["a", "b"]])
    finally:
        data.close()
    row = int(e.value.args[0].split("data row ")[1].split(":")[0])
    assert tables["h1"].site[row - 1] == "c"
    # the same refusal when the filter keeps no row holding the level (the whole column)
    data = _aggregates(postgres, "h1", ["site"], "site != 'c'", categorical=True)
    try:
        with pytest.raises(DataSourceError, match=rf"column 'site' data row {row}: value is not"):
            data.crosstab([["a", "b"]])
    finally:
        data.close()


def test_types_without_a_translation_read_rows_instead(postgres, tables) -> None:
    src = _source(postgres, "h1")
    assert src.aggregates(["dx"]) is None  # text in a numeric statistic
    assert src.aggregates(["x"], "dx > 1") is None  # a text column compared with a number
    assert src.aggregates(["x"], "y == 'a'") is None  # a number column compared with a string
    assert src.aggregates(["y"], categorical=True) is None  # numbers in a contingency table


def test_injection_through_names_and_filters_is_refused(postgres, tables) -> None:
    src = _source(postgres, "h1")
    for name in ['x"; DROP TABLE h1; --', "x FROM h1; --", "*", "x)"]:
        with pytest.raises(DataSourceError, match="unknown column"):
            src.aggregates([name])
    for where in ["x > 1; DROP TABLE h1", "x > 1 -- x", "1 == 1 or true", "x > (select 1)"]:
        with pytest.raises(DataSourceError):
            src.aggregates(["x"], where)
    # A literal full of SQL is only ever a bound value: it matches no row.
    data = _aggregates(postgres, "h1", ["x"], "dx == \"M' OR '1'='1\"")
    try:
        assert data.kept_rows() == 0
    finally:
        data.close()
    assert src.row_count == 300


def test_a_dropped_connection_mid_query_is_a_clear_error(postgres, tables) -> None:
    with _connect(postgres) as conn:
        conn.execute("CREATE OR REPLACE VIEW slow_h1 AS SELECT h1.* FROM h1, pg_sleep(3)")
    data = _aggregates(postgres, "slow_h1", ["x"])

    def kill() -> None:
        time.sleep(0.7)
        with _connect(postgres) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
                " AND state = 'active'"
            )

    killer = threading.Thread(target=kill)
    killer.start()
    try:
        with pytest.raises(DataSourceError, match=r"cannot read table 'slow_h1' \(.*57P01\)"):
            data.sums()
    finally:
        killer.join()
        data.close()


def test_one_pass_when_no_kept_row_misses_a_value(postgres, tables) -> None:
    """Without dropped rows the first pass's aggregates are the complete rows' ones."""
    t = tables["h1"]
    x = t.x[~np.isnan(t.x)]
    data = _aggregates(postgres, "h1", ["x"], "x is not missing")
    try:
        counted, mean, spread = data.moments(matrix=True)
        assert (counted.rows, counted.dropped) == (len(x), 0)
        np.testing.assert_allclose(mean, [x.mean()], rtol=1e-12)
        np.testing.assert_allclose(spread, [[((x - x.mean()) ** 2).sum()]], rtol=1e-9)
        _, low, high = data.extremes()
        assert (low.tolist(), high.tolist()) == ([x.min()], [x.max()])
    finally:
        data.close()


def test_the_cohort_check_runs_on_the_first_pass_before_any_aggregate(postgres, tables) -> None:
    seen: list[int] = []

    class Small(Exception):
        pass

    def check(rows: int) -> None:
        seen.append(rows)
        raise Small

    data = _aggregates(postgres, "h1", NUMERIC, "y < 20")
    data.admit(check)
    try:
        with pytest.raises(Small):
            data.sums()
        assert data.answered().size == 0  # nothing was handed out
    finally:
        data.close()
    assert seen == [int((tables["h1"].y < 20).sum())]


def test_awkward_column_names_are_quoted_in_every_query(postgres) -> None:
    """Quotes, braces and '%' (a placeholder once parameters are bound) in names."""
    names = ["r%s", 'a"b{}', "x%(ws)s"]
    with _connect(postgres) as conn:
        conn.execute("DROP TABLE IF EXISTS awkward")
        conn.execute(
            sql.SQL(
                "CREATE TABLE awkward (k integer PRIMARY KEY, {} float8, {} float8, {} text)"
            ).format(*(sql.Identifier(n) for n in names))
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO awkward VALUES (%s, %s, %s, %s)",
                [(i, float(i), 2.0 * i, "M" if i % 3 else "B") for i in range(1, 31)],
            )
    src = _source(postgres, "awkward")
    assert src.columns == ("k", *names)
    got = src.select(names[:2], "k > 10").values
    np.testing.assert_array_equal(got, [[float(i), 2.0 * i] for i in range(11, 31)])
    data = _aggregates(postgres, "awkward", names[:2], "k > 10")
    try:
        assert data.sums()[1].tolist() == [sum(range(11, 31)), 2.0 * sum(range(11, 31))]
    finally:
        data.close()
    table = _aggregates(postgres, "awkward", names[2:], categorical=True)
    try:
        assert table.crosstab([["M", "B"]])[1].tolist() == [20, 10]
    finally:
        table.close()
