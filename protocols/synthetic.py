"""A synthetic patient cohort for tests, benchmarks and examples; never real data.

:func:`cohort` draws ``n`` patients from a seeded ``numpy`` Generator (test
data, not secret-sharing randomness, which comes only from ``smpc.prg``):

- ``age`` in years, 18 to 95;
- ``systolic_bp`` in mmHg, rising with age (correlation about 0.6);
- ``cholesterol`` (mmol/L) and ``creatinine`` (umol/L), lab values with about
  8% and 4% of entries missing (NaN);
- ``cost`` of the stay, log-normal and capped at 10^4;
- ``diagnosis`` (one of :data:`DIAGNOSES`, more often ``"cardiac"`` with
  age) and ``sex`` (``"F"`` or ``"M"``), as text.

:meth:`Cohort.split` deals the rows over 2, 3, 5, ... hospitals in unequal,
disjoint parts, as hospitals of different sizes would hold them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

NUMERIC = ("age", "systolic_bp", "cholesterol", "creatinine", "cost")
"""The numeric columns, in the order of :attr:`Cohort.values`."""

DIAGNOSES = ("cardiac", "respiratory", "oncology", "other")
SEXES = ("F", "M")
COST_CAP = 1e4


@dataclass(frozen=True)
class Cohort:
    """Patient rows: a float matrix (NaN where missing) and text columns."""

    values: np.ndarray
    columns: tuple[str, ...] = NUMERIC
    text: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)

    def numeric(self, names: Sequence[str]) -> np.ndarray:
        """The named numeric columns as an (n, len(names)) matrix."""
        return self.values[:, [self.columns.index(name) for name in names]]

    def rows(self, index: np.ndarray) -> Cohort:
        """The rows picked by an index array or boolean mask."""
        return Cohort(self.values[index], self.columns, {k: v[index] for k, v in self.text.items()})

    def split(self, parties: int, seed: int = 0) -> list[Cohort]:
        """Disjoint parts of unequal sizes (each at least a tenth of an equal share)."""
        if parties < 1:
            raise ValueError("split needs at least one party")
        rng = np.random.default_rng(seed)
        weights = rng.uniform(0.1, 1.0, parties)
        owner = rng.choice(parties, size=len(self), p=weights / weights.sum())
        return [self.rows(np.flatnonzero(owner == p)) for p in range(parties)]


def cohort(n: int, seed: int = 0) -> Cohort:
    """``n`` synthetic patients, the same for the same seed."""
    if n < 0:
        raise ValueError("a cohort has a non-negative number of patients")
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(58.0, 16.0, n), 18.0, 95.0).round(1)
    systolic = (95.0 + 0.6 * age + rng.normal(0.0, 11.0, n)).round(0)
    cholesterol = (4.2 + 0.02 * age + rng.normal(0.0, 0.9, n)).round(2)
    creatinine = np.exp(rng.normal(4.4 + 0.004 * age, 0.3, n)).round(0)
    cost = np.minimum(np.exp(rng.normal(7.2, 0.8, n)), COST_CAP).round(2)
    cholesterol[rng.random(n) < 0.08] = np.nan
    creatinine[rng.random(n) < 0.04] = np.nan
    cardiac = np.clip((age - 18.0) / 150.0, 0.0, 0.5)
    rest = (1.0 - cardiac)[:, None] * np.array([0.3, 0.3, 0.4])
    probabilities = np.column_stack([cardiac, rest])
    draws = rng.random(n)[:, None] > np.cumsum(probabilities, axis=1)
    diagnosis = np.array(DIAGNOSES)[np.minimum(draws.sum(axis=1), len(DIAGNOSES) - 1)]
    sex = np.array(SEXES)[(rng.random(n) < 0.48).astype(int)]
    values = np.column_stack([age, systolic, cholesterol, creatinine, cost])
    return Cohort(values, NUMERIC, {"diagnosis": diagnosis, "sex": sex})
