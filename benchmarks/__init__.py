"""pytest-benchmark suites for the engine, and ``benchmarks.report``, which prints their table."""
