"""The only source of secret randomness: AES-256-CTR streams keyed by HKDF-SHA256.

A *seed* is 32 secret bytes. Keys for individual streams are derived from a
seed with HKDF-SHA256 over a canonical label (federation, job, dealer nonce,
party, purpose, stream number, ...), so every stream of a job has its own key
and counter space. A consumer that reads many small pieces of one job (a
party's preprocessing items, :mod:`smpc.preprocessing.streams`) takes
disjoint word ranges of one key's keystream, opened with
``Stream(key, start)``, each range once: one key and cipher for the job, not
one per piece.
Fresh entropy enters only through :func:`fresh_seed` (the operating system's
CSPRNG); ``numpy.random`` and ``random`` never touch secrets.
"""

from __future__ import annotations

import os
import struct

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEED_BYTES = 32
_DOMAIN = b"smpc/prg/v1"
_BLOCK_WORDS = 2  # an AES block is two uint64 words
_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)

Label = str | bytes | int


def fresh_seed() -> bytes:
    """32 bytes from the operating system's CSPRNG."""
    return os.urandom(SEED_BYTES)


def encode_label(parts: tuple[Label, ...]) -> bytes:
    """Canonical, injective encoding of a label: typed, length-prefixed parts."""
    out = bytearray(_DOMAIN)
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, str | bytes | int):
            raise TypeError(f"label parts must be str, bytes or int, not {type(part).__name__}")
        if isinstance(part, int):
            if not 0 <= part < 1 << 64:
                raise ValueError("integer label parts must be in 0..2^64-1")
            raw, tag = part.to_bytes(8, "big"), b"i"
        elif isinstance(part, str):
            raw, tag = part.encode(), b"s"
        else:
            raw, tag = part, b"b"
        out += tag + struct.pack(">I", len(raw)) + raw
    return bytes(out)


def derive_key(seed: bytes, *label: Label) -> bytes:
    """HKDF-SHA256 of ``seed`` under ``label``: a 32-byte key or child seed."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"seeds are {SEED_BYTES} bytes, got {len(seed)}")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=SEED_BYTES, salt=None, info=encode_label(label))
    return hkdf.derive(seed)


class Stream:
    """An AES-256-CTR keystream read as uint64 ring elements, uniform in Z_2^64.

    Each key drives exactly one keystream, whose counter starts at block 0.
    ``start`` opens it at word ``start`` instead (counter block ``start // 2``,
    the half block before an odd start dropped): disjoint word ranges of one
    key's keystream are independent, so one key can serve many consumers that
    each read their own range.
    """

    __slots__ = ("_encryptor", "_words_read")

    def __init__(self, key: bytes, start: int = 0) -> None:
        if len(key) != SEED_BYTES:
            raise ValueError(f"stream keys are {SEED_BYTES} bytes, got {len(key)}")
        if not 0 <= start < 1 << 64:
            raise ValueError(f"a stream starts at a word in 0..2^64-1, not {start}")
        block, skip = divmod(start, _BLOCK_WORDS)
        cipher = Cipher(algorithms.AES(key), modes.CTR(block.to_bytes(16, "big")))
        self._encryptor = cipher.encryptor()
        if skip:
            self._encryptor.update(bytes(8 * skip))
        self._words_read = 0

    @property
    def words_read(self) -> int:
        """How many uint64 words this stream has produced."""
        return self._words_read

    def fill(self, out: np.ndarray) -> np.ndarray:
        """Overwrite a C-contiguous uint64 array with the next keystream words."""
        if out.dtype != np.uint64 or not out.flags.c_contiguous:
            raise TypeError("fill needs a C-contiguous uint64 array")
        if out.size == 0:  # a memoryview of an empty array cannot be cast
            return out
        view = out.data.cast("B")
        for start in range(0, len(view), _CHUNK):
            part = view[start : start + _CHUNK]
            self._encryptor.update_into(_ZEROS[: len(part)], part)
        self._words_read += out.size
        return out

    def words(self, shape: int | tuple[int, ...]) -> np.ndarray:
        """A new uint64 array of the given shape filled from the stream."""
        return self.fill(np.empty(shape, dtype=np.uint64))


def random_ring(shape: int | tuple[int, ...]) -> np.ndarray:
    """Uniform ring elements from fresh entropy (a new key per call)."""
    return Stream(fresh_seed()).words(shape)
