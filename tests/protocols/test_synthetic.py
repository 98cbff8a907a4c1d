"""The synthetic cohort: reproducible, with the shapes, ranges and gaps the statistics need."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.synthetic import COST_CAP, DIAGNOSES, NUMERIC, SEXES, cohort


def test_the_same_seed_gives_the_same_cohort_and_another_seed_does_not() -> None:
    a, b, c = cohort(500, seed=3), cohort(500, seed=3), cohort(500, seed=4)
    assert np.array_equal(a.values, b.values, equal_nan=True)
    assert np.array_equal(a.text["diagnosis"], b.text["diagnosis"])
    assert not np.array_equal(a.values, c.values, equal_nan=True)


def test_columns_have_their_ranges_missing_entries_and_categories() -> None:
    c = cohort(20_000, seed=1)
    assert c.columns == NUMERIC and c.values.shape == (20_000, len(NUMERIC))
    age, bp = c.numeric(["age"])[:, 0], c.numeric(["systolic_bp"])[:, 0]
    assert age.min() >= 18 and age.max() <= 95
    assert np.corrcoef(age, bp)[0, 1] > 0.4  # blood pressure rises with age
    cost = c.numeric(["cost"])[:, 0]
    assert cost.min() > 0 and cost.max() <= COST_CAP
    missing = np.isnan(c.values).mean(axis=0)
    assert missing[NUMERIC.index("cholesterol")] == pytest.approx(0.08, abs=0.01)
    assert missing[NUMERIC.index("creatinine")] == pytest.approx(0.04, abs=0.01)
    assert missing[NUMERIC.index("age")] == 0
    assert set(c.text["diagnosis"]) == set(DIAGNOSES)
    assert set(c.text["sex"]) == set(SEXES)


@pytest.mark.parametrize("parties", [2, 3, 5])
def test_split_is_disjoint_and_covers_every_row(parties: int) -> None:
    c = cohort(3000, seed=2)
    parts = c.split(parties, seed=7)
    assert len(parts) == parties
    assert sum(len(p) for p in parts) == len(c)
    assert min(len(p) for p in parts) > 0.05 * len(c) / parties
    joined = np.vstack([p.values for p in parts])
    order = np.lexsort(np.nan_to_num(joined, nan=-1).T)
    reference = np.lexsort(np.nan_to_num(c.values, nan=-1).T)
    assert np.array_equal(joined[order], c.values[reference], equal_nan=True)


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        cohort(-1)
