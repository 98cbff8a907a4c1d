"""Fixtures for the engine benchmarks: thread settings, plaintext baselines, a timed job runner.

Nothing here is a test. The ``job_bench`` fixture times one job with
pytest-benchmark and records in ``extra_info`` what the report prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from parties.threads import THREAD_LIMITS, limit_threads

# Party processes run single-threaded kernels (ARCHITECTURE.md, "Arithmetic");
# so do the parties here and the plaintext baselines they are compared with.
# `make bench-suites` exports the same values; these defaults cover a bare pytest run.
# They must be set before numpy (OpenBLAS) and numba are first imported.
limit_threads()

from parties.bench.measure import plaintext_seconds  # noqa: E402 - after the thread limits
from smpc.local import JobResult, LocalFederation, PreparedJob  # noqa: E402

ONLINE = "online"
ONLINE_PREP = "online+preprocessing"


def pytest_configure(config: pytest.Config) -> None:
    """Create the directory of ``--benchmark-json PATH`` (pytest-benchmark does not)."""
    path = config.getoption("benchmark_json", None)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Record the thread settings the numbers were taken with."""
    machine_info["threads"] = {name: os.environ.get(name) for name in THREAD_LIMITS}


class JobBench:
    """Times one job of a :class:`LocalFederation` and records what it spent."""

    def __init__(self, benchmark: BenchmarkFixture) -> None:
        self.benchmark = benchmark

    def __call__(
        self,
        fed: LocalFederation,
        fn: Callable[..., Any],
        inputs: Sequence[Any],
        *,
        operation: str,
        size: str,
        elements: int,
        phase: str,
        rounds: int,
        plaintext: Callable[[], object],
        baseline: str,
        args: Sequence[Any] = (),
    ) -> JobResult:
        """Benchmark ``fn`` over ``rounds`` timed jobs and return the last job's result.

        ``phase`` is ``ONLINE`` (dry run, dealer, preprocessing and thread
        start happen in the untimed setup; only ``job.run()`` is timed) or
        ``ONLINE_PREP`` (the whole ``fed.run`` is timed). ``plaintext`` is the
        same computation on float64 numpy arrays, described by ``baseline``;
        it is timed after the secure job, in the same run.
        """
        # Each setup drops the previous job's result, outside the timed region:
        # freed memory is then reused, as in a long-running party process,
        # instead of every job faulting in fresh pages.
        done: list[JobResult] = []
        setup: Callable[[], tuple[tuple[PreparedJob], dict[str, Any]] | None]
        target: Callable[..., JobResult]
        if phase == ONLINE:

            def setup() -> tuple[tuple[PreparedJob], dict[str, Any]]:
                done.clear()
                return (fed.prepare(fn, inputs, args=args, prefetch=True),), {}

            def target(job: PreparedJob) -> JobResult:
                done.append(job.run())
                return done[-1]

        elif phase == ONLINE_PREP:

            def setup() -> None:
                done.clear()

            def target() -> JobResult:
                done.append(fed.run(fn, inputs, args=args))
                return done[-1]

        else:
            raise ValueError(f"phase must be {ONLINE!r} or {ONLINE_PREP!r}, got {phase!r}")

        self.benchmark.group = f"{operation} {size}"  # read when the timing starts
        self.benchmark.pedantic(target, setup=setup, rounds=rounds, warmup_rounds=1, iterations=1)
        meta = self.benchmark.stats  # None when benchmarks are disabled: one untimed call
        secure = meta.stats.median if meta is not None else done[-1].seconds
        base = plaintext_seconds(plaintext)
        last = done[-1]
        self.benchmark.extra_info.update(
            operation=operation,
            size=size,
            elements=elements,
            parties=fed.n_parties,
            transcripts=fed.transcripts,
            phase=phase,
            rounds=max(last.rounds),
            bytes_per_party=max(last.bytes_sent),
            plaintext=baseline,
            plaintext_seconds=base,
            secure_median_seconds=secure,
            ratio=secure / base,
        )
        return last


@pytest.fixture
def job_bench(benchmark: BenchmarkFixture) -> JobBench:
    """A :class:`JobBench` over this test's ``benchmark`` fixture."""
    return JobBench(benchmark)
