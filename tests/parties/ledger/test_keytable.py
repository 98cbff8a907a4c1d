"""The column-wise identifier table and the remembered patient keys, against plain oracles."""

from __future__ import annotations

import hmac
import secrets

import numpy as np
import pytest

from parties.ledger import keytable
from parties.ledger.patients import PatientKeys

ALPHABET = ["A", "7", "-", "é", "中", "\U0001f600", " "]


def _random_ids(rng: np.random.Generator, n: int, longest: int = 12) -> list[str]:
    return [
        "".join(rng.choice(ALPHABET, size=int(rng.integers(0, longest + 1))).tolist())
        for _ in range(n)
    ]


def _oracle(secret: bytes, ids: list[str]) -> bytes:
    return b"".join(hmac.digest(secret, p.encode("utf-8"), "sha256") for p in ids)


def _table(stored: np.ndarray, odd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prints = keytable.fingerprints(stored, odd)
    size = 1 << (2 * len(stored)).bit_length()  # a power of two, at most half full
    table = np.full(size, keytable.EMPTY, dtype=np.int64)
    keytable.insert(table, prints, 0, len(stored))
    return table, prints, odd


@pytest.mark.parametrize("collide", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_find_agrees_with_the_dict_reference(seed: int, collide: bool) -> None:
    """With ``collide`` every fingerprint is the same, so only the text comparison decides."""
    rng = np.random.default_rng(seed)
    known = list(dict.fromkeys(_random_ids(rng, 300)))
    stored = keytable.text_words(np.array(known, dtype="<U12"))  # wider than most queries
    odd = np.zeros(64, dtype=np.uint64) if collide else keytable.multipliers(64)
    table, prints, odd = _table(stored, odd)
    queries = [known[i] for i in rng.integers(0, len(known), 200)] + _random_ids(rng, 100, 14)
    queries += [p + "中" for p in known[:40]] + [p[:-1] for p in known[:40]]  # near misses
    queries += [p.ljust(12, "7") for p in known[:40]]  # as wide as the stored rows
    order = rng.permutation(len(queries)) if seed % 2 else np.arange(len(queries))
    words = keytable.text_words(np.array([queries[i] for i in order]))
    found = keytable.find(table, prints, stored, words, odd)
    assert found.tolist() == keytable.find_reference(stored, len(stored), words).tolist()
    expected = [known.index(queries[i]) if queries[i] in known else -1 for i in order]
    assert found.tolist() == expected
    short = np.array([p[:2] for p in known[:80]], dtype="<U2")  # narrower than the stored rows
    found = keytable.find(table, prints, stored, keytable.text_words(short), odd)
    assert found.tolist() == [known.index(p) if p in known else -1 for p in short.tolist()]


def test_fingerprints_agree_with_the_numpy_reference() -> None:
    rng = np.random.default_rng(3)
    words = rng.integers(0, 0x110000, size=(500, 9), dtype=np.uint32)
    odd = keytable.multipliers(9)
    assert np.array_equal(
        keytable.fingerprints(words, odd), keytable.fingerprints_reference(words, odd)
    )
    assert (keytable.multipliers(9) & np.uint64(1)).all()


def test_fingerprints_ignore_zero_padding_only() -> None:
    odd = keytable.multipliers(8)
    narrow = keytable.text_words(np.array(["ab", "b", "ba"]))
    wide = keytable.text_words(np.array(["ab", "b", "ba"], dtype="<U8"))
    assert keytable.fingerprints(narrow, odd).tolist() == keytable.fingerprints(wide, odd).tolist()
    assert len(set(keytable.fingerprints(wide, odd).tolist())) == 3


@pytest.mark.parametrize("ordered", [True, False])
def test_remembered_keys_are_the_hmac_of_each_identifier(ordered: bool) -> None:
    rng = np.random.default_rng(7)
    secret = secrets.token_bytes(32)
    remembered = PatientKeys(limit=1_000)
    population = list(dict.fromkeys(_random_ids(rng, 600)))
    for _ in range(4):  # seen and unseen ids mixed, repeats, new widths as they come
        chosen = [population[i] for i in np.sort(rng.integers(0, len(population), 400))]
        chosen += _random_ids(rng, 50, 20)
        if not ordered:
            chosen = [chosen[i] for i in rng.permutation(len(chosen))]
        assert remembered.array(secret, np.array(chosen)).tobytes() == _oracle(secret, chosen)
        assert len(remembered) <= remembered.limit


def test_the_cache_stays_within_its_limit_and_right_past_it() -> None:
    secret, other = secrets.token_bytes(32), secrets.token_bytes(32)
    remembered = PatientKeys(limit=50)
    for start in range(0, 200, 30):  # each job brings 40 ids, 30 of them new
        ids = [f"MRN-{i}" for i in range(start, start + 40)]
        assert remembered.array(secret, ids).tobytes() == _oracle(secret, ids)
        assert 0 < len(remembered) <= 50
    many = [f"P{i}" for i in range(120)] * 2  # more distinct ids than the limit in one job
    assert remembered.array(secret, many).tobytes() == _oracle(secret, many)
    assert len(remembered) <= 50
    ids = ["MRN-1", "MRN-2"]  # a new secret forgets the old keys
    assert remembered.array(other, ids).tobytes() == _oracle(other, ids)
    assert len(remembered) == 2


def test_identifiers_that_are_not_text_are_keyed_by_their_str() -> None:
    secret = secrets.token_bytes(32)
    remembered = PatientKeys()
    ids: list[object] = [17, "17", 3, 12345678901234]
    assert remembered.array(secret, ids).tobytes() == _oracle(secret, [str(p) for p in ids])
    assert remembered.array(secret, []).shape == (0, 32)
    with pytest.raises(ValueError, match="NUL"):
        remembered.array(secret, ["MRN-1\0"])
