"""A hash table from text identifiers to row numbers, looked up for a whole column at once.

The node remembers each patient's key (:class:`parties.ledger.patients.PatientKeys`);
a job hands it the selected rows' identifiers as a numpy text array (UTF-32
code points, zero-padded to the array's width). A Python dict costs one
look-up per row, 18-30 ms at 10^5 rows; here one Numba call finds every row,
2.5-5 ms with the rows in the source's order (benchmarks/test_receipts.py).

An identifier is its code points with the trailing zeros dropped, so arrays
of different widths compare as their strings do. Its fingerprint is
``sum_j words[j] * odd(j)`` mod 2^64, then mixed: zero padding adds nothing,
so the table need not be rebuilt when a wider column arrives. Rows are
stored in the order first seen (the source's order), so a later job's
selection reads them nearly in sequence. The table
(open addressing, linear probing, at most half full) holds row numbers; a
hit is confirmed by comparing the code points, so fingerprints that collide
only cost a probe, never a wrong answer. Nothing here is secret or keyed: it
holds the identifiers' text only in memory, next to their keys.

:func:`find_reference` (a dict over the stored rows) and
:func:`fingerprints_reference` (numpy) are the plain definitions.
"""

from __future__ import annotations

import numpy as np
from numba import njit

EMPTY = -1
WINDOW = 32


@njit(cache=True, nogil=True)
def _mix(x: np.uint64) -> np.uint64:  # pragma: no cover
    """SplitMix64's finaliser: every input bit moves about half the output bits."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def multipliers(width: int) -> np.ndarray:
    """The odd multiplier of each word position of a fingerprint, for ``width`` positions."""
    with np.errstate(over="ignore"):
        odd = [
            _mix(np.uint64(j) + np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1) for j in range(width)
        ]
    return np.array(odd, dtype=np.uint64)


@njit(cache=True, nogil=True)
def _fingerprint(words: np.ndarray, i: int, odd: np.ndarray) -> np.uint64:  # pragma: no cover
    """The mixed fingerprint of row ``i``; trailing zero words do not change it."""
    h = np.uint64(0)
    for j in range(words.shape[1]):
        h += np.uint64(words[i, j]) * odd[j]
    return _mix(h)


@njit(cache=True, nogil=True)
def fingerprints(words: np.ndarray, odd: np.ndarray) -> np.ndarray:  # pragma: no cover
    """The fingerprint of each row of an (n, w) uint32 array (``odd``: :func:`multipliers`)."""
    out = np.empty(words.shape[0], dtype=np.uint64)
    for i in range(words.shape[0]):
        out[i] = _fingerprint(words, i, odd)
    return out


@njit(cache=True, nogil=True)
def insert(
    table: np.ndarray, prints: np.ndarray, start: int, stop: int
) -> None:  # pragma: no cover
    """Put rows ``start`` to ``stop`` (their fingerprints in ``prints``) into ``table``.

    ``table`` has a power-of-two size and stays at most half full (the caller's duty);
    the rows must not be in it yet.
    """
    mask = np.uint64(table.shape[0] - 1)
    for e in range(start, stop):
        slot = prints[e] & mask
        while table[slot] != EMPTY:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = e


@njit(cache=True, nogil=True)
def _same(stored: np.ndarray, e: int, words: np.ndarray, i: int) -> bool:  # pragma: no cover
    """Whether stored row ``e`` and row ``i`` of ``words`` hold the same zero-padded text."""
    wide, narrow = stored.shape[1], words.shape[1]
    common = min(wide, narrow)
    for j in range(common):
        if stored[e, j] != words[i, j]:
            return False
    for j in range(common, wide):  # the longer side's padding must be zeros
        if stored[e, j] != 0:
            return False
    for j in range(common, narrow):  # noqa: SIM110 - a plain loop for Numba
        if words[i, j] != 0:
            return False
    return True


@njit(cache=True, nogil=True)
def find(
    table: np.ndarray, prints: np.ndarray, stored: np.ndarray, words: np.ndarray, odd: np.ndarray
) -> np.ndarray:  # pragma: no cover
    """For each row of ``words``, the stored row holding the same text, or EMPTY.

    ``odd`` holds the multipliers of at least ``words.shape[1]`` positions.
    The :data:`WINDOW` stored rows after the last one found are tried before
    the table while they keep holding the next row: a selection in the
    source's order finds most rows there, reading them in sequence (fingerprints
    first: measured 1.5x faster than comparing the text first).
    """
    mask = np.uint64(table.shape[0] - 1)
    count = stored.shape[0]
    out = np.empty(words.shape[0], dtype=np.int64)
    last, near = -1, True
    for i in range(words.shape[0]):
        h = _fingerprint(words, i, odd)
        out[i] = EMPTY
        if near or i % WINDOW == 0:  # out of order: try the window now and then only
            for e in range(last + 1, min(last + 1 + WINDOW, count)):
                if prints[e] == h and _same(stored, e, words, i):
                    out[i] = e
                    break
        near = out[i] != EMPTY
        if not near:
            slot = h & mask
            while table[slot] != EMPTY:
                e = table[slot]
                if prints[e] == h and _same(stored, e, words, i):
                    out[i] = e
                    break
                slot = (slot + np.uint64(1)) & mask
        if out[i] != EMPTY:
            last = out[i]
    return out


def find_reference(stored: np.ndarray, count: int, words: np.ndarray) -> np.ndarray:
    """:func:`find`'s definition: a dict from each stored row's text to its row number."""
    rows = {stored[e].tobytes().rstrip(b"\0"): e for e in range(count)}
    found = [rows.get(w.tobytes().rstrip(b"\0"), EMPTY) for w in words]
    return np.array(found, dtype=np.int64)


def fingerprints_reference(words: np.ndarray, odd: np.ndarray) -> np.ndarray:
    """:func:`fingerprints` in numpy: the weighted sum of the words mod 2^64, then mixed."""
    with np.errstate(over="ignore"):
        h = (words.astype(np.uint64) * odd[: words.shape[1]]).sum(axis=1, dtype=np.uint64)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def text_words(ids: np.ndarray) -> np.ndarray:
    """A numpy text array as an (n, width) uint32 array of code points, without a copy."""
    text = np.ascontiguousarray(ids)
    if text.dtype.kind != "U" or text.ndim != 1:
        raise TypeError(f"identifiers must be a 1-d numpy text array, got {text.dtype}")
    return text.view(np.uint32).reshape(len(text), text.dtype.itemsize // 4)
