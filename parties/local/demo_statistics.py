"""The demo's statistics jobs: pooled statistics with disclosure control on hospital processes.

Each job runs over every hospital's rows of the breast cancer data and its
result is printed beside numpy's on the pooled rows: patients by diagnosis
(a frequency table of a text column), the mean and standard deviation of a
few features, a histogram of one, their correlation matrix and a median.
Bins below the minimum cell size print as "suppressed".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from parties.client import Client
from parties.local.launcher import LocalDeployment

FEATURES = ("mean_radius", "mean_texture", "mean_area")
EDGES = (6.0, 9.0, 12.0, 15.0, 18.0, 21.0, 24.0, 27.0, 30.0)


def _column(dep: LocalDeployment, name: str) -> np.ndarray:
    j = dep.header.index(name)
    return np.array([float(r[j]) for rows in dep.rows.values() for r in rows])


def _cost(result: dict) -> str:
    return f"{result['seconds'] * 1e3:.0f} ms"


def run_statistics(dep: LocalDeployment, client: Client) -> list[tuple[str, str, str]]:
    """Submit the statistics jobs; return (quantity, secure, numpy) rows as text."""
    rows: list[tuple[str, str, str]] = []
    diagnosis = [r[dep.header.index("diagnosis")] for rows_ in dep.rows.values() for r in rows_]
    print("  job: patients by diagnosis (stats-crosstab) ...", flush=True)
    table = client.statistics("crosstab", ["diagnosis"], params={"levels": [["M", "B"]]})
    for letter, count in zip("MB", table["counts"], strict=True):
        rows.append((f"patients, diagnosis {letter}", f"{count}", f"{diagnosis.count(letter)}"))
    print(f"    {_cost(table)}")
    print("  job: mean and standard deviation (stats-variance) ...", flush=True)
    spread = client.statistics("stdev", list(FEATURES))
    x = np.column_stack([_column(dep, f) for f in FEATURES])
    for j, name in enumerate(FEATURES):
        rows.append((f"mean({name})", f"{spread['mean'][j]:.6f}", f"{x[:, j].mean():.6f}"))
        rows.append((f"stdev({name})", f"{spread['stdev'][j]:.6f}", f"{x[:, j].std(ddof=1):.6f}"))
    print(f"    {_cost(spread)}")
    print("  job: histogram of mean_radius (stats-histogram) ...", flush=True)
    hist = client.statistics("histogram", ["mean_radius"], params={"edges": list(EDGES)})
    expected, _ = np.histogram(x[:, 0], EDGES)
    for j, (count, hidden) in enumerate(zip(hist["counts"], hist["suppressed"], strict=True)):
        label = (
            f"mean_radius in [{EDGES[j]:g}, {EDGES[j + 1]:g}{']' if j == len(EDGES) - 2 else ')'}"
        )
        rows.append((label, "suppressed" if hidden else f"{count}", f"{expected[j]}"))
    print(f"    {_cost(hist)}")
    print("  job: correlation matrix (stats-covariance) ...", flush=True)
    corr = client.statistics("correlation", list(FEATURES))
    plain = np.corrcoef(x, rowvar=False)
    for j in range(len(FEATURES)):
        for k in range(j + 1, len(FEATURES)):
            label = f"corr({FEATURES[j]}, {FEATURES[k]})"
            rows.append((label, f"{corr['correlation'][j, k]:.6f}", f"{plain[j, k]:.6f}"))
    print(f"    {_cost(corr)}")
    print("  job: median of mean_radius (stats-quantiles, 16 bits over [0, 64]) ...", flush=True)
    median = client.statistics("median", ["mean_radius"], params={"range": [0.0, 64.0], "bits": 16})
    exact = np.quantile(x[:, 0], 0.5, method="inverted_cdf")
    rows.append(("median(mean_radius)", f"{median['median']:.6f}", f"{exact:.6f}"))
    print(f"    {_cost(median)}; resolution 64 / 2^16 = 0.001")
    return rows


def print_table(rows: Sequence[tuple[str, str, str]]) -> None:
    """The statistics beside numpy's, in aligned columns."""
    head = ("statistic (minimum cell size 5)", "secure (MPC)", "numpy (pooled)")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}")
