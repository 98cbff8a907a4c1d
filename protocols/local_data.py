"""The local aggregates a row-split statistic asks of one party's data, and their numpy reference.

A statistics protocol never needs a hospital's rows, only aggregates of its
complete rows (rows with no missing value in a requested column): their
count and the count dropped, column sums, means and centred sums of squares
and cross-products, minima and maxima, histogram bin counts, contingency
cells, and counts at or below public thresholds (for quantile bisection).
:class:`LocalData` is what a protocol asks; a source answers either from
rows (:class:`RowData`, the one numpy implementation, for CSV and SQLite and
for in-process runs) or inside a database, so the rows never leave it.

Every answer has the same meaning whichever way it is computed: the same
complete rows, the same dropped count, and the same refusals. A value that
is NaN, infinite or outside |x| < 2^14 in a bounded statistic raises
:class:`~protocols.disclosure.StatisticsInputError` naming the column and a
row, never the value.

Validity is decided on the whole column, not on the rows a job selected: a
source checks every row of each requested column before the job's filter
and consent (:class:`ColumnFacts`), and a refusal names the first bad data
row of the column. A filter that singles out one patient therefore cannot
learn from "refused" versus "ran" whether that patient's value is valid;
the refusal tells only that the hospital's column needs fixing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from protocols.disclosure import VALUE_BOUND, StatisticsInputError, check_values, complete_rows

if TYPE_CHECKING:
    from protocols.context import JobContext


@dataclass(frozen=True)
class Counted:
    """How many complete rows a party holds and how many it dropped for a missing value."""

    rows: int
    dropped: int


@dataclass(frozen=True)
class ColumnFacts:
    """One requested column checked over every row of a party's data, before filter and consent.

    Each field is the first 1-based data row where its check fails, or None
    if no row fails it. A missing cell fails none. ``levels`` (text columns
    read for a table, else None) maps each distinct present value to its first row.
    """

    not_number: int | None = None
    """A present cell that is not a finite number."""
    out_of_range: int | None = None
    """A number outside |x| < 2^14."""
    not_binary: int | None = None
    """A number other than 0 and 1."""
    levels: Mapping[str, int] | None = None


def check_range(facts: Mapping[str, ColumnFacts], columns: Sequence[str]) -> None:
    """Refuse, naming column and data row, a column with a value outside |x| < 2^14 anywhere."""
    for name in columns:
        row = facts[name].out_of_range if name in facts else None
        if row is not None:
            raise out_of_range(name, f"data row {row}")


def check_levels(
    facts: Mapping[str, ColumnFacts], columns: Sequence[str], levels: Sequence[Sequence[str]]
) -> None:
    """Refuse a column holding, in any row, a value that is not one of its levels."""
    for name, allowed in zip(columns, levels, strict=True):
        seen = facts[name].levels if name in facts else None
        if seen is None:
            continue
        known = set(allowed)
        unknown = [row for value, row in seen.items() if value not in known]
        if unknown:
            raise StatisticsInputError(
                f"column {name!r} data row {min(unknown)}: value is not one of the job's"
                f" {len(allowed)} levels"
            )


class LocalData(ABC):
    """One party's selected rows for one job, asked only for local aggregates.

    ``columns`` are the job's columns in its order; every aggregate is over
    the complete rows. Implementations keep what they answered
    (:meth:`answered`): what the party actually used, for its input commitment.
    """

    columns: tuple[str, ...]

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self._answers: list[np.ndarray] = []

    def _note(self, *parts: object) -> None:
        for part in parts:
            self._answers.append(np.asarray(part, dtype=np.float64).reshape(-1))

    def answered(self) -> np.ndarray:
        """Every aggregate handed out so far, flattened in order (float64)."""
        if not self._answers:
            return np.zeros(0)
        return np.concatenate(self._answers)

    @abstractmethod
    def counts(self) -> Counted:
        """Complete and dropped rows; no range check (a count reads no value)."""

    @abstractmethod
    def sums(self) -> tuple[Counted, np.ndarray]:
        """Counts and per-column sums of the complete rows; bounded (|x| < 2^14)."""

    @abstractmethod
    def moments(self, *, matrix: bool) -> tuple[Counted, np.ndarray, np.ndarray]:
        """Counts, per-column means and centred sums of squares (p,) or cross-products (p, p).

        Bounded. With no complete row the means and sums are zeros.
        """

    @abstractmethod
    def extremes(self) -> tuple[Counted, np.ndarray, np.ndarray]:
        """Counts, per-column minima and maxima (zeros with no complete row); bounded."""

    @abstractmethod
    def histogram(self, edges: np.ndarray) -> tuple[Counted, np.ndarray]:
        """Counts and the bin counts of the first column, as ``numpy.histogram(x, edges)``."""

    @abstractmethod
    def crosstab(self, levels: Sequence[Sequence[str]]) -> tuple[Counted, np.ndarray]:
        """Counts and the cells of one or two text columns over their public levels.

        A row is complete when every column has a value; a value that is not
        one of its column's levels raises StatisticsInputError naming column and row.
        """

    @abstractmethod
    def at_most(self, lo: float, hi: float) -> tuple[Counted, AtMost]:
        """Counts and a counter of first-column values, clipped to [lo, hi], <= thresholds."""


class AtMost(ABC):
    """Counts of one column's complete values (clipped to a range) at or below thresholds."""

    @abstractmethod
    def __call__(self, thresholds: np.ndarray) -> np.ndarray:
        """For each threshold t, how many values are <= t (int64, in the thresholds' order)."""


def out_of_range(column: str, where: str) -> StatisticsInputError:
    """The error for a value outside |x| < 2^14 (or not finite): column and row, never the value."""
    return StatisticsInputError(
        f"column {column!r} {where}: value out of range; statistics take |x| < {VALUE_BOUND:g}"
    )


class RowData(LocalData):
    """Aggregates computed with numpy from rows in memory (the reference implementation).

    ``values`` are the selected rows (NaN where missing); ``text`` the text
    of categorical columns, "" where missing, for :meth:`crosstab`; ``facts``
    the source's whole-column checks, which decide the refusals (the checks on
    ``values`` remain for rows that come without them, e.g. in-process runs).
    """

    def __init__(
        self,
        columns: Sequence[str],
        values: np.ndarray,
        text: dict[str, np.ndarray] | None = None,
        facts: Mapping[str, ColumnFacts] | None = None,
    ) -> None:
        super().__init__(columns)
        self._facts = dict(facts or {})
        self._values = np.asarray(values, dtype=np.float64).reshape(len(values), len(self.columns))
        self._text = dict(text or {})
        self._complete: tuple[np.ndarray, int] | None = None

    def _rows(self, *, bounded: bool) -> tuple[np.ndarray, Counted]:
        if self._complete is None:
            self._complete = complete_rows(self._values)
        rows, dropped = self._complete
        if bounded:
            check_range(self._facts, self.columns)
            check_values(rows, self.columns)
        return rows, Counted(len(rows), dropped)

    def counts(self) -> Counted:
        _, counted = self._rows(bounded=False)
        self._note([counted.rows, counted.dropped])
        return counted

    def sums(self) -> tuple[Counted, np.ndarray]:
        rows, counted = self._rows(bounded=True)
        sums = rows.sum(axis=0) if len(rows) else np.zeros(len(self.columns))
        self._note([counted.rows, counted.dropped], sums)
        return counted, sums

    def moments(self, *, matrix: bool) -> tuple[Counted, np.ndarray, np.ndarray]:
        rows, counted = self._rows(bounded=True)
        p = len(self.columns)
        if len(rows):
            mean = rows.mean(axis=0)
            centred = rows - mean
            spread = centred.T @ centred if matrix else np.einsum("ij,ij->j", centred, centred)
        else:
            mean, spread = np.zeros(p), np.zeros((p, p) if matrix else p)
        self._note([counted.rows, counted.dropped], mean, spread)
        return counted, mean, np.asarray(spread)

    def extremes(self) -> tuple[Counted, np.ndarray, np.ndarray]:
        rows, counted = self._rows(bounded=True)
        p = len(self.columns)
        low = rows.min(axis=0) if len(rows) else np.zeros(p)
        high = rows.max(axis=0) if len(rows) else np.zeros(p)
        self._note([counted.rows, counted.dropped], low, high)
        return counted, low, high

    def histogram(self, edges: np.ndarray) -> tuple[Counted, np.ndarray]:
        rows, counted = self._rows(bounded=False)
        cells, _ = np.histogram(rows[:, 0], np.asarray(edges, dtype=np.float64))
        self._note([counted.rows, counted.dropped], cells)
        return counted, cells.astype(np.int64)

    def crosstab(self, levels: Sequence[Sequence[str]]) -> tuple[Counted, np.ndarray]:
        check_levels(self._facts, self.columns, levels)
        codes = []
        for name, allowed in zip(self.columns, levels, strict=True):
            if name not in self._text:
                raise StatisticsInputError(f"column {name!r} was not read as categorical")
            text = np.asarray(self._text[name], dtype=str)
            index = {level: j for j, level in enumerate(allowed)}
            code = np.array([index.get(v, -1) for v in text], dtype=np.int64)
            code[text == ""] = -2
            unknown = np.flatnonzero(code == -1)
            if len(unknown):
                raise StatisticsInputError(
                    f"column {name!r} row {int(unknown[0])} of the selection: value is not one"
                    f" of the job's {len(allowed)} levels"
                )
            codes.append(code)
        complete = np.logical_and.reduce([code >= 0 for code in codes])
        cells = np.zeros(tuple(len(a) for a in levels), dtype=np.int64)
        np.add.at(cells, tuple(code[complete] for code in codes), 1)
        rows = int(complete.sum())
        counted = Counted(rows, len(complete) - rows)
        self._note([counted.rows, counted.dropped], cells)
        return counted, cells

    def at_most(self, lo: float, hi: float) -> tuple[Counted, AtMost]:
        rows, counted = self._rows(bounded=False)
        self._note([counted.rows, counted.dropped])
        return counted, SortedAtMost(np.sort(np.clip(rows[:, 0], lo, hi)), self)


class SortedAtMost(AtMost):
    """Counts by binary search in a party's sorted (clipped) values; each answer is noted."""

    def __init__(self, values: np.ndarray, owner: LocalData) -> None:
        self._values = values
        self._owner = owner

    def __call__(self, thresholds: np.ndarray) -> np.ndarray:
        found = np.searchsorted(self._values, np.asarray(thresholds), side="right")
        out = np.asarray(found, dtype=np.int64)
        self._owner._note(out)
        return out


def local_data(ctx: JobContext) -> LocalData:
    """The party's data for a statistic: the source's own (pushed down), else its rows."""
    if ctx.data is not None:
        if not isinstance(ctx.data, LocalData):
            raise TypeError(f"JobContext.data must be LocalData, not {type(ctx.data).__name__}")
        return ctx.data
    return RowData(ctx.columns, np.asarray(ctx.values, dtype=np.float64), dict(ctx.text), ctx.facts)


__all__ = [
    "AtMost",
    "ColumnFacts",
    "Counted",
    "LocalData",
    "RowData",
    "SortedAtMost",
    "check_levels",
    "check_range",
    "local_data",
    "out_of_range",
]
