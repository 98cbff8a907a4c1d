"""Fixed-point encoding in smpc.fixedpoint: precision, range checks and error messages."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from smpc.errors import FixedPointRangeError
from smpc.fixedpoint import FixedPoint

MOD = 1 << 64
FRAC_BITS = [0, 1, 8, 16, 24, 30]


def bound(frac_bits: int) -> float:
    """The documented exclusive range of encodable magnitudes: 2^(62-F)."""
    return math.ldexp(1.0, 62 - frac_bits)


def in_range(frac_bits: int) -> st.SearchStrategy[float]:
    """Finite floats with |x| < 2^(62-F), subnormals included."""
    top = bound(frac_bits)
    return st.floats(-top, top, exclude_min=True, exclude_max=True, allow_nan=False)


def numbers_in(message: str) -> list[float]:
    """Every decimal or scientific number written in ``message``."""
    return [float(m) for m in re.findall(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", message)]


def names_bound(message: str, limit: float) -> bool:
    """Whether the message writes the allowed magnitude (to 6 significant digits)."""
    return any(math.isclose(v, limit, rel_tol=1e-5) for v in numbers_in(message))


# --- encode / decode ---------------------------------------------------------------------------


@pytest.mark.parametrize("frac_bits", FRAC_BITS)
@given(data=st.data())
def test_round_trip_error_is_at_most_half_a_unit(frac_bits: int, data: st.DataObject) -> None:
    fp = FixedPoint(frac_bits)
    values = data.draw(arrays(np.float64, st.integers(1, 20), elements=in_range(frac_bits)))
    decoded = fp.decode(fp.encode(values))
    assert decoded.shape == values.shape
    assert np.all(np.abs(decoded - values) <= math.ldexp(1.0, -(frac_bits + 1)))


@pytest.mark.parametrize("frac_bits", FRAC_BITS)
@given(data=st.data())
def test_encode_is_round_to_nearest_mod_2_64(frac_bits: int, data: st.DataObject) -> None:
    """Each code is round(x * 2^F) mod 2^64, computed exactly with fractions."""
    fp = FixedPoint(frac_bits)
    values = data.draw(st.lists(in_range(frac_bits), min_size=1, max_size=10))
    codes = fp.encode(np.array(values))
    assert codes.dtype == np.uint64
    want = [round(Fraction(v) * 2**frac_bits) % MOD for v in values]
    assert [int(c) for c in codes] == want


@given(st.integers(-(2**46) + 1, 2**46 - 1))
def test_integers_decode_exactly_at_default_precision(n: int) -> None:
    fp = FixedPoint()
    assert fp.frac_bits == 16
    assert fp.decode(fp.encode(np.array([float(n)])))[0] == n


def test_encode_keeps_shape_and_accepts_int_and_bool_input() -> None:
    fp = FixedPoint(8)
    assert fp.encode(np.zeros((2, 3, 4))).shape == (2, 3, 4)
    assert [int(v) for v in fp.encode(np.array([-2, 3]))] == [(-2 * 256) % MOD, 3 * 256]
    assert [int(v) for v in fp.encode(np.array([True, False]))] == [256, 0]


def test_decode_with_explicit_frac_bits() -> None:
    fp = FixedPoint(16)
    code = np.array([(-3 << 32) % MOD], dtype=np.uint64)
    assert fp.decode(code, frac_bits=32)[0] == -3.0
    assert fp.decode(code, frac_bits=0)[0] == float(-3 << 32)


def test_properties_follow_frac_bits() -> None:
    fp = FixedPoint(10)
    assert fp.scale == 2.0**10
    assert fp.max_abs == 2.0**52
    assert fp.max_product == 2.0**42


# --- range errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("frac_bits", FRAC_BITS)
def test_range_edges(frac_bits: int) -> None:
    """Just inside 2^(62-F) encodes; 2^(62-F) itself and beyond, either sign, is refused."""
    fp = FixedPoint(frac_bits)
    top = bound(frac_bits)
    inside = np.nextafter(top, 0.0)
    fp.encode(np.array([inside, -inside]))
    for bad in (top, -top, 2 * top, -np.finfo(np.float64).max):
        with pytest.raises(FixedPointRangeError):
            fp.encode(np.array([bad]))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_raise(bad: float) -> None:
    fp = FixedPoint()
    with pytest.raises(FixedPointRangeError) as info:
        fp.encode(np.array([1.0, bad, 2.0]))
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert re.search(r"\b1\b", message), "the message names the position"
    assert names_bound(message, bound(16))
    assert not re.search(r"\b(nan|inf|infinity)\b", message, re.IGNORECASE)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 9876543210.5, -9876543210.5])
@given(data=st.data())
def test_error_names_column_by_name_row_and_range(bad: float, data: st.DataObject) -> None:
    """A bad entry in a 2-D input is located by column name and row; its value is not shown."""
    fp = FixedPoint(30)  # range |x| < 2^32, so 9876543210.5 is out of range
    rows = data.draw(st.integers(1, 6))
    names = ["age", "bmi", "systolic", "hba1c"]
    row = data.draw(st.integers(0, rows - 1))
    col = data.draw(st.integers(0, len(names) - 1))
    table = data.draw(arrays(np.float64, (rows, len(names)), elements=st.floats(-100, 100)))
    table[row, col] = bad
    with pytest.raises(FixedPointRangeError) as info:
        fp.encode(table, columns=names)
    message = str(info.value)
    assert names[col] in message
    assert not any(n in message for i, n in enumerate(names) if i != col)
    assert re.search(rf"\brow {row}\b", message)
    assert names_bound(message, bound(30))
    for text in (repr(bad), str(bad), f"{bad:.6g}", f"{bad:g}", "9876543210", "9.87654"):
        assert text not in message
    assert not re.search(r"\b(nan|inf|infinity)\b", message, re.IGNORECASE)


@given(data=st.data())
def test_error_without_column_names_gives_column_index(data: st.DataObject) -> None:
    fp = FixedPoint(16)
    rows, cols = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    row, col = data.draw(st.integers(0, rows - 1)), data.draw(st.integers(0, cols - 1))
    table = np.zeros((rows, cols))
    table[row, col] = math.inf
    with pytest.raises(FixedPointRangeError) as info:
        fp.encode(table)
    message = str(info.value)
    assert re.search(rf"\bcolumn {col}\b", message)
    assert re.search(rf"\brow {row}\b", message)


def test_error_names_element_of_a_vector() -> None:
    fp = FixedPoint(16)
    values = np.zeros(9)
    values[7] = 3.0 * bound(16)
    with pytest.raises(FixedPointRangeError) as info:
        fp.encode(values)
    message = str(info.value)
    assert re.search(r"\b7\b", message)
    assert names_bound(message, bound(16))


@pytest.mark.parametrize("limit", [1.0, 2.0**15, 1234.5])
def test_limit_tightens_the_range(limit: float) -> None:
    fp = FixedPoint(16)
    fp.encode(np.array([np.nextafter(limit, 0.0), -np.nextafter(limit, 0.0)]), limit=limit)
    for bad in (limit, -limit, 2 * limit):
        with pytest.raises(FixedPointRangeError) as info:
            fp.encode(np.array([0.0, bad]), limit=limit)
        assert names_bound(str(info.value), limit)


def test_limit_cannot_loosen_the_range() -> None:
    fp = FixedPoint(16)
    with pytest.raises(FixedPointRangeError):
        fp.encode(np.array([bound(16)]), limit=4 * bound(16))


def test_nan_limit_does_not_disable_the_range_check() -> None:
    fp = FixedPoint(16)
    with pytest.raises(ValueError):
        fp.encode(np.array([1e300]), limit=math.nan)


# --- encode_int --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
@given(data=st.data())
def test_encode_int_signed_is_twos_complement(dtype: type, data: st.DataObject) -> None:
    info = np.iinfo(dtype)
    values = data.draw(st.lists(st.integers(int(info.min), int(info.max)), max_size=10))
    codes = FixedPoint().encode_int(np.array(values, dtype=dtype))
    assert codes.dtype == np.uint64
    assert [int(c) for c in codes] == [v % MOD for v in values]
    assert FixedPoint().decode(codes, frac_bits=0).tolist() == [float(v) for v in values]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
@given(data=st.data())
def test_encode_int_unsigned_keeps_values(dtype: type, data: st.DataObject) -> None:
    values = data.draw(st.lists(st.integers(0, int(np.iinfo(dtype).max)), max_size=10))
    codes = FixedPoint().encode_int(np.array(values, dtype=dtype))
    assert codes.dtype == np.uint64
    assert [int(c) for c in codes] == values


def test_encode_int_bool() -> None:
    assert [int(c) for c in FixedPoint().encode_int(np.array([True, False, True]))] == [1, 0, 1]


@pytest.mark.parametrize("values", [np.array([1.0, 2.0]), np.array(["1", "2"]), [1.5]])
def test_encode_int_rejects_non_integers(values: object) -> None:
    with pytest.raises(TypeError):
        FixedPoint().encode_int(values)


@pytest.mark.parametrize(
    "values",
    [np.array(["1.0", "2.0"]), np.array([b"x"]), np.array([object()], dtype=object), ["a"]],
)
def test_encode_rejects_non_numeric_dtype(values: object) -> None:
    with pytest.raises(TypeError):
        FixedPoint().encode(values)


# --- constructor -------------------------------------------------------------------------------


@pytest.mark.parametrize("frac_bits", [-1, 31, 64, 2.5, "16", None])
def test_constructor_rejects_bad_frac_bits(frac_bits: object) -> None:
    with pytest.raises(ValueError):
        FixedPoint(frac_bits)  # type: ignore[arg-type]


def test_constructor_rejects_bool_frac_bits() -> None:
    with pytest.raises(ValueError):
        FixedPoint(True)


@pytest.mark.parametrize("frac_bits", [0, 16, 30])
def test_constructor_accepts_valid_frac_bits(frac_bits: int) -> None:
    assert FixedPoint(frac_bits).frac_bits == frac_bits


def test_encoder_is_immutable() -> None:
    fp = FixedPoint(16)
    with pytest.raises(AttributeError):
        fp.frac_bits = 8  # type: ignore[misc]
