"""A statistic's local aggregates computed inside PostgreSQL: the rows never leave the database.

:class:`PostgresAggregates` answers :class:`~protocols.local_data.LocalData`
with one SQL query per aggregate, built from the job's parsed filter (bound
parameters, quoted identifiers; :mod:`parties.data.sql_filter`). Every query
of a job runs in one read-only REPEATABLE READ transaction, so the cohort
count, the consent restriction and every aggregate see the same snapshot.

The answers mean what the numpy reference (:class:`~protocols.local_data.RowData`)
means on the rows the source would have read: the same complete rows and
dropped count, and the same refusals, each decided in SQL and named by
column and data row, never by value:

- a numeric cell that is NaN or infinite in a kept row, or anywhere in a
  column the filter compares with a number: "not a finite number";
- a text column compared with a string that holds only numbers;
- in the bounded statistics a complete value outside |x| < 2^14 (minimum and
  maximum are checked in the same query);
- in a contingency table a value that is not one of the job's levels.

Consent: the node streams the patient column of the kept rows (one column),
decides each patient's consent in Python, and the aggregates are restricted to the
consenting patients by a bound array of identifiers (those excluded, or those
included, whichever list is shorter: the snapshot is the same). Only a text or
integer patient column can be restricted in SQL; any other type, and any
column or filter type without a translation, reads the rows instead
(:meth:`PostgresAggregates.build` returns None).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from psycopg import sql

from parties.data import sql_filter
from parties.data.base import InPlaceData
from parties.data.errors import DataSourceError
from parties.data.filters import Filter
from protocols.disclosure import VALUE_BOUND
from protocols.local_data import AtMost, Counted, out_of_range

if TYPE_CHECKING:
    from parties.data.postgresql_source import PostgresSource


class PostgresAggregates(InPlaceData):
    """One job's aggregates over a PostgreSQL source, in one snapshot; :meth:`close` ends it."""

    def __init__(
        self,
        source: PostgresSource,
        columns: Sequence[str],
        kinds: dict[str, str],
        parsed: Filter | None,
        *,
        categorical: bool,
    ) -> None:
        super().__init__(columns)
        self._source = source
        self._kinds = kinds
        self._parsed = parsed
        self._categorical = categorical
        self._bind = sql_filter.Binder()
        self._relation = source.relation(self._bind)
        self._filter = (
            sql_filter.condition(parsed, kinds, self._bind) if parsed is not None else None
        )
        self._restriction: sql.Composable | None = None
        self._conn: psycopg.Connection | None = None
        self._counted: tuple[int, Counted] | None = None

    @classmethod
    def build(
        cls,
        source: PostgresSource,
        columns: Sequence[str],
        parsed: Filter | None,
        *,
        categorical: bool = False,
    ) -> PostgresAggregates | None:
        """The aggregates of ``columns`` under ``parsed``, or None if SQL cannot keep the meaning.

        Numeric statistics need numeric columns, a contingency table text
        columns, and the filter a translation (see ``sql_filter``).
        """
        kinds = source.kinds
        wanted = sql_filter.TEXT if categorical else sql_filter.NUMERIC
        if not columns or any(kinds.get(c) != wanted for c in columns):
            return None
        made = cls(source, columns, kinds, parsed, categorical=categorical)
        if parsed is not None and made._filter is None:
            return None
        return made

    # -- the connection and its snapshot ------------------------------------------------

    @contextmanager
    def _query(self) -> Iterator[psycopg.Connection]:
        """The job's connection (opened on first use); any database error ends it."""
        try:
            if self._conn is None:
                conn = self._source.open_connection()
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                self._conn = conn
            yield self._conn
        except psycopg.Error as exc:
            self.close()
            from parties.data.postgresql_source import kind_of_error

            raise DataSourceError(
                f"cannot read {self._source.describe()} ({kind_of_error(exc)})"
            ) from None

    def close(self) -> None:
        """End the snapshot and close the connection (a job calls it when it ends)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    def _fetch(self, query: sql.Composed, extra: dict[str, object] | None = None) -> list[Any]:
        params = {**self._bind.params, **(extra or {})}
        with self._query() as conn:
            return conn.execute(query, params).fetchall()

    # -- conditions ---------------------------------------------------------------------

    def _cell(self, name: str) -> sql.Composable:
        if self._kinds[name] == sql_filter.NUMERIC:
            return sql_filter.number(name)
        return sql_filter.text(name)

    def _kept(self) -> sql.Composable:
        """True in the rows the job keeps: its filter and the consent restriction."""
        parts = [p for p in (self._filter, self._restriction) if p is not None]
        return sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")

    def _complete(self, columns: Sequence[str] | None = None) -> sql.Composable:
        names = self.columns if columns is None else columns
        return sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(self._cell(n)) for n in names)

    def _first_row(self, where: sql.Composable, extra: dict[str, object] | None = None) -> int:
        """The data row (1-based, in the source's order) of the first row where ``where`` holds."""
        with self._query() as conn:
            order = self._source.numbering(conn)
        query = sql.SQL(
            "SELECT n FROM (SELECT row_number() OVER ({}) AS n, ({}) AS hit FROM {} AS r) AS s"
            " WHERE hit ORDER BY n LIMIT 1"
        ).format(order, where, self._relation)
        found = self._fetch(query, extra)
        return int(found[0][0]) if found else 0

    # -- consent ------------------------------------------------------------------------

    def patient_ids(self, column: str) -> np.ndarray | None:
        """The patient column of the rows the filter keeps, as text ("" where missing).

        None when the column is neither text nor an integer type: then consent
        cannot be applied in SQL with the meaning the rows give it.
        """
        data_type = self._source.types.get(column, "")
        if not (
            self._kinds.get(column) == sql_filter.TEXT or data_type in sql_filter.INTEGER_TYPES
        ):
            return None
        with self._query() as conn:
            order = self._source.numbering(conn)
        where = self._filter if self._filter is not None else sql.SQL("TRUE")
        query = sql.SQL("SELECT COALESCE({}, '') FROM {} AS r WHERE {}{}").format(
            sql_filter.text(column), self._relation, where, order
        )
        return np.array([row[0] for row in self._fetch(query)], dtype=str)

    def restrict(self, column: str, ids: np.ndarray, keep: np.ndarray) -> None:
        """Keep only the rows of consenting patients (``ids`` from :meth:`patient_ids`)."""
        if self._counted is not None:
            raise RuntimeError("restrict before the first aggregate")
        keep = np.asarray(keep, dtype=bool)
        if keep.all():
            return
        chosen = sorted(set(ids[keep].tolist()))
        others = sorted(set(ids[~keep].tolist()))
        cell = sql.SQL("COALESCE({}, '')").format(sql_filter.text(column))
        if len(chosen) <= len(others):
            self._restriction = sql.SQL("({} = ANY({}::text[]))").format(cell, self._bind(chosen))
        else:
            self._restriction = sql.SQL("(NOT {} = ANY({}::text[]))").format(
                cell, self._bind(others)
            )

    # -- checks shared by every aggregate ----------------------------------------------

    def kept_rows(self) -> int:
        """Rows the job keeps (filter and consent), after the checks the row path makes.

        One scan: the filter's checks over every row, the non-finite check of
        the selected columns in the kept rows, and the kept and complete counts.
        """
        if self._counted is None:
            kept = self._kept()
            checks: list[sql.Composable] = []
            guards = sql_filter.guards(self._parsed, self._kinds) if self._parsed else []
            for column, bad in guards:
                if self._kinds.get(column) == sql_filter.TEXT:  # compared with a string
                    checks.append(
                        sql.SQL("bool_and({}) AND bool_or({} IS NOT NULL)").format(
                            bad, sql_filter.text(column)
                        )
                    )
                else:
                    checks.append(sql.SQL("bool_or({})").format(bad))
            selected = [] if self._categorical else list(self.columns)
            for column in selected:
                checks.append(
                    sql.SQL("bool_or({}) FILTER (WHERE {})").format(
                        sql_filter.not_finite(column), kept
                    )
                )
            query = sql.SQL(
                "SELECT count(*) FILTER (WHERE {k}), count(*) FILTER (WHERE {k} AND {c}){x}"
                " FROM {r} AS r"
            ).format(
                k=kept,
                c=self._complete(),
                x=sql.SQL("").join(sql.SQL(", ") + check for check in checks),
                r=self._relation,
            )
            row = self._fetch(query)[0]
            flags = [bool(f) for f in row[2:]]
            for (column, bad), flag in zip(guards, flags, strict=False):
                if not flag:
                    continue
                if self._kinds.get(column) == sql_filter.TEXT:
                    raise DataSourceError(
                        f"the filter compares column {column!r}, which holds numbers, with a"
                        " string literal; compare it with a number"
                    )
                raise DataSourceError(
                    f"column {column!r} has a value that is not a finite number at data row"
                    f" {self._first_row(bad)}"
                )
            for column, flag in zip(selected, flags[len(guards) :], strict=True):
                if flag:
                    bad = sql.SQL("{} AND {}").format(kept, sql_filter.not_finite(column))
                    raise DataSourceError(
                        f"column {column!r} has a value that is not a finite number at data row"
                        f" {self._first_row(bad)}"
                    )
            total, complete = int(row[0]), int(row[1])
            self._counted = (total, Counted(complete, total - complete))
        return self._counted[0]

    def _counts(self) -> Counted:
        self.kept_rows()
        assert self._counted is not None
        return self._counted[1]

    def _bounded(self, low: Sequence[float | None], high: Sequence[float | None]) -> None:
        """Refuse, naming column and data row, a complete value outside |x| < 2^14."""
        for j, column in enumerate(self.columns):
            lo, hi = low[j], high[j]
            if lo is None or hi is None or (lo > -VALUE_BOUND and hi < VALUE_BOUND):
                continue
            cell = sql_filter.number(column)
            bad = sql.SQL("{} AND {} AND NOT (abs({}) < {})").format(
                self._kept(), self._complete(), cell, sql.Literal(VALUE_BOUND)
            )
            raise out_of_range(column, f"data row {self._first_row(bad)}")

    def _aggregate(self, items: Sequence[sql.Composable]) -> list[Any]:
        query = sql.SQL("SELECT {} FROM {} AS r WHERE {} AND {}").format(
            sql.SQL(", ").join(items), self._relation, self._kept(), self._complete()
        )
        return list(self._fetch(query)[0])

    def _ends(self) -> list[sql.Composed]:
        cells = [sql_filter.number(c) for c in self.columns]
        return [sql.SQL("min({})").format(c) for c in cells] + [
            sql.SQL("max({})").format(c) for c in cells
        ]

    # -- LocalData ------------------------------------------------------------------------

    def counts(self) -> Counted:
        counted = self._counts()
        self._note([counted.rows, counted.dropped])
        return counted

    def sums(self) -> tuple[Counted, np.ndarray]:
        counted = self._counts()
        p = len(self.columns)
        got = self._aggregate(
            [
                *self._ends(),
                *(sql.SQL("sum({})").format(sql_filter.number(c)) for c in self.columns),
            ]
        )
        self._bounded(got[:p], got[p : 2 * p])
        sums = np.array([0.0 if v is None else float(v) for v in got[2 * p :]])
        self._note([counted.rows, counted.dropped], sums)
        return counted, sums

    def moments(self, *, matrix: bool) -> tuple[Counted, np.ndarray, np.ndarray]:
        counted = self._counts()
        p = len(self.columns)
        cells = [sql_filter.number(c) for c in self.columns]
        pairs = (
            [(i, j) for i in range(p) for j in range(i, p)]
            if matrix
            else [(j, j) for j in range(p)]
        )
        items = [
            *self._ends(),
            *(sql.SQL("avg({})").format(c) for c in cells),
            *(sql.SQL("regr_sxy({}, {})").format(cells[i], cells[j]) for i, j in pairs),
        ]
        raw = self._aggregate(items)
        if counted.rows:
            self._bounded(raw[:p], raw[p : 2 * p])
        got = [0.0 if v is None else float(v) for v in raw]
        mean = np.array(got[2 * p : 3 * p])
        found = got[3 * p :]
        if matrix:
            spread = np.zeros((p, p))
            for (i, j), value in zip(pairs, found, strict=True):
                spread[i, j] = spread[j, i] = value
        else:
            spread = np.array(found)
        self._note([counted.rows, counted.dropped], mean, spread)
        return counted, mean, spread

    def extremes(self) -> tuple[Counted, np.ndarray, np.ndarray]:
        counted = self._counts()
        p = len(self.columns)
        got = self._aggregate(self._ends())
        if counted.rows:
            self._bounded(got[:p], got[p:])
        low = np.array([0.0 if v is None else float(v) for v in got[:p]])
        high = np.array([0.0 if v is None else float(v) for v in got[p:]])
        self._note([counted.rows, counted.dropped], low, high)
        return counted, low, high

    def histogram(self, edges: np.ndarray) -> tuple[Counted, np.ndarray]:
        counted = self._counts()
        edges = np.asarray(edges, dtype=np.float64)
        k = len(edges)
        cell = sql_filter.number(self.columns[0])
        query = sql.SQL(
            "SELECT CASE WHEN {c} = {last}::float8 THEN {k} ELSE width_bucket({c}, {e}::float8[])"
            " END AS b, count(*) FROM {r} AS r WHERE {w} AND {c} IS NOT NULL GROUP BY 1"
        ).format(
            c=cell,
            last=sql.Placeholder("last"),
            k=sql.Literal(k - 1),
            e=sql.Placeholder("edges"),
            r=self._relation,
            w=self._kept(),
        )
        cells = np.zeros(k - 1, dtype=np.int64)
        for bucket, n in self._fetch(query, {"last": float(edges[-1]), "edges": edges.tolist()}):
            if 1 <= int(bucket) <= k - 1:
                cells[int(bucket) - 1] += int(n)
        self._note([counted.rows, counted.dropped], cells)
        return counted, cells

    def crosstab(self, levels: Sequence[Sequence[str]]) -> tuple[Counted, np.ndarray]:
        self.kept_rows()
        texts = [sql_filter.text(c) for c in self.columns]
        query = sql.SQL("SELECT {}, count(*) FROM {} AS r WHERE {} GROUP BY {}").format(
            sql.SQL(", ").join(texts),
            self._relation,
            self._kept(),
            sql.SQL(", ").join(sql.Literal(j + 1) for j in range(len(texts))),
        )
        groups = self._fetch(query)
        index = [{level: j for j, level in enumerate(allowed)} for allowed in levels]
        for j, column in enumerate(self.columns):
            if any(g[j] is not None and g[j] not in index[j] for g in groups):
                bad = sql.SQL("{} AND {} IS NOT NULL AND NOT ({} = ANY({}::text[]))").format(
                    self._kept(), texts[j], texts[j], sql.Placeholder("levels")
                )
                row = self._first_row(bad, {"levels": list(levels[j])})
                raise DataSourceError(
                    f"column {column!r} data row {row}: value is not one of the job's"
                    f" {len(levels[j])} levels"
                )
        cells = np.zeros(tuple(len(a) for a in levels), dtype=np.int64)
        complete = dropped = 0
        for g in groups:
            n = int(g[-1])
            if any(v is None for v in g[:-1]):
                dropped += n
                continue
            cells[tuple(index[j][v] for j, v in enumerate(g[:-1]))] += n
            complete += n
        counted = Counted(complete, dropped)
        self._note([counted.rows, counted.dropped], cells)
        return counted, cells

    def at_most(self, lo: float, hi: float) -> tuple[Counted, AtMost]:
        counted = self._counts()
        self._note([counted.rows, counted.dropped])
        return counted, _SqlAtMost(self, float(lo), float(hi))


class _SqlAtMost(AtMost):
    """Counts at or below thresholds in one grouped scan: width_bucket on negated values.

    For ascending distinct thresholds T, width_bucket(-x, -T reversed) is the
    number of thresholds >= x, so x <= T[k] exactly when it is at least
    len(T) - k: exact float comparisons, the same as ``searchsorted``.
    """

    def __init__(self, data: PostgresAggregates, lo: float, hi: float) -> None:
        self._data = data
        self._lo, self._hi = lo, hi

    def __call__(self, thresholds: np.ndarray) -> np.ndarray:
        data = self._data
        wanted = np.asarray(thresholds, dtype=np.float64)
        distinct = np.unique(wanted)
        cell = sql_filter.number(data.columns[0])
        query = sql.SQL(
            "SELECT width_bucket(-LEAST(GREATEST({c}, {lo}::float8), {hi}::float8),"
            " {t}::float8[]) AS b, count(*) FROM {r} AS r WHERE {w} AND {c} IS NOT NULL"
            " GROUP BY 1"
        ).format(
            c=cell,
            lo=sql.Placeholder("lo"),
            hi=sql.Placeholder("hi"),
            t=sql.Placeholder("negated"),
            r=data._relation,
            w=data._kept(),
        )
        params = {"lo": self._lo, "hi": self._hi, "negated": (-distinct[::-1]).tolist()}
        at_least = np.zeros(len(distinct) + 1, dtype=np.int64)  # by thresholds >= x
        for bucket, n in data._fetch(query, params):
            at_least[int(bucket)] += int(n)
        # values <= distinct[k]: those with at least len - k thresholds >= them
        tail = np.cumsum(at_least[::-1])[::-1]  # tail[m] = values with >= m thresholds above
        below = tail[len(distinct) - np.arange(len(distinct))]
        out = below[np.searchsorted(distinct, wanted)].astype(np.int64)
        data._note(out)
        return out


__all__ = ["PostgresAggregates"]
