"""Jobs end to end between real processes: ``smpc dealer``, three ``smpc party``, an analyst."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from parties.client import Client

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")


def test_a_job_through_the_client_api_matches_numpy(running) -> None:
    client = Client(running.members["analyst"])
    try:
        columns = ["mean_radius", "mean_area"]
        job = client.job(
            "stats-mean", "3", inputs={h: (columns, 'diagnosis == "M"') for h in HOSPITALS}
        )
        outcome = client.submit(job)
    finally:
        client.close()
    malignant = [
        r
        for rows in running.rows.values()
        for r in rows
        if r[running.header.index("diagnosis")] == "M"
    ]
    expected = np.array([[float(r[running.header.index(c)]) for c in columns] for r in malignant])
    assert outcome.outputs["count"].tolist() == [len(malignant)]
    np.testing.assert_allclose(outcome.outputs["sum"], expected.sum(axis=0), rtol=1e-6)
    assert all(
        r.ok and r.rounds > 0 and r.wire_bytes > r.payload_bytes for r in outcome.replies.values()
    )


def test_a_job_through_smpc_run_prints_json(running, tmp_path) -> None:
    job = {
        "protocol": "stats-count",
        "version": "3",
        "inputs": {
            h: {"columns": ["mean_radius"], "where": "mean_radius >= 15"} for h in HOSPITALS
        },
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "parties.cli",
            "run",
            "--config",
            str(running.members["analyst"].config_path),
            str(path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["outputs"]["count"] == [int((running.column("mean_radius") >= 15).sum())]


def _smpc(*words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parties.cli", *words], capture_output=True, text=True, timeout=120
    )


def test_statistic_shortcuts_match_numpy(running) -> None:
    config = str(running.members["analyst"].config_path)
    where = 'diagnosis == "B"'
    benign = [
        r
        for rows in running.rows.values()
        for r in rows
        if r[running.header.index("diagnosis")] == "B"
    ]
    area = np.array([float(r[running.header.index("mean_area")]) for r in benign])
    results = {
        word: json.loads(
            _smpc(
                word, "--config", config, "--columns", "mean_area", "--where", where, "--json"
            ).stdout
        )
        for word in ("count", "sum", "mean")
    }
    assert results["count"]["count"] == len(benign) and results["count"]["dropped"] is None
    np.testing.assert_allclose(results["sum"]["sum"], [area.sum()], rtol=1e-6)
    np.testing.assert_allclose(results["mean"]["mean"], [area.mean()], rtol=1e-6)
    assert results["mean"]["count"] == len(benign) and results["mean"]["suppressed"] is False


def test_health_reports_every_member(running) -> None:
    done = _smpc("health", "--config", str(running.members["analyst"].config_path))
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("hospital-a", "hospital-b", "hospital-c", "dealer"):
        assert any(
            line.split()[0] == name and line.split()[-1] == "serving"
            for line in done.stdout.splitlines()
        )


_SIGNAL_ON_ANOTHER_THREAD = """
import signal, threading
from parties.cli import service

stop = service._stop_event()
worker = threading.Thread(
    target=lambda: signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
)
threading.Timer(0.3, worker.start).start()
service._wait_for(stop)
print("stopped")
"""


def test_a_party_stops_on_sigterm_delivered_to_another_thread() -> None:
    # The kernel may hand a process's SIGTERM to any thread; the party must still stop.
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_ON_ANOTHER_THREAD],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"
