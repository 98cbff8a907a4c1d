"""``smpc stats STATISTIC``: a joint statistic with disclosure control, from the command line.

::

    smpc stats stdev --config fed/analyst.toml --columns mean_radius,mean_area
    smpc stats histogram --config fed/analyst.toml --columns mean_radius --edges 6,10,14,18,30
    smpc stats median --config fed/analyst.toml --columns mean_radius --range 0,64

Cells and results below the minimum cell size print as "suppressed".
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from parties.config import load_config
from protocols.statistics import BY_STATISTIC


def _numbers(text: str | None) -> list[float] | None:
    return None if text is None else [float(v) for v in text.split(",") if v.strip()]


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.edges is not None:
        params["edges"] = _numbers(args.edges)
    if args.levels is not None:
        params["levels"] = [[v.strip() for v in part.split(",")] for part in args.levels.split(";")]
    if args.range is not None:
        params["range"] = _numbers(args.range)
    if args.probabilities is not None:
        params["probabilities"] = _numbers(args.probabilities)
    return params


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
        if key not in ("job", "seconds"):
            text = json.dumps(value).replace("null", '"suppressed"')
            print(f"  {key}: {text}")
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The arguments of ``smpc stats``."""
    p = commands.add_parser("stats", help="a joint statistic with disclosure control")
    p.add_argument("statistic", choices=sorted(BY_STATISTIC), help="what to compute")
    p.add_argument("--config", required=True, type=Path, help="the analyst's TOML config")
    p.add_argument("--columns", required=True, help="comma-separated column names")
    p.add_argument("--where", default=None, help="row filter, e.g. 'age >= 50'")
    p.add_argument("--edges", default=None, help="histogram bin edges, e.g. 0,10,20")
    p.add_argument("--levels", default=None, help="crosstab levels, e.g. 'M,B;F,M'")
    p.add_argument("--range", default=None, help="quantile search range lo,hi")
    p.add_argument("--probabilities", default=None, help="quantiles, e.g. 0.1,0.5,0.9")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(words=("stats",))


COMMANDS: dict[tuple[str, ...], Callable[[argparse.Namespace], int]] = {("stats",): stats}
