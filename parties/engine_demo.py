"""Three hospitals pool breast-cancer statistics without pooling patients.

Run with ``python -m parties.engine_demo``. The 569 patients of the Breast Cancer
Wisconsin (Diagnostic) data set (``parties/data/breast_cancer.csv``) are split
disjointly by row id: patient ``id`` belongs to hospital ``(id - 1) mod 3``,
so hospital-a holds ids 1, 4, 7, ..., hospital-b ids 2, 5, 8, ... and
hospital-c ids 3, 6, 9, .... Each hospital secret-shares local aggregates of
its own rows, never the rows themselves, so the cost does not grow with the
number of patients. The jobs run on an in-memory :class:`LocalFederation`;
every protocol function has the shape ``fn(rt, cohort, *public)`` and runs
unchanged between hospital processes.

What the jobs reveal, to every hospital (and nothing else; no share and no
hospital's own aggregate is ever printed):

1. :func:`count_by_diagnosis`: the pooled number of malignant and benign
   patients.
2. :func:`pooled_totals`: the pooled patient count N and the pooled sum of
   each feature, hence the pooled means.
3. :func:`pooled_centred_squares`: the pooled sum of squared deviations from
   the pooled mean of each feature, hence the sample variance and standard
   deviation.
4. :func:`pooled_comoments`: the pooled co-moment matrix, hence the sample
   covariance matrix. This job does not reveal the means.

No disclosure control (minimum cell size) is applied here; that belongs to
the statistics protocols. With three hospitals, two colluding ones can
subtract their own contributions from any pooled output and learn the
third's aggregate; that is inherent in the outputs, not a leak of the engine.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smpc.fixedpoint import check_range
from smpc.local import JobResult, LocalFederation
from smpc.runtime import Runtime
from smpc.shares import SharedTensor

DATA_PATH = Path(__file__).resolve().parent / "data" / "breast_cancer.csv"
HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
DIAGNOSES = ("M", "B")  # order of the counts: malignant, benign
DEMO_FEATURES = ("mean_radius", "mean_texture", "mean_area")
N_STEPS = 4  # joint computations run by run_demo


@dataclass(frozen=True)
class Cohort:
    """Patient rows: ids, diagnosis letters and the feature matrix (one column per name)."""

    ids: np.ndarray
    diagnosis: np.ndarray
    features: np.ndarray
    columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def column(self, name: str) -> np.ndarray:
        """One feature over all rows."""
        return self.features[:, self.columns.index(name)]

    def matrix(self, names: Sequence[str]) -> np.ndarray:
        """The named features as an (n, len(names)) float64 matrix."""
        return self.features[:, [self.columns.index(name) for name in names]]

    def subset(self, rows: np.ndarray) -> Cohort:
        """The rows picked by a boolean mask or index array."""
        return Cohort(self.ids[rows], self.diagnosis[rows], self.features[rows], self.columns)


def load_cohort(path: Path = DATA_PATH) -> Cohort:
    """Read the demo CSV (id, diagnosis, then numeric features) with strict checks."""
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header[:2] != ["id", "diagnosis"]:
            raise ValueError(f"{path}: the first columns must be 'id' and 'diagnosis'")
        ids: list[int] = []
        diagnosis: list[str] = []
        rows: list[list[float]] = []
        for line, record in enumerate(reader, start=2):
            if len(record) != len(header):
                raise ValueError(f"{path} line {line}: expected {len(header)} fields")
            if record[1] not in DIAGNOSES:
                raise ValueError(f"{path} line {line}: diagnosis must be one of {DIAGNOSES}")
            ids.append(int(record[0]))
            diagnosis.append(record[1])
            rows.append([float(v) for v in record[2:]])
    features = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(features).all():
        raise ValueError(f"{path}: every feature value must be a finite number")
    return Cohort(
        np.asarray(ids, dtype=np.int64), np.asarray(diagnosis), features, tuple(header[2:])
    )


def split_by_id(cohort: Cohort, n_hospitals: int = len(HOSPITALS)) -> list[Cohort]:
    """Disjoint, deterministic split: patient ``id`` goes to hospital ``(id - 1) mod n``."""
    home = (cohort.ids - 1) % n_hospitals
    return [cohort.subset(home == h) for h in range(n_hospitals)]


# -- local aggregates (computed by each hospital on its own rows, in the clear) --


def diagnosis_counts(cohort: Cohort) -> np.ndarray:
    """Local patient counts in :data:`DIAGNOSES` order, int64."""
    return np.asarray([np.count_nonzero(cohort.diagnosis == d) for d in DIAGNOSES], np.int64)


def local_moments(cohort: Cohort, features: Sequence[str]) -> tuple[int, np.ndarray, np.ndarray]:
    """Local n, per-feature mean and centred sum of squares (two-pass, so no cancellation).

    An empty cohort has mean 0 and sum of squares 0, so it adds nothing when pooled.
    """
    x = cohort.matrix(features)
    n = len(x)
    if n == 0:
        return 0, np.zeros(len(features)), np.zeros(len(features))
    mean = x.mean(axis=0)
    return n, mean, ((x - mean) ** 2).sum(axis=0)


# -- protocol functions: fn(rt, own cohort, *public arguments) --


def _pooled_input(
    rt: Runtime, value: np.ndarray, shape: tuple[int, ...], *, integer: bool = False
) -> SharedTensor:
    """Every party secret-shares its own ``value``; the shared sum (one round per party)."""
    total = rt.input(value if rt.party == 0 else None, 0, shape, integer=integer)
    for owner in range(1, rt.n_parties):
        total = total + rt.input(
            value if rt.party == owner else None, owner, shape, integer=integer
        )
    return total


def _reveal(rt: Runtime, x: SharedTensor) -> np.ndarray:
    """Open ``x`` to every party (one round)."""
    opened = rt.open(x)
    if opened is None:  # only happens for openings to a subset of parties
        raise RuntimeError("an opening to all parties returned nothing")
    return opened


def count_by_diagnosis(rt: Runtime, cohort: Cohort) -> np.ndarray:
    """Pooled patient counts [malignant, benign] as exact integers.

    Each hospital shares its two local counts (integer shares, no rounding).
    Reveals to every hospital: the two pooled counts.
    """
    total = _pooled_input(rt, diagnosis_counts(cohort), (len(DIAGNOSES),), integer=True)
    return _reveal(rt, total)


def pooled_totals(rt: Runtime, cohort: Cohort, features: Sequence[str]) -> tuple[int, np.ndarray]:
    """Pooled patient count N and per-feature pooled sums.

    Each hospital shares the vector [n_i, sum_i(feature) ...] in fixed point
    (n_i is an integer below 2^46, so it is encoded exactly). Reveals to every
    hospital: N and the pooled sums, i.e. the pooled means sum / N. The
    division is done in the clear on these declared outputs.
    """
    x = cohort.matrix(features)
    mine = np.concatenate([[float(len(x))], x.sum(axis=0)])
    opened = _reveal(rt, _pooled_input(rt, mine, (1 + len(features),)))
    return round(float(opened[0])), opened[1:]


def pooled_centred_squares(
    rt: Runtime, cohort: Cohort, features: Sequence[str], pooled_mean: np.ndarray
) -> np.ndarray:
    """Pooled sum of squared deviations from the public pooled mean, per feature.

    Chan, Golub and LeVeque's parallel formula for k groups, "Algorithms for
    computing the sample variance" (The American Statistician 37(3), 1983):
    M2 = sum_i [M2_i + n_i (mean_i - mean)^2]. The pooled mean is public (the
    output of :func:`pooled_totals`), so hospital i forms its bracket locally
    from its own n_i, mean_i and centred M2_i and shares only that. Every term
    is a sum of squares of deviations, so nothing cancels. Reveals to every
    hospital: the pooled M2 (the sample variance is M2 / (N - 1)).
    """
    n, mean, m2 = local_moments(cohort, features)
    mine = m2 + n * (mean - np.asarray(pooled_mean, dtype=np.float64)) ** 2
    return _reveal(rt, _pooled_input(rt, mine, (len(features),)))


def pooled_comoments(
    rt: Runtime, cohort: Cohort, features: Sequence[str], n_total: int
) -> np.ndarray:
    """Pooled co-moment matrix sum over patients of (x - mean)(x - mean)^T, means kept secret.

    1. Hospital i shares G_i = X_i^T X_i (its local Gram matrix) and
       u_i = s_i / sqrt(N), where s_i is its vector of column sums and N is
       public (revealed by an earlier count).
    2. Locally, G = sum G_i and u = sum u_i = sqrt(N) * mean.
    3. One shared outer product u u^T = N mean mean^T (``rt.matmul``, two
       rounds), then M = G - u u^T, opened.

    Scaling by 1/sqrt(N) rather than 1/N keeps the encoding error of u from
    being multiplied by N. Range: each hospital checks |u_i| < 2^15 / n_parties
    so that |u_j u_k| < 2^30, the fixed-point product bound; this holds while
    N * mean^2 stays well below 2^30 (mean_area: about 2.4e8 at N = 569).
    Reveals to every hospital: M only (the sample covariance is M / (N - 1));
    N is an input. The pooled means stay secret in this job.
    """
    if n_total < 1:
        raise statistics.StatisticsError("the co-moment matrix needs at least one patient")
    k = len(features)
    x = cohort.matrix(features)
    gram = x.T @ x
    u = x.sum(axis=0) / math.sqrt(n_total)
    check_range(u, math.sqrt(rt.fxp.max_product) / rt.n_parties)
    total = _pooled_input(rt, np.concatenate([gram.reshape(-1), u]), (k * k + k,))
    g = total[: k * k].reshape(k, k)
    pooled_u = total[k * k :]
    outer = rt.matmul(pooled_u.reshape(k, 1), pooled_u.reshape(1, k))
    return _reveal(rt, g - outer)


# -- the demo driver --


@dataclass(frozen=True)
class Step:
    """One joint computation and what it cost."""

    name: str
    rounds: int
    bytes_sent: int
    seconds: float

    @classmethod
    def of(cls, name: str, job: JobResult) -> Step:
        """Rounds of the busiest party; bytes summed over all parties."""
        return cls(name, max(job.rounds), sum(job.bytes_sent), job.seconds)


@dataclass(frozen=True)
class DemoResult:
    """The pooled statistics as revealed by the joint computations."""

    features: tuple[str, ...]
    counts: np.ndarray
    n_total: int
    means: np.ndarray
    stdevs: np.ndarray
    covariance: np.ndarray
    steps: tuple[Step, ...]


def _agreed(job: JobResult) -> object:
    """The result every party got; they must all agree."""
    first = job.results[0]
    for other in job.results[1:]:
        if not all(np.array_equal(a, b) for a, b in zip(_flat(first), _flat(other), strict=True)):
            raise RuntimeError(f"job {job.job}: parties disagree on the opened result")
    return first


def _flat(result: object) -> tuple[object, ...]:
    return tuple(result) if isinstance(result, tuple) else (result,)


def run_demo(
    fed: LocalFederation,
    cohorts: Sequence[Cohort],
    features: Sequence[str] = DEMO_FEATURES,
    progress: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    """Run the four joint computations, one cohort per party; only pooled values come back.

    A value derived from an opening (the pooled mean, N) reaches a later job
    as a public argument rather than being used inside the job that opens it:
    a job is planned by a dry run in which openings return meaningless
    numbers, so computing on them there (e.g. 1 / sqrt(N)) can fail.
    """
    features = tuple(features)
    steps: list[Step] = []

    def job(name: str, fn: Callable[..., object], *public: object) -> object:
        progress(f"[{len(steps) + 1}/{N_STEPS}] {name} ...")
        result = fed.run(fn, inputs=list(cohorts), args=public)
        steps.append(Step.of(name, result))
        progress(f"      done: {steps[-1].rounds} rounds, {steps[-1].bytes_sent:,} bytes")
        return _agreed(result)

    counts = job("count patients by diagnosis", count_by_diagnosis)
    n_total, sums = job("pool counts and feature sums", pooled_totals, features)
    if n_total < 2:
        raise statistics.StatisticsError("a sample standard deviation needs at least two patients")
    means = np.asarray(sums) / n_total
    m2 = job("pool centred sums of squares", pooled_centred_squares, features, means)
    stdevs = np.sqrt(np.asarray(m2) / (n_total - 1))
    comoments = job("pooled co-moment matrix (rt.matmul)", pooled_comoments, features, n_total)
    covariance = np.asarray(comoments) / (n_total - 1)
    return DemoResult(
        features, np.asarray(counts), n_total, means, stdevs, covariance, tuple(steps)
    )


def plaintext_reference(cohort: Cohort, features: Sequence[str]) -> dict[str, np.ndarray]:
    """The same statistics computed by numpy on the pooled rows (what MPC must match)."""
    x = cohort.matrix(features)
    return {
        "counts": diagnosis_counts(cohort),
        "means": x.mean(axis=0),
        "stdevs": x.std(axis=0, ddof=1),
        "covariance": np.cov(x, rowvar=False, ddof=1),
    }


def _table(pooled: Cohort, result: DemoResult) -> list[str]:
    ref = plaintext_reference(pooled, result.features)
    rows: list[tuple[str, str, str, str]] = []
    for d, secure, plain in zip(DIAGNOSES, result.counts, ref["counts"], strict=True):
        diff = abs(int(secure) - int(plain))
        rows.append((f"patients with diagnosis {d}", f"{secure:d}", f"{plain:d}", f"{diff:d}"))

    def real(label: str, secure: float, plain: float) -> None:
        rows.append((label, f"{secure:.6f}", f"{plain:.6f}", f"{abs(secure - plain):.2e}"))

    for j, name in enumerate(result.features):
        real(f"mean({name})", result.means[j], ref["means"][j])
    for j, name in enumerate(result.features):
        real(f"stdev({name})", result.stdevs[j], ref["stdevs"][j])
    for j, a in enumerate(result.features):
        for k in range(j, len(result.features)):
            label = f"cov({a}, {result.features[k]})"
            real(label, result.covariance[j, k], ref["covariance"][j, k])
    head = ("quantity", "secure (MPC)", "numpy (pooled)", "|difference|")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]

    def fmt(r: tuple[str, str, str, str]) -> str:
        cells = [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        return "  ".join([r[0].ljust(widths[0]), *cells])

    rule = "  ".join("-" * w for w in widths)
    return [fmt(head), rule, *(fmt(r) for r in rows)]


def _cost_table(steps: Sequence[Step]) -> list[str]:
    lines = [f"{'step':<40}  {'rounds':>6}  {'bytes (all parties)':>19}  {'seconds':>7}"]
    lines.append("  ".join("-" * w for w in (40, 6, 19, 7)))
    for s in steps:
        lines.append(f"{s.name:<40}  {s.rounds:>6}  {s.bytes_sent:>19,}  {s.seconds:>7.3f}")
    return lines


def main() -> None:
    """Load the data, split it across three hospitals, run the jobs, print the comparison."""
    pooled = load_cohort()
    cohorts = split_by_id(pooled)
    print(
        f"Loaded {len(pooled)} patients from {DATA_PATH.name}; split by (id - 1) mod 3 "
        f"across {', '.join(HOSPITALS)}."
    )
    result = run_demo(LocalFederation(len(HOSPITALS)), cohorts, progress=print)
    print()
    print("\n".join(_table(pooled, result)))
    print()
    print("\n".join(_cost_table(result.steps)))


if __name__ == "__main__":
    main()
