"""The canonical encoding: known bytes, round trips, and refusal of every other form."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpc.chain.encoding import MAX_DEPTH, Value, decode, encode, encode_joined
from smpc.chain.errors import ChainEncodingError

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


def as_decoded(value: object) -> object:
    """What decode returns for ``value``: lists become tuples, maps dicts."""
    if isinstance(value, list | tuple):
        return tuple(as_decoded(v) for v in value)
    if isinstance(value, dict):
        return {k: as_decoded(v) for k, v in value.items()}
    return value


def test_known_answers() -> None:
    # Written out by hand from the format table, not produced by the encoder.
    assert encode(None) == b"\x01\x00"
    assert encode(False) == b"\x01\x01"
    assert encode(True) == b"\x01\x02"
    assert encode(5) == b"\x01\x10" + b"\x00" * 7 + b"\x05"
    assert encode(2**64 - 1) == b"\x01\x10" + b"\xff" * 8
    assert encode(-1) == b"\x01\x11" + b"\xff" * 8
    assert encode(-(2**63)) == b"\x01\x11\x80" + b"\x00" * 7
    assert encode(b"ab") == b"\x01\x20\x00\x00\x00\x02ab"
    assert encode("é") == b"\x01\x21\x00\x00\x00\x02\xc3\xa9"
    assert encode([1, b""]) == (
        b"\x01\x30\x00\x00\x00\x02" + b"\x10" + b"\x00" * 7 + b"\x01" + b"\x20\x00\x00\x00\x00"
    )
    assert encode({"b": None, "a": True}) == (
        b"\x01\x31\x00\x00\x00\x02" + b"\x21\x00\x00\x00\x01a\x02" + b"\x21\x00\x00\x00\x01b\x00"
    )


@given(st.lists(values, max_size=5))
def test_joined_encodings_are_the_encoding_of_the_list(items: list[Value]) -> None:
    assert encode_joined([encode(v) for v in items]) == encode(items)


def test_joining_refuses_an_item_that_is_not_an_encoding() -> None:
    for item in (b"", b"\x02\x00"):
        with pytest.raises(ChainEncodingError, match="not an encoding of this version"):
            encode_joined([encode(1), item])


@given(values)
def test_round_trip(value: Value) -> None:
    data = encode(value)
    assert decode(data) == as_decoded(value)
    assert encode(decode(data)) == data


@given(st.dictionaries(st.text(max_size=6), st.integers(0, 9), min_size=2, max_size=6))
def test_map_encoding_ignores_insertion_order(mapping: dict[str, int]) -> None:
    reversed_order = dict(reversed(list(mapping.items())))
    assert encode(mapping) == encode(reversed_order)


@given(values, st.binary(min_size=1, max_size=4))
def test_trailing_bytes_are_refused(value: Value, extra: bytes) -> None:
    with pytest.raises(ChainEncodingError, match="trailing"):
        decode(encode(value) + extra)


@given(values, st.data())
def test_every_proper_prefix_is_refused(value: Value, data: st.DataObject) -> None:
    encoded = encode(value)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(ChainEncodingError):
        decode(encoded[:cut])


@given(values, st.data())
def test_a_mutated_encoding_is_refused_or_canonical(value: Value, data: st.DataObject) -> None:
    # Whatever decodes must be the one encoding of what it decodes to.
    encoded = bytearray(encode(value))
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] = data.draw(st.integers(0, 255))
    try:
        decoded = decode(bytes(encoded))
    except ChainEncodingError:
        return
    assert encode(decoded) == bytes(encoded)


@given(st.integers(0, 2**63 - 1))
def test_non_negative_integer_under_the_negative_tag_is_refused(number: int) -> None:
    with pytest.raises(ChainEncodingError, match="non-canonical integer"):
        decode(b"\x01\x11" + struct.pack(">q", number))


def _key(text: str) -> bytes:
    raw = text.encode()
    return b"\x21" + struct.pack(">I", len(raw)) + raw


@pytest.mark.parametrize("keys", [["b", "a"], ["a", "a"], ["ab", "a"]])
def test_unsorted_or_repeated_map_keys_are_refused(keys: list[str]) -> None:
    body = b"".join(_key(k) + b"\x00" for k in keys)
    with pytest.raises(ChainEncodingError, match="sorted"):
        decode(b"\x01\x31" + struct.pack(">I", len(keys)) + body)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"\x02\x00", "version"),
        (b"\x01\x7f", "unknown tag"),
        (b"\x01\x21\x00\x00\x00\x01\xff", "UTF-8"),
        (b"\x01\x21\x00\x00\x00\x03\xed\xa0\x80", "UTF-8"),  # an encoded surrogate
        (b"\x01\x21\x00\x00\x00\x02\xc0\xaf", "UTF-8"),  # an overlong form
        (b"\x01\x31\x00\x00\x00\x01\x20\x00\x00\x00\x00\x00", "not a string"),
        (b"\x01\x30\x00\x00\x00\x05\x00", "truncated"),
    ],
)
def test_malformed_input_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(ChainEncodingError, match=match):
        decode(data)


def test_nesting_is_bounded_both_ways() -> None:
    deep: object = None
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(ChainEncodingError, match="deeper"):
        encode(deep)  # type: ignore[arg-type]
    with pytest.raises(ChainEncodingError, match="deeper"):
        decode(b"\x01" + b"\x30\x00\x00\x00\x01" * (MAX_DEPTH + 2) + b"\x00")


@pytest.mark.parametrize(
    "value", [2**64, -(2**63) - 1, 1.5, {1: 2}, {"k": object()}, "\ud800", {b"k": 1}]
)
def test_unencodable_values_are_refused(value: object) -> None:
    with pytest.raises(ChainEncodingError):
        encode(value)  # type: ignore[arg-type]


def test_booleans_are_not_integers() -> None:
    assert decode(encode(True)) is True
    assert encode(True) != encode(1)
