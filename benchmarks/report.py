"""Print the engine benchmarks as a table, from pytest-benchmark's JSON output.

Usage::

    .venv/bin/python -m pytest benchmarks --benchmark-enable --benchmark-only \\
        --benchmark-json=bench-results/engine-inmemory.json
    .venv/bin/python -m benchmarks.report [--json bench-results/engine-inmemory.json]

p50 and p99 come from the raw timings (``stats.data``), which
``--benchmark-json`` always writes; percentiles interpolate linearly between
samples, so with few timed rounds p99 is close to the slowest one. A file
without raw timings (saved by ``--benchmark-save`` without
``--benchmark-save-data``) gives the stored median for p50 and the maximum,
shown as ``<=max``, for p99. ``n`` is the number of timed jobs; ``rounds`` is
communication rounds, not timing rounds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parties.bench.measure import percentile
from parties.bench.output import aligned, format_count, format_ms, format_ratio
from parties.bench.targets import check

DEFAULT_JSON = Path("bench-results/engine-inmemory.json")


@dataclass(frozen=True)
class Row:
    """One benchmark as the table shows it; times in seconds."""

    operation: str
    size: str
    transport: str
    transcripts: str
    phase: str
    samples: int
    p50: float
    p99: float
    p99_exact: bool
    rounds: int | None
    bytes_per_party: int | None
    plaintext: float | None
    elements: int | None
    baseline: str = "numpy"
    wire_bytes_per_party: int | None = None

    @property
    def per_second(self) -> float | None:
        """Elements per second at the median time."""
        return self.elements / self.p50 if self.elements and self.p50 else None

    @property
    def ratio(self) -> float | None:
        return self.p50 / self.plaintext if self.plaintext else None


def to_row(bench: dict[str, Any]) -> Row:
    """Read one entry of the JSON's ``benchmarks`` list."""
    stats = bench["stats"]
    info = bench.get("extra_info") or {}
    # Jobs that time many operations inside the parties report those samples.
    data = info.get("per_op_samples") or stats.get("data") or []
    if data:
        p50, p99, exact = percentile(data, 50), percentile(data, 99), True
    else:
        p50, p99, exact = stats["median"], stats["max"], False
    transcripts = info.get("transcripts")
    return Row(
        operation=info.get("operation", bench["name"]),
        size=str(info.get("size", "-")),
        transport=info.get("transport", "memory"),
        transcripts="-" if transcripts is None else ("on" if transcripts else "off"),
        phase=info.get("phase", "-"),
        samples=len(data) if data else int(stats["rounds"]),
        p50=p50,
        p99=p99,
        p99_exact=exact,
        rounds=info.get("rounds"),
        bytes_per_party=info.get("bytes_per_party"),
        plaintext=info.get("plaintext_seconds"),
        elements=info.get("elements"),
        baseline=info.get("baseline", "numpy"),
        wire_bytes_per_party=info.get("wire_bytes_per_party"),
    )


def table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width text table."""
    header = (
        "operation",
        "size",
        "transport",
        "transcripts",
        "phase",
        "n",
        "p50 ms",
        "p99 ms",
        "rounds",
        "bytes/party",
        "wire/party",
        "per s",
        "baseline",
        "baseline ms",
        "ratio",
    )
    left = {"operation", "size", "transport", "transcripts", "phase", "baseline"}
    cells = [
        (
            r.operation,
            r.size,
            r.transport,
            r.transcripts,
            r.phase,
            str(r.samples),
            format_ms(r.p50),
            format_ms(r.p99) if r.p99_exact else f"<={format_ms(r.p99)}",
            format_count(r.rounds),
            format_count(r.bytes_per_party),
            format_count(r.wire_bytes_per_party),
            format_count(r.per_second),
            r.baseline,
            format_ms(r.plaintext),
            format_ratio(r.ratio),
        )
        for r in rows
    ]
    return aligned(header, cells, left)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table (and the issue's targets) for one JSON file."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"pytest-benchmark JSON written by --benchmark-json (default {DEFAULT_JSON})",
    )
    options = parser.parse_args(argv)
    try:
        document = json.loads(options.json.read_text())
    except FileNotFoundError:
        print(
            f"no benchmark results at {options.json}; run pytest benchmarks --benchmark-enable "
            f"--benchmark-only --benchmark-json={options.json} first",
            file=sys.stderr,
        )
        return 2
    rows = [to_row(b) for b in document.get("benchmarks", [])]
    if not rows:
        print(f"{options.json} holds no benchmarks", file=sys.stderr)
        return 1
    machine = document.get("machine_info", {})
    print(
        f"{options.json}: {len(rows)} benchmarks, {document.get('datetime', '?')}, "
        f"{machine.get('cpu', {}).get('brand_raw', '?')}, threads {machine.get('threads', '?')}"
    )
    print(table(rows))
    print("\nTargets:")
    print("\n".join(v.line() for v in check(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
