"""The job-id guard: a repeat is refused, expired ids are forgotten, threads share it."""

from __future__ import annotations

import threading

import pytest

from smpc.errors import JobReplayError
from smpc.jobs import SeenJobs


def test_a_repeated_job_id_is_refused() -> None:
    seen = SeenJobs()
    seen.admit("job-a")
    seen.admit("job-b")
    with pytest.raises(JobReplayError):
        seen.admit("job-a")
    assert "job-a" in seen
    assert "job-c" not in seen
    assert len(seen) == 2
    SeenJobs().admit("job-a")  # guards are independent


def test_only_ids_past_their_time_are_forgotten() -> None:
    seen = SeenJobs()
    seen.admit("early", until_ms=100)
    seen.admit("late", until_ms=200)
    seen.admit("kept")
    seen.forget_expired(100)
    assert "early" not in seen
    assert "late" in seen
    assert "kept" in seen
    seen.admit("early", until_ms=300)
    with pytest.raises(JobReplayError):
        seen.admit("late")


def test_one_thread_wins_a_race_for_an_id() -> None:
    seen = SeenJobs()
    wins: list[int] = []
    start = threading.Barrier(8)

    def claim(i: int) -> None:
        start.wait()
        try:
            seen.admit("job")
        except JobReplayError:
            return
        wins.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
