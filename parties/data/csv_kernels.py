"""Numba kernels of the CSV reader: find the rows of a file, parse plain decimal cells.

Pure functions on byte arrays (single-threaded, cached on disk like the
ring kernels). Opening a file finds where each row starts (one pass); a
job's columns are then parsed in one more pass that walks each row's
bytes field by field, so no per-cell offsets are kept for the whole file.
Anything unusual is reported back, and the reader's numpy and
cell-by-cell paths decide it with the same meaning and the same errors.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_COMMA, _NEWLINE, _SPACE, _TAB = 44, 10, 32, 9
_POW10 = np.array([10.0**k for k in range(23)])
"""Exact powers of ten up to 10^22 (5^22 < 2^53)."""
_EXACT = 2**53
"""Integers up to this are exact in float64."""
_DIGITS = 18
"""Most digits a plain cell has (10^18 < 2^63: no overflow); longer cells are left."""

SPLIT_OK, SPLIT_RAGGED, SPLIT_SPECIAL = 0, 1, 2
"""What :func:`split_rows` found: a clean split, a row of another width, or a byte
(a quote, NUL or carriage return) that needs the ``csv`` module or a rewrite."""


_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)
_LOWS = np.uint64(0x7F7F7F7F7F7F7F7F)


@njit(cache=True, nogil=True, inline="always")
def _plain_word(w: np.uint64) -> bool:  # pragma: no cover - compiled
    """No byte of ``w`` is below a comma (newline, quote, NUL, CR, padding) or non-ASCII."""
    below = (w - _ONES * np.uint64(_COMMA)) & ~w & _HIGHS  # exact test for a byte < 44
    return (below | (w & _HIGHS)) == 0


@njit(cache=True, nogil=True, inline="always")
def _commas(w: np.uint64) -> int:  # pragma: no cover - compiled
    """How many bytes of ``w`` are commas (each comma's byte becomes 0x80, then summed)."""
    t = w ^ (_ONES * np.uint64(_COMMA))
    zero = ~(((t & _LOWS) + _LOWS) | t | _LOWS)
    return int(((zero >> np.uint64(7)) * _ONES) >> np.uint64(56))


@njit(cache=True, nogil=True)
def split_rows(
    data: np.ndarray, words: np.ndarray, begin: int, width: int, starts: np.ndarray
) -> tuple[int, int, int, int, bool]:  # pragma: no cover - compiled
    """One pass over the body: the first byte of each row, and the checks of every byte.

    ``data`` ends with a newline; ``words`` is its first 8 * (len // 8)
    bytes as uint64, so runs of 8 bytes that hold only field bytes and
    commas are counted at once. ``starts`` has room for (bytes after
    ``begin``) // ``width`` + 1 rows, which rows of ``width`` fields cannot
    exceed (rows after a ragged one are not recorded). Empty lines are not
    rows. Returns (what, rows, data row, fields, non-ASCII seen): SPLIT_OK;
    SPLIT_RAGGED with the first data row whose number of fields is not
    ``width``; SPLIT_SPECIAL if the body holds a quote, NUL or carriage
    return anywhere (checked before a ragged row is reported, since quotes
    may explain it).
    """
    row = 0
    commas = 0
    line = begin
    ragged_row = 0
    ragged_fields = 0
    high = False
    n = len(data)
    whole = 8 * len(words)
    i = begin
    while i < n:
        if i & 7 == 0 and i < whole:
            w = words[i >> 3]
            if _plain_word(w):
                commas += _commas(w)
                i += 8
                continue
        c = data[i]
        i += 1
        if c > _COMMA:  # digits, letters, '.', and every non-ASCII byte
            if c >= 128:
                high = True
            continue
        if c == _COMMA:
            commas += 1
            continue
        if c == 34 or c == 0 or c == 13:  # '"', NUL, CR
            return SPLIT_SPECIAL, 0, 0, 0, high
        if c != _NEWLINE:
            continue
        if i - 1 == line:  # an empty line is not a row
            line = i
            continue
        if ragged_row == 0:
            if commas + 1 != width:
                ragged_row, ragged_fields = row + 1, commas + 1
            starts[row] = line
        row += 1
        commas = 0
        line = i
    if ragged_row:
        return SPLIT_RAGGED, row, ragged_row, ragged_fields, high
    return SPLIT_OK, row, 0, 0, high


@njit(cache=True, nogil=True, inline="always")
def _end(data: np.ndarray, i: int) -> int:  # pragma: no cover - compiled
    """The position of the comma or newline that ends the field at or after ``i``."""
    c = data[i]
    while c != _COMMA and c != _NEWLINE:
        i += 1
        c = data[i]
    return i


@njit(cache=True, nogil=True)
def _is_end(c: int) -> bool:  # pragma: no cover - compiled
    return c in (_COMMA, _NEWLINE)


@njit(cache=True, nogil=True)
def _missing(data: np.ndarray, i: int) -> tuple[bool, float, int]:  # pragma: no cover - compiled
    """The field whose first byte that is not a space or tab is at ``i``, if blank, NA or NaN."""
    c = data[i]
    if c == 78:  # 'N'
        if data[i + 1] == 65:  # 'A'
            i += 2
        elif data[i + 1] == 97 and data[i + 2] == 78:  # 'aN'
            i += 3
        else:
            return False, 0.0, _end(data, i)
        c = data[i]
        while c in (_SPACE, _TAB):
            i += 1
            c = data[i]
    if _is_end(c):
        return True, np.nan, i
    return False, 0.0, _end(data, i)


@njit(cache=True, nogil=True, inline="always")
def cell(data: np.ndarray, i: int) -> tuple[bool, float, int]:  # pragma: no cover - compiled
    """The field starting at ``i``: (plain, value, position of the comma or newline ending it).

    Plain: blank, NA or NaN (NaN), or ``[+-]digits[.digits][(e|E)[+-]digits]``
    (digits on at least one side of the point) with spaces or tabs around,
    whose digits (at most 18) make M <= 2^53 and whose scale 10^p has
    |p| <= 22: both are exact in float64, so the one correctly rounded
    product or quotient is what ``float`` gives. Any other field gives
    (False, 0, its end), and the other paths decide it, ``float``'s way.
    """
    c = data[i]
    while c in (_SPACE, _TAB):
        i += 1
        c = data[i]
    negative = False
    signed = c == 43 or c == 45  # '+' or '-'
    if signed:
        negative = c == 45
        i += 1
        c = data[i]
    begin = i
    mantissa = 0
    while 48 <= c <= 57:
        mantissa = mantissa * 10 + (c - 48)
        i += 1
        c = data[i]
    digits = i - begin
    scale = 0
    dot = c == 46  # '.'
    if dot:
        i += 1
        begin = i
        c = data[i]
        while 48 <= c <= 57:
            mantissa = mantissa * 10 + (c - 48)
            i += 1
            c = data[i]
        scale = begin - i
        digits += i - begin
    if digits == 0:
        if signed or dot:
            return False, 0.0, _end(data, i)
        return _missing(data, i)
    if not _is_end(c):  # an exponent, padding, or another form
        if c == 101 or c == 69:  # 'e' or 'E'
            i += 1
            c = data[i]
            below = False
            if c == 43 or c == 45:
                below = c == 45
                i += 1
                c = data[i]
            if not 48 <= c <= 57:
                return False, 0.0, _end(data, i)
            power = 0
            while 48 <= c <= 57:
                if power < 100_000:
                    power = power * 10 + (c - 48)
                i += 1
                c = data[i]
            scale += -power if below else power
        while c in (_SPACE, _TAB):
            i += 1
            c = data[i]
        if not _is_end(c):
            return False, 0.0, _end(data, i)
    if digits > _DIGITS or mantissa > _EXACT or not -22 <= scale <= 22:
        return False, 0.0, i
    value = mantissa * _POW10[scale] if scale >= 0 else mantissa / _POW10[-scale]
    return True, -value if negative else value, i


@njit(cache=True, nogil=True)
def parse_columns(
    data: np.ndarray, starts: np.ndarray, slots: np.ndarray, out: np.ndarray, failed: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Parse several columns in one pass over the rows, each row's fields in file order.

    ``slots[j]`` is the row of ``out`` that receives field ``j`` (-1: not
    parsed); every row has ``len(slots)`` fields (as :func:`split_rows`
    checked). ``failed[k]`` is set at the first cell of ``out[k]``'s column
    that is not plain (see :func:`cell`), which is then not parsed further.
    A row's walk stops after its last wanted field.
    """
    wanted = slots.copy()  # a failed column's slot becomes -1
    last = -1
    for j in range(len(wanted)):
        if wanted[j] >= 0:
            last = j
    for r in range(len(starts)):
        i = starts[r]
        for j in range(last + 1):
            k = wanted[j]
            if k >= 0:
                plain, value, i = cell(data, i)
                if plain:
                    out[k, r] = value
                else:
                    failed[k] = True
                    wanted[j] = -1
            else:
                i = _end(data, i)
            i += 1


@njit(cache=True, nogil=True)
def field_bounds(
    data: np.ndarray, starts: np.ndarray, j: int, first: np.ndarray, ends: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Field ``j`` of every row: its first byte and the byte after it (a comma or newline)."""
    for r in range(len(starts)):
        i = starts[r]
        for _ in range(j):
            i = _end(data, i) + 1
        first[r] = i
        ends[r] = _end(data, i)


def warm() -> None:
    """Compile (or load from Numba's cache) every kernel here, on a two-line file of zeros."""
    data = np.frombuffer(b"a\n0\n", dtype=np.uint8)
    for index in (np.int32, np.int64):
        starts = np.empty(1, dtype=index)
        split_rows(data, data[:0].view(np.uint64), 2, 1, starts)
        slots = np.zeros(1, dtype=np.int64)
        parse_columns(data, starts, slots, np.empty((1, 1)), np.zeros(1, dtype=np.bool_))
        field_bounds(data, starts, 0, np.empty(1, dtype=index), np.empty(1, dtype=index))
    cell(data, 2)


if __name__ == "__main__":
    warm()


__all__ = [
    "SPLIT_OK",
    "SPLIT_RAGGED",
    "SPLIT_SPECIAL",
    "cell",
    "field_bounds",
    "parse_columns",
    "split_rows",
    "warm",
]
