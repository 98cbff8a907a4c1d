"""``smpc stats STATISTIC``: a joint statistic with disclosure control, from the command line.

::

    smpc stats stdev --config fed/analyst.toml --columns mean_radius,mean_area
    smpc stats histogram --config fed/analyst.toml --columns mean_radius --edges 6,10,14,18,30
    smpc stats median --config fed/analyst.toml --columns mean_radius --range 0,64 --bits 16
    smpc stats glm --config fed/analyst.toml --formula "malignant ~ mean_radius + mean_texture"

Cells and results below the minimum cell size print as "suppressed". A
mistake the job itself shows (no ``--edges`` for a histogram, a bad
``--where``) is reported with the flag's name before anything is signed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from parties.cli import glm as glm_command
from parties.config import load_config
from protocols.context import JobParamsError
from protocols.statistics import BY_STATISTIC

FLAGS = {
    "params.edges": "--edges",
    "params.levels": "--levels",
    "params.range": "--range",
    "params.probabilities": "--probabilities",
    "params.bits": "--bits",
    "where": "--where",
    "columns": "--columns",
}
"""The command-line flag behind each field a job parameter error may name."""

SUPPRESSED = '"suppressed"'
"""How a suppressed table cell prints."""


def _numbers(text: str) -> list[float]:
    """Comma-separated numbers, for argparse: a usage error naming the flag otherwise."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas: {text!r}"
        ) from None


def _levels(text: str) -> list[list[str]]:
    """Levels of each column, ``;`` between columns and ``,`` between levels."""
    return [[v.strip() for v in part.split(",")] for part in text.split(";")]


def _params(args: argparse.Namespace) -> dict[str, Any]:
    chosen = {
        "edges": args.edges,
        "levels": args.levels,
        "range": args.range,
        "probabilities": args.probabilities,
        "bits": args.bits,
    }
    return {key: value for key, value in chosen.items() if value is not None}


def _plain(value: Any, suppressed: Any = None) -> Any:
    """JSON-ready values; a suppressed table cell becomes None."""
    if isinstance(value, np.ndarray):
        if suppressed is not None:
            blank = np.array(None, dtype=object)
            return np.where(suppressed, blank, value.astype(object)).tolist()
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def stats(args: argparse.Namespace) -> int:
    """Submit one statistics job over every hospital and print the result."""
    if args.statistic == "glm":
        return glm_command.glm(args)
    if args.columns is None:
        print("smpc: error: --columns is required", file=sys.stderr)
        return 2
    return submit(args, args.statistic, _params(args))


def submit(args: argparse.Namespace, statistic: str, params: dict[str, Any]) -> int:
    """Run ``statistic`` over every hospital's selected rows and print it (``--json``: as JSON).

    Shared by ``smpc stats`` and ``smpc count|sum|mean``.
    """
    from parties.client import Client

    client = Client(load_config(args.config))
    columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    try:
        result = client.statistics(statistic, columns, where=args.where, params=params)
    except JobParamsError as exc:  # decided from the job alone, before anything was signed
        print(f"smpc: error: {exc.named(FLAGS)}", file=sys.stderr)
        return 2
    finally:
        client.close()
    cells = result.get("suppressed") if "counts" in result else None
    shown = {
        k: _plain(v, cells if k == "counts" else None)
        for k, v in result.items()
        if not (k == "suppressed" and cells is not None)
    }
    if args.json:
        print(json.dumps(shown, sort_keys=True))
        return 0
    print(f"job {result['job']} ({result['seconds']:.3f} s)")
    if result.get("suppressed") is True:
        print("  suppressed: below the minimum cell size")
        return 0
    for key, value in shown.items():
        if key in ("job", "seconds"):
            continue
        if value is None:  # a gated count (e.g. dropped rows) below the minimum cell size
            print(f"  {key}: suppressed (below the minimum cell size)")
        else:
            print(f"  {key}: {json.dumps(value).replace('null', SUPPRESSED)}")
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The arguments of ``smpc stats``."""
    p = commands.add_parser("stats", help="a joint statistic with disclosure control")
    p.add_argument("statistic", choices=sorted([*BY_STATISTIC, "glm"]), help="what to compute")
    p.add_argument("--config", required=True, type=Path, help="the analyst's TOML config")
    p.add_argument("--columns", default=None, help="comma-separated column names")
    p.add_argument("--where", default=None, help="row filter, e.g. 'age >= 50'")
    p.add_argument("--edges", type=_numbers, help="histogram bin edges, e.g. 0,10,20")
    p.add_argument("--levels", type=_levels, help="crosstab levels, e.g. 'M,B;F,M'")
    p.add_argument("--range", type=_numbers, help="quantile search range lo,hi")
    p.add_argument("--probabilities", type=_numbers, help="quantiles, e.g. 0.1,0.5,0.9")
    p.add_argument("--bits", type=int, help="quantile grid resolution in bits (1 to 32)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    glm_command.add_arguments(p)
    p.set_defaults(words=("stats",))


COMMANDS: dict[tuple[str, ...], Callable[[argparse.Namespace], int]] = {("stats",): stats}
