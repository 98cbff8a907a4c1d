"""The chain's canonical binary encoding: one value, exactly one byte string.

Everything that is hashed or signed on the chain goes through :func:`encode`,
so two honest implementations always hash the same bytes. An encoding is a
version byte followed by one item; an item is a one-byte tag and a body:

====  ===========  ==========================================================
tag   type         body
====  ===========  ==========================================================
0x00  None         empty
0x01  False        empty
0x02  True         empty
0x10  uint         8 bytes big-endian, 0 <= v < 2**64 (every non-negative int)
0x11  negint       8 bytes big-endian two's complement, -2**63 <= v < 0
0x20  bytes        4-byte big-endian length, then the bytes
0x21  str          4-byte big-endian length, then strict UTF-8
0x30  list         4-byte big-endian count, then the items (tuples too)
0x31  map          4-byte big-endian count, then key item, value item, ...
====  ===========  ==========================================================

Map keys are strings, sorted by their UTF-8 bytes, with no repeats. There are
no floats: times are integer milliseconds since the Unix epoch (UTC). Because
widths are fixed and each int has one tag, every value has one encoding;
:func:`decode` rejects anything else (a non-negative int under 0x11, unsorted
or repeated keys, trailing bytes, nesting deeper than :data:`MAX_DEPTH`) with
:class:`~smpc.chain.errors.ChainEncodingError`. Lists decode as tuples.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from smpc.chain.errors import ChainEncodingError

VERSION = 1
"""First byte of every encoding; a decoder refuses versions it does not know."""

MAX_DEPTH = 32
"""Deepest nesting of lists and maps accepted, so hostile input cannot exhaust the stack."""

MAX_LENGTH = 2**32 - 1
"""Longest bytes/str and most list/map entries one length field can state."""

NONE, FALSE, TRUE = 0x00, 0x01, 0x02
UINT, NEGINT = 0x10, 0x11
BYTES, STR = 0x20, 0x21
LIST, MAP = 0x30, 0x31

Value = (
    None | bool | int | bytes | str | list["Value"] | tuple["Value", ...] | Mapping[str, "Value"]
)
"""What :func:`encode` accepts; :func:`decode` returns tuples for lists and dicts for maps."""

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")


def encode(value: Value) -> bytes:
    """The canonical encoding of ``value``, version byte first."""
    out = bytearray([VERSION])
    _put(out, value, 0)
    return bytes(out)


def encode_joined(encoded: Sequence[bytes]) -> bytes:
    """The encoding of the list whose items' encodings (each from :func:`encode`) are given.

    Equal to ``encode([decode(e) for e in encoded])``; it lets a caller encode a
    part shared by several lists once, e.g. the common fields of the messages
    each party of a job signs.
    """
    out = bytearray([VERSION])
    _put_count(out, LIST, len(encoded))
    for item in encoded:
        if item[:1] != bytes([VERSION]):
            raise ChainEncodingError("an item to join is not an encoding of this version")
        out += memoryview(item)[1:]
    return bytes(out)


def decode(data: bytes) -> Value:
    """The value whose canonical encoding is exactly ``data``; anything else is refused."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ChainEncodingError(f"expected bytes to decode, got {type(data).__name__}")
    buf = bytes(data)
    if not buf:
        raise ChainEncodingError("empty input: expected a version byte")
    if buf[0] != VERSION:
        raise ChainEncodingError(f"encoding version {buf[0]} is not supported (expected {VERSION})")
    value, end = _get(buf, 1, 0)
    if end != len(buf):
        raise ChainEncodingError(f"{len(buf) - end} trailing bytes after the value")
    return value


def _put(out: bytearray, value: Value, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ChainEncodingError(f"value nests deeper than {MAX_DEPTH} levels")
    if value is None:
        out.append(NONE)
    elif isinstance(value, bool):
        out.append(TRUE if value else FALSE)
    elif isinstance(value, int):
        if 0 <= value < 2**64:
            out.append(UINT)
            out += _U64.pack(value)
        elif -(2**63) <= value < 0:
            out.append(NEGINT)
            out += _I64.pack(value)
        else:
            raise ChainEncodingError(f"integer {value} is outside [-2**63, 2**64)")
    elif isinstance(value, bytes | bytearray):
        _put_sized(out, BYTES, bytes(value))
    elif isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ChainEncodingError("string is not valid Unicode (lone surrogate)") from exc
        _put_sized(out, STR, raw)
    elif isinstance(value, list | tuple):
        _put_count(out, LIST, len(value))
        for item in value:
            _put(out, item, depth + 1)
    elif isinstance(value, Mapping):
        keys: list[tuple[bytes, str]] = []
        for key in value:
            if not isinstance(key, str):
                raise ChainEncodingError(f"map keys must be str, got {type(key).__name__}")
            keys.append((key.encode("utf-8"), key))
        keys.sort()
        _put_count(out, MAP, len(keys))
        for raw, key in keys:
            _put_sized(out, STR, raw)
            _put(out, value[key], depth + 1)
    else:
        raise ChainEncodingError(f"cannot encode a {type(value).__name__}")


def _put_sized(out: bytearray, tag: int, raw: bytes) -> None:
    _put_count(out, tag, len(raw))
    out += raw


def _put_count(out: bytearray, tag: int, count: int) -> None:
    if count > MAX_LENGTH:
        raise ChainEncodingError(f"{count} entries exceed the limit of {MAX_LENGTH}")
    out.append(tag)
    out += _U32.pack(count)


def _take(buf: bytes, pos: int, size: int) -> bytes:
    end = pos + size
    if end > len(buf):
        raise ChainEncodingError(f"truncated input: need {size} bytes at offset {pos}")
    return buf[pos:end]


def _get(buf: bytes, pos: int, depth: int) -> tuple[Value, int]:
    if depth > MAX_DEPTH:
        raise ChainEncodingError(f"input nests deeper than {MAX_DEPTH} levels")
    tag = _take(buf, pos, 1)[0]
    pos += 1
    if tag == NONE:
        return None, pos
    if tag in (FALSE, TRUE):
        return tag == TRUE, pos
    if tag == UINT:
        return _U64.unpack(_take(buf, pos, 8))[0], pos + 8
    if tag == NEGINT:
        number = _I64.unpack(_take(buf, pos, 8))[0]
        if number >= 0:
            raise ChainEncodingError(f"non-canonical integer at offset {pos - 1}: use tag 0x10")
        return number, pos + 8
    if tag in (BYTES, STR, LIST, MAP):
        count = _U32.unpack(_take(buf, pos, 4))[0]
        pos += 4
        if tag == BYTES:
            return _take(buf, pos, count), pos + count
        if tag == STR:
            return _text(_take(buf, pos, count), pos), pos + count
        if tag == LIST:
            items: list[Value] = []
            for _ in range(count):
                item, pos = _get(buf, pos, depth + 1)
                items.append(item)
            return tuple(items), pos
        return _get_map(buf, pos, count, depth)
    raise ChainEncodingError(f"unknown tag 0x{tag:02x} at offset {pos - 1}")


def _get_map(buf: bytes, pos: int, count: int, depth: int) -> tuple[Value, int]:
    result: dict[str, Value] = {}
    previous: bytes | None = None
    for _ in range(count):
        if _take(buf, pos, 1)[0] != STR:
            raise ChainEncodingError(f"map key at offset {pos} is not a string")
        size = _U32.unpack(_take(buf, pos + 1, 4))[0]
        raw = _take(buf, pos + 5, size)
        if previous is not None and raw <= previous:
            raise ChainEncodingError(f"map keys at offset {pos} are not strictly sorted")
        key = _text(raw, pos + 5)
        value, pos = _get(buf, pos + 5 + size, depth + 1)
        result[key] = value
        previous = raw
    return result, pos


def _text(raw: bytes, pos: int) -> str:
    try:
        return raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise ChainEncodingError(f"invalid UTF-8 in the string at offset {pos}") from exc
