"""A pooled count on a warm federation of processes, submit to result.

Scenario: three hospital processes and a dealer process
(``LocalDeployment``), gRPC with mutual TLS for the submission and the
dealer, the data plane's mutual TLS sockets for the rounds, transcripts on;
semi-honest parties. The analyst's client submits a signed ``stats-count``
job over the breast cancer rows (569, split over the hospitals; count of
complete ``mean_radius``, gated by the minimum cell size inside MPC, 9
rounds) and the time runs until it has the count, the job's record kept at
every party. Before each timed job (untimed) the previous job's record is
final at every hospital, as in ``benchmarks/test_inference.py``. Target:
10 ms. Command::

    .venv/bin/python -m pytest benchmarks/test_count_job.py --benchmark-enable --benchmark-only
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.test_inference import HOSPITALS, _wait_final, online_median, submitted_job_info
from parties.client import Client, JobOutcome
from parties.local.launcher import LocalDeployment


def test_pooled_count_submit_to_result(benchmark, tmp_path: Path) -> None:
    dep = LocalDeployment(tmp_path / "dep", HOSPITALS)
    expected = sum(len(rows) for rows in dep.rows.values())
    with dep:
        client = Client(dep.members["analyst"])
        outcomes: list[JobOutcome] = []

        def job() -> None:
            outcomes.append(client.statistics_outcome("count", ["mean_radius"])[1])

        def settled() -> None:
            if outcomes:
                for h in HOSPITALS:
                    _wait_final(dep.members[h], outcomes[-1].job)

        try:
            benchmark.pedantic(job, setup=settled, rounds=30, iterations=1, warmup_rounds=1)
        finally:
            client.close()
    assert all(int(o.outputs["count"][0]) == expected for o in outcomes)
    benchmark.extra_info.update(
        operation="pooled count",
        size=f"{expected} rows",
        elements=expected,
        **submitted_job_info(outcomes[-1]),
        online_seconds_median=online_median(outcomes),
    )
