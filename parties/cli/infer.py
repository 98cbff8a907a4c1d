"""``smpc infer``: a model owner's logistic-regression model scored on the hospitals' rows.

::

    smpc infer --config fed/analyst.toml --model-owner model-owner \\
        --columns mean_radius,mean_texture --rows hospital-a=190,hospital-b=190
    smpc infer ... --label-column malignant --metrics --json

Each hospital in ``--rows`` scores all its rows (the count is declared, and
public) and keeps its own patients' labels in ``results/<job>.npz`` in its
member folder; the analyst learns nothing about any patient. With
``--label-column C --metrics`` (C a 0/1 column at every hospital), the
confusion counts over all rows come back to the analyst, or "suppressed" when
a cell is below the minimum cell size.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from parties.config import RESULTS_DIR, ConfigError, MemberConfig, load_config
from smpc.errors import UnknownPartyError


def infer(args: argparse.Namespace) -> int:
    """Submit one inference job and print where each hospital keeps its labels."""
    if args.metrics != (args.label_column is not None):
        print("smpc: error: --metrics and --label-column C go together", file=sys.stderr)
        return 2
    from parties.client import Client

    member = load_config(args.config)
    if member.role != "analyst":
        raise ConfigError(
            f"{member.name} is a {member.role}; jobs are signed by analysts: use an analyst's"
            " config",
            path=member.config_path,
        )
    _check_parties(member, args.model_owner, args.rows)
    min_cell_size = args.min_cell_size or member.policy.min_cell_size
    client = Client(member)
    try:
        job = client.inference_job(
            args.model_owner,
            args.columns,
            args.rows,
            label_column=args.label_column,
            min_cell_size=min_cell_size,
        )
        outcome = client.submit(job)
    finally:
        client.close()
    kept = {
        h: {"rows": n, "file": f"{h}/{RESULTS_DIR}/{outcome.job}.npz"}
        for h, n in sorted(args.rows.items())
    }
    result: dict[str, Any] = {"job": outcome.job, "seconds": outcome.seconds, "labels": kept}
    if args.metrics:
        result["metrics"] = _metrics([int(v) for v in outcome.outputs["metrics"]])
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    print(f"job {outcome.job} ({outcome.seconds:.3f} s)")
    for hospital, where in kept.items():
        print(
            f"  {hospital}: {where['rows']} rows scored; labels kept at {hospital}"
            f" in {where['file']} (its member folder)"
        )
    if args.metrics:
        metrics = result["metrics"]
        if metrics["suppressed"]:
            print(f"  metrics: suppressed (a cell is below the minimum cell size {min_cell_size})")
        else:
            counts = ", ".join(f"{k.upper()} {metrics[k]}" for k in ("tp", "fp", "fn", "tn"))
            print(f"  metrics: {counts}; accuracy {metrics['accuracy']:.4f}")
    return 0


def _metrics(cells: list[int]) -> dict[str, Any]:
    """The confusion counts [TP, FP, FN, TN] and accuracy, or suppressed (every cell -1)."""
    if all(c == -1 for c in cells):
        return {"suppressed": True}
    tp, fp, fn, tn = cells
    return {
        "suppressed": False,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "accuracy": (tp + tn) / sum(cells),
    }


def _check_parties(member: MemberConfig, model_owner: str, rows: dict[str, int]) -> None:
    """The model owner must be one and every scoring party a hospital; UnknownPartyError if not."""
    owner = member.peer(model_owner)
    if owner.role != "model-owner":
        raise UnknownPartyError(f"{model_owner} is a {owner.role}, not a model owner")
    for name in rows:
        peer = member.peer(name)
        if peer.role != "hospital":
            raise UnknownPartyError(f"--rows names {name}, a {peer.role}; hospitals score rows")


def _rows(text: str) -> dict[str, int]:
    """``hospital-a=190,hospital-b=190`` as {hospital: declared row count}."""
    rows: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, count = part.partition("=")
        if not sep or not name.strip() or not count.strip().isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(
                f"expected HOSPITAL=ROWS with ROWS a positive integer, got {part!r}"
            )
        if name.strip() in rows:
            raise argparse.ArgumentTypeError(f"{name.strip()!r} is listed twice")
        rows[name.strip()] = int(count)
    return rows


def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _columns(text: str) -> list[str]:
    columns = [c.strip() for c in text.split(",") if c.strip()]
    if not columns:
        raise argparse.ArgumentTypeError("expected comma-separated column names")
    return columns


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The arguments of ``smpc infer``."""
    p = commands.add_parser("infer", help="score a model owner's model on the hospitals' rows")
    p.add_argument("--config", required=True, type=Path, help="the analyst's TOML config")
    p.add_argument("--model-owner", required=True, help="the member holding the model")
    p.add_argument(
        "--columns", required=True, type=_columns, help="the model's features, in its order"
    )
    p.add_argument(
        "--rows",
        required=True,
        type=_rows,
        metavar="HOSPITAL=N,...",
        help="each scoring hospital and its row count (declared, public)",
    )
    p.add_argument("--label-column", help="a 0/1 column at every hospital, for --metrics")
    p.add_argument(
        "--metrics", action="store_true", help="the confusion counts over all rows, to you"
    )
    p.add_argument(
        "--min-cell-size",
        type=_positive,
        help="smallest metrics cell shown (default: this config's policy)",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(words=("infer",))


COMMANDS: dict[tuple[str, ...], Callable[[argparse.Namespace], int]] = {("infer",): infer}
