"""``smpc bench``: per-operation latency of the engine, in memory and between party processes.

Runs a chosen subset of (operation, size, transport) cases with 3 parties,
shows a progress line per case on standard error, prints a table, writes
JSON and, with matplotlib installed, a PNG plot of latency against size.

Default subset: every operation at 1, 10^3 and 10^6 elements in memory and
at 1, 10^3 and 10^4 between 3 party processes over mutual TLS 1.3 sockets on
loopback, within 5 minutes: so matmul runs 256x256 instead of 1000x1000,
exp, reciprocal, sqrt, inference and correlation 10^5 instead of 10^6,
exp, reciprocal and sqrt (16-23 rounds) run in memory only, and the
statistics start at 15 rows (5 per party, the minimum cell size).
``--full`` runs everything, adding 10^6 over TLS sockets.
``--check-targets`` also runs the cases the project's targets name, prints
each target as met or missed and exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from parties.bench import (
    LARGE_REPETITIONS,
    MEDIUM_REPETITIONS,
    SMALL_REPETITIONS,
)
from smpc.errors import SMPCError

DEFAULT_JSON = Path("bench-results/smpc-bench.json")
MEMORY_SIZES = (1, 10**3, 10**6)
TLS_SIZES = (1, 10**3, 10**4)
TLS_FULL_SIZES = (*TLS_SIZES, 10**6)


def bench(args: argparse.Namespace) -> int:
    """Measure the chosen cases, print the table, save JSON and plot; 1 on a missed target."""
    from parties.bench import output, targets
    from parties.bench.measure import ProcessRunner, measure, memory_runner

    try:
        cases, skipped, left_out = plan_cases(args)
    except ValueError as exc:
        print(f"smpc bench: error: {exc}", file=sys.stderr)
        return 2
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load_before = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    begin = time.perf_counter()
    results = []
    failures: list[dict[str, str]] = []
    with (
        tempfile.TemporaryDirectory(prefix="smpc-bench-") as work,
        ProcessRunner(Path(work) / "federation") as processes,
    ):
        for i, case in enumerate(cases, 1):
            print(f"[{i}/{len(cases)}] {case.label} ...", end=" ", flush=True, file=sys.stderr)
            case_start = time.perf_counter()
            runner = memory_runner if case.transport == "memory" else processes
            try:
                result = measure(case, runner, repetitions=args.repetitions)
            except SMPCError as exc:  # reported, and the other cases still run
                failures.append({"case": case.label, "error": str(exc)})
                print(f"FAILED: {exc}", file=sys.stderr, flush=True)
                continue
            results.append(result)
            print(
                f"p50 {output.format_ms(result.p50)} ms ({time.perf_counter() - case_start:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    seconds = time.perf_counter() - begin
    print(output.table(results))
    print(
        f"{len(results)} cases in {seconds:.0f} s; 3 parties, fixed point F = 16, online phase; "
        f"load average before {_load(load_before)}, after {_load(_now_load())}"
    )
    for case in skipped:
        print(f"{case.label}: ran at its default cap {case.op.default_max:,}; --full runs it")
    for name in dict.fromkeys(c.operation for c in left_out):
        where = ", ".join(sorted({c.transport for c in left_out if c.operation == name}))
        print(f"{name} on {where}: not in the default subset; --full or --ops {name} runs it")
    verdicts = targets.check(results, detail="transport") if args.check_targets else None
    if verdicts is not None:
        print("\nTargets:")
        print("\n".join(v.line() for v in verdicts))
    doc = output.document(
        results,
        options={
            "ops": args.ops,
            "sizes": args.sizes,
            "transport": args.transport,
            "transcripts": args.transcripts,
            "full": args.full,
            "check_targets": args.check_targets,
        },
        started=started,
        seconds=seconds,
        load_before=load_before,
        verdicts=verdicts,
    )
    doc["failures"] = failures
    output.write_json(args.json, doc)
    print(f"results: {args.json}")
    if not args.no_plot and results:
        print(output.plot(results, args.json.with_suffix(".png")))
    for failure in failures:
        print(f"FAILED {failure['case']}: {failure['error']}", file=sys.stderr)
    if failures or (verdicts is not None and any(v.measured and not v.met for v in verdicts)):
        return 1
    return 0


def plan_cases(args: argparse.Namespace) -> tuple[list, list, list]:
    """The cases to run (memory first), those the default caps replaced, those left out.

    A size below an operation's ``min_size`` (e.g. the statistics, which
    refuse cohorts below the minimum cell size) runs at ``min_size``.
    Unless ``--full`` is on, an operation's ``default_max`` replaces larger
    default sizes by itself (given ``--sizes`` are kept), and an operation
    runs only on its ``default_transports`` unless ``--ops`` names it.
    """
    from parties.bench import targets
    from parties.bench.measure import TRANSPORTS, Case
    from parties.bench.operations import OPERATIONS

    names = list(OPERATIONS) if args.ops is None else args.ops
    unknown = [n for n in names if n not in OPERATIONS]
    if unknown:
        raise ValueError(
            f"unknown operation {', '.join(unknown)}; choose from {', '.join(OPERATIONS)}"
        )
    transports = TRANSPORTS if args.transport == "all" else (args.transport,)
    transcripts = args.transcripts == "on"
    cases: list[Case] = []
    skipped: list[Case] = []
    left_out: list[Case] = []
    for transport in transports:
        if args.sizes is not None:
            sizes = args.sizes
        elif transport == "memory":
            sizes = MEMORY_SIZES
        else:
            sizes = TLS_FULL_SIZES if args.full else TLS_SIZES
        for name in names:
            op = OPERATIONS[name]
            if transport not in op.default_transports and args.ops is None and not args.full:
                left_out.append(Case(name, sizes[0], transport, transcripts))
                continue
            cap = op.default_max
            for size in sizes:
                case = Case(name, max(size, op.min_size), transport, transcripts)
                if cap is not None and size > cap and args.sizes is None and not args.full:
                    skipped.append(case)
                    case = Case(name, cap, transport, transcripts)
                if case not in cases:
                    cases.append(case)
    if args.check_targets:
        for target in targets.TARGETS:
            where = target.where
            if where.get("phase", "online") != "online" or where.get("operation") not in OPERATIONS:
                continue
            if "elements" not in where:
                continue
            extra = Case(
                where["operation"],
                where["elements"],
                where.get("transport", "memory"),
                where["transcripts"] == "on" if "transcripts" in where else transcripts,
            )
            if extra not in cases:
                cases.append(extra)
    cases.sort(key=lambda c: transports.index(c.transport) if c.transport in transports else 9)
    return cases, skipped, left_out


def _load(values: Sequence[float] | None) -> str:
    return "?" if not values else f"{values[0]:.1f}"


def _now_load() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _ops(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of operations")
    return names


def _sizes(value: str) -> list[int]:
    from parties.bench.operations import parse_size

    try:
        sizes = [parse_size(part) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not sizes:
        raise argparse.ArgumentTypeError("expected a comma-separated list of sizes")
    return sorted(set(sizes))


def add_parsers(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="per-operation latency: in memory and between 3 party processes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--ops",
        type=_ops,
        default=None,
        help="comma-separated operations (default all): share, open, add, mul, matmul, ltz, "
        "sigmoid, lr-inference",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help="comma-separated element counts, e.g. 1,1e3,10^4 (default: 1,1e3,1e6 in memory; "
        "1,1e3,1e4 over TLS sockets)",
    )
    parser.add_argument("--transport", choices=("memory", "tls", "all"), default="all")
    parser.add_argument(
        "--transcripts",
        choices=("on", "off"),
        default="on",
        help="per-channel transcript hashing (default on, as deployed)",
    )
    parser.add_argument(
        "--full", action="store_true", help="everything: 10^6 over TLS sockets, no size caps"
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})"
    )
    parser.add_argument(
        "--repetitions",
        type=_positive,
        default=SMALL_REPETITIONS,
        help=f"timed repetitions below 1e4 elements (default {SMALL_REPETITIONS}; fewer for a "
        f"quick look, p99 then reads close to the maximum); up to 1e5 elements at most "
        f"{MEDIUM_REPETITIONS}, from 1e5 on the median of {LARGE_REPETITIONS} runs",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw the PNG plot")
    parser.add_argument(
        "--check-targets",
        action="store_true",
        help="also run the cases the targets name; exit 1 if one is missed",
    )
    parser.set_defaults(words=("bench",))


COMMANDS: dict[tuple[str, ...], Callable[[argparse.Namespace], int]] = {("bench",): bench}
