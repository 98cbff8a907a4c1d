"""``make demo``: a local federation of hospital processes computing on real data.

Three hospitals each hold a disjoint third of the UCI breast cancer data
(569 patients; patient ``id`` goes to hospital ``(id - 1) mod 3``). The demo
creates a fresh federation (CA, certificates, configs), starts the dealer and
each hospital as its own process on its own loopback address, and an analyst
submits signed jobs over gRPC with mutual TLS: counts and means (with the
minimum cell size in force), then logistic-regression labels for every
patient from a model owner's secret model, each hospital keeping its own
patients' labels, joint statistics with disclosure control
(``parties.local.demo_statistics``) and a logistic regression fitted across
the hospitals beside statsmodels' fit (``parties.local.demo_glm``). Every
secure result is printed beside the plaintext answer; then everything shuts
down.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from parties.client import Client
from parties.config import RESULTS_DIR, DataConfig
from parties.data.model_file import save_model
from parties.local import demo_glm, demo_statistics
from parties.local.launcher import LocalDeployment
from protocols.model import LogisticModel, train

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
FEATURES = ("mean_radius", "mean_texture", "mean_area")


def _plain(dep: LocalDeployment, column: str, where_diagnosis: str | None = None) -> np.ndarray:
    j, d = dep.header.index(column), dep.header.index("diagnosis")
    return np.array(
        [
            float(row[j])
            for rows in dep.rows.values()
            for row in rows
            if where_diagnosis is None or row[d] == where_diagnosis
        ]
    )


def run_jobs(dep: LocalDeployment, client: Client) -> list[tuple[str, float, float]]:
    """Submit the demo's count and mean jobs; return (quantity, secure, plaintext) rows."""
    rows: list[tuple[str, float, float]] = []
    for letter, label in (("M", "malignant"), ("B", "benign")):
        print(f"  job: count {label} patients (stats-count) ...", flush=True)
        counted = client.statistics("count", ["mean_radius"], where=f'diagnosis == "{letter}"')
        rows.append(
            (
                f"patients, diagnosis {letter}",
                float(counted["count"]),
                float(len(_plain(dep, "mean_radius", letter))),
            )
        )
    print("  job: means of three features (stats-mean) ...", flush=True)
    means, outcome = client.statistics_outcome("mean", list(FEATURES))
    for k, feature in enumerate(FEATURES):
        plain = float(_plain(dep, feature).mean())
        rows.append((f"mean({feature})", float(means["mean"][k]), plain))
    replies = list(outcome.replies.values())
    rounds = max(r.rounds for r in replies)
    payload = max(r.payload_bytes for r in replies)
    wire = max(r.wire_bytes for r in replies)
    print(
        f"    rounds {rounds}, payload bytes per party {payload:,}, wire bytes {wire:,}, "
        f"{outcome.seconds * 1e3:.0f} ms from submission to result"
    )
    return rows


def _train_model(dep: LocalDeployment) -> LogisticModel:
    """The model owner's model: trained in plaintext on its own copy of the data, kept secret."""
    rows = [r for h in HOSPITALS for r in dep.rows[h]]
    x = np.array([[float(v) for v in r[2:]] for r in rows])
    y = np.array([r[1] == "M" for r in rows], dtype=float)
    model = train(x, y, dep.header[2:])
    path = dep.root / "model.npz"
    save_model(model, path)
    dep.set_data("model-owner", DataConfig("model", path))
    return model


def run_inference(
    dep: LocalDeployment, client: Client, model: LogisticModel
) -> list[tuple[str, int, str, float]]:
    """Score every hospital's patients with the owner's secret model; compare with plaintext."""
    print(
        "  job: logistic-regression labels for every patient (logistic-inference) ...", flush=True
    )
    features = list(dep.header[2:])
    job = client.inference_job("model-owner", features, {h: len(dep.rows[h]) for h in HOSPITALS})
    outcome = client.submit(job)
    print(f"    {outcome.seconds * 1e3:.0f} ms from submission to labels at every hospital")
    summary = []
    for h in HOSPITALS:
        with np.load(dep.members[h].home / RESULTS_DIR / f"{outcome.job}.npz") as kept:
            labels = kept["labels"]
        x = np.array([[float(v) for v in r[2:]] for r in dep.rows[h]])
        truth = np.array([r[1] == "M" for r in dep.rows[h]])
        plain = model.logits(x) > 0
        agree = f"{int((labels == plain).sum())}/{len(labels)}"
        summary.append((h, len(labels), agree, float(np.mean(labels == truth))))
    return summary


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="smpc-demo-") as tmp:
        print("[1/4] creating a federation: CA, certificates, configs, chain keys ...", flush=True)
        dep = LocalDeployment(Path(tmp), HOSPITALS, model_owners=("model-owner",), name="demo")
        model = _train_model(dep)
        print(
            "[2/4] starting the dealer, three hospitals and a model owner (gRPC + mutual TLS) ...",
            flush=True,
        )
        start = time.perf_counter()
        dep.start_all()
        for name, proc in dep.procs.items():
            print(f"  {name}: pid {proc.pid} on {dep.members[name].address}")
        print(f"  all serving after {time.perf_counter() - start:.1f} s")
        client = Client(dep.members["analyst"])
        try:
            print("[3/4] the analyst submits signed jobs ...", flush=True)
            rows = run_jobs(dep, client)
            inference = run_inference(dep, client, model)
            statistics = demo_statistics.run_statistics(dep, client)
            fitted, reference = demo_glm.run_glm(dep, client)
        finally:
            client.close()
            print("[4/4] shutting down ...", flush=True)
            codes = {name: dep.stop(name) for name in list(dep.procs)}
        print()
        print(f"{'quantity':<28} {'secure (MPC)':>14} {'numpy (pooled)':>15} {'|difference|':>13}")
        print(f"{'-' * 28} {'-' * 14} {'-' * 15} {'-' * 13}")
        for name, secure, plain in rows:
            print(f"{name:<28} {secure:>14.6f} {plain:>15.6f} {abs(secure - plain):>13.2e}")
        print()
        print(f"{'hospital':<12} {'patients':>9} {'labels = plaintext':>19} {'accuracy':>9}")
        for name, n, agree, accuracy in inference:
            print(f"{name:<12} {n:>9} {agree:>19} {accuracy:>9.3f}")
        print()
        demo_statistics.print_table(statistics)
        print()
        demo_glm.print_table(fitted, reference)
        clean = all(code == 0 for code in codes.values())
        print(f"\nevery process exited {'cleanly' if clean else f'with {codes}'}")


if __name__ == "__main__":
    main()
