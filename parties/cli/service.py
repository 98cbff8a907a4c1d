"""``smpc party``, ``smpc dealer`` and ``smpc run``: the services and the job submitter.

Services log one line per job event to standard error, never a value, share
or key; they stop cleanly on SIGINT or SIGTERM and run single-threaded
kernels (the limits are set as :mod:`parties.cli` loads).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from parties.config import COMPUTING_ROLES, MemberConfig, load_config


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _wait_for(stop: threading.Event) -> None:
    """Block until ``stop`` is set by a signal handler.

    The wait wakes every half second: the kernel may deliver the signal to
    any of the process's threads, and Python runs its handler only when the
    main thread next executes bytecode, so a main thread blocked in one
    untimed wait could sleep through SIGTERM.
    """
    while not stop.wait(0.5):
        pass


def _logging(verbose: bool) -> None:
    # The format names no source line, thread or process: skip collecting them for every
    # record (the logging HOWTO's "Optimization" switches). Finding the caller's frame was
    # most of a job line's cost, and a job logs a few lines on its reply path.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )


def _warm(member: MemberConfig) -> None:
    """Load (or compile) the ring kernels for every job size this federation can run, and run
    one job on zeros in this process (:func:`parties.service.warmup.warm_job`)."""
    from parties.service import warmup
    from smpc.warm import warm

    start = time.perf_counter()
    computing = max(2, len(member.computing_peers) + (member.role in COMPUTING_ROLES))
    warm(computing)
    if member.data.kind == "csv":  # the CSV reader's split and number kernels
        from parties.data import csv_kernels

        csv_kernels.warm()
    if member.data.patient_id is not None:  # consent: patients keyed and committed per job
        warmup.warm_patients()
    warmup.warm_job(computing)
    logging.info("%s: kernels ready in %.2f s", member.name, time.perf_counter() - start)


def party(args: argparse.Namespace) -> int:
    """Serve as a computing party until SIGINT/SIGTERM; the first job finds its kernels ready."""
    from parties.service import warmup
    from parties.service.node import PartyNode

    _logging(not args.quiet)
    member = load_config(args.config)
    stop = _stop_event()
    _warm(member)
    with PartyNode(member) as node:
        warmup.settle()
        logging.info(
            "%s: serving on %s (port %s)", member.name, member.address, node.mesh.bound_port
        )
        print(f"ready {member.name} {member.address}", flush=True)
        _wait_for(stop)
        logging.info("%s: shutting down", member.name)
    return 0


def dealer(args: argparse.Namespace) -> int:
    """Serve as the federation's dealer until SIGINT/SIGTERM, its kernels loaded first."""
    from parties.jobs.spec import warm_verification
    from parties.service import warmup
    from parties.service.dealer_service import serve

    _logging(not args.quiet)
    member = load_config(args.config)
    if member.role != "dealer":
        print(f"smpc: error: {member.name} is a {member.role}, not the dealer", file=sys.stderr)
        return 1
    stop = _stop_event()
    _warm(member)
    warm_verification(member)
    server = serve(member)
    warmup.settle()
    logging.info("%s: serving on %s", member.name, member.address)
    print(f"ready {member.name} {member.address}", flush=True)
    _wait_for(stop)
    server.stop(1.0).wait()
    return 0


def run(args: argparse.Namespace) -> int:
    """Submit the job described in a JSON file and print its outputs."""
    request = json.loads(Path(args.job).read_text())
    inputs = {p: (v["columns"], v.get("where")) for p, v in request["inputs"].items()}
    return _submit(
        args,
        request["protocol"],
        str(request["version"]),
        inputs,
        outputs=request.get("outputs"),
        params=request.get("params"),
        deadline_s=float(request.get("deadline_s", 60)),
        **({"scope": request["scope"]} if "scope" in request else {}),
    )


def shortcut(args: argparse.Namespace) -> int:
    """``smpc count|sum|mean``: the statistics job of that name, with disclosure control.

    The same job as ``smpc stats count|sum|mean``: counts are of complete rows
    and every result below the minimum cell size prints as "suppressed".
    """
    from parties.cli.stats import submit

    return submit(args, args.words[0], {})


def _submit(
    args: argparse.Namespace, protocol: str, version: str, inputs: dict, **job: object
) -> int:
    from parties.client import Client

    client = Client(load_config(args.config))
    try:
        outcome = client.submit(client.job(protocol, version, inputs=inputs, **job))  # type: ignore[arg-type]
    finally:
        client.close()
    outputs = dict(outcome.outputs)
    if args.json:
        print(
            json.dumps(
                {
                    "job": outcome.job,
                    "outputs": {k: v.tolist() for k, v in outputs.items()},
                    "seconds": outcome.seconds,
                },
                sort_keys=True,
            )
        )
    else:
        print(f"job {outcome.job} ({outcome.seconds:.3f} s)")
        for name, value in outputs.items():
            print(f"  {name}: {value.tolist()}")
    return 0


def health(args: argparse.Namespace) -> int:
    """Ask every party and the dealer whether it serves; exit 1 if any does not."""
    import grpc

    from parties.config import dns_name
    from parties.service import tls, wire_pb2, wire_pb2_grpc

    member = load_config(args.config)
    failures = 0
    for peer in member.peers:
        if peer.role not in ("hospital", "model-owner", "dealer"):
            continue
        options = [("grpc.ssl_target_name_override", dns_name(member.federation, peer.name))]
        channel = grpc.secure_channel(peer.address, tls.channel_credentials(member), options)
        stub = (wire_pb2_grpc.DealerStub if peer.role == "dealer" else wire_pb2_grpc.PartyStub)(
            channel
        )
        try:
            reply = stub.Health(wire_pb2.HealthRequest(), timeout=args.timeout)
            print(f"  {peer.name:<16} {peer.address:<22} {reply.status}")
        except grpc.RpcError as exc:
            failures += 1
            print(f"  {peer.name:<16} {peer.address:<22} unreachable ({exc.code().name})")
        finally:
            channel.close()
    return 1 if failures else 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The arguments of ``party``, ``dealer`` and ``run``."""
    for word, helptext in (("party", "run a computing party"), ("dealer", "run the dealer")):
        p = commands.add_parser(word, help=helptext)
        p.add_argument("--config", required=True, type=Path, help="the member's TOML config")
        p.add_argument("--quiet", action="store_true", help="log warnings only")
        p.set_defaults(words=(word,))
    r = commands.add_parser("run", help="submit a job and print its outputs")
    r.add_argument("--config", required=True, type=Path, help="the analyst's TOML config")
    r.add_argument("job", type=Path, help="job description (JSON)")
    r.add_argument("--json", action="store_true", help="print machine-readable JSON")
    r.set_defaults(words=("run",))
    for word, helptext in (
        ("count", "count the selected patients over all hospitals"),
        ("sum", "sum columns over all hospitals' selected patients"),
        ("mean", "mean of columns over all hospitals' selected patients"),
    ):
        c = commands.add_parser(word, help=helptext)
        c.add_argument("--config", required=True, type=Path, help="the analyst's TOML config")
        c.add_argument("--columns", required=True, help="comma-separated column names")
        c.add_argument(
            "--where", default=None, help="row filter, e.g. 'age >= 50 and sex == \"F\"'"
        )
        c.add_argument("--json", action="store_true", help="print machine-readable JSON")
        c.set_defaults(words=(word,))
    h = commands.add_parser("health", help="check that every party and the dealer serve")
    h.add_argument("--config", required=True, type=Path, help="any member's TOML config")
    h.add_argument("--timeout", type=float, default=5.0, help="seconds per member")
    h.set_defaults(words=("health",))


COMMANDS: dict[tuple[str, ...], Callable[[argparse.Namespace], int]] = {
    ("party",): party,
    ("dealer",): dealer,
    ("run",): run,
    ("count",): shortcut,
    ("sum",): shortcut,
    ("mean",): shortcut,
    ("health",): health,
}
