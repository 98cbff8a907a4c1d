"""Preprocessing plans and requests (smpc.preprocessing.plan)."""

from __future__ import annotations

import json
from math import prod

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpc.preprocessing.plan import KINDS, Plan, Request

dims = st.integers(0, 50)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """Any valid request of any kind."""
    kind = draw(st.sampled_from(KINDS))
    if kind == "matrix_triple":
        return Request(kind, (draw(dims), draw(dims), draw(dims)))
    if kind == "held_triple":
        holder, owner = draw(st.lists(st.integers(0, 6), min_size=2, max_size=2, unique=True))
        return Request(kind, (draw(dims), draw(dims), draw(dims)), 0, (holder, owner))
    shape = tuple(draw(st.lists(dims, min_size=0, max_size=3)))
    frac_bits = draw(st.integers(0, 40)) if kind == "truncation" else 0
    return Request(kind, shape, frac_bits)


plans = st.lists(requests(), max_size=12).map(lambda rs: Plan(tuple(rs)))


@given(plans)
def test_plan_json_round_trip(plan: Plan) -> None:
    text = plan.to_json()
    assert Plan.from_json(text) == plan
    assert Plan.from_json(text).to_json() == text


@given(plans)
def test_plan_json_is_canonical(plan: Plan) -> None:
    """Sorted keys, no whitespace, and a list of the requests in order."""
    text = plan.to_json()
    decoded = json.loads(text)
    assert text == json.dumps(decoded, sort_keys=True, separators=(",", ":"))
    assert [d["kind"] for d in decoded] == [r.kind for r in plan.requests]
    assert [tuple(d["shape"]) for d in decoded] == [r.shape for r in plan.requests]
    assert [d["frac_bits"] for d in decoded] == [r.frac_bits for r in plan.requests]


def test_plans_with_different_order_differ() -> None:
    a = Request("triple", (2,))
    b = Request("truncation", (2,), 16)
    assert Plan((a, b)) != Plan((b, a))
    assert Plan((a, b)).to_json() != Plan((b, a)).to_json()


@given(requests())
def test_request_words(request_: Request) -> None:
    """Ring elements a party holds: three arrays of the shape, A, B and C of a matrix triple,
    or r, r's bits, the daBit and its packed XOR shares (64 per word) of a comparison mask."""
    if request_.kind in ("matrix_triple", "held_triple"):  # a held triple's, at most
        m, k, n = request_.shape
        assert request_.words == m * k + k * n + m * n
    elif request_.kind == "comparison_mask":
        size = prod(request_.shape)
        assert request_.words == 3 * size + -(-size // 64)
    else:
        assert request_.words == 3 * prod(request_.shape)


@given(plans)
def test_plan_words_and_indexing(plan: Plan) -> None:
    assert plan.words == sum(r.words for r in plan.requests)
    assert len(plan) == len(plan.requests)
    for i, r in enumerate(plan.requests):
        assert plan[i] == r


def test_empty_plan() -> None:
    plan = Plan()
    assert len(plan) == 0
    assert plan.words == 0
    assert Plan.from_json(plan.to_json()) == plan


def test_request_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="triple"):
        Request("beaver", (2,))


@pytest.mark.parametrize("shape", [(), (2,), (2, 3), (1, 2, 3, 4)])
def test_matrix_triple_needs_three_dimensions(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        Request("matrix_triple", shape)


@pytest.mark.parametrize(
    ("kind", "shape"),
    [("triple", (-1,)), ("truncation", (3, -2)), ("matrix_triple", (2, -1, 3))],
)
def test_request_rejects_negative_dimensions(kind: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        Request(kind, shape)


@pytest.mark.parametrize(
    ("kind", "parties", "says"),
    [
        ("held_triple", (), "names its"),
        ("held_triple", (1,), "two distinct parties"),
        ("held_triple", (2, 2), "two distinct parties"),
        ("held_triple", (0, -1), "two distinct parties"),
        ("matrix_triple", (0, 1), "names its"),
    ],
)
def test_a_held_triple_and_only_it_names_holder_and_owner(
    kind: str, parties: tuple[int, ...], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        Request(kind, (2, 3, 1), 0, parties)


def test_held_triple_parties_travel_in_the_plan_json_and_other_kinds_keep_theirs() -> None:
    held = Request("held_triple", (4, 3, 1), 0, (2, 0))
    plan = Plan((held, Request("triple", (2,))))
    decoded = json.loads(plan.to_json())
    assert decoded[0]["parties"] == [2, 0]
    assert "parties" not in decoded[1]
    assert Plan.from_json(plan.to_json()) == plan


def test_request_is_frozen_and_compares_by_value() -> None:
    r = Request("truncation", (4,), 16)
    assert r == Request("truncation", (4,), 16)
    assert r != Request("truncation", (4,), 15)
    assert r != Request("triple", (4,), 16)
    with pytest.raises(AttributeError):
        r.frac_bits = 8  # type: ignore[misc]
