"""``smpc bench``: per-operation latency of the engine, in memory and between party processes.

``operations`` lists what can be measured (one entry per operation),
``measure`` times the entries, ``targets`` holds the goals the project set,
``output`` prints, saves and plots the results.
"""

SMALL_REPETITIONS = 200
"""Timed repetitions below ``MEDIUM_FROM`` elements, after a tenth as many warm-up ones."""
MEDIUM_FROM = 10**4
MEDIUM_REPETITIONS = 50
"""Timed repetitions from ``MEDIUM_FROM`` to ``LARGE_FROM`` elements (a tenth to warm up)."""
LARGE_FROM = 10**5
LARGE_REPETITIONS = 5
"""Runs from ``LARGE_FROM`` elements on; the median discards a slow first run, so no warm-up."""
