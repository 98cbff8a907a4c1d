"""Opening a hospital's CSV and selecting from it: 10^6 rows x 30 columns.

The file (about 200 MB) is written once into a temporary folder: an ``id``
column and 29 columns of numbers with two decimals (``ddd.dd``, a cell in
every 50 of ``c1`` empty). Each timed run opens the file afresh (a snapshot,
as a party does for every job) and makes one selection. Command::

    .venv/bin/python -m pytest benchmarks/test_csv_source.py --benchmark-enable --benchmark-only

Cases, each with a target of under 1 s: 5 columns with a two-column filter,
and every column but ``id`` (29) without a filter. One untimed warm-up round loads the reader's
compiled kernels from Numba's cache (a party process does it once).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from parties.data.csv_source import CsvSource

ROWS, WIDTH = 1_000_000, 30


def _write(path: Path, rows: int, width: int, seed: int = 5) -> np.ndarray:
    """Write the CSV byte by byte with numpy; returns the numbers (NaN where empty)."""
    rng = np.random.default_rng(seed)
    cents = rng.integers(0, 100_000, (rows, width - 1))
    values = cents / 100.0
    digits = np.stack([(cents // 10**p) % 10 for p in (4, 3, 2, 1, 0)], axis=-1) + ord("0")
    cell = np.full((rows, width - 1, 7), ord(","), dtype=np.uint8)
    cell[:, :, 1:4], cell[:, :, 4], cell[:, :, 5:7] = digits[..., :3], ord("."), digits[..., 3:]
    ids = np.char.encode(np.arange(1, rows + 1).astype(str)).astype(f"S{len(str(rows))}")
    lines = cell.reshape(rows, -1)
    empty = np.arange(rows) % 50 == 0
    lines[empty, 8:14] = ord(" ")  # c1 blank (spaces count as a missing cell)
    values[empty, 1] = np.nan
    with path.open("wb") as fh:
        fh.write(("id," + ",".join(f"c{j}" for j in range(width - 1)) + "\n").encode())
        for block in range(0, rows, 100_000):
            part = slice(block, block + 100_000)
            ending = np.full((len(lines[part]), 1), ord("\n"), dtype=np.uint8)
            text = np.char.rstrip(ids[part]).astype(object)
            body = np.concatenate([lines[part], ending], axis=1)
            fh.write(b"".join(t + b.tobytes() for t, b in zip(text, body, strict=True)))
    return values


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("csv") / "records.csv"
    return path, _write(path, ROWS, WIDTH)


def test_open_and_select_five_columns(
    benchmark: BenchmarkFixture, big_csv: tuple[Path, np.ndarray]
) -> None:
    path, values = big_csv
    columns = ["c0", "c1", "c2", "c3", "c4"]

    def run() -> np.ndarray:
        return CsvSource(path).select(columns, "c0 >= 250 and c1 is not missing").values

    got = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    keep = (values[:, 0] >= 250) & ~np.isnan(values[:, 1])
    np.testing.assert_array_equal(got, values[keep][:, :5])


def test_open_and_select_every_column(
    benchmark: BenchmarkFixture, big_csv: tuple[Path, np.ndarray]
) -> None:
    path, values = big_csv
    names = [f"c{j}" for j in range(WIDTH - 1)]
    got = benchmark.pedantic(lambda: CsvSource(path).select(names).values, rounds=2, iterations=1)
    np.testing.assert_array_equal(got, values)
