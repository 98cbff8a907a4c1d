"""The dry run's null back end mirrors the ring kernels: same functions, same output shapes."""

from __future__ import annotations

import inspect

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from smpc import ring, ring_null

U64 = np.uint64


def _public(module: object) -> set[str]:
    return {
        name
        for name, f in vars(module).items()
        if inspect.isfunction(f) and not name.startswith("_") and f.__module__ == module.__name__
    }


def test_every_ring_kernel_has_a_null_twin_with_the_same_parameters() -> None:
    for name in _public(ring):
        null = getattr(ring_null, name)
        assert list(inspect.signature(null).parameters) == list(
            inspect.signature(getattr(ring, name)).parameters
        ), name


@given(n=st.integers(2, 5), size=st.integers(1, 20), first=st.booleans())
def test_null_kernels_return_zeros_of_the_ring_kernels_shapes(
    n: int, size: int, first: bool
) -> None:
    rng = np.random.default_rng(size)

    def r(*shape: int) -> np.ndarray:
        return rng.integers(0, 2**63, size=shape, dtype=U64)

    a, b, c, mask = r(size), r(size), r(size), r(size)
    half, words = (size + 1) // 2, (size + 63) // 64
    calls = [
        ("add", (a, b)),
        ("sub", (a, b)),
        ("mul", (a, b)),
        ("neg", (a,)),
        ("sum_axis0", (r(3, size),)),
        ("sum_shares", ([r(size) for _ in range(n)],)),
        ("matmul", (r(3, size), r(size, 2))),
        ("beaver_masked", (a, b, c, mask)),
        ("beaver_product", ([r(2 * size) for _ in range(n)], a, b, c, mask, first)),
        ("truncation_masked", (a, b, first)),
        ("truncation_finish", ([r(size) for _ in range(n)], a, b, 16, first)),
        ("triple_correction", ([a] * n, [b] * n, [c] * (n - 1))),
        ("truncation_corrections", ([a] * n, [b] * (n - 1), [c] * (n - 1), 16)),
        ("xor_shares", ([r(size) for _ in range(n)],)),
        ("comparison_leaves", (a, b, first)),
        ("tree_masked", (a, b, r(half), r(half))),
        ("tree_masked", (a, b, r(2 * half), r(2 * half))),
        ("tree_combine", ([r(2 * half)] * n, r(half), r(half), r(half), r(half), first)),
        (
            "tree_combine",
            ([r(4 * half)] * n, r(2 * half), r(2 * half), r(2 * half), c[:half], first),
        ),
        ("comparison_bit", (r(words), a, b, r(words), first)),
        ("dabit_open", ([r(words)] * n, size)),
        ("xor_public_bit", (a % U64(2), b, first)),
        ("dabit_product", (a % U64(2), b, c)),
        ("binary_triple_correction", ([a] * n, [b] * n, [c] * (n - 1))),
        ("comparison_corrections", ([a] * n, [r(words)] * n, [b] * (n - 1), [c] * (n - 1))),
    ]
    special = {"total", "from_float", "packed_words"}
    assert {name for name, _ in calls} | special == _public(ring)
    for name, args in calls:
        real, null = getattr(ring, name)(*args), getattr(ring_null, name)(*args)
        pairs = zip(null, real, strict=True) if isinstance(real, tuple) else [(null, real)]
        for got, want in pairs:
            assert got.shape == want.shape and got.dtype == want.dtype, name
            assert not got.any(), name
    assert ring_null.total(a) == 0
    assert ring_null.packed_words(size) == ring.packed_words(size) == words
    values = rng.uniform(-5, 5, (2, size))
    encoded, bad = ring_null.from_float(values, 65536.0, 2.0**46)
    assert encoded.shape == values.shape and encoded.dtype == U64 and bad == -1
