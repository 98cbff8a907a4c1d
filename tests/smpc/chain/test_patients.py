"""A job's patient leaves and commitment, against an independent computation.

The expected values are built here from hmac, AES-ECB (cryptography) and
hashlib alone, following the definitions in :mod:`smpc.chain.patients`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from smpc.chain import patients
from smpc.chain.encoding import encode
from smpc.chain.errors import RecordError


def mth(items: list[bytes]) -> bytes:
    """RFC 6962 MTH: split at the largest power of two smaller than n."""
    if not items:
        return hashlib.sha256(b"").digest()
    if len(items) == 1:
        return hashlib.sha256(b"\x00" + items[0]).digest()
    k = 1
    while k * 2 < len(items):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(items[:k]) + mth(items[k:])).digest()


def bucket_root(leaves: list[bytes]) -> bytes:
    """The MTH of the leaves cut into runs of 128."""
    return mth([b"".join(leaves[i : i + 128]) for i in range(0, len(leaves), 128)])


def keys_of(secret: bytes, ids: list[bytes]) -> np.ndarray:
    data = b"".join(hmac.digest(secret, p, "sha256") for p in ids)
    return np.frombuffer(data, dtype=np.uint8).reshape(len(ids), 32)


def test_patient_leaves_match_an_independent_computation() -> None:
    secret, salt = bytes(range(32)), bytes(32)
    ids = [b"MRN-1", b"MRN-2", b"MRN-1"]
    job = hmac.digest(secret, encode(["smpc/chain/patients/job-key/v2", "j1", salt]), "sha256")
    assert patients.job_key(secret, "j1", salt) == job
    aes = Cipher(algorithms.AES(job), modes.ECB()).encryptor()
    expected = sorted({aes.update(hmac.digest(secret, p, "sha256")[:16]) for p in ids})
    got = patients.leaves(job, keys_of(secret, ids)).tobytes()
    assert got == b"".join(expected) and len(got) == 2 * 16  # a patient with two rows is one leaf
    commitment, root = patients.commit(salt, got)
    assert root == bucket_root(expected)
    domain = b"smpc/chain/patients/commitment/v2"
    assert commitment == hashlib.sha256(domain + salt + struct.pack(">Q", 2) + root).digest()


def test_many_rows_sort_like_python() -> None:
    secret, salt = bytes(range(32)), b"\x07" * 32
    ids = [f"MRN-{i % 3000}".encode() for i in range(5000)]  # 2,000 patients with two rows
    job = patients.job_key(secret, "j2", salt)
    aes = Cipher(algorithms.AES(job), modes.ECB()).encryptor()
    expected = sorted({aes.update(hmac.digest(secret, p, "sha256")[:16]) for p in ids})
    got = patients.leaves(job, keys_of(secret, ids)).tobytes()
    assert got == b"".join(expected) and len(expected) == 3000
    assert patients.commit(salt, got)[1] == bucket_root(expected)


def test_one_patients_leaves_differ_between_jobs() -> None:
    secret = bytes(range(32))
    key = hmac.digest(secret, b"MRN-1", "sha256")
    a = patients.leaf(patients.job_key(secret, "job-a", bytes(32)), key)
    b = patients.leaf(patients.job_key(secret, "job-b", bytes(32)), key)
    c = patients.leaf(patients.job_key(secret, "job-a", b"\x01" * 32), key)
    assert len({a, b, c}) == 3
    assert all(len(x) == patients.LEAF_SIZE for x in (a, b, c))


def test_no_patients_commit_to_the_empty_tree() -> None:
    leaves = patients.leaves(bytes(32), np.zeros((0, 32), dtype=np.uint8))
    assert leaves.size == 0
    _, root = patients.commit(bytes(32), leaves)
    assert root == hashlib.sha256(b"").digest()


def test_bad_sizes_are_named() -> None:
    with pytest.raises(RecordError, match="consent secret must be 32"):
        patients.job_key(b"short", "j", bytes(32))
    with pytest.raises(RecordError, match="salt must be 32"):
        patients.job_key(bytes(32), "j", b"")
    with pytest.raises(RecordError, match=r"\(n, 32\) uint8 array"):
        patients.leaves(bytes(32), np.zeros((2, 16), dtype=np.uint8))
    with pytest.raises(RecordError, match="a patient key must be 32"):
        patients.leaf(bytes(32), b"short")
    with pytest.raises(RecordError, match="16 bytes each"):
        patients.commit(bytes(32), b"\x00" * 17)
