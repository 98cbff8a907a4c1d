"""A federation self-test: chained fixed-point products on public constants, no patient data.

IT staff run it to check that every party, the dealer and the links work and
to measure round latency; tests use it as a job that takes a chosen number of
rounds. It reveals only its result, 1.0001 * 0.9999^rounds/2, to the recipients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.context import JobContext, Outcome, Params, ProtocolSpec, is_integer
from smpc.runtime import Runtime

MAX_PRODUCTS = 100_000


@dataclass(frozen=True)
class ProbeParams(Params):
    """``products``: how many chained products to compute, 0 to 100000."""

    products: int = 1

    def __post_init__(self) -> None:
        n = self.products
        if not is_integer(n) or not 0 <= n <= MAX_PRODUCTS:
            raise self.invalid("products", f"must be an integer from 0 to {MAX_PRODUCTS}")
        object.__setattr__(self, "products", int(n))


def probe(rt: Runtime, ctx: JobContext) -> Outcome:
    """Output ``value``; 2 rounds per product, ``params["products"]`` products (default 1)."""
    products = ProbeParams.from_mapping(ctx.params).products
    x = rt.input(np.array([1.0001]) if rt.party == 0 else None, 0, (1,))
    y = rt.input(
        np.array([0.9999]) if rt.party == rt.n_parties - 1 else None, rt.n_parties - 1, (1,)
    )
    for _ in range(products):
        x = rt.mul(x, y)
    return Outcome({"value": x})


PROBE = ProtocolSpec(
    "probe", "1", probe, ("value",), "a product of public constants; no data", params=ProbeParams
)
PROTOCOLS = (PROBE,)
