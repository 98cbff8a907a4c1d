"""The seed-based dealer and SeededSource: items reconstruct, plans and single use are enforced."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpc import ring_reference as ref
from smpc.errors import (
    PlanMismatchError,
    PreprocessingExhausted,
    ReuseError,
    UnknownPartyError,
)
from smpc.preprocessing import DeferredSource, MatrixTriple, Triple, TruncationTuple
from smpc.preprocessing.dealer import Dealer, SeededSource
from smpc.preprocessing.plan import Plan, Request

U64 = np.uint64
LOW63 = U64((1 << 63) - 1)
PARTIES = range(2, 8)

PLAN = Plan(
    (
        Request("triple", (3, 4)),
        Request("matrix_triple", (2, 3, 4)),
        Request("truncation", (64,), 16),
        Request("triple", (5,)),
        Request("truncation", (2, 3), 0),
        Request("matrix_triple", (1, 5, 1)),
        Request("truncation", (7,), 30),
        Request("truncation", (3,), 62),
    )
)

Item = Triple | MatrixTriple | TruncationTuple


def federation(n: int, plan: Plan = PLAN, job: str = "job-1") -> tuple[Dealer, list[SeededSource]]:
    """A dealer and every party's source for one job; party 0 is fed by the dealer."""
    dealer = Dealer("fed", job, n, plan)
    sources = [
        SeededSource(i, dealer.seed_for(i), plan, dealer if i == 0 else None) for i in range(n)
    ]
    return dealer, sources


def take(source: SeededSource, request: Request) -> Item:
    """Ask ``source`` for the item ``request`` describes, through the public API."""
    if request.kind == "triple":
        return source.triple(request.shape)
    if request.kind == "matrix_triple":
        return source.matrix_triple(*request.shape)
    return source.truncation(request.shape, request.frac_bits)


def opened(items: list[Item]) -> list[np.ndarray]:
    """Consume every party's copy of one item and sum the shares component-wise."""
    parts = [item.consume() for item in items]
    return [ref.sum_shares([p[j] for p in parts]) for j in range(3)]


def check_item(request: Request, values: list[np.ndarray]) -> None:
    """The reconstructed item is valid for ``request`` and not degenerate."""
    first, second, third = values
    if request.kind == "triple":
        assert first.shape == second.shape == third.shape == request.shape
        assert np.array_equal(third, ref.mul(first, second))
    elif request.kind == "matrix_triple":
        m, k, n = request.shape
        assert (first.shape, second.shape, third.shape) == ((m, k), (k, n), (m, n))
        assert np.array_equal(third, ref.matmul(first, second))
    else:
        r, r_low, r_top = values
        assert r.shape == r_low.shape == r_top.shape == request.shape
        assert np.array_equal(r_low, (r & LOW63) >> U64(request.frac_bits))
        assert np.array_equal(r_top, r >> U64(63))
    # A dealer handing out zeros would satisfy the identities; the masks must look random.
    assert np.count_nonzero(first) >= first.size - 1 or first.size == 0


def run_plan(sources: list[SeededSource], plan: Plan) -> None:
    """Every party takes the plan's items in order; each reconstructs to a valid item."""
    for request in plan.requests:
        check_item(request, opened([take(s, request) for s in sources]))


# --- items reconstruct -------------------------------------------------------------------------


@pytest.mark.parametrize("n", PARTIES)
def test_items_reconstruct(n: int) -> None:
    _, sources = federation(n)
    run_plan(sources, PLAN)


@pytest.mark.parametrize("n", PARTIES)
def test_prefetched_items_reconstruct(n: int) -> None:
    """Some parties prefetch everything, others expand lazily; the items still hold."""
    _, sources = federation(n)
    for i, source in enumerate(sources):
        if i % 2 == 0:
            source.prefetch()
    run_plan(sources, PLAN)


def test_prefetch_after_partial_consumption() -> None:
    _, sources = federation(3)
    first = opened([take(s, PLAN[0]) for s in sources])
    check_item(PLAN[0], first)
    for s in sources:
        s.prefetch()
        s.prefetch()  # a second prefetch must not draw any stream again
    run_plan(sources, Plan(PLAN.requests[1:]))


@settings(max_examples=10)
@given(
    n=st.integers(2, 7),
    requests=st.lists(
        st.one_of(
            st.builds(
                lambda s: Request("triple", s),
                st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple),
            ),
            st.builds(
                lambda m, k, n: Request("matrix_triple", (m, k, n)),
                st.integers(1, 4),
                st.integers(1, 4),
                st.integers(1, 4),
            ),
            st.builds(
                lambda s, f: Request("truncation", (s,), f),
                st.integers(1, 8),
                st.integers(0, 62),
            ),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_random_plans_reconstruct(n: int, requests: list[Request]) -> None:
    plan = Plan(tuple(requests))
    _, sources = federation(n, plan)
    run_plan(sources, plan)


@pytest.mark.parametrize(("n", "holder", "owner"), [(4, 2, 3), (4, 0, 3), (3, 1, 0), (2, 1, 0)])
def test_a_held_triples_a_is_at_its_holder_b_at_its_owner_and_c_adds_up(
    n: int, holder: int, owner: int
) -> None:
    request = Request("held_triple", (6, 4, 2), 0, (holder, owner))
    plan = Plan((request, Request("triple", (3,))))
    for prefetch in (False, True):
        _, sources = federation(n, plan)
        if prefetch:
            for source in sources:
                source.prefetch()
        parts = [s.held_triple(6, 4, 2, holder, owner).consume() for s in sources]
        for p, (a, b, _) in enumerate(parts):
            assert a.shape == ((6, 4) if p == holder else (0, 4))
            assert b.shape == ((4, 2) if p == owner else (0, 2))
        a, b = parts[holder][0], parts[owner][1]
        c = ref.sum_shares([part[2] for part in parts])
        want = (a.astype(object) @ b.astype(object)) % (1 << 64)
        assert np.array_equal(c.astype(object), want)
        assert np.count_nonzero(a) >= a.size - 1 and np.count_nonzero(b) >= b.size - 1
        run_plan(sources, Plan(plan.requests[1:]))


def test_shares_of_one_item_differ_across_parties() -> None:
    _, sources = federation(4)
    parts = [take(s, PLAN[0]).consume() for s in sources]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(parts[i][0], parts[j][0])
            assert not np.array_equal(parts[i][1], parts[j][1])


def test_truncation_top_bit_takes_both_values() -> None:
    """Over 64 elements r's top bit is 0 somewhere and 1 somewhere (fails with prob. 2^-63)."""
    _, sources = federation(2)
    for request in PLAN.requests[:2]:
        for s in sources:
            take(s, request)
    r_top = opened([take(s, PLAN[2]) for s in sources])[2]
    assert set(r_top.tolist()) == {0, 1}


def test_corrections_are_one_array_per_triple_and_two_per_truncation() -> None:
    dealer = Dealer("fed", "job", 3, PLAN)
    triple = dealer.corrections(0)
    matrix = dealer.corrections(1)
    truncation = dealer.corrections(2)
    assert [c.shape for c in triple] == [(3, 4)]
    assert [c.shape for c in matrix] == [(2, 4)]
    assert [c.shape for c in truncation] == [(64,), (64,)]
    assert all(c.dtype == U64 for c in triple + matrix + truncation)


# --- plan order and single use -----------------------------------------------------------------


@pytest.mark.parametrize(
    "wrong",
    [
        Request("matrix_triple", (3, 4, 1)),
        Request("truncation", (3, 4), 16),
        Request("triple", (4, 3)),
        Request("triple", (12,)),
        Request("triple", (3, 4, 1)),
    ],
)
def test_asking_for_something_else_raises_plan_mismatch(wrong: Request) -> None:
    """Plan item 0 is a (3, 4) triple; any other kind or shape is refused, and nothing is used."""
    _, sources = federation(2)
    for source in sources:
        with pytest.raises(PlanMismatchError):
            take(source, wrong)
        assert source.position == 0
    check_item(PLAN[0], opened([take(s, PLAN[0]) for s in sources]))


def test_truncation_with_other_frac_bits_raises_plan_mismatch() -> None:
    _, sources = federation(2)
    source = sources[1]
    take(source, PLAN[0])
    take(source, PLAN[1])
    with pytest.raises(PlanMismatchError):
        source.truncation((64,), 15)


@pytest.mark.parametrize("party", [0, 1])
def test_asking_past_the_plan_raises_exhausted(party: int) -> None:
    plan = Plan((Request("triple", (2,)),))
    _, sources = federation(2, plan)
    take(sources[party], plan[0])
    with pytest.raises(PreprocessingExhausted):
        sources[party].triple((2,))
    with pytest.raises(PreprocessingExhausted):
        sources[party].truncation((2,), 16)


def test_empty_plan_is_exhausted_at_once() -> None:
    _, sources = federation(2, Plan())
    with pytest.raises(PreprocessingExhausted):
        sources[1].triple((1,))


@pytest.mark.parametrize("party", [0, 1])
def test_consuming_an_item_twice_raises_reuse(party: int) -> None:
    _, sources = federation(2)
    item = take(sources[party], PLAN[0])
    assert not item.used
    item.consume()
    assert item.used
    with pytest.raises(ReuseError):
        item.consume()


def test_dealer_refuses_the_same_correction_twice() -> None:
    dealer = Dealer("fed", "job", 3, PLAN)
    dealer.corrections(2)
    with pytest.raises(ReuseError):
        dealer.corrections(2)
    dealer.corrections(0)  # other items are still available


def test_dealer_refuses_a_correction_party_zero_already_fetched() -> None:
    """Once party 0's source has fetched an item's correction, nobody can get it again."""
    dealer, sources = federation(2)
    sources[0].prefetch()
    with pytest.raises(ReuseError):
        dealer.corrections(0)


# --- construction, seeds and job ids -----------------------------------------------------------


def test_first_party_needs_a_feed() -> None:
    dealer = Dealer("fed", "job", 2, PLAN)
    with pytest.raises(ValueError):
        SeededSource(0, dealer.seed_for(0), PLAN, None)


def test_dealer_needs_two_parties() -> None:
    with pytest.raises(ValueError):
        Dealer("fed", "job", 1, PLAN)


@pytest.mark.parametrize("party", [-1, 3, 10])
def test_seed_for_unknown_party(party: int) -> None:
    with pytest.raises(UnknownPartyError):
        Dealer("fed", "job", 3, PLAN).seed_for(party)


@pytest.mark.parametrize("n", PARTIES)
def test_seeds_differ_across_parties(n: int) -> None:
    dealer = Dealer("fed", "job", n, PLAN)
    seeds = [dealer.seed_for(i) for i in range(n)]
    assert len(set(seeds)) == n
    assert all(len(s) == 32 for s in seeds)
    assert seeds == [dealer.seed_for(i) for i in range(n)]


def test_two_dealers_for_one_job_use_fresh_nonces() -> None:
    d1 = Dealer("fed", "job", 3, PLAN)
    d2 = Dealer("fed", "job", 3, PLAN)
    for i in range(3):
        assert d1.seed_for(i) != d2.seed_for(i)


def test_mixing_seeds_of_two_dealers_breaks_the_correlation() -> None:
    """A party expanding another dealer's seed does not get a share of this dealer's triple."""
    plan = Plan((Request("triple", (16,)),))
    dealer, other = Dealer("fed", "job", 2, plan), Dealer("fed", "job", 2, plan)
    sources = [SeededSource(0, dealer.seed_for(0), plan, dealer)]
    sources.append(SeededSource(1, other.seed_for(1), plan))
    a, b, c = opened([s.triple((16,)) for s in sources])
    assert not np.array_equal(c, ref.mul(a, b))


# --- nothing secret in repr --------------------------------------------------------------------


def secret_texts(blob: bytes) -> list[str]:
    """Ways a secret byte string could be printed."""
    return [blob.hex(), blob.hex().upper(), repr(blob)[2:-1]]


def test_dealer_repr_hides_nonce_and_seeds() -> None:
    dealer = Dealer("fed", "job-7", 3, PLAN)
    text = repr(dealer) + str(dealer)
    secrets = [dealer._nonce] + [dealer.seed_for(i) for i in range(3)]
    for secret in secrets:
        for form in secret_texts(secret):
            assert form not in text
    assert "job-7" in text


def test_item_repr_hides_shares() -> None:
    _, sources = federation(2)
    for request in PLAN.requests:
        for source in sources:
            item = take(source, request)
            texts = [repr(item), str(item)]
            parts = item.consume()
            texts += [repr(item), str(item)]
            for part in parts:
                for value in part.ravel()[:8]:
                    if int(value) >= 1000:  # short numbers could match the index by chance
                        assert all(str(int(value)) not in t for t in texts)
                        assert all(f"{int(value):x}" not in t for t in texts)


def test_source_repr_hides_seed() -> None:
    dealer, sources = federation(2)
    for i, source in enumerate(sources):
        text = repr(source) + repr(source._stream)
        for form in secret_texts(dealer.seed_for(i)):
            assert form not in text


def test_deferred_sources_are_made_at_the_first_item_and_reconstruct() -> None:
    """A deferred source makes its source only when an item is first asked for."""
    dealer = Dealer("fed", "job-deferred", 3, PLAN)
    made: list[int] = []

    def make(i: int) -> SeededSource:
        made.append(i)
        source = SeededSource(i, dealer.seed_for(i), PLAN, dealer if i == 0 else None)
        source.prefetch()
        return source

    sources = [DeferredSource(PLAN, lambda i=i: make(i)) for i in range(3)]
    assert made == [] and not any(s.made for s in sources)
    run_plan(sources, PLAN)  # type: ignore[arg-type]  # the same public API as SeededSource
    assert made == [0, 1, 2]
    with pytest.raises(PreprocessingExhausted):
        sources[1].triple((1,))
    mismatch = DeferredSource(PLAN, lambda: make(1))
    with pytest.raises(PlanMismatchError):
        mismatch.triple((9,))
    assert not mismatch.made  # refused before anything was made


# --- how items are handed out ------------------------------------------------------------------


@pytest.mark.parametrize("prefetch", [False, True])
def test_items_are_handed_out_read_only(prefetch: bool) -> None:
    """Shares and corrections cannot be changed in place: the ring kernels take them as they are."""
    _, sources = federation(2)
    for source in sources:
        if prefetch:
            source.prefetch()
        for request in PLAN.requests:
            for part in take(source, request).consume():
                assert not part.flags.writeable
                with pytest.raises(ValueError, match="read-only"):
                    part[...] = 0


@pytest.mark.parametrize(
    "shape",
    [[3, 4], (np.int64(3), np.int64(4)), np.array([3, 4])],
    ids=["list", "numpy-ints", "array"],
)
def test_a_shape_given_as_list_array_or_numpy_ints_asks_for_the_planned_item(shape) -> None:
    _, sources = federation(2)
    items = [source.triple(shape) for source in sources]
    check_item(PLAN[0], opened(items))
    assert [source.position for source in sources] == [1, 1]
