"""Numba kernels of the CSV reader: split a file into fields, parse plain decimal cells.

Pure functions on byte arrays (single-threaded, cached on disk like the
ring kernels). They handle the common case in one pass each; anything
unusual is reported back, and the reader's numpy and cell-by-cell paths
decide it with the same meaning and the same errors.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_COMMA, _NEWLINE, _SPACE, _TAB = 44, 10, 32, 9
_POW10 = np.array([10.0**k for k in range(16)])
"""Exact powers of ten up to 10^15."""


SPLIT_OK, SPLIT_RAGGED, SPLIT_SPECIAL = 0, 1, 2
"""What :func:`split_fields` found: a clean split, a row of another width, or a byte
(a quote, NUL or carriage return) that needs the ``csv`` module or a rewrite."""


@njit(cache=True, nogil=True)
def split_fields(
    data: np.ndarray, begin: int, starts: np.ndarray, ends: np.ndarray
) -> tuple[int, int, int, int, bool]:  # pragma: no cover - compiled
    """One pass over the body: each row's first byte and the byte after each of its fields.

    ``starts`` and ``ends`` have room for every line; empty lines are not
    rows. Returns (what, rows, data row, fields, non-ASCII seen): SPLIT_OK;
    SPLIT_RAGGED with the first data row whose number of fields is not the
    header's; SPLIT_SPECIAL if the body holds a quote, NUL or carriage return
    anywhere (checked before a ragged row is reported, since quotes may
    explain it).
    """
    width = ends.shape[1]
    row = 0
    field = 0
    line = begin
    ragged_row = 0
    ragged_fields = 0
    high = False
    for i in range(begin, len(data)):
        c = data[i]
        if c > _COMMA:  # digits, letters, '.', and every non-ASCII byte
            if c >= 128:
                high = True
            continue
        if c == 34 or c == 0 or c == 13:  # '"', NUL, CR
            return SPLIT_SPECIAL, 0, 0, 0, high
        if c != _COMMA and c != _NEWLINE:
            continue
        if c == _NEWLINE and i == line:  # an empty line is not a row
            line = i + 1
            continue
        if ragged_row == 0:
            if field == 0:
                starts[row] = line
            if field < width:
                ends[row, field] = i
        field += 1
        if c == _NEWLINE:
            if field != width and ragged_row == 0:
                ragged_row, ragged_fields = row + 1, field
            row += 1
            field = 0
            line = i + 1
    if ragged_row:
        return SPLIT_RAGGED, row, ragged_row, ragged_fields, high
    return SPLIT_OK, row, 0, 0, high


@njit(cache=True, nogil=True)
def _cell(data: np.ndarray, a: int, b: int) -> tuple[bool, float]:  # pragma: no cover - compiled
    """One cell data[a:b]: (True, value) if plain or missing (NaN), else (False, 0)."""
    while a < b and (data[a] == _SPACE or data[a] == _TAB):
        a += 1
    while b > a and (data[b - 1] == _SPACE or data[b - 1] == _TAB):
        b -= 1
    n = b - a
    if n == 0:
        return True, np.nan
    if data[a] == 78 and (
        (n == 2 and data[a + 1] == 65) or (n == 3 and data[a + 1] == 97 and data[a + 2] == 78)
    ):  # NA, NaN
        return True, np.nan
    k = a
    negative = False
    if data[k] == 43 or data[k] == 45:  # + or -
        negative = data[k] == 45
        k += 1
    mantissa = 0
    digits = 0
    fraction = 0
    dot = False
    while k < b:
        c = data[k]
        if 48 <= c <= 57:
            mantissa = mantissa * 10 + (c - 48)
            digits += 1
            if dot:
                fraction += 1
        elif c == 46 and not dot:
            dot = True
        else:
            return False, 0.0
        k += 1
    if digits == 0 or digits > 15:
        return False, 0.0
    value = mantissa / _POW10[fraction]
    return True, -value if negative else value


@njit(cache=True, nogil=True)
def parse_plain(
    data: np.ndarray, starts: np.ndarray, ends: np.ndarray, out: np.ndarray
) -> int:  # pragma: no cover - compiled
    """Parse cells of the form [+-]digits[.digits] (at most 15 digits), blank, NA or NaN.

    Spaces and tabs around a cell are ignored; a missing cell is NaN. A
    value is M / 10^d with M < 2^53 and d <= 15, both exact, so the one
    correctly rounded division is what ``float`` gives. Returns -1, or the
    index of the first cell of another form (the caller then decides them all).
    """
    for i in range(len(starts)):
        ok, value = _cell(data, starts[i], ends[i])
        if not ok:
            return i
        out[i] = value
    return -1


@njit(cache=True, nogil=True)
def parse_rows(
    data: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    columns: np.ndarray,
    out: np.ndarray,
    failed: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """:func:`parse_plain` for several columns at once, row by row (a row's bytes are adjacent).

    ``out[k]`` receives column ``columns[k]``; ``failed[k]`` is set at its
    first cell of another form, and the column is not parsed further.
    """
    for r in range(len(starts)):
        for k in range(len(columns)):
            if failed[k]:
                continue
            j = columns[k]
            a = starts[r] if j == 0 else ends[r, j - 1] + 1
            ok, value = _cell(data, a, ends[r, j])
            if ok:
                out[k, r] = value
            else:
                failed[k] = True


def warm() -> None:
    """Compile (or load from Numba's cache) every kernel here, on a two-line file of zeros."""
    data = np.frombuffer(b"a\n0\n", dtype=np.uint8)
    for index in (np.int32, np.int64):
        starts, ends = np.empty(1, dtype=index), np.empty((1, 1), dtype=index)
        split_fields(data, 2, starts, ends)
        parse_plain(data, starts, ends[:, 0], np.empty(1))
        parse_plain(data, starts, np.ascontiguousarray(ends[:, 0]), np.empty(1))
        parse_rows(
            data,
            starts,
            ends,
            np.zeros(1, dtype=np.int64),
            np.empty((1, 1)),
            np.zeros(1, dtype=np.bool_),
        )


if __name__ == "__main__":
    warm()


__all__ = [
    "SPLIT_OK",
    "SPLIT_RAGGED",
    "SPLIT_SPECIAL",
    "parse_plain",
    "parse_rows",
    "split_fields",
    "warm",
]
