"""Local operations of SharedTensor, checked by reconstructing every party's share."""

from __future__ import annotations

import numpy as np
import pytest

from smpc.errors import ShapeMismatchError
from smpc.fixedpoint import FixedPoint
from smpc.local import LocalFederation, reconstruct
from smpc.shares import SharedTensor, concatenate, stack

FXP = FixedPoint(16)


def _value(shares: list[SharedTensor]) -> np.ndarray:
    return FXP.decode(reconstruct(shares), shares[0].scale)


@pytest.fixture
def fed() -> LocalFederation:
    return LocalFederation(3)


def test_indexing_reshape_transpose_follow_numpy(fed: LocalFederation) -> None:
    x = np.random.default_rng(1).uniform(-5, 5, (4, 6))
    xs = fed.share(x)
    enc = FXP.decode(FXP.encode(x))
    np.testing.assert_array_equal(_value([s[1:3, ::2] for s in xs]), enc[1:3, ::2])
    np.testing.assert_array_equal(_value([s.reshape(3, 8) for s in xs]), enc.reshape(3, 8))
    np.testing.assert_array_equal(_value([s.T for s in xs]), enc.T)
    np.testing.assert_array_equal(_value([s.flatten() for s in xs]), enc.ravel())
    assert xs[0].shape == (4, 6) and xs[0].ndim == 2 and len(xs[0]) == 4 and xs[0].size == 24


def test_concatenate_and_stack_follow_numpy(fed: LocalFederation) -> None:
    a, b = np.ones((2, 3)), np.full((2, 3), 2.5)
    sa, sb = fed.share(a), fed.share(b)
    joined = [concatenate([p, q], axis=1) for p, q in zip(sa, sb, strict=True)]
    np.testing.assert_array_equal(_value(joined), np.concatenate([a, b], axis=1))
    stacked = [stack([p, q]) for p, q in zip(sa, sb, strict=True)]
    np.testing.assert_array_equal(_value(stacked), np.stack([a, b]))
    with pytest.raises(ShapeMismatchError):
        concatenate([sa[0], sa[0].reshape(3, 2)], axis=1)
    with pytest.raises(ValueError, match="one party"):
        concatenate([sa[0], sa[1]])


def test_public_real_product_raises_the_scale_until_truncated(fed: LocalFederation) -> None:
    x = np.array([1.5, -2.25])
    xs = fed.share(x)
    scaled = [s * 0.5 for s in xs]
    assert scaled[0].scale == 32
    np.testing.assert_allclose(_value(scaled), x * 0.5)
    with pytest.raises(ValueError, match="scales differ"):
        _ = scaled[0] + xs[0]
    with pytest.raises(ValueError, match="truncate"):
        _ = scaled[0] * 0.5


def test_public_integer_product_and_matmul_keep_the_scale(fed: LocalFederation) -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    xs = fed.share(x)
    tripled = [s * 3 for s in xs]
    assert tripled[0].scale == 16
    np.testing.assert_allclose(_value(tripled), 3 * x)
    m = np.array([[1, -1], [2, 0]])
    np.testing.assert_allclose(_value([s @ m for s in xs]), x @ m)
    np.testing.assert_allclose(_value([m @ s for s in xs]), m @ x)
    np.testing.assert_allclose(_value([s @ m.astype(float) for s in xs]), x @ m)


def test_two_shared_tensors_do_not_multiply_without_the_runtime(fed: LocalFederation) -> None:
    xs = fed.share(np.ones(2))
    with pytest.raises(TypeError, match=r"rt\.mul"):
        _ = xs[0] * xs[0]
    with pytest.raises(TypeError, match=r"rt\.matmul"):
        _ = xs[0].reshape(2, 1) @ xs[0].reshape(1, 2)


def test_unsupported_operands_are_type_errors(fed: LocalFederation) -> None:
    xs = fed.share(np.ones(2))
    with pytest.raises(TypeError):
        _ = xs[0] + "a"
    with pytest.raises(TypeError):
        _ = xs[0] * None
    with pytest.raises(TypeError):
        _ = xs[0] + True


def test_shares_are_read_only_and_repr_hides_them(fed: LocalFederation) -> None:
    xs = fed.share(np.array([7.0, 8.0]))
    with pytest.raises(ValueError, match="read-only"):
        xs[0].share[0] = 0
    text = repr(xs[1])
    assert str(int(xs[1].share[0])) not in text and "shape=(2,)" in text


def test_public_constants_are_added_once(fed: LocalFederation) -> None:
    xs = fed.share(np.zeros(3))
    np.testing.assert_allclose(_value([s + 1.25 for s in xs]), np.full(3, 1.25))
    np.testing.assert_allclose(_value([2 - s for s in xs]), np.full(3, 2.0))
    ints = fed.share(np.array([1, 2, 3]), integer=True)
    np.testing.assert_array_equal(
        reconstruct([s + 10 for s in ints]).view(np.int64), np.array([11, 12, 13])
    )
