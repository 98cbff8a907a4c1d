"""The warm-up compiles every ring kernel with the types a real job calls it with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smpc.warm import warm

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter, where no kernel has been called yet. Prints the
# signatures before and after the warm-up, and after a 3-party job with
# products, truncation, comparison and openings.
SCRIPT = """
import json
import numpy as np
from smpc.compare import ltz
from smpc.local import LocalFederation
from smpc.warm import kernels, warm


def signatures():
    return {name: sorted(map(str, k.signatures)) for name, k in kernels().items()}


def job(rt, mine):
    x, y, _ = rt.input_all(mine, (2, 2))
    z = rt.mul(x, y) + rt.matmul(x, y)
    return rt.open(z), rt.open(ltz(rt, z - y))


before = signatures()
warm(3)
warmed = signatures()
values = [np.array([[1.5, -2.0], [0.25, 3.0]]) * (p + 1) for p in range(3)]
LocalFederation(3).run(job, inputs=values)
print(json.dumps({"before": before, "warmed": warmed, "after": signatures()}))
"""

INNER = {"_even_bits", "_halve"}
"""Helpers only other kernels call: Numba compiles them into their callers."""


def test_warm_up_compiles_what_a_job_calls() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout
    seen = json.loads(out)
    assert not any(seen["before"].values())
    for name, signatures in seen["warmed"].items():
        if name not in INNER:
            assert signatures, f"{name} was not compiled by the warm-up"
    assert len(seen["warmed"]["_sum_shares"]) == 2  # jobs of 2 and of 3 parties
    assert seen["after"] == seen["warmed"]  # the job compiled nothing new


@pytest.mark.parametrize("bad", [1, 0, 65])
def test_warm_up_refuses_an_impossible_federation(bad: int) -> None:
    with pytest.raises(ValueError, match="max_parties"):
        warm(bad)
