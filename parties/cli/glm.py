"""``smpc stats glm``: a regression fitted across the hospitals, printed as a summary table.

::

    smpc stats glm --config fed/analyst.toml --formula "diagnosis ~ mean_radius + mean_texture" \\
        --positive M
    smpc stats glm --config fed/analyst.toml --columns age,cholesterol --outcome systolic_bp \\
        --family gaussian --json
    smpc stats glm --config fed/analyst.toml --formula "..." --save-model model.npz

A logistic fit can be saved as a model owner's model file (with its scaler)
for secure inference. A refused fit (too few rows or events, separation,
collinear columns) prints the reason and exits 1; a mistake in the job
itself names its flag and exits 2 before anything is signed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from parties.config import load_config
from parties.data.model_file import save_model
from protocols.context import JobParamsError
from protocols.glm_fit import GLMFitError, as_dict

FLAGS = {
    "params.outcome": "--outcome",
    "outcome": "--outcome",
    "params.family": "--family",
    "params.max_iter": "--max-iter",
    "params.positive": "--positive",
    "formula": "--formula",
    "columns": "--columns",
    "where": "--where",
}
"""The command-line flag behind each field a job parameter error may name."""


def glm(args: argparse.Namespace) -> int:
    """Fit the regression the flags describe and print it (``--json``: as JSON)."""
    from parties.client import Client

    if (args.formula is None) == (args.columns is None):
        print("smpc: error: give --formula, or --columns with --outcome", file=sys.stderr)
        return 2
    if args.save_model is not None and args.family != "binomial":
        print(
            "smpc: error: --save-model needs --family binomial: only a logistic fit is a model "
            "for secure inference",
            file=sys.stderr,
        )
        return 2
    columns: Any = args.formula
    if columns is None:
        columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    client = Client(load_config(args.config))
    try:
        fit = client.glm(
            columns,
            args.outcome,
            family=args.family,
            where=args.where,
            max_iter=args.max_iter,
            positive=args.positive,
        )
    except JobParamsError as exc:  # decided from the job alone, before anything was signed
        print(f"smpc: error: {exc.named(FLAGS)}", file=sys.stderr)
        return 2
    except GLMFitError as exc:
        print(f"smpc: the fit was refused: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if args.save_model is not None:
        save_model(fit.to_model(), args.save_model)
    if args.json:
        print(json.dumps(as_dict(fit), sort_keys=True))
    else:
        print(fit.summary())
        if fit.dropped is not None:
            print(f"  rows dropped for a missing value: {fit.dropped}")
        if args.save_model is not None:
            print(f"  model written to {args.save_model}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags ``smpc stats glm`` takes beyond those of every statistic."""
    p.add_argument("--formula", default=None, help="'outcome ~ a + b' (glm)")
    p.add_argument("--outcome", default=None, help="the outcome column (glm, with --columns)")
    p.add_argument(
        "--family", default="binomial", choices=("binomial", "gaussian"), help="glm family"
    )
    p.add_argument("--positive", default=None, help="glm: the text of a text outcome's event")
    p.add_argument("--max-iter", type=int, default=25, help="glm: most Newton iterations")
    p.add_argument("--save-model", default=None, help="glm: write the logistic fit as a model")
