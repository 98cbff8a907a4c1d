"""One keystream per party and job: items are consecutive, disjoint slices of it."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from smpc.errors import ReuseError
from smpc.preprocessing import Plan, Request
from smpc.preprocessing.dealer import Dealer, SeededSource
from smpc.preprocessing.source import component_shapes
from smpc.preprocessing.streams import PlanStream, seeded_count
from smpc.prg import derive_key

PLAN = Plan(
    (
        Request("triple", (3, 4)),
        Request("matrix_triple", (2, 3, 5)),
        Request("truncation", (7,), 16),
        Request("comparison_mask", (65,)),
        Request("binary_triple", (3,)),
        Request("triple", ()),
        Request("comparison_mask", (0,)),
        Request("truncation", (1,), 3),
        Request("held_triple", (2, 3, 1), 0, (1, 2)),
    )
)
SEED = derive_key(bytes(range(32)), "test", "plan-stream")


def keystream(seed: bytes, words: int) -> np.ndarray:
    """The first ``words`` words of AES-256-CTR under the seed's plan key, built from ECB."""
    key = derive_key(seed, "plan-stream")
    blocks = -(-words // 2)
    counters = b"".join(i.to_bytes(16, "big") for i in range(blocks))
    raw = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(counters)
    return np.frombuffer(raw[: 8 * words], dtype="<u8").astype(np.uint64)


def item_words(request: Request, party: int) -> int:
    """Words a party draws for ``request``: all of its arrays, or the first party's leading
    ones (a held triple's A and B only at their holder and owner)."""
    shapes = component_shapes(request, party)
    if party == 0:
        shapes = shapes[: seeded_count(request.kind)]
    return sum(int(np.prod(s)) for s in shapes)


@pytest.mark.parametrize("party", [0, 1, 2])
def test_items_are_consecutive_disjoint_slices_of_one_keystream(party: int) -> None:
    """Item k's arrays are the keystream's words right after item k - 1's, nothing skipped
    and nothing read twice; with no repeated AES block in the whole stream, no two items
    share randomness."""
    stream = PlanStream(SEED, PLAN, party)
    items = [stream.item(k) for k in range(len(PLAN))]
    total = sum(item_words(r, party) for r in PLAN.requests)
    expected = keystream(SEED, total)
    at = 0
    for request, parts in zip(PLAN.requests, items, strict=True):
        flat = np.concatenate([p.reshape(-1) for p in parts]) if parts else np.empty(0, np.uint64)
        assert flat.size == item_words(request, party)
        assert np.array_equal(flat, expected[at : at + flat.size])
        at += flat.size
    assert at == total
    whole = expected[: total - total % 2].reshape(-1, 2)
    assert np.unique(whole, axis=0).shape[0] == whole.shape[0]


def test_first_party_items_hold_only_its_seeded_arrays() -> None:
    stream = PlanStream(SEED, PLAN, 0)
    for k, request in enumerate(PLAN.requests):
        shapes = [p.shape for p in stream.item(k)]
        assert shapes == list(component_shapes(request, 0)[: seeded_count(request.kind)])


@pytest.mark.parametrize("party", [0, 1, 2])
def test_a_held_triple_draws_a_only_at_its_holder_and_b_only_at_its_owner(party: int) -> None:
    held = len(PLAN) - 1
    a, b = PlanStream(SEED, PLAN, party).item(held)[:2]
    assert a.shape == ((2, 3) if party == 1 else (0, 3))
    assert b.shape == ((3, 1) if party == 2 else (0, 1))


@pytest.mark.parametrize("party", [0, 1])
def test_items_read_out_of_order_equal_items_read_in_order(party: int) -> None:
    in_order = PlanStream(SEED, PLAN, party)
    expected = [in_order.item(k) for k in range(len(PLAN))]
    shuffled = PlanStream(SEED, PLAN, party)
    for k in [5, 8, 2, 3, 0, 7, 1, 6, 4]:
        got = shuffled.item(k)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected[k], strict=True))


def test_an_item_is_expanded_once() -> None:
    stream = PlanStream(SEED, PLAN, 1)
    stream.item(3)
    with pytest.raises(ReuseError, match="#3"):
        stream.item(3)
    stream.item(4)  # the next item is still there


@pytest.mark.parametrize("party", [0, 1, 2])
def test_a_party_expands_exactly_the_dealers_view_of_its_seed(party: int) -> None:
    """What a party's source hands out from its seed is, bit for bit, the keystream the
    dealer derives from the seed it gave that party (the oracle: plain AES from word 0)."""
    dealer = Dealer("fed", "job-streams", 3, PLAN)
    source = SeededSource(party, dealer.seed_for(party), PLAN, dealer if party == 0 else None)
    source.prefetch()
    expected = keystream(dealer.seed_for(party), PLAN.words)
    at = 0
    for k, request in enumerate(PLAN.requests):
        parts = source._materialize(k, request)[: len(component_shapes(request, party))]
        seeded = parts[: seeded_count(request.kind)] if party == 0 else parts
        for part in seeded:
            assert np.array_equal(part.reshape(-1), expected[at : at + part.size])
            at += part.size


def test_seeds_of_two_parties_give_unrelated_streams() -> None:
    dealer = Dealer("fed", "job-streams", 2, PLAN)
    a = PlanStream(dealer.seed_for(0), PLAN, 1).item(1)[0]
    b = PlanStream(dealer.seed_for(1), PLAN, 1).item(1)[0]
    assert not np.any(a == b)


def test_repr_hides_the_key() -> None:
    stream = PlanStream(SEED, PLAN, 1)
    text = repr(stream)
    key = derive_key(SEED, "plan-stream")
    assert key.hex() not in text and SEED.hex() not in text


@pytest.mark.parametrize("index", [-1, len(PLAN)])
def test_an_item_outside_the_plan_is_refused(index: int) -> None:
    with pytest.raises(IndexError):
        PlanStream(SEED, PLAN, 1).item(index)
