"""The demo's jobs, run against real processes, agree with numpy on the pooled rows."""

from __future__ import annotations

import pytest

from parties.client import Client
from parties.demo import run_jobs

pytestmark = pytest.mark.process


def test_demo_jobs_agree_with_the_plaintext(running) -> None:
    client = Client(running.members["analyst"])
    try:
        rows = run_jobs(running, client)
    finally:
        client.close()
    assert len(rows) == 5
    for name, secure, plain in rows:
        if name.startswith("patients"):
            assert secure == plain, name
        else:
            assert abs(secure - plain) <= 1e-6 * abs(plain), name
