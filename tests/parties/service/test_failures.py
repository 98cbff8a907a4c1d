"""Failures between real processes: a killed party, a stalled party, the dealer down.

Every case ends the job at every party with an error naming the job, the
failed party and the kind of failure, reveals no output, and leaves the
survivors serving the next job.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from parties.client import Client
from smpc.errors import ProtocolAbort

pytestmark = pytest.mark.process

HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")


def _count(client: Client, parties=HOSPITALS, deadline_s: float = 30) -> int:
    job = client.job(
        "stats-count", "3", inputs={h: ["mean_radius"] for h in parties}, deadline_s=deadline_s
    )
    return int(client.submit(job).outputs["count"][0])


def _count_once_linked(client: Client, wait_s: float = 20) -> int:
    """_count, retried while a restarted party re-links with its peers."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _count(client)
        except ProtocolAbort:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _probe_in_background(client: Client, products: int, deadline_s: float):
    """Submit a long probe job on a thread; returns (thread, box with the outcome or error)."""
    job = client.job(
        "probe",
        "1",
        inputs={h: [] for h in HOSPITALS},
        params={"products": products},
        deadline_s=deadline_s,
    )
    box: dict[str, object] = {"job": job.job_id}

    def submit() -> None:
        try:
            box["outcome"] = client.submit(job)
        except Exception as exc:  # examined by the test
            box["error"] = exc

    thread = threading.Thread(target=submit)
    thread.start()
    return thread, box


@pytest.fixture
def client(running):
    c = Client(running.members["analyst"])
    yield c
    c.close()


def test_a_killed_party_aborts_the_job_and_a_restart_recovers(running, client) -> None:
    total = sum(len(r) for r in running.rows.values())
    assert _count(client) == total
    thread, box = _probe_in_background(client, products=20_000, deadline_s=60)
    time.sleep(1.5)
    running.stop("hospital-b", signal.SIGKILL)
    thread.join(timeout=60)
    assert "outcome" not in box  # no output revealed
    error = box["error"]
    assert isinstance(error, ProtocolAbort)
    assert box["job"] in str(error) and "hospital-b" in str(error)
    survivors = ("hospital-a", "hospital-c")
    assert _count(client, survivors) == len(running.rows["hospital-a"]) + len(
        running.rows["hospital-c"]
    )
    running.start("hospital-b")
    assert _count_once_linked(client) == total


def test_a_stalled_party_times_the_job_out(running, client) -> None:
    # The deadline leaves room for planning on a busy machine; the stop comes after it.
    thread, box = _probe_in_background(client, products=20_000, deadline_s=7)
    time.sleep(2.5)
    running.procs["hospital-c"].send_signal(signal.SIGSTOP)
    try:
        time.sleep(6)  # past the deadline
    finally:
        running.procs["hospital-c"].send_signal(signal.SIGCONT)
    thread.join(timeout=30)
    error = box["error"]
    assert isinstance(error, ProtocolAbort) and "outcome" not in box
    assert "hospital-c" in str(error) and box["job"] in str(error)
    time.sleep(1.0)
    assert _count(client) == sum(len(r) for r in running.rows.values())


def test_jobs_wait_for_a_dealer_that_is_down_then_fail_clearly(running, client) -> None:
    running.stop("dealer")
    try:
        health = subprocess.run(
            [
                sys.executable,
                "-m",
                "parties.cli",
                "health",
                "--config",
                str(running.members["analyst"].config_path),
                "--timeout",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (
            health.returncode == 1 and "dealer" in health.stdout and "unreachable" in health.stdout
        )
        start = time.monotonic()
        with pytest.raises(ProtocolAbort) as err:
            _count(client, deadline_s=3)
        assert time.monotonic() - start >= 2.5  # it waited for the dealer
        assert "dealer" in str(err.value)
    finally:
        running.start("dealer")
    assert _count(client) == sum(len(r) for r in running.rows.values())


ROGUE = """
import sys
from parties.service import socket_transport
from parties.cli.main import main

real_send = socket_transport.SocketTransport._send

def short_input(self, env, payload):  # this party's input messages are one element short
    if env.purpose == "input":
        payload = payload[:-1]
    return real_send(self, env, payload)

socket_transport.SocketTransport._send = short_input
sys.exit(main(["party", "--config", sys.argv[1]]))
"""


def test_a_malformed_message_from_a_party_process_aborts_the_job(running, client, tmp_path) -> None:
    running.stop("hospital-b")
    script = tmp_path / "rogue.py"
    script.write_text(ROGUE)
    rogue = subprocess.Popen(
        [sys.executable, str(script), str(running.members["hospital-b"].config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert rogue.stdout is not None and rogue.stdout.readline().startswith("ready")
        deadline = time.monotonic() + 20
        while True:
            try:
                _count(client)
                raise AssertionError("the rogue party's job should have failed")
            except ProtocolAbort as exc:
                if "malformed message" in str(exc) or time.monotonic() > deadline:
                    error = exc
                    break
                time.sleep(0.5)  # still re-linking with the rogue
        assert "malformed message" in str(error) and "hospital-b" in str(error)
    finally:
        rogue.terminate()
        rogue.wait(timeout=20)
        running.start("hospital-b")
    assert _count_once_linked(client) == sum(len(r) for r in running.rows.values())
