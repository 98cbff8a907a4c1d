"""What ``smpc bench`` shows and keeps: a text table, a JSON file, and a PNG plot.

The plot needs matplotlib (``pip install 'hospital-smpc[plot]'``); without
it :func:`plot` returns a one-line note instead.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parties.bench.measure import Result, thread_settings
from parties.bench.targets import Verdict

JSON_VERSION = 1


def format_ms(seconds: float | None) -> str:
    """Milliseconds with 3-4 significant digits, ``-`` for nothing."""
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.4f}" if ms < 0.1 else f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def format_count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def format_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x" if value < 1000 else f"{value:,.0f}x"


HEADER = (
    "operation",
    "size",
    "transport",
    "p50 ms",
    "p99 ms",
    "per s",
    "rounds",
    "bytes/party",
    "wire/party",
    "numpy ms",
    "ratio",
)
_LEFT = {"operation", "size", "transport"}


def table(results: Sequence[Result]) -> str:
    """The results as a fixed-width text table, one row per case."""
    cells = [
        (
            r.operation,
            r.size,
            r.transport if r.transcripts == "on" else f"{r.transport} (no transcripts)",
            format_ms(r.p50),
            format_ms(r.p99),
            format_count(r.per_second),
            str(r.rounds),
            format_count(r.bytes_per_party),
            format_count(r.wire_bytes_per_party),
            format_ms(r.plaintext_seconds),
            format_ratio(r.ratio),
        )
        for r in results
    ]
    return aligned(HEADER, cells, _LEFT)


def aligned(header: Sequence[str], cells: Sequence[Sequence[str]], left: set[str]) -> str:
    """Fixed-width text: columns named in ``left`` flush left, the others right."""
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if h in left else v.rjust(w)
            for v, w, h in zip(values, widths, header, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


def machine() -> dict[str, Any]:
    """Where the numbers were taken: CPU, cores, load, thread limits, versions."""
    import numpy

    info: dict[str, Any] = {
        "processor": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "threads": thread_settings(),
    }
    try:
        info["load_average"] = list(os.getloadavg())
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["processor"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def document(
    results: Sequence[Result],
    *,
    options: dict[str, Any],
    started: str,
    seconds: float,
    load_before: list[float] | None,
    verdicts: Sequence[Verdict] | None,
) -> dict[str, Any]:
    """The JSON document of one run."""
    doc: dict[str, Any] = {
        "version": JSON_VERSION,
        "started": started,
        "seconds": seconds,
        "options": options,
        "machine": {**machine(), "load_average_before": load_before},
        "results": [r.to_json() for r in results],
    }
    if verdicts is not None:
        doc["targets"] = [
            {
                "goal": v.target.goal,
                "metric": v.target.metric,
                "limit": v.target.limit,
                "value": v.value,
                "met": v.met if v.measured else None,
                "detail": v.detail,
            }
            for v in verdicts
        ]
    return doc


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")


def plot(results: Sequence[Result], path: Path) -> str:
    """Latency (p50, with p99 as a bar) against elements, one panel per operation.

    Returns a line to print: where the PNG went, or why there is none.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install 'hospital-smpc[plot]')"
    operations = list(dict.fromkeys(r.operation for r in results))
    columns = min(4, len(operations))
    rows = -(-len(operations) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False, constrained_layout=True
    )
    for ax, name in zip(axes.flat, operations, strict=False):
        mine = [r for r in results if r.operation == name]
        for series in dict.fromkeys((r.transport, r.transcripts) for r in mine):
            points = sorted(
                (r for r in mine if (r.transport, r.transcripts) == series),
                key=lambda r: r.elements,
            )
            x = [r.elements for r in points]
            p50 = [r.p50 * 1e3 for r in points]
            above = [(r.p99 - r.p50) * 1e3 for r in points]
            label = series[0] if series[1] == "on" else f"{series[0]}, no transcripts"
            ax.errorbar(x, p50, yerr=[[0] * len(x), above], marker="o", capsize=3, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("elements")
        ax.set_ylabel("p50 ms (bar to p99)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(operations) :]:
        ax.set_visible(False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"plot: {path}"
