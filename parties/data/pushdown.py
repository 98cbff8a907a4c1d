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

- a numeric cell that is NaN or infinite in a selected column, or in a
  column the filter compares with a number: "not a finite number";
- a text column compared with a string that holds only numbers;
- in the bounded statistics a value outside |x| < 2^14;
- in a contingency table a value that is not one of the job's levels.

Each is decided over every row of the table, kept by the filter and consent
or not, as the row path decides it (``ColumnFacts``): a refusal must not tell
whether the filter kept one patient's bad value. The first scan of a job reads
every row once, grouped by whether the row is kept, so the whole-table minima
and maxima come with the aggregates in the same pass.

Quantiles bisect on shared thresholds, asking for counts of kept values at
or below each. With at most :data:`SORTED_VALUES_LIMIT` kept values the
first count reads them once more (one pass, as one binary ``bytea``), and
every step is a binary search in the party's memory; with more, each step
is a grouped pass in SQL. Only the counts asked for are handed out.

Consent: the node streams the patient column of the kept rows (one column),
decides each patient's consent with numpy, and the aggregates are restricted to the
consenting patients by a bound array of identifiers (those excluded, or those
included, whichever list is shorter: the snapshot is the same). Only a text or
integer patient column can be restricted in SQL; any other type, and any
column or filter type without a translation, reads the rows instead
(:meth:`PostgresAggregates.build` returns None).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from psycopg import sql

from parties.data import sql_filter
from parties.data.base import InPlaceData
from parties.data.errors import DataSourceError
from parties.data.filters import Filter
from protocols.disclosure import VALUE_BOUND
from protocols.local_data import AtMost, Counted, SortedAtMost, out_of_range

if TYPE_CHECKING:
    from parties.data.postgresql_source import PostgresSource

SORTED_VALUES_LIMIT = 4_000_000
"""Most kept values a quantile job reads once (8 bytes each) to count in memory.

Up to this many, the values of the kept rows are read in one more pass and
sorted, and every bisection step is a binary search; with more, each step
is a grouped pass in SQL. Either way only the counts asked leave the party.
"""


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
        self._check: Callable[[int], None] | None = None
        types = source.types
        self._guards = (  # an integer column cannot hold NaN or an infinity: nothing to check
            [
                (column, is_text)
                for column, is_text in sql_filter.compared(parsed)
                if is_text or types.get(column) not in sql_filter.INTEGER_TYPES
            ]
            if parsed is not None
            else []
        )

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

    def _fetch(
        self, query: sql.Composed, extra: dict[str, object] | None = None, *, binary: bool = False
    ) -> list[Any]:
        params = {**self._bind.params, **(extra or {})}
        with self._query() as conn:
            return conn.execute(query, params, binary=binary).fetchall()

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

    # -- the one scan every aggregate starts with ------------------------------------

    def admit(self, check: Callable[[int], None]) -> None:
        """Call ``check(kept rows)`` on the first scan, before any aggregate is handed out."""
        self._check = check

    def kept_rows(self) -> int:
        """Rows the job keeps (filter and consent), after the checks the row path makes."""
        return self._scan([], []).kept

    def _scan(self, keys: Sequence[sql.Composable], items: Sequence[sql.Composable]) -> _Scanned:
        """One pass over every row: counts, the row path's checks, and ``items`` per group.

        Groups are by whether a row is kept and by ``keys``. The checks are
        over every row, kept or not, as the row path makes them: a selected
        column's cells must be finite (and, in :meth:`_bounded`, in range; in
        :meth:`crosstab`, one of the levels), and a column the filter compares
        with a literal must fit it. So a refusal tells nothing of which rows
        the filter kept. Raises naming column and data row; calls the admission
        check once with the kept count.
        """
        kept = self._kept()
        guards = self._guards
        keyed: list[sql.Composable] = [sql.SQL("COALESCE({}, FALSE)").format(kept), *keys]
        guard_items: list[sql.Composable] = []
        for column, is_text in guards:
            if is_text:
                guard_items += [
                    sql.SQL("bool_and({})").format(sql_filter.looks_numeric(column)),
                    sql.SQL("bool_or({} IS NOT NULL)").format(sql_filter.text(column)),
                ]
            else:
                cell = sql_filter.number(column)
                guard_items += [sql.SQL("min({})").format(cell), sql.SQL("max({})").format(cell)]
        selected = [] if self._categorical else list(self.columns)
        cell_items = [
            sql.SQL("{}({})").format(sql.SQL(f), sql_filter.number(c))
            for f in ("min", "max")
            for c in selected
        ]
        listed = [
            *keyed,
            sql.SQL("count(*)"),
            sql.SQL("count(*) FILTER (WHERE {})").format(self._complete()),
            *guard_items,
            *cell_items,
            *items,
        ]
        query = sql.SQL("SELECT {} FROM {} AS r").format(sql.SQL(", ").join(listed), self._relation)
        by = sql.SQL(", ").join(sql.Literal(j + 1) for j in range(len(keyed)))
        query = sql.SQL("{} GROUP BY {}").format(query, by)
        groups = self._fetch(query)
        g0 = len(keyed)
        for j, (column, is_text) in enumerate(guards):
            at = g0 + 2 + 2 * j
            if is_text:
                numbers_only = all(g[at] is not False for g in groups)
                if numbers_only and any(g[at + 1] for g in groups):
                    raise DataSourceError(
                        f"the filter compares column {column!r}, which holds numbers, with a"
                        " string literal; compare it with a number"
                    )
            elif not all(_finite(g[at], g[at + 1]) for g in groups):
                bad = sql_filter.not_finite(column)
                raise DataSourceError(
                    f"column {column!r} has a value that is not a finite number at data row"
                    f" {self._first_row(bad)}"
                )
        at = g0 + 2 + 2 * len(guards)
        p = len(selected)
        for j, column in enumerate(selected):  # every row, kept or not
            if not all(_finite(g[at + j], g[at + p + j]) for g in groups):
                bad = sql_filter.not_finite(column)
                raise DataSourceError(
                    f"column {column!r} has a value that is not a finite number at data row"
                    f" {self._first_row(bad)}"
                )
        whole = (
            [_least([g[at + j] for g in groups]) for j in range(p)],
            [_greatest([g[at + p + j] for g in groups]) for j in range(p)],
        )
        every_key = sorted({tuple(g[1:g0]) for g in groups}, key=repr)
        groups = [g[1:] for g in groups if g[0]]
        g0 -= 1
        at -= 1
        groups = [g for g in groups if g[g0] is not None and int(g[g0]) > 0]
        total = sum(int(g[g0]) for g in groups)
        complete = sum(int(g[g0 + 1]) for g in groups)
        if self._check is not None:
            check, self._check = self._check, None
            check(total)
        return _Scanned(
            kept=total,
            counted=Counted(complete, total - complete),
            keys=[tuple(g[:g0]) for g in groups],
            counts=[int(g[g0]) for g in groups],
            complete=[int(g[g0 + 1]) for g in groups],
            low=[list(g[at : at + p]) for g in groups],
            high=[list(g[at + p : at + 2 * p]) for g in groups],
            items=[list(g[at + 2 * p :]) for g in groups],
            whole_low=whole[0],
            whole_high=whole[1],
            every_key=every_key,
        )

    def _complete_rows(
        self, scanned: _Scanned, items: Sequence[sql.Composable]
    ) -> tuple[list[Any], list[Any], list[Any]]:
        """(minima, maxima, items) over the complete kept rows.

        The first scan's are those when no kept row misses a value (its
        aggregates skip NULL cells, so they cover the same rows); else one more
        pass over the complete rows.
        """
        p = len(self.columns)
        if scanned.counted.dropped == 0:
            if not scanned.items:
                return [None] * p, [None] * p, [None] * len(items)
            return scanned.low[0], scanned.high[0], scanned.items[0]
        cells = [sql_filter.number(c) for c in self.columns]
        listed = [
            *(sql.SQL("min({})").format(c) for c in cells),
            *(sql.SQL("max({})").format(c) for c in cells),
            *items,
        ]
        query = sql.SQL("SELECT {} FROM {} AS r WHERE {} AND {}").format(
            sql.SQL(", ").join(listed), self._relation, self._kept(), self._complete()
        )
        row = list(self._fetch(query)[0])
        return row[:p], row[p : 2 * p], row[2 * p :]

    def _bounded(self, scanned: _Scanned) -> None:
        """Refuse, naming column and data row, a value outside |x| < 2^14 in any row.

        Every row of the column, kept or not (the scan's minimum and maximum
        over the whole table), so the refusal does not depend on the filter.
        """
        for j, column in enumerate(self.columns):
            lo, hi = scanned.whole_low[j], scanned.whole_high[j]
            if lo is None or hi is None or (lo > -VALUE_BOUND and hi < VALUE_BOUND):
                continue
            cell = sql_filter.number(column)
            bad = sql.SQL("{} IS NOT NULL AND NOT (abs({}) < {})").format(
                cell, cell, sql.Literal(VALUE_BOUND)
            )
            raise out_of_range(column, f"data row {self._first_row(bad)}")

    # -- LocalData ------------------------------------------------------------------------

    def counts(self) -> Counted:
        counted = self._scan([], []).counted
        self._note([counted.rows, counted.dropped])
        return counted

    def sums(self) -> tuple[Counted, np.ndarray]:
        items = [sql.SQL("sum({})").format(sql_filter.number(c)) for c in self.columns]
        scanned = self._scan([], items)
        self._bounded(scanned)
        _, _, got = self._complete_rows(scanned, items)
        sums = np.array([0.0 if v is None else float(v) for v in got])
        counted = scanned.counted
        self._note([counted.rows, counted.dropped], sums)
        return counted, sums

    def moments(self, *, matrix: bool) -> tuple[Counted, np.ndarray, np.ndarray]:
        p = len(self.columns)
        cells = [sql_filter.number(c) for c in self.columns]
        # var_pop and covar_pop accumulate stably (Youngs and Cramer); times n they are the
        # centred sums of squares and cross-products.
        pairs = [(i, j) for i in range(p) for j in range(i + 1, p)] if matrix else []
        items = [
            *(sql.SQL("avg({})").format(c) for c in cells),
            *(sql.SQL("var_pop({})").format(c) for c in cells),
            *(sql.SQL("covar_pop({}, {})").format(cells[i], cells[j]) for i, j in pairs),
        ]
        scanned = self._scan([], items)
        counted = scanned.counted
        self._bounded(scanned)
        _, _, raw = self._complete_rows(scanned, items)
        got = [0.0 if v is None else float(v) for v in raw]
        n = counted.rows
        mean = np.array(got[:p])
        variances = np.array(got[p : 2 * p]) * n
        if matrix:
            spread = np.diag(variances)
            for (i, j), value in zip(pairs, got[2 * p :], strict=True):
                spread[i, j] = spread[j, i] = value * n
        else:
            spread = variances
        self._note([counted.rows, counted.dropped], mean, spread)
        return counted, mean, spread

    def extremes(self) -> tuple[Counted, np.ndarray, np.ndarray]:
        scanned = self._scan([], [])
        counted = scanned.counted
        self._bounded(scanned)
        low, high, _ = self._complete_rows(scanned, [])
        lows = np.array([0.0 if v is None else float(v) for v in low])
        highs = np.array([0.0 if v is None else float(v) for v in high])
        self._note([counted.rows, counted.dropped], lows, highs)
        return counted, lows, highs

    def histogram(self, edges: np.ndarray) -> tuple[Counted, np.ndarray]:
        edges = np.asarray(edges, dtype=np.float64)
        k = len(edges)
        cell = sql_filter.number(self.columns[0])
        bucket = sql.SQL(
            "CASE WHEN {c} IS NULL THEN -1 WHEN {c} = {last}::float8 THEN {k}"
            " ELSE width_bucket({c}, {e}::float8[]) END"
        ).format(
            c=cell,
            last=self._bind(float(edges[-1])),
            k=sql.Literal(k - 1),
            e=self._bind(edges.tolist()),
        )
        scanned = self._scan([bucket], [])
        cells = np.zeros(k - 1, dtype=np.int64)
        for (b,), n in zip(scanned.keys, scanned.counts, strict=True):
            if 1 <= int(b) <= k - 1:
                cells[int(b) - 1] += n
        counted = scanned.counted
        self._note([counted.rows, counted.dropped], cells)
        return counted, cells

    def crosstab(self, levels: Sequence[Sequence[str]]) -> tuple[Counted, np.ndarray]:
        texts = [sql_filter.text(c) for c in self.columns]
        scanned = self._scan(texts, [])
        index = [{level: j for j, level in enumerate(allowed)} for allowed in levels]
        for j, column in enumerate(self.columns):
            # every row, kept or not: the refusal must not tell which rows the filter kept
            if any(key[j] is not None and key[j] not in index[j] for key in scanned.every_key):
                bad = sql.SQL("{} IS NOT NULL AND NOT ({} = ANY({}::text[]))").format(
                    texts[j], texts[j], sql.Placeholder("levels")
                )
                row = self._first_row(bad, {"levels": list(levels[j])})
                raise DataSourceError(
                    f"column {column!r} data row {row}: value is not one of the job's"
                    f" {len(levels[j])} levels"
                )
        cells = np.zeros(tuple(len(a) for a in levels), dtype=np.int64)
        for key, n in zip(scanned.keys, scanned.counts, strict=True):
            if all(v is not None for v in key):
                cells[tuple(index[j][v] for j, v in enumerate(key))] += n
        counted = scanned.counted
        self._note([counted.rows, counted.dropped], cells)
        return counted, cells

    def at_most(self, lo: float, hi: float) -> tuple[Counted, AtMost]:
        counted = self._scan([], []).counted
        self._note([counted.rows, counted.dropped])
        if counted.rows <= SORTED_VALUES_LIMIT:
            return counted, _FetchedAtMost(self, float(lo), float(hi))
        return counted, _SqlAtMost(self, float(lo), float(hi))

    def kept_values(self) -> np.ndarray:
        """The first column's values in the complete kept rows, in no order (one pass).

        They come as one ``bytea`` of big-endian doubles (``float8send``) in
        binary form, so no row is fetched one by one: 10^6 values cost about
        what one grouped count pass does.
        """
        cell = sql_filter.number(self.columns[0])
        query = sql.SQL(
            "SELECT string_agg(float8send({c}), ''::bytea) FROM {r} AS r"
            " WHERE {w} AND {c} IS NOT NULL"
        ).format(c=cell, r=self._relation, w=self._kept())
        ((raw,),) = self._fetch(query, binary=True)
        return np.frombuffer(bytes(raw or b""), dtype=">f8").astype(np.float64)


@dataclass(frozen=True)
class _Scanned:
    """What one scan found over the kept rows, per group, and over every row."""

    kept: int
    counted: Counted
    keys: list[tuple[Any, ...]]
    counts: list[int]
    complete: list[int]
    low: list[list[Any]]
    high: list[list[Any]]
    items: list[list[Any]]
    whole_low: list[Any]
    """Each selected column's minimum over every row, kept or not (None: no value)."""
    whole_high: list[Any]
    every_key: list[tuple[Any, ...]]
    """The group keys found in any row, kept or not."""


def _least(values: Sequence[Any]) -> Any:
    """The smallest of the values that are not None (None if there is none)."""
    present = [v for v in values if v is not None]
    return min(present, key=float) if present else None


def _greatest(values: Sequence[Any]) -> Any:
    """The largest of the values that are not None (None if there is none)."""
    present = [v for v in values if v is not None]
    return max(present, key=float) if present else None


def _finite(low: Any, high: Any) -> bool:
    """Whether a column's minimum and maximum say every cell is finite (NaN sorts above all)."""
    if low is None or high is None:
        return True
    lo, hi = float(low), float(high)
    return not (math.isnan(lo) or math.isnan(hi)) and -math.inf < lo and hi < math.inf


class _FetchedAtMost(AtMost):
    """Counts from the kept values read once, on the first call, in the job's snapshot."""

    def __init__(self, data: PostgresAggregates, lo: float, hi: float) -> None:
        self._data = data
        self._lo, self._hi = lo, hi
        self._sorted: SortedAtMost | None = None

    def __call__(self, thresholds: np.ndarray) -> np.ndarray:
        if self._sorted is None:  # clipped and sorted as the rows' reference does
            values = np.sort(np.clip(self._data.kept_values(), self._lo, self._hi))
            self._sorted = SortedAtMost(values, self._data)
        return self._sorted(thresholds)


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
