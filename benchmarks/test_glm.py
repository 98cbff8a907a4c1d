"""A logistic regression fitted across three hospital processes, submit to result.

Scenario: three hospital processes and a dealer process (``LocalDeployment``),
gRPC with mutual TLS for submission, the data plane's TLS sockets for the
rounds, transcripts on; semi-honest parties. Each hospital holds a third of
10^5 synthetic patients (10 correlated features, a 0/1 outcome drawn from a
logistic model, 1% of cells missing) in a CSV file. The analyst's client
submits a signed ``stats-glm`` job and the time runs until it has decoded
the fit (every hospital reads and filters its rows, and the whole protocol
runs: disclosure control, standardisation, Newton iterations). Before each
timed job (untimed) the previous job's record is final at every hospital,
as in ``benchmarks/test_inference.py``. The fit is checked against
statsmodels on the pooled rows (untimed). Command::

    .venv/bin/python -m pytest benchmarks/test_glm.py --benchmark-enable --benchmark-only

``extra_info`` records the iterations, the rounds and payload bytes per
party of the whole job, and per Newton iteration (from the dry run: the
plan of max_iter = k + 1 minus that of k).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import statsmodels.api as sm

from benchmarks.test_inference import HOSPITALS, _wait_final, submitted_job_info
from parties.client import Client
from parties.local.launcher import LocalDeployment
from protocols import glm
from protocols.statistics import contexts
from smpc.runtime import dry_run

ROWS = 100_000
FEATURES = [f"x{j}" for j in range(10)]


def _cohort(path: Path) -> tuple[Path, np.ndarray]:
    """The synthetic patients as a CSV file (NaN written as an empty cell), and the matrix."""
    rng = np.random.default_rng(16)
    shared = rng.normal(size=(ROWS, 1))
    x = 0.6 * shared + 0.8 * rng.normal(size=(ROWS, len(FEATURES)))
    x = x * np.linspace(1.0, 40.0, len(FEATURES)) + np.linspace(0.0, 300.0, len(FEATURES))
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    eta = -1.0 + z @ np.linspace(-0.8, 0.8, len(FEATURES))
    y = (rng.random(ROWS) < 1 / (1 + np.exp(-eta))).astype(float)
    x[rng.random(x.shape) < 0.001] = np.nan
    out = path / "cohort.csv"
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "event", *FEATURES])
        for i in range(ROWS):
            cells = ["" if np.isnan(v) else f"{v:.6g}" for v in x[i]]
            writer.writerow([i + 1, int(y[i]), *cells])
    with out.open() as f:  # the values as the hospitals read them (6 digits)
        body = list(csv.reader(f))[1:]
    values = np.array([[float(c) if c else np.nan for c in (*r[2:], r[1])] for r in body])
    return out, values


def _per_iteration() -> tuple[int, int]:
    """Rounds and payload bytes per party of one Newton iteration, from two dry runs."""

    def costs(max_iter: int) -> tuple[int, int]:
        ctx = contexts(
            [np.zeros((0, len(FEATURES) + 1))] * 3,
            [*FEATURES, "event"],
            params={"outcome": "event", "max_iter": max_iter},
        )[0]
        run = dry_run(glm.fit, 3, ctx)
        return run.rounds, run.bytes_sent

    (r1, b1), (r2, b2) = costs(1), costs(2)
    return r2 - r1, b2 - b1


def test_glm_1e5x10_submit_to_result(benchmark, tmp_path: Path) -> None:
    data, values = _cohort(tmp_path)
    dep = LocalDeployment(tmp_path / "dep", HOSPITALS, data=data)
    fits = []
    with dep:
        client = Client(dep.members["analyst"])

        def job() -> None:
            fits.append(client.glm_outcome(FEATURES, "event"))

        def settled() -> None:
            if fits:
                for h in HOSPITALS:
                    _wait_final(dep.members[h], fits[-1][1].job)

        try:
            benchmark.pedantic(job, setup=settled, rounds=3, iterations=1, warmup_rounds=1)
        finally:
            client.close()
    fit, outcome = fits[-1]
    keep = ~np.isnan(values).any(axis=1)
    x = sm.add_constant(values[keep, :-1])
    start = time.perf_counter()
    ref = sm.GLM(values[keep, -1], x, family=sm.families.Binomial()).fit()
    plaintext = time.perf_counter() - start
    np.testing.assert_allclose(fit.coef, ref.params, rtol=1e-4)
    np.testing.assert_allclose(fit.bse, ref.bse, rtol=1e-4)
    assert fit.iterations <= 8
    rounds_per_iteration, bytes_per_iteration = _per_iteration()
    info = submitted_job_info(outcome)
    benchmark.extra_info.update(
        operation="glm binomial fit",
        size=f"{ROWS}x{len(FEATURES)}",
        elements=ROWS,
        **info,
        iterations=fit.iterations,
        rounds_per_iteration=rounds_per_iteration,
        bytes_per_iteration=bytes_per_iteration,
        plaintext_seconds=plaintext,
        baseline="statsmodels GLM on the pooled rows",
    )
    print(
        f"\nglm {ROWS}x{len(FEATURES)}: {fit.iterations} iterations, "
        f"{info['rounds']} rounds, "
        f"{info['bytes_per_party']:,} payload bytes per party; per iteration "
        f"{rounds_per_iteration} rounds, {bytes_per_iteration:,} bytes; "
        f"statsmodels {plaintext * 1e3:.0f} ms"
    )
