"""A null back end for the dry run: the kernels of :mod:`smpc.ring`, computing only shapes.

Planning a job needs the sequence of preprocessing requests and the size of
every message, not the arithmetic; every function here returns zeros of the
shape its twin in ``smpc.ring`` would return. ``np.zeros`` maps untouched
zero pages, so a dry run at 10^6 elements costs almost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

U64 = np.uint64


def _zeros(shape: int | tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, dtype=U64)


def from_float(values: np.ndarray, scale: float, bound: float) -> tuple[np.ndarray, int]:
    return _zeros(np.shape(values)), -1


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _zeros(np.broadcast_shapes(np.shape(a), np.shape(b)))


sub = mul = add


def neg(a: np.ndarray) -> np.ndarray:
    return _zeros(np.shape(a))


def total(a: np.ndarray) -> np.uint64:
    return U64(0)


def sum_axis0(a: np.ndarray) -> np.ndarray:
    return _zeros(np.shape(a)[1])


def sum_shares(shares: Sequence[np.ndarray]) -> np.ndarray:
    return _zeros(np.shape(shares[0]))


def triple_correction(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray], c_others: Sequence[np.ndarray]
) -> np.ndarray:
    return _zeros(np.shape(a[0]))


def truncation_corrections(
    r: Sequence[np.ndarray],
    low_others: Sequence[np.ndarray],
    top_others: Sequence[np.ndarray],
    frac_bits: int,
) -> tuple[np.ndarray, np.ndarray]:
    return _zeros(np.shape(r[0])), _zeros(np.shape(r[0]))


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _zeros((np.shape(a)[0], np.shape(b)[1]))


def beaver_masked(x: np.ndarray, a: np.ndarray, y: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _zeros(2 * np.size(x))


def beaver_product(
    masked: Sequence[np.ndarray],
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    mask: np.ndarray,
    first: bool,
) -> np.ndarray:
    return _zeros(np.shape(a))


def truncation_masked(z: np.ndarray, r: np.ndarray, first: bool) -> np.ndarray:
    return _zeros(np.shape(z))


def truncation_finish(
    masked: Sequence[np.ndarray],
    r_low: np.ndarray,
    r_top: np.ndarray,
    frac_bits: int,
    first: bool,
) -> np.ndarray:
    return _zeros(np.shape(r_low))


def packed_words(size: int) -> int:
    return (int(size) + 63) // 64


def xor_shares(shares: Sequence[np.ndarray]) -> np.ndarray:
    return _zeros(np.shape(shares[0]))


def comparison_leaves(
    r_bits: np.ndarray, c: np.ndarray, first: bool
) -> tuple[np.ndarray, np.ndarray]:
    return _zeros(np.size(c)), _zeros(np.size(c))


def tree_masked(
    g: np.ndarray, p: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    return _zeros(2 * np.size(a)), _zeros((np.size(g) + 1) // 2)


def tree_combine(
    masked: Sequence[np.ndarray],
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    hi_g: np.ndarray,
    first: bool,
) -> tuple[np.ndarray, np.ndarray]:
    return _zeros(np.size(hi_g)), _zeros(np.size(a) - np.size(hi_g))


def comparison_bit(
    g: np.ndarray, r_bits: np.ndarray, c: np.ndarray, s_bits: np.ndarray, first: bool
) -> np.ndarray:
    return _zeros(packed_words(np.size(c)))


def dabit_open(masked: Sequence[np.ndarray], size: int) -> np.ndarray:
    return _zeros(int(size))


def xor_public_bit(d: np.ndarray, s: np.ndarray, first: bool) -> np.ndarray:
    return _zeros(np.shape(s))


def dabit_product(d: np.ndarray, y: np.ndarray, sy: np.ndarray) -> np.ndarray:
    return _zeros(np.shape(y))


def binary_triple_correction(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray], c_others: Sequence[np.ndarray]
) -> np.ndarray:
    return _zeros(np.shape(a[0]))


def comparison_corrections(
    r: Sequence[np.ndarray],
    s_bits: Sequence[np.ndarray],
    r_bits_others: Sequence[np.ndarray],
    s_others: Sequence[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    return _zeros(np.shape(r[0])), _zeros(np.shape(r[0]))
