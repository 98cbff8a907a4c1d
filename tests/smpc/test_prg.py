"""AES-CTR streams, HKDF key derivation and label encoding in smpc.prg."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from smpc.prg import (
    SEED_BYTES,
    Stream,
    derive_key,
    encode_label,
    fresh_seed,
    random_ring,
)

seeds = st.binary(min_size=SEED_BYTES, max_size=SEED_BYTES)
label_parts = st.one_of(st.text(max_size=6), st.binary(max_size=6), st.integers(0, 2**64 - 1))
labels = st.lists(label_parts, max_size=4).map(tuple)

# Derived, not random, so the statistical tests are reproducible.
FIXED_KEY = derive_key(bytes(range(SEED_BYTES)), "test", "uniformity")


def ecb_keystream(key: bytes, words: int) -> np.ndarray:
    """AES-256 in counter mode built from single-block ECB: blocks E_k(0), E_k(1), ..."""
    blocks = -(-words * 8 // 16)
    counters = b"".join(i.to_bytes(16, "big") for i in range(blocks))
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    raw = encryptor.update(counters) + encryptor.finalize()
    return np.frombuffer(raw[: words * 8], dtype="<u8").astype(np.uint64)


def hkdf_sha256(seed: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 HKDF-SHA256 with an empty salt, written with the standard library."""
    prk = hmac.new(bytes(32), seed, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def chi_square(counts: np.ndarray) -> float:
    """Pearson's statistic of observed counts against the uniform distribution."""
    expected = counts.sum() / counts.size
    return float(((counts - expected) ** 2 / expected).sum())


def chi_square_bound(bins: int) -> float:
    """Mean plus six standard deviations of the chi-square law with bins - 1 degrees of freedom."""
    df = bins - 1
    return df + 6.0 * np.sqrt(2.0 * df)


# --- Stream ------------------------------------------------------------------------------------


@given(seeds)
def test_stream_is_deterministic_per_key(key: bytes) -> None:
    assert np.array_equal(Stream(key).words(64), Stream(key).words(64))


@given(seeds, seeds)
def test_streams_differ_across_keys(k1: bytes, k2: bytes) -> None:
    if k1 != k2:
        assert not np.array_equal(Stream(k1).words(8), Stream(k2).words(8))


@given(seeds)
def test_stream_is_aes256_ctr_from_counter_zero(key: bytes) -> None:
    """The words are the little-endian AES-256 keystream E_k(0) || E_k(1) || ..."""
    assert np.array_equal(Stream(key).words(37), ecb_keystream(key, 37))


def test_stream_continues_across_calls_and_chunks() -> None:
    """Reads in pieces (crossing the 1 MiB chunking) equal one long read, and words_read counts."""
    total = (1 << 18) + 5  # more than 2 MiB of keystream
    whole = Stream(FIXED_KEY).words(total)
    stream = Stream(FIXED_KEY)
    pieces = [stream.words(3), stream.words((1 << 17) + 1), stream.words(total - (1 << 17) - 4)]
    assert stream.words_read == total
    assert np.array_equal(np.concatenate(pieces), whole)
    assert np.array_equal(whole[-100:], ecb_keystream(FIXED_KEY, total)[-100:])


@pytest.mark.parametrize("start", [0, 1, 2, 7, 64, (1 << 17) + 3])
def test_stream_opened_at_a_word_reads_the_keystream_from_there(start: int) -> None:
    """Stream(key, start) is AES-256-CTR's keystream from word ``start``, odd starts too."""
    expected = ecb_keystream(FIXED_KEY, start + 9)[start:]
    assert np.array_equal(Stream(FIXED_KEY, start).words(9), expected)


@pytest.mark.parametrize("start", [-1, 1 << 64])
def test_stream_rejects_a_start_outside_the_counter_space(start: int) -> None:
    with pytest.raises(ValueError):
        Stream(FIXED_KEY, start)


def test_stream_has_no_repeated_blocks() -> None:
    """No 128-bit block repeats in 4 MiB of keystream (a counter reset would repeat them)."""
    words = Stream(FIXED_KEY).words(1 << 19)
    blocks = words.reshape(-1, 2)
    assert np.unique(blocks, axis=0).shape[0] == blocks.shape[0]


def test_stream_words_shape_and_dtype() -> None:
    out = Stream(FIXED_KEY).words((3, 4, 5))
    assert out.shape == (3, 4, 5)
    assert out.dtype == np.uint64


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: np.zeros(8, dtype=np.int64), id="int64"),
        pytest.param(lambda: np.zeros(8, dtype=np.uint32), id="uint32"),
        pytest.param(lambda: np.zeros(8, dtype=np.float64), id="float64"),
        pytest.param(lambda: np.zeros(16, dtype=np.uint64)[::2], id="strided"),
        pytest.param(lambda: np.zeros((4, 3), dtype=np.uint64).T, id="transposed"),
        pytest.param(lambda: np.zeros((4, 3), dtype=np.uint64, order="F"), id="fortran"),
    ],
)
def test_fill_rejects_wrong_dtype_or_layout(make: object) -> None:
    """fill refuses the array, leaves it untouched and does not advance the stream."""
    out = make()  # type: ignore[operator]
    stream = Stream(FIXED_KEY)
    with pytest.raises(TypeError):
        stream.fill(out)
    assert not out.any()
    assert stream.words_read == 0
    assert np.array_equal(stream.words(4), Stream(FIXED_KEY).words(4))


def test_an_empty_array_takes_no_words() -> None:
    stream = Stream(FIXED_KEY)
    assert stream.words((0, 30)).shape == (0, 30)
    assert stream.words_read == 0
    assert np.array_equal(stream.words(2), Stream(FIXED_KEY).words(2))


def test_fill_writes_in_place() -> None:
    out = np.zeros((2, 3), dtype=np.uint64)
    returned = Stream(FIXED_KEY).fill(out)
    assert returned is out
    assert np.array_equal(out.ravel(), Stream(FIXED_KEY).words(6))


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_stream_rejects_bad_key_length(length: int) -> None:
    with pytest.raises(ValueError):
        Stream(bytes(length))


# --- uniformity --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(lambda n: Stream(FIXED_KEY).words(n), id="stream"),
        pytest.param(random_ring, id="random_ring"),
    ],
)
def test_bytes_and_low_bits_pass_chi_square(source: object) -> None:
    """Byte values, each word's low byte and its top byte are uniform (chi-square, 6 sigma)."""
    words = source(1 << 18)  # type: ignore[operator]
    byte_counts = np.bincount(words.view(np.uint8), minlength=256)
    assert chi_square(byte_counts) < chi_square_bound(256)
    low_byte = np.bincount((words & np.uint64(0xFF)).astype(np.int64), minlength=256)
    assert chi_square(low_byte) < chi_square_bound(256)
    top_byte = np.bincount((words >> np.uint64(56)).astype(np.int64), minlength=256)
    assert chi_square(top_byte) < chi_square_bound(256)


def test_every_bit_position_is_balanced() -> None:
    """Each of the 64 bit positions is set in about half of the words (within 6 sigma)."""
    n = 1 << 16
    words = Stream(FIXED_KEY).words(n)
    bits = (words[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    ones = bits.sum(axis=0)
    assert np.all(np.abs(ones - n / 2) < 6 * np.sqrt(n / 4))


# --- random_ring -------------------------------------------------------------------------------


def test_random_ring_differs_per_call() -> None:
    first, second = random_ring(16), random_ring(16)
    assert first.shape == second.shape == (16,)
    assert first.dtype == np.uint64
    assert not np.array_equal(first, second)


def test_random_ring_shape() -> None:
    assert random_ring((2, 3)).shape == (2, 3)


def test_fresh_seed_is_fresh() -> None:
    assert len(fresh_seed()) == SEED_BYTES
    assert fresh_seed() != fresh_seed()


# --- labels and derive_key ---------------------------------------------------------------------


@given(labels, labels)
def test_encode_label_is_injective(l1: tuple, l2: tuple) -> None:
    """Distinct labels (as typed tuples) never encode to the same bytes."""
    typed1 = tuple((type(p), p) for p in l1)
    typed2 = tuple((type(p), p) for p in l2)
    if typed1 != typed2:
        assert encode_label(l1) != encode_label(l2)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("ab", "c"), ("a", "bc")),
        (("abc",), ("ab", "c")),
        (("a", ""), ("a",)),
        ((1,), ("1",)),
        ((1,), (b"\x00" * 7 + b"\x01",)),
        (("x",), (b"x",)),
        ((0, 1), (1,)),
        ((2**32,), (2**32 + 1,)),
    ],
)
def test_encode_label_separates_lookalikes(left: tuple, right: tuple) -> None:
    assert encode_label(left) != encode_label(right)


@pytest.mark.parametrize("part", [True, 1.5, None, ("a",), -1])
def test_encode_label_rejects_bad_parts(part: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        encode_label(("ok", part))  # type: ignore[arg-type]


@given(seeds, labels)
def test_derive_key_is_hkdf_sha256_of_the_label(seed: bytes, label: tuple) -> None:
    key = derive_key(seed, *label)
    assert len(key) == SEED_BYTES
    assert key == hkdf_sha256(seed, encode_label(label))


@given(seeds, labels, labels)
def test_derive_key_separates_labels(seed: bytes, l1: tuple, l2: tuple) -> None:
    if encode_label(l1) != encode_label(l2):
        assert derive_key(seed, *l1) != derive_key(seed, *l2)


def test_derive_key_separates_lookalike_labels() -> None:
    seed = bytes(range(SEED_BYTES))
    assert derive_key(seed, "ab", "c") != derive_key(seed, "a", "bc")
    assert derive_key(seed, 7) != derive_key(seed, "7")
    assert derive_key(seed, "job", 1) != derive_key(seed, "job", 2)


@given(seeds, seeds, labels)
def test_derive_key_separates_seeds(s1: bytes, s2: bytes, label: tuple) -> None:
    if s1 != s2:
        assert derive_key(s1, *label) != derive_key(s2, *label)


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_derive_key_rejects_bad_seed_length(length: int) -> None:
    with pytest.raises(ValueError):
        derive_key(bytes(length), "x")
