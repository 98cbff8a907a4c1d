"""The demo's regression: a logistic fit across the hospital processes beside statsmodels'.

The analyst fits ``diagnosis ~ five features`` (malignant is the event) with
``stats-glm``: no hospital's score or information matrix is ever revealed,
only the fit. The same model is fitted by statsmodels on the pooled
plaintext rows, and both are printed coefficient by coefficient. The fit is
also written as a model owner's model file, ready for secure inference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parties.client import Client
from parties.data.model_file import save_model
from parties.local.launcher import LocalDeployment
from protocols.glm_fit import GLMFit

FEATURES = (
    "mean_radius",
    "mean_texture",
    "mean_smoothness",
    "mean_symmetry",
    "mean_concave_points",
)
FORMULA = "diagnosis ~ " + " + ".join(FEATURES)


def run_glm(dep: LocalDeployment, client: Client) -> tuple[GLMFit, Any]:
    """Fit the model across the hospitals and with statsmodels; save the fit as a model file."""
    import statsmodels.api as sm  # type: ignore[import-untyped]  # the oracle (dev extra)

    print(f"  job: logistic regression {FORMULA} (stats-glm) ...", flush=True)
    fit, outcome = client.glm_outcome(FORMULA, positive="M")
    replies = list(outcome.replies.values())
    print(
        f"    {fit.iterations} Newton iterations, rounds {max(r.rounds for r in replies)}, "
        f"payload bytes per party {max(r.payload_bytes for r in replies):,}, "
        f"{outcome.seconds * 1e3:.0f} ms from submission to result"
    )
    rows = [r for h in dep.rows for r in dep.rows[h]]
    x = np.array([[float(r[dep.header.index(c)]) for c in FEATURES] for r in rows])
    y = np.array([r[dep.header.index("diagnosis")] == "M" for r in rows], dtype=float)
    reference = sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit()
    path = dep.root / "fitted-model.npz"
    save_model(fit.to_model(), path)
    print(f"    the fit, with its scaler, is a model file for secure inference: {path.name}")
    return fit, reference


def print_table(fit: GLMFit, ref: Any) -> None:
    """Coefficients, standard errors and p-values of the secure fit beside statsmodels'."""
    print(fit.summary())
    print()
    print(
        f"{'':<20} {'coef (MPC)':>12} {'statsmodels':>12} {'se (MPC)':>10} {'statsmodels':>11} "
        f"{'p (MPC)':>10} {'statsmodels':>11}"
    )
    for k, name in enumerate(fit.names):
        print(
            f"{name:<20} {fit.coef[k]:>12.6g} {ref.params[k]:>12.6g} "
            f"{fit.bse[k]:>10.5g} {ref.bse[k]:>11.5g} "
            f"{fit.pvalues[k]:>10.4g} {ref.pvalues[k]:>11.4g}"
        )
    coef = np.abs(fit.coef / ref.params - 1).max()
    bse = np.abs(fit.bse / ref.bse - 1).max()
    print(
        f"{'deviance, AIC':<20} {fit.deviance:>12.6g} {ref.deviance:>12.6g} "
        f"{fit.aic:>10.6g} {ref.aic:>11.6g}"
    )
    print(f"largest relative difference: coefficients {coef:.1e}, standard errors {bse:.1e}")
