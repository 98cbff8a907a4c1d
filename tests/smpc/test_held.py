"""Held products: X_h @ W_h of matrices two parties hold in the clear, against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from smpc import held
from smpc.errors import ShapeMismatchError
from smpc.local import LocalFederation
from smpc.runtime import dry_run

MOD = 1 << 64


def _exact(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """X @ W mod 2^64 with Python integers: the oracle."""
    return (x.astype(object) @ w.astype(object)) % MOD


def _ring(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, MOD, size=shape, dtype=np.uint64)


def _run(n_parties: int, owner: int, holders: list[int], shapes: list[tuple[int, int, int]]):
    """Random ring matrices at the holders and the owner; every party's shares and the inputs."""
    rng = np.random.default_rng(5)
    xs = {h: _ring(rng, (m, k)) for h, (m, k, _) in zip(holders, shapes, strict=True)}
    ws = [_ring(rng, (k, n)) for _, k, n in shapes]
    inputs = [ws if p == owner else xs.get(p) for p in range(n_parties)]

    def fn(rt, mine):
        return held.held_products(rt, owner, holders, shapes, mine)

    return LocalFederation(n_parties).run(fn, inputs=inputs), xs, ws


@pytest.mark.parametrize(
    ("n_parties", "owner", "holders"),
    [(4, 3, [0, 1, 2]), (4, 0, [2, 3]), (2, 1, [0]), (5, 2, [4, 0])],
)
def test_shares_add_up_to_the_product_in_one_round(n_parties, owner, holders) -> None:
    """Whoever gets the dealer's correction (party 0: a holder, the owner or neither)."""
    shapes = [(7 + i, 3, 2) for i in range(len(holders))]
    res, xs, ws = _run(n_parties, owner, holders, shapes)
    for i, h in enumerate(holders):
        total = sum(res.results[p][i].astype(object) for p in range(n_parties)) % MOD
        np.testing.assert_array_equal(total, _exact(xs[h], ws[i]))
    assert res.rounds == [held.ROUNDS] * n_parties


def test_only_the_pairs_exchange_bytes() -> None:
    """A holder sends m*k words to the owner, the owner k*n to each holder, a bystander none."""
    shapes = [(20, 5, 1), (9, 5, 1)]
    res, _, _ = _run(4, 3, [0, 2], shapes)
    assert res.bytes_sent == [8 * 20 * 5, 0, 8 * 9 * 5, 8 * (5 + 5)]


def test_a_holder_without_rows_gets_an_empty_block() -> None:
    res, _, _ = _run(3, 2, [0, 1], [(0, 4, 1), (6, 4, 1)])
    assert res.results[0][0].shape == (0, 1)
    assert res.results[1][1].shape == (6, 1)


def test_the_owner_cannot_also_hold_rows() -> None:
    with pytest.raises(ValueError, match="none is the owner"):
        _run(3, 2, [0, 2], [(2, 2, 1), (2, 2, 1)])


def test_a_holder_passing_the_wrong_shape_is_refused() -> None:
    def fn(rt, mine):
        return held.held_products(rt, 1, [0], [(4, 3, 1)], mine)

    bad = np.zeros((4, 2), dtype=np.uint64)
    with pytest.raises(ShapeMismatchError, match=r"party 0 holds uint64 arrays of shapes"):
        dry_run(fn, 2, bad)


def test_the_plan_is_one_held_triple_per_holder_naming_holder_and_owner() -> None:
    def fn(rt, mine):
        return held.held_products(rt, 2, [0, 1], [(4, 3, 1), (5, 3, 1)], mine)

    plan = dry_run(fn, 3, [np.zeros((3, 1), np.uint64)] * 2, party=2).plan
    assert [(r.kind, r.shape, r.parties) for r in plan.requests] == [
        ("held_triple", (4, 3, 1), (0, 2)),
        ("held_triple", (5, 3, 1), (1, 2)),
    ]
