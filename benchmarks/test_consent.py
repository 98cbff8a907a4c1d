"""Consent per job at a hospital: the decision per selected row, and reading the patient column.

Scenario: one hospital with a patient identifier column; its node has
remembered every patient's key from an earlier job
(:class:`parties.ledger.patients.PatientKeys`).

- decide: what the node does per job for n selected rows (10^5, 10^6), once
  it holds the rows' identifiers: look the keys up, then decide each row's
  consent (:class:`parties.data.consent.ConsentBook`), for scope
  ``model-inference``. Opt-in: 30% of the patients granted (half of them for
  ``all``), a tenth of those revoked later. Opt-out: 5% revoked, a fifth of
  those granted again later. Building the book from its records is timed
  apart (it is made per job from the records kept).
- csv: reading the patient column of a 10^6-row CSV for a job, as the node
  does (``select`` of the one column, then ``categorical``), on a source
  opened once and used by job after job.

Trust model: none at stake; these time local hashing and look-ups.

Run::

    .venv/bin/python -m pytest benchmarks/test_consent.py --benchmark-enable --benchmark-only -q

Numbers swing twofold with the machine's load; compare medians taken together.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from parties.data.consent import ConsentBook
from parties.data.csv_source import CsvSource
from parties.ledger.patients import PatientKeys
from smpc.chain.records import ConsentRecord

SCOPE = "model-inference"


def _records(keys: np.ndarray, mode: str, rng: np.random.Generator) -> list[ConsentRecord]:
    """Grants (opt-in) or revocations (opt-out) for some patients, some undone later."""
    first, then = ("grant", "revoke") if mode == "opt-in" else ("revoke", "grant")
    share, undone = (0.3, 0.1) if mode == "opt-in" else (0.05, 0.2)
    chosen = np.flatnonzero(rng.random(len(keys)) < share)
    out = []
    for i, k in enumerate(chosen.tolist()):
        scope = "all" if i % 2 else SCOPE
        out.append(ConsentRecord(first, "h0", keys[k].tobytes(), scope, 1_000 + i))
    for i, k in enumerate(chosen[rng.random(len(chosen)) < undone].tolist()):
        out.append(ConsentRecord(then, "h0", keys[k].tobytes(), SCOPE, 10**9 + i))
    return out


def _decide(book: ConsentBook, remembered: PatientKeys, secret: bytes, ids: np.ndarray) -> int:
    """The node's per-job path from the identifiers to the consent mask; rows kept."""
    return int(book.allowed(remembered.array(secret, ids), SCOPE).sum())


@pytest.mark.parametrize("mode", ["opt-in", "opt-out"])
@pytest.mark.parametrize("rows", [10**5, 10**6])
def test_decide(benchmark: BenchmarkFixture, rows: int, mode: str) -> None:
    rng = np.random.default_rng(rows)
    secret = secrets.token_bytes(32)
    ids = np.array([f"MRN-{i:08d}" for i in range(rows)])
    remembered = PatientKeys()
    keys = remembered.array(secret, ids)
    records = _records(keys, mode, rng)
    book = ConsentBook(records, mode)
    kept = benchmark(_decide, book, remembered, secret, ids)
    benchmark.extra_info.update(rows=rows, mode=mode, records=len(records), kept=kept)


@pytest.mark.parametrize("mode", ["opt-in", "opt-out"])
def test_book(benchmark: BenchmarkFixture, mode: str) -> None:
    rng = np.random.default_rng(5)
    keys = np.frombuffer(secrets.token_bytes(32 * 10**5), dtype=np.uint8).reshape(-1, 32)
    records = _records(keys, mode, rng)
    benchmark(lambda: ConsentBook(records, mode).allowed(keys[:1], SCOPE))
    benchmark.extra_info.update(records=len(records), mode=mode)


def test_csv_patient_column(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    rows = 10**6
    path = tmp_path / "data.csv"
    lines = (f"MRN-{i:08d},{i % 97},{(i * 7) % 13}\n" for i in range(rows))
    path.write_text("patient_id,age,x\n" + "".join(lines))
    source = CsvSource(path)

    def job() -> int:
        return len(
            source.select(["patient_id"], numeric=False, levels=False).categorical("patient_id")
        )

    assert benchmark(job) == rows
