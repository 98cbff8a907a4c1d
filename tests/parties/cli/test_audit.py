"""Finding a job's record where a member keeps it."""

from __future__ import annotations

import time

import pytest

from parties.cli.audit import AuditError, wait_for_record
from parties.federation import init_federation


def test_waiting_for_a_record_that_never_comes_ends_with_a_clear_error(tmp_path) -> None:
    members = init_federation("fed", ["alpha", "beta"], ["ana"], [], tmp_path / "fed", base_port=0)
    alpha = next(m for m in members if m.name == "alpha")
    start = time.monotonic()
    with pytest.raises(AuditError, match="0" * 64):
        wait_for_record(alpha, "0" * 64, timeout=0.3)
    assert time.monotonic() - start >= 0.3
