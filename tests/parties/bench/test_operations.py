"""The benchmark operation table: documented rounds, sizes, and the plaintext oracles."""

from __future__ import annotations

import numpy as np
import pytest

from parties.bench import operations
from parties.bench.measure import Case, schedule
from parties.bench.operations import OPERATIONS, parse_size, size_label
from protocols import logistic
from smpc import approx, beaver, compare, inverse, runtime, truncation
from smpc.runtime import dry_run

# The engine's own constants, named here once so that a registry entry cannot
# quietly document a different count than the module it measures.
ENGINE_ROUNDS = {
    "share": runtime.INPUT_ROUNDS,
    "open": runtime.OPEN_ROUNDS,
    "add": 0,
    "mul": beaver.ROUNDS + truncation.ROUNDS,
    "matmul": beaver.ROUNDS + truncation.ROUNDS,
    "ltz": compare.ROUNDS,
    "sigmoid": approx.SIGMOID_ROUNDS,
    "exp": approx.EXP_ROUNDS,
    "reciprocal": inverse.RECIPROCAL_ROUNDS,
    "sqrt": inverse.SQRT_ROUNDS,
    "lr-inference": logistic.LABEL_ROUNDS,
}


@pytest.mark.parametrize("name", sorted(set(OPERATIONS) & set(ENGINE_ROUNDS)))
def test_documented_rounds_are_the_engine_constants(name: str) -> None:
    assert OPERATIONS[name].rounds == ENGINE_ROUNDS[name]


@pytest.mark.parametrize("name", sorted(OPERATIONS))
@pytest.mark.parametrize("size", [1, 100])
def test_one_repetition_takes_the_documented_rounds(name: str, size: int) -> None:
    """A dry run of one repetition, after the untimed setup, spends exactly op.rounds."""
    op = OPERATIONS[name]
    data = op.data(size)

    def one(rt):
        state = op.setup(rt, data)
        before = rt.rounds
        op.run(rt, state)
        return rt.rounds - before

    assert dry_run(one, 3).result == op.rounds


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_plaintext_oracle_passes_its_own_check_and_a_wrong_answer_fails(name: str) -> None:
    op = OPERATIONS[name]
    data = op.data(64)
    expected = op.plaintext(data)
    op.check(expected, expected, data)
    wrong = np.asarray(expected).astype(np.float64) + 1.0
    with pytest.raises(operations.ResultMismatch):
        op.check(wrong, expected, data)


def test_operands_lie_on_the_fixed_point_grid() -> None:
    x = OPERATIONS["mul"].data(1000)["x"]
    scaled = x * 2.0**operations.FRAC_BITS
    np.testing.assert_array_equal(scaled, np.round(scaled))


@pytest.mark.parametrize(
    ("text", "value"), [("1", 1), ("1000", 1000), ("1e3", 1000), ("10^6", 10**6), ("2_500", 2500)]
)
def test_sizes_parse(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["0", "-5", "1.5", "abc", "1e9", ""])
def test_bad_sizes_are_refused_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_size_labels() -> None:
    assert [size_label(n) for n in (1, 10, 1000, 10**6, 2500)] == ["1", "10", "1e3", "1e6", "2500"]
    assert OPERATIONS["matmul"].shape(1000) == "32x32"
    assert OPERATIONS["matmul"].elements(1000) == 1024


def test_schedule_gives_the_tiers_their_repetitions() -> None:
    small_warmup, small = schedule(Case("mul", 1000, "memory"))
    assert sum(small) == 200 and small_warmup == 20
    medium_warmup, medium = schedule(Case("mul", 10**4, "memory"))
    assert sum(medium) == 50 and medium_warmup == 5
    large_warmup, large = schedule(Case("sigmoid", 10**6, "memory"))
    assert sum(large) == 5 and large_warmup == 0 and large == [1] * 5
    with pytest.raises(ValueError, match="repetitions"):
        schedule(Case("mul", 1, "memory"), 0)
