"""The demo's jobs, run against real processes, agree with numpy on the pooled rows."""

from __future__ import annotations

import numpy as np
import pytest

from parties.client import Client
from parties.local.demo import run_jobs

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


def test_demo_statistics_agree_with_the_plaintext(running) -> None:
    from parties.local.demo_statistics import run_statistics

    client = Client(running.members["analyst"])
    try:
        rows = run_statistics(running, client)
    finally:
        client.close()
    suppressed = [r for r in rows if r[1] == "suppressed"]
    assert suppressed and all(int(plain) < 5 for _, _, plain in suppressed)
    for name, secure, plain in rows:
        if secure == "suppressed":
            continue
        if name.startswith(("patients", "mean_radius in")):
            assert secure == plain, name
        elif name.startswith("median"):
            assert abs(float(secure) - float(plain)) <= 64 / 2**17, name
        elif name.startswith("corr"):
            assert abs(float(secure) - float(plain)) <= 1e-3, name
        else:
            assert abs(float(secure) - float(plain)) <= 1e-4 * abs(float(plain)), name


def test_demo_regression_agrees_with_statsmodels(running, capsys) -> None:
    from parties.local.demo_glm import print_table, run_glm

    client = Client(running.members["analyst"])
    try:
        fit, reference = run_glm(running, client)
    finally:
        client.close()
    np.testing.assert_allclose(fit.coef, reference.params, rtol=1e-4)
    np.testing.assert_allclose(fit.bse, reference.bse, rtol=1e-4)
    print_table(fit, reference)
    assert "largest relative difference" in capsys.readouterr().out
