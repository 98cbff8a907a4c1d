"""A UTF-8 CSV file with a header row."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from parties.data.base import DataSource
from parties.data.errors import DataSourceError


class CsvSource(DataSource):
    """A UTF-8 CSV file with a header row, read once when opened (a snapshot).

    Blank lines are skipped and not counted as rows.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._header, self._cells, self._rows = _read_csv(self.path)

    @property
    def columns(self) -> tuple[str, ...]:
        return self._header

    @property
    def row_count(self) -> int:
        return self._rows

    def _load(self, names: Sequence[str]) -> tuple[dict[str, Sequence[object]], np.ndarray]:
        return {name: self._cells[name] for name in names}, np.arange(1, self._rows + 1)


def _read_csv(path: Path) -> tuple[tuple[str, ...], dict[str, list[str]], int]:
    rows: list[list[str]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, strict=True)
            first = next(reader, None)
            if not first:
                raise DataSourceError(f"{path}: the first line must be a header of column names")
            header = tuple(name.strip() for name in first)
            for i, name in enumerate(header):
                if not name:
                    raise DataSourceError(f"{path}: header column {i + 1} has no name")
            if len(set(header)) != len(header):
                repeated = sorted({h for h in header if header.count(h) > 1})
                raise DataSourceError(f"{path}: the header repeats {', '.join(repeated)}")
            for record in reader:
                if not record:
                    continue
                if len(record) != len(header):
                    raise DataSourceError(
                        f"{path}: data row {len(rows) + 1} has {len(record)} fields;"
                        f" the header has {len(header)}"
                    )
                rows.append(record)
    except FileNotFoundError:
        raise DataSourceError(f"no such data file: {path}") from None
    except UnicodeDecodeError:
        raise DataSourceError(f"{path}: data row {len(rows) + 1} is not UTF-8 text") from None
    except csv.Error:
        # The csv module's message is dropped: keep the row, never the content.
        raise DataSourceError(
            f"{path}: malformed CSV at data row {len(rows) + 1} (check quoting and NUL bytes)"
        ) from None
    except OSError as exc:
        raise DataSourceError(f"cannot read data file {path} ({exc.strerror})") from None
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in header]
    return header, dict(zip(header, columns, strict=True)), len(rows)


__all__ = ["CsvSource"]
