"""A hospital's commitment to the patients whose rows entered a job.

Per job, the hospital draws a 32-byte salt and derives a job key from its
consent secret (never on the chain):

    job_key = HMAC-SHA256(secret, encode([domain, job id, salt]))
    leaf    = AES-256_job_key(patient_key[:16]) || AES-256_job_key(patient_key[16:])

where ``patient_key`` is HMAC-SHA256 of the identifier under the same secret
(the key consent records use). AES under a fresh key per job is a
pseudorandom permutation of the patient keys, so one patient's leaves in two
jobs cannot be linked without the secret, and a leaf cannot be tested against
a consent record on the chain. It is one call over every row, which is what
keeps the commitment cheap next to the tree itself.

The leaves are sorted without repeats and hashed into an RFC 6962 tree
(:mod:`smpc.chain.merkle`), so a patient's absence can be proven as well as
presence. What goes into the signed job record is

    commitment = SHA-256(domain || salt || count (8 bytes, big-endian) || root)

so the chain shows neither the tree's root nor how many patients a hospital
used; a receipt reveals salt, count and root to the patient it is for.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from smpc.chain.encoding import encode
from smpc.chain.errors import RecordError
from smpc.chain.merkle import merkle_root

KEY_SIZE = 32
SALT_SIZE = 32
_KEY_DOMAIN = "smpc/chain/patients/job-key/v1"
_COMMIT_DOMAIN = b"smpc/chain/patients/commitment/v1"


def job_key(secret: bytes, job_id: str, salt: bytes) -> bytes:
    """The key of one job's leaves, from the hospital's consent secret and the job's salt."""
    if len(secret) != KEY_SIZE:
        raise RecordError(f"the consent secret must be {KEY_SIZE} bytes, got {len(secret)}")
    if len(salt) != SALT_SIZE:
        raise RecordError(f"the patients salt must be {SALT_SIZE} bytes, got {len(salt)}")
    return hmac.digest(secret, encode([_KEY_DOMAIN, job_id, salt]), "sha256")


def leaves(key: bytes, patient_keys: Sequence[bytes]) -> list[bytes]:
    """The sorted, repeat-free leaves of the patients with ``patient_keys`` (32 bytes each)."""
    if len(key) != KEY_SIZE:
        raise RecordError(f"a job key must be {KEY_SIZE} bytes, got {len(key)}")
    if not patient_keys:
        return []
    data = b"".join(patient_keys)
    if len(data) != KEY_SIZE * len(patient_keys):
        raise RecordError(f"every patient key must be {KEY_SIZE} bytes")
    # ECB on purpose: each 16-byte block goes through the keyed permutation on its own.
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    out = encryptor.update(data) + encryptor.finalize()
    return sorted({out[i : i + KEY_SIZE] for i in range(0, len(out), KEY_SIZE)})


def leaf(key: bytes, patient_key: bytes) -> bytes:
    """The leaf of one patient under a job's key."""
    if len(patient_key) != KEY_SIZE:
        raise RecordError(f"a patient key must be {KEY_SIZE} bytes, got {len(patient_key)}")
    return leaves(key, [patient_key])[0]


def commitment(salt: bytes, count: int, root: bytes) -> bytes:
    """What the job record carries: SHA-256 over the salt, the number of leaves and the root."""
    if len(salt) != SALT_SIZE or len(root) != 32 or not 0 <= count < 2**64:
        raise RecordError("a patients commitment needs a 32-byte salt and root and a count >= 0")
    return hashlib.sha256(_COMMIT_DOMAIN + salt + struct.pack(">Q", count) + root).digest()


def commit(salt: bytes, sorted_leaves: Sequence[bytes]) -> tuple[bytes, bytes]:
    """(commitment, root) over sorted leaves."""
    root = merkle_root(sorted_leaves)
    return commitment(salt, len(sorted_leaves), root), root
