"""The secret-shared tensor one party holds.

A :class:`SharedTensor` is this party's additive share over Z_2^64 of a
tensor, together with the number of fractional bits the shared value
carries (0 for integers, F for fixed point, 2F for an untruncated product).
It is immutable. Local linear operations are operators: ``+``, ``-``, unary
``-``, ``*`` and ``@`` by public values, ``sum``, indexing, reshape, transpose
and :func:`concatenate`. Operations that communicate (products of two shared
tensors, truncation, opening) are runtime methods, so every round is visible
where it is spent.

Public constants are added by the first party only (index 0). Public
integers multiply without changing the scale; public floats are encoded with
F fractional bits and raise the scale by F, to be truncated later.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import EllipsisType
from typing import Any, SupportsIndex, TypeGuard

import numpy as np
import numpy.typing as npt

from smpc import ring
from smpc.errors import ShapeMismatchError
from smpc.fixedpoint import FixedPoint

_U64 = np.dtype(np.uint64)

Public = int | float | np.ndarray | np.generic | list[Any] | tuple[Any, ...]
"""A public operand of a shared tensor: a number or an array of numbers (not a bool)."""

_Position = SupportsIndex | slice | EllipsisType | None | npt.NDArray[np.integer[Any] | np.bool_]
Index = _Position | list[int] | tuple[_Position, ...]
"""What selects part of a shared tensor: anything that indexes a numpy array."""


class SharedTensor:
    """One party's additive share of a tensor over Z_2^64."""

    __slots__ = ("_share", "fxp", "party", "scale")
    __array_priority__ = 1000  # numpy defers `public op shared` to our reflected operators

    def __init__(self, share: np.ndarray, party: int, fxp: FixedPoint, scale: int) -> None:
        if not isinstance(share, np.ndarray) or share.dtype != _U64:
            raise TypeError("a share is a numpy uint64 array")
        if scale not in (0, fxp.frac_bits, 2 * fxp.frac_bits):
            raise ValueError(f"scale must be 0, F or 2F fractional bits, got {scale}")
        view = share.view()
        view.flags.writeable = False
        self._share = view
        self.party = party
        self.fxp = fxp
        self.scale = scale

    # -- inspection -------------------------------------------------------
    @property
    def share(self) -> np.ndarray:
        """This party's share (read-only). Never log it."""
        return self._share

    @property
    def shape(self) -> tuple[int, ...]:
        return self._share.shape

    @property
    def size(self) -> int:
        return self._share.size

    @property
    def ndim(self) -> int:
        return self._share.ndim

    def __len__(self) -> int:
        return len(self._share)

    def __repr__(self) -> str:  # never show the share
        return f"SharedTensor(shape={self.shape}, scale={self.scale}, party={self.party})"

    def _like(self, share: np.ndarray, scale: int | None = None) -> SharedTensor:
        return SharedTensor(share, self.party, self.fxp, self.scale if scale is None else scale)

    # -- linear operations ----------------------------------------------------
    def _check_peer(self, other: SharedTensor) -> None:
        if other.party != self.party or other.fxp != self.fxp:
            raise ValueError("shares of different parties or encoders cannot be combined")
        if other.scale != self.scale:
            raise ValueError(
                f"scales differ ({self.scale} vs {other.scale} fractional bits); "
                "truncate the product first with rt.truncate(x)"
            )
        _check_broadcast(self.shape, other.shape)

    def __add__(self, other: object) -> SharedTensor:
        if isinstance(other, SharedTensor):
            self._check_peer(other)
            return self._like(ring.add(self._share, other._share))
        if not _is_public(other):
            return NotImplemented
        public = _scaled_constant(self, other)
        _check_fits(public.shape, self.shape)
        if self.party != 0:
            return self
        return self._like(ring.add(self._share, public))

    __radd__ = __add__

    def __neg__(self) -> SharedTensor:
        return self._like(ring.neg(self._share))

    def __sub__(self, other: object) -> SharedTensor:
        if isinstance(other, SharedTensor):
            self._check_peer(other)
            return self._like(ring.sub(self._share, other._share))
        if not _is_public(other):
            return NotImplemented
        return self + _negate_public(other)

    def __rsub__(self, other: object) -> SharedTensor:
        if not _is_public(other):
            return NotImplemented
        return (-self) + other

    def __mul__(self, other: object) -> SharedTensor:
        if isinstance(other, SharedTensor):
            raise TypeError(
                "multiplying two shared tensors communicates; use rt.mul(x, y) with the runtime"
            )
        if not _is_public(other):
            return NotImplemented
        _check_fits(np.shape(other), self.shape)
        if _is_real(other):
            if self.scale == 2 * self.fxp.frac_bits:
                raise ValueError("truncate before multiplying a product by a public real")
            factor = self.fxp.scale_public(other, self.fxp.frac_bits)
            return self._like(ring.mul(self._share, factor), self.scale + self.fxp.frac_bits)
        return self._like(ring.mul(self._share, self.fxp.encode_int(other)))

    __rmul__ = __mul__

    def __matmul__(self, other: object) -> SharedTensor:
        if isinstance(other, SharedTensor):
            raise TypeError("a product of two shared matrices communicates; use rt.matmul(x, y)")
        if not _is_public(other):
            return NotImplemented
        matrix = np.asarray(other)
        _check_matmul(self.shape, matrix.shape)
        if _is_real(matrix):
            factor = self.fxp.scale_public(matrix, self.fxp.frac_bits)
            return self._like(ring.matmul(self._share, factor), self.scale + self.fxp.frac_bits)
        return self._like(ring.matmul(self._share, self.fxp.encode_int(matrix)))

    def __rmatmul__(self, other: object) -> SharedTensor:
        if not _is_public(other):
            return NotImplemented
        matrix = np.asarray(other)
        _check_matmul(matrix.shape, self.shape)
        if _is_real(matrix):
            factor = self.fxp.scale_public(matrix, self.fxp.frac_bits)
            return self._like(ring.matmul(factor, self._share), self.scale + self.fxp.frac_bits)
        return self._like(ring.matmul(self.fxp.encode_int(matrix), self._share))

    def sum(self, axis: int | None = None) -> SharedTensor:
        """Sum over all elements or along one axis (local, exact in the ring)."""
        if axis is None:
            return self._like(np.asarray([ring.total(self._share)], dtype=np.uint64).reshape(()))
        return self._like(np.asarray(np.sum(self._share, axis=axis, dtype=np.uint64)))

    # -- shape operations ---------------------------------------------------
    def __getitem__(self, key: Index) -> SharedTensor:
        return self._like(np.ascontiguousarray(self._share[key]))

    def reshape(self, *shape: int | tuple[int, ...]) -> SharedTensor:
        return self._like(self._share.reshape(*shape))  # type: ignore[arg-type]

    def flatten(self) -> SharedTensor:
        return self._like(self._share.reshape(-1))

    @property
    def T(self) -> SharedTensor:  # noqa: N802 - numpy's name
        return self._like(np.ascontiguousarray(self._share.T))

    def transpose(self, *axes: int) -> SharedTensor:
        return self._like(np.ascontiguousarray(self._share.transpose(*axes)))


def concatenate(tensors: Sequence[SharedTensor], axis: int = 0) -> SharedTensor:
    """Join shared tensors of one party and one scale along an axis."""
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    first = tensors[0]
    for t in tensors[1:]:
        if t.party != first.party or t.fxp != first.fxp or t.scale != first.scale:
            raise ValueError("concatenate needs tensors of one party, one encoder and one scale")
    try:
        joined = np.concatenate([t.share for t in tensors], axis=axis)
    except ValueError as exc:
        raise ShapeMismatchError(f"cannot concatenate shapes {[t.shape for t in tensors]}") from exc
    return first._like(joined)


def stack(tensors: Sequence[SharedTensor], axis: int = 0) -> SharedTensor:
    """Stack shared tensors of one shape along a new axis."""
    return concatenate([t.reshape(*t.shape[:axis], 1, *t.shape[axis:]) for t in tensors], axis)


def _is_public(value: object) -> TypeGuard[Public]:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float | np.ndarray | np.generic | list | tuple)


def _is_real(value: object) -> bool:
    return np.asarray(value).dtype.kind == "f"


def _negate_public(value: object) -> object:
    array = np.asarray(value)
    if array.dtype.kind == "u":
        return ring.neg(array.astype(np.uint64))
    return -array


def _scaled_constant(x: SharedTensor, value: object) -> np.ndarray:
    if _is_real(value):
        return x.fxp.scale_public(value, x.scale)
    return ring.mul(x.fxp.encode_int(value), np.uint64(1 << x.scale))


def _check_broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        raise ShapeMismatchError(f"shapes {a} and {b} do not broadcast together") from None


def _check_fits(public: tuple[int, ...], shared: tuple[int, ...]) -> None:
    """A public operand must broadcast to the shared tensor's own shape."""
    _check_broadcast(public, shared)
    if np.broadcast_shapes(public, shared) != shared:
        raise ShapeMismatchError(
            f"a public operand of shape {public} does not fit a shared tensor of shape {shared}"
        )


def _check_matmul(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    if len(a) != 2 or len(b) != 2 or a[1] != b[0]:
        raise ShapeMismatchError(f"cannot multiply matrices of shapes {a} and {b}")
