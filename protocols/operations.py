"""Single-operation protocols: one engine operation at a time, for benchmarks and process tests.

They are module-level functions so that party processes can import them by
name. Each reveals what it returns to every party, nothing else.
"""

from __future__ import annotations

import numpy as np


def mul_matmul_open(rt, mine):
    """Party 0's x times party 1's y elementwise, x @ w (w from the last party), and x + y."""
    x = rt.input(mine if rt.party == 0 else None, 0, (20, 12))
    y = rt.input(mine if rt.party == 1 else None, 1, (20, 12))
    w_shape = (12, 5)
    last = rt.n_parties - 1
    w = rt.input(mine[:12, :5] if rt.party == last else None, last, w_shape)
    return rt.open(rt.mul(x, y)), rt.open(rt.matmul(x, w)), rt.open(x + y)


def chained_products(rt, args):
    """``count`` chained fixed-point products of one element; per-product latency at each party."""
    import time

    count = args["count"]
    x = rt.input(np.array([1.0001]) if rt.party == 0 else None, 0, (1,))
    y = rt.input(np.array([0.9999]) if rt.party == 1 else None, 1, (1,))
    times = np.empty(count)
    for i in range(count):
        start = time.perf_counter()
        x = rt.mul(x, y)
        times[i] = time.perf_counter() - start
    return times, rt.open(x)


def exchange_rounds(rt, args):
    """``count`` bare rounds, each party sending one element to every peer; per-round latency."""
    import time

    count = args["count"]
    payload = np.arange(1, dtype=np.uint64)
    times = np.empty(count)
    for i in range(count):
        start = time.perf_counter()
        rt.exchange_all(payload, "open")
        times[i] = time.perf_counter() - start
    return times


def big_product(rt, args):
    """One fixed-point product of ``size`` elements from parties 0 and 1; returns its time."""
    import time

    size = args["size"]
    rng = np.random.default_rng(rt.party)
    x = rt.input(rng.uniform(-100, 100, size) if rt.party == 0 else None, 0, (size,))
    y = rt.input(rng.uniform(-100, 100, size) if rt.party == 1 else None, 1, (size,))
    start = time.perf_counter()
    z = rt.mul(x, y)
    seconds = time.perf_counter() - start
    return seconds, rt.open(z.sum())
