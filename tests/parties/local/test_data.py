"""The shipped Breast Cancer Wisconsin CSV: shape, header, class counts, completeness.

Read with the csv module alone, independently of the demo's loader.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import pytest

CSV_PATH = Path(__file__).resolve().parents[3] / "parties" / "local" / "data" / "breast_cancer.csv"
MEASUREMENTS = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave_points",
    "symmetry",
    "fractal_dimension",
)


@pytest.fixture(scope="module")
def table() -> tuple[list[str], list[list[str]]]:
    with CSV_PATH.open(newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def test_shape_is_569_by_32(table: tuple[list[str], list[list[str]]]) -> None:
    header, rows = table
    assert len(header) == 32
    assert len(rows) == 569
    assert all(len(row) == 32 for row in rows)


def test_header_names(table: tuple[list[str], list[list[str]]]) -> None:
    header, _ = table
    expected = [
        "id",
        "diagnosis",
        *(f"mean_{m}" for m in MEASUREMENTS),
        *(f"{m}_error" for m in MEASUREMENTS),
        *(f"worst_{m}" for m in MEASUREMENTS),
    ]
    assert header == expected


def test_ids_number_the_rows(table: tuple[list[str], list[list[str]]]) -> None:
    _, rows = table
    assert [int(row[0]) for row in rows] == list(range(1, 570))


def test_class_counts(table: tuple[list[str], list[list[str]]]) -> None:
    _, rows = table
    assert Counter(row[1] for row in rows) == {"M": 212, "B": 357}


def test_no_missing_values(table: tuple[list[str], list[list[str]]]) -> None:
    _, rows = table
    for row in rows:
        assert all(cell.strip() == cell and cell for cell in row)
        assert all(math.isfinite(float(cell)) for cell in row[2:])
