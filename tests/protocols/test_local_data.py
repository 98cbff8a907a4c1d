"""The numpy reference of a party's local aggregates against numpy written out here."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.context import JobContext
from protocols.disclosure import StatisticsInputError
from protocols.local_data import RowData, local_data


def _rows() -> np.ndarray:
    rng = np.random.default_rng(3)
    x = rng.normal(10, 4, (200, 3))
    x[rng.random((200, 3)) < 0.05] = np.nan
    return x


def test_row_data_answers_equal_numpy_on_the_complete_rows() -> None:
    x = _rows()
    complete = x[~np.isnan(x).any(axis=1)]
    data = RowData(("a", "b", "c"), x)
    counted = data.counts()
    assert (counted.rows, counted.dropped) == (len(complete), len(x) - len(complete))
    np.testing.assert_allclose(data.sums()[1], complete.sum(axis=0))
    _, mean, spread = data.moments(matrix=True)
    np.testing.assert_allclose(mean, complete.mean(axis=0))
    np.testing.assert_allclose(spread, np.cov(complete, rowvar=False) * (len(complete) - 1))
    _, low, high = data.extremes()
    assert (low.tolist(), high.tolist()) == (
        complete.min(axis=0).tolist(),
        complete.max(axis=0).tolist(),
    )
    single = RowData(("a",), x[:, :1])
    a = x[:, 0][~np.isnan(x[:, 0])]
    edges = np.array([0.0, 5.0, 10.0, 15.0, 20.0])
    assert single.histogram(edges)[1].tolist() == np.histogram(a, edges)[0].tolist()
    _, at_most = single.at_most(2.0, 18.0)
    assert at_most(np.array([2.0, 10.0, 18.0])).tolist() == [
        int((np.clip(a, 2, 18) <= t).sum()) for t in (2.0, 10.0, 18.0)
    ]


def test_row_data_refuses_a_value_out_of_range_naming_column_and_row() -> None:
    x = np.array([[1.0, 2.0], [3.0, 20000.0]])
    with pytest.raises(StatisticsInputError, match=r"column 'b' row 1 of the selection") as e:
        RowData(("a", "b"), x).sums()
    assert "20000" not in str(e.value)
    assert RowData(("a", "b"), x).counts().rows == 2  # a count reads no value


def test_crosstab_counts_levels_and_drops_missing_cells() -> None:
    text = {"d": np.array(["M", "B", "", "M"]), "s": np.array(["x", "y", "x", ""])}
    counted, cells = RowData(("d", "s"), np.zeros((4, 2)), text).crosstab([["M", "B"], ["x", "y"]])
    assert cells.tolist() == [[1, 0], [0, 1]] and (counted.rows, counted.dropped) == (2, 2)
    with pytest.raises(StatisticsInputError, match="column 'd' row 1 of the selection"):
        RowData(("d",), np.zeros((4, 1)), text).crosstab([["M"]])


def test_a_context_carries_its_data_or_gives_its_rows() -> None:
    ctx = JobContext(params={}, parties=("p",), party="p", columns=("a",), values=np.ones((3, 1)))
    assert local_data(ctx).counts().rows == 3
    mine = RowData(("a",), np.ones((5, 1)))
    assert local_data(JobContext(params={}, parties=("p",), party="p", data=mine)) is mine
    with pytest.raises(TypeError, match="LocalData"):
        local_data(JobContext(params={}, parties=("p",), party="p", data=object()))
