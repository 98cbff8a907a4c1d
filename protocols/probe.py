"""A federation self-test: chained fixed-point products on public constants, no patient data.

IT staff run it to check that every party, the dealer and the links work and
to measure round latency; tests use it as a job that takes a chosen number of
rounds. It reveals only its result, 1.0001 * 0.9999^rounds/2, to the recipients.
"""

from __future__ import annotations

import numpy as np

from protocols.registry import JobContext, ProtocolSpec
from smpc.runtime import Runtime
from smpc.shares import SharedTensor


def probe(rt: Runtime, ctx: JobContext) -> dict[str, SharedTensor]:
    """Output ``value``; 2 rounds per product, ``params["products"]`` products (default 1)."""
    products = int(ctx.params.get("products", 1))
    if not 0 <= products <= 100_000:
        raise ValueError("products must be between 0 and 100000")
    x = rt.input(np.array([1.0001]) if rt.party == 0 else None, 0, (1,))
    y = rt.input(
        np.array([0.9999]) if rt.party == rt.n_parties - 1 else None, rt.n_parties - 1, (1,)
    )
    for _ in range(products):
        x = rt.mul(x, y)
    return {"value": x}


PROTOCOLS = (
    ProtocolSpec("probe", "1", probe, ("value",), "a product of public constants; no data"),
)
