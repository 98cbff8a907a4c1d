"""Submit-to-result of whole jobs on freshly started party processes.

Scenario: three hospital processes, a model-owner process and a dealer
process on loopback (``LocalDeployment``), mutual TLS, transcripts on,
semi-honest parties. The analyst's client first reaches every party (a
health call, so its own channels are open), then submits, in order: a
pooled ``count`` job on freshly started processes (the first job), more
count jobs, and logistic-regression inference on the breast cancer rows
(569 x 30, labels to each hospital). Before each timed job the previous
job's record is final at every hospital (untimed), as in
``benchmarks/test_inference.py``. Prints how long the processes took from
launch to ``ready`` (all of them, started as ``LocalDeployment`` starts
them), the first and the last count job, the median of the repeated jobs,
and the first job's ratio to the last and to that median (a party warms up
before it reports ready, so the first should cost at most twice the last).
Command::

    .venv/bin/python -m benchmarks.job_path --repeat 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.test_inference import HOSPITALS, _wait_final, with_model_owner
from parties.client import Client, JobOutcome
from parties.local.launcher import LocalDeployment
from parties.service import wire_pb2


def _timed(dep: LocalDeployment, submit: Callable[[], JobOutcome], repeat: int) -> list[float]:
    """Seconds of ``repeat`` jobs, each after the previous job's record is final."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        outcome = submit()
        seconds.append(time.perf_counter() - start)
        for h in HOSPITALS:
            _wait_final(dep.members[h], outcome.job)
    return seconds


def measure(root: Path, repeat: int) -> dict[str, float]:
    """Launch to ready, the first and last count job, median count and median 569x30
    inference, in ms."""
    dep = with_model_owner(root)
    features = list(dep.header[2:])
    started = time.perf_counter()
    with dep:
        ready = time.perf_counter() - started
        client = Client(dep.members["analyst"])
        try:
            for party in (*HOSPITALS, "model-owner"):
                client._stub(party).Health(wire_pb2.HealthRequest(), timeout=10)

            def count() -> JobOutcome:
                return client.statistics_outcome("count", ["mean_radius"])[1]

            def inference() -> JobOutcome:
                sizes = {h: len(dep.rows[h]) for h in HOSPITALS}
                return client.submit(client.inference_job("model-owner", features, sizes))

            counts = _timed(dep, count, repeat)
            infer = _timed(dep, inference, repeat)
        finally:
            client.close()
    return {
        "launch to ready": 1e3 * ready,
        "count first": 1e3 * counts[0],
        f"count #{repeat}": 1e3 * counts[-1],
        "count median 2..": 1e3 * statistics.median(counts[1:]),
        "inference first": 1e3 * infer[0],
        "inference median 2..": 1e3 * statistics.median(infer[1:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="jobs of each kind (at least 2)")
    args = parser.parse_args()
    if args.repeat < 2:
        parser.error("--repeat must be at least 2")
    with tempfile.TemporaryDirectory() as tmp:
        times = measure(Path(tmp), args.repeat)
    for key, ms in times.items():
        print(f"{key:<22} {ms:8.1f} ms")
    for later in (f"count #{args.repeat}", "count median 2.."):
        ratio = times["count first"] / times[later]
        print(f"{'first/' + later.removeprefix('count '):<22} {ratio:8.2f}")


if __name__ == "__main__":
    main()
