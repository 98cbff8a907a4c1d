"""CPU milliseconds per job, per process of a warm federation.

Scenario: three hospital processes, a model-owner process and a dealer
process on loopback (``LocalDeployment``), mutual TLS, transcripts and chain
records on, as in ``benchmarks/test_count_job.py`` and
``benchmarks/test_inference.py``. After a few untimed warm-up jobs, the
analyst submits ``--jobs`` pooled count jobs (or, with ``--inference``,
logistic-regression inference on the breast cancer rows, 569 x 30) one after
another, each after the
previous job's record is final at every hospital, and a short pause lets each
chain node finish with it. Each process's CPU time (user + system, from
``/proc/<pid>/stat``) is read before and after; the same reading over an idle
stretch of the same length gives what a process spends with no job, which is
subtracted. On a loaded machine CPU time per job is steadier than wall time.
Command::

    .venv/bin/python -m benchmarks.job_cpu --jobs 30 [--inference]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks.test_inference import HOSPITALS, _wait_final, with_model_owner
from parties.client import Client, JobOutcome
from parties.local.launcher import LocalDeployment
from parties.service import wire_pb2

_TICK = os.sysconf("SC_CLK_TCK")
_SETTLE_S = 0.05
"""The pause after a job's record is final everywhere, for the last chain messages."""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _readings(dep: LocalDeployment) -> dict[str, float]:
    return {name: cpu_seconds(proc.pid) for name, proc in dep.procs.items()}


def measure(
    root: Path, jobs: int, *, inference: bool = False, warmup: int = 3
) -> dict[str, tuple[float, float]]:
    """Per process: (CPU ms per job with the idle rate taken off, idle CPU ms per second)."""
    dep = with_model_owner(root)
    with dep:
        client = Client(dep.members["analyst"])
        try:
            for party in (*HOSPITALS, "model-owner"):
                client._stub(party).Health(wire_pb2.HealthRequest(), timeout=10)
            features = list(dep.header[2:])
            sizes = {h: len(dep.rows[h]) for h in HOSPITALS}

            def submit() -> JobOutcome:
                if inference:
                    return client.submit(client.inference_job("model-owner", features, sizes))
                return client.statistics_outcome("count", ["mean_radius"])[1]

            def one_job() -> None:
                outcome = submit()
                for h in HOSPITALS:
                    _wait_final(dep.members[h], outcome.job)
                time.sleep(_SETTLE_S)

            for _ in range(warmup):
                one_job()
            before, start = _readings(dep), time.monotonic()
            for _ in range(jobs):
                one_job()
            after, busy_s = _readings(dep), time.monotonic() - start
            time.sleep(1.0)
            idle_before = _readings(dep)
            time.sleep(busy_s)
            idle_after = _readings(dep)
        finally:
            client.close()
    out = {}
    for name in before:
        idle_rate = (idle_after[name] - idle_before[name]) / busy_s
        used = after[name] - before[name] - idle_rate * busy_s
        out[name] = (1e3 * used / jobs, 1e3 * idle_rate)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30, help="jobs measured")
    parser.add_argument("--inference", action="store_true", help="LR inference, not count")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("LR inference 569 x 30" if args.inference else "pooled count")
    with tempfile.TemporaryDirectory() as root:
        results = measure(Path(root), args.jobs, inference=args.inference)
    total = 0.0
    for name, (per_job, idle) in sorted(results.items()):
        total += per_job
        print(f"{name:12s} {per_job:6.2f} ms CPU per job   (idle {idle:.2f} ms/s)")
    print(f"{'all':12s} {total:6.2f} ms CPU per job")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
