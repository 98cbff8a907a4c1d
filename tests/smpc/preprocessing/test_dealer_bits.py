"""Binary triples and comparison masks from the seed-based dealer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpc import ring_reference as ref
from smpc.errors import PlanMismatchError, ReuseError
from smpc.preprocessing import BinaryTriple, ComparisonMask, Plan, Request
from smpc.preprocessing.dealer import Dealer, SeededSource
from smpc.preprocessing.source import component_shapes
from smpc.preprocessing.streams import seeded_count

U64 = np.uint64

PLAN = Plan(
    (
        Request("comparison_mask", (200,)),
        Request("binary_triple", (7,)),
        Request("triple", (3,)),
        Request("comparison_mask", (2, 3)),
        Request("binary_triple", (2, 2)),
        Request("comparison_mask", (0,)),
    )
)


def federation(n: int, plan: Plan = PLAN) -> tuple[Dealer, list[SeededSource]]:
    dealer = Dealer("fed", "job-bits", n, plan)
    sources = [
        SeededSource(i, dealer.seed_for(i), plan, dealer if i == 0 else None) for i in range(n)
    ]
    return dealer, sources


def take(source: SeededSource, request: Request) -> object:
    if request.kind == "binary_triple":
        return source.binary_triple(request.shape)
    if request.kind == "comparison_mask":
        return source.comparison_mask(request.shape)
    return source.triple(request.shape)


def check_binary_triple(parts: list[tuple[np.ndarray, ...]], shape: tuple[int, ...]) -> None:
    a, b, c = (ref.xor_shares([p[j] for p in parts]) for j in range(3))
    assert a.shape == b.shape == c.shape == shape
    assert np.array_equal(c, a & b)
    assert np.count_nonzero(a) >= a.size - 1


def check_mask(parts: list[tuple[np.ndarray, ...]], shape: tuple[int, ...]) -> None:
    r = ref.sum_shares([p[0] for p in parts])
    s_bits = ref.xor_shares([p[1] for p in parts])
    r_bits = ref.xor_shares([p[2] for p in parts])
    s = ref.sum_shares([p[3] for p in parts])
    size = int(np.prod(shape))
    assert r.shape == r_bits.shape == s.shape == shape
    assert s_bits.shape == ((size + 63) // 64,)
    assert np.array_equal(r_bits, r)  # XOR shares of r's 64 bits
    flat = s.reshape(-1)
    assert set(flat.tolist()) <= {0, 1}
    assert [int(v) for v in flat] == [(int(s_bits[i // 64]) >> (i % 64)) & 1 for i in range(size)]
    assert np.count_nonzero(r) >= r.size - 1


@pytest.mark.parametrize("n", range(2, 8))
def test_items_reconstruct(n: int) -> None:
    _, sources = federation(n)
    for request in PLAN.requests:
        items = [take(s, request) for s in sources]
        parts = [item.consume() for item in items]  # type: ignore[attr-defined]
        if request.kind == "binary_triple":
            assert all(isinstance(item, BinaryTriple) for item in items)
            check_binary_triple(parts, request.shape)
        elif request.kind == "comparison_mask":
            assert all(isinstance(item, ComparisonMask) for item in items)
            check_mask(parts, request.shape)


@settings(max_examples=10)
@given(n=st.integers(2, 6), size=st.integers(1, 300), words=st.integers(1, 40))
def test_random_sizes_reconstruct(n: int, size: int, words: int) -> None:
    plan = Plan((Request("comparison_mask", (size,)), Request("binary_triple", (words,))))
    dealer = Dealer("fed", "job", n, plan)
    sources = dealer.local_sources(prefetch=n % 2 == 0)
    check_mask([s.comparison_mask((size,)).consume() for s in sources], (size,))
    check_binary_triple([s.binary_triple((words,)).consume() for s in sources], (words,))


def test_the_dabit_takes_both_values() -> None:
    """Over 200 values s is 0 somewhere and 1 somewhere (fails with probability 2^-199)."""
    _, sources = federation(3)
    parts = [s.comparison_mask((200,)).consume() for s in sources]
    assert set(ref.sum_shares([p[3] for p in parts]).tolist()) == {0, 1}


def test_only_party_zero_gets_corrections_and_they_are_the_trailing_arrays() -> None:
    dealer = Dealer("fed", "job", 3, PLAN)
    mask, binary = dealer.corrections(0), dealer.corrections(1)
    assert [c.shape for c in mask] == [(200,), (200,)]  # r's bits, the daBit's additive share
    assert [c.shape for c in binary] == [(7,)]
    assert seeded_count("comparison_mask") == 2 and seeded_count("binary_triple") == 2
    shapes = component_shapes(PLAN[0])
    assert shapes == ((200,), (4,), (200,), (200,))
    assert [c.shape for c in mask] == list(shapes[seeded_count("comparison_mask") :])
    # Parties other than 0 expand every array themselves and take no feed.
    other = SeededSource(1, dealer.seed_for(1), PLAN)
    assert [a.shape for a in other.comparison_mask((200,)).consume()] == list(shapes)


def test_xor_shares_of_other_parties_look_uniform() -> None:
    """A non-first party's share of r's bits is a stream, not r itself."""
    _, sources = federation(2)
    p0, p1 = (s.comparison_mask((200,)).consume() for s in sources)
    for part in (p0, p1):
        assert not np.array_equal(part[2], ref.sum_shares([p0[0], p1[0]]))
    ones = sum(bin(int(v)).count("1") for v in p1[2])
    assert 0.45 < ones / (64 * 200) < 0.55


def test_items_are_used_once_and_corrections_given_once() -> None:
    dealer, sources = federation(2)
    item = sources[1].comparison_mask((200,))
    item.consume()
    with pytest.raises(ReuseError):
        item.consume()
    sources[0].prefetch()
    with pytest.raises(ReuseError):
        dealer.corrections(1)


def test_a_different_shape_or_kind_is_a_plan_mismatch() -> None:
    _, sources = federation(2)
    with pytest.raises(PlanMismatchError):
        sources[1].comparison_mask((199,))
    with pytest.raises(PlanMismatchError):
        sources[1].binary_triple((200,))
    assert sources[1].position == 0
