"""The main statistics as jobs on three real party processes (gRPC + mutual TLS)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from parties.client import Client, JobFailed

pytestmark = pytest.mark.process

FEATURES = ["mean_radius", "mean_texture", "mean_area"]


@pytest.fixture(scope="module")
def client(running):
    c = Client(running.members["analyst"])
    yield c
    c.close()


def _matrix(running, columns) -> np.ndarray:
    return np.column_stack([running.column(c) for c in columns])


def test_mean_variance_and_deviations_match_numpy(running, client) -> None:
    x = _matrix(running, FEATURES)
    result = client.statistics("variance", FEATURES)
    assert result["count"] == len(x) and result["dropped"] is None
    np.testing.assert_allclose(result["mean"], x.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(result["variance"], x.var(axis=0, ddof=1), rtol=1e-4)
    np.testing.assert_allclose(result["stdev"], x.std(axis=0, ddof=1), rtol=1e-4)
    np.testing.assert_allclose(result["pstdev"], x.std(axis=0), rtol=1e-4)
    malignant = client.statistics("mean", ["mean_radius"], where='diagnosis == "M"')
    is_m = np.array([r[1] == "M" for rows in running.rows.values() for r in rows])
    assert malignant["count"] == int(is_m.sum())
    np.testing.assert_allclose(malignant["mean"], x[is_m, 0].mean(), rtol=1e-4)


def test_histogram_matches_numpy_with_small_bins_suppressed(running, client) -> None:
    edges = [6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 20.0, 24.0, 30.0]
    result = client.statistics("histogram", ["mean_radius"], params={"edges": edges})
    expected, _ = np.histogram(running.column("mean_radius"), edges)
    assert np.array_equal(result["counts"], np.where(expected >= 5, expected, 0))
    assert np.array_equal(result["suppressed"], expected < 5)
    assert result["suppressed"].any()  # the data has a bin below 5 patients


def test_correlation_matrix_matches_numpy(running, client) -> None:
    x = _matrix(running, FEATURES)
    result = client.statistics("correlation", FEATURES)
    np.testing.assert_allclose(result["correlation"], np.corrcoef(x, rowvar=False), atol=1e-3)
    expected = np.cov(x, rowvar=False)
    scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
    assert np.max(np.abs(result["covariance"] - expected) / scale) < 1e-4


def test_an_unknown_column_is_named_and_a_non_numeric_one_only_in_the_log(running, client) -> None:
    # The header is no patient's data: the analyst learns which column is unknown.
    with pytest.raises(JobFailed, match="no_such_column") as unknown:
        client.statistics("mean", ["no_such_column"])
    assert unknown.value.kind == "refused: bad-request"
    # Whether a selected value parses depends on the rows: the analyst gets the one
    # data reason, and each hospital's own log names the column.
    with pytest.raises(JobFailed) as text:
        client.statistics("variance", ["diagnosis"])
    assert text.value.kind == "local-data"
    assert "'diagnosis'" not in str(text.value)
    logs = [running.log_path(h).read_text() for h in ("hospital-a", "hospital-b", "hospital-c")]
    assert any(text.value.job in log and "'diagnosis'" in log for log in logs)


def test_smpc_stats_prints_json_with_suppressed_cells(running) -> None:
    edges = "6,8,10,12,14,16,20,24,30"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "parties.cli",
            "stats",
            "histogram",
            "--config",
            str(running.members["analyst"].config_path),
            "--columns",
            "mean_radius",
            "--edges",
            edges,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    expected, _ = np.histogram(running.column("mean_radius"), [float(e) for e in edges.split(",")])
    assert result["counts"] == [int(c) if c >= 5 else None for c in expected]


def test_patients_by_diagnosis_from_a_text_column(running, client) -> None:
    result = client.statistics("crosstab", ["diagnosis"], params={"levels": [["M", "B"]]})
    diagnosis = [r[1] for rows in running.rows.values() for r in rows]
    assert result["counts"].tolist() == [diagnosis.count("M"), diagnosis.count("B")]


def test_minimum_and_maximum_are_refused_under_the_default_policy(client) -> None:
    with pytest.raises(JobFailed, match="does not permit a minimum or maximum"):
        client.statistics("max", ["mean_radius"])


def test_an_unknown_statistic_is_refused_before_any_job(client) -> None:
    with pytest.raises(ValueError, match=r"unknown statistic 'mode'; choose one of .*median"):
        client.statistics("mode", ["mean_radius"])


def _smpc_stats(running, *words: str) -> subprocess.CompletedProcess[str]:
    config = str(running.members["analyst"].config_path)
    return subprocess.run(
        [sys.executable, "-m", "parties.cli", "stats", words[0], "--config", config, *words[1:]],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_smpc_stats_count_prints_dropped_zero_only_where_the_job_makes_it_public(running) -> None:
    # The filter keeps only rows that have mean_radius: none can be dropped, by construction.
    large = (running.column("mean_radius") >= 15).sum()
    kept = _smpc_stats(running, "count", "--columns", "mean_radius", "--where", "mean_radius >= 15")
    assert kept.returncode == 0, kept.stderr
    assert f"  count: {int(large)}\n" in kept.stdout
    assert "  dropped: 0\n" in kept.stdout and "dropped: suppressed" not in kept.stdout
    # Without such a filter, fewer than m dropped rows (none here) stay suppressed, and say so.
    open_ended = _smpc_stats(running, "count", "--columns", "mean_radius")
    assert open_ended.returncode == 0, open_ended.stderr
    assert f"  count: {len(running.column('mean_radius'))}\n" in open_ended.stdout
    assert "  dropped: suppressed (below the minimum cell size)\n" in open_ended.stdout
