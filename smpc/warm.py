"""Compile (or load from Numba's cache) every ring kernel before the first job needs it.

Numba compiles a kernel on its first call, once per argument types; a kernel
over a tuple of shares compiles once per number of parties. ``cache=True``
keeps the machine code on disk, but each process still loads it on first
use. A service that calls :func:`warm` before it reports ready serves its
first job as fast as its tenth. ``python -m smpc.warm`` fills the cache (run
by ``make install``); the values used are zeros, never data.
"""

from __future__ import annotations

import argparse

import numpy as np
from numba.core.registry import CPUDispatcher

from smpc import ring

MAX_PARTIES = 10
"""The largest federation the design targets, and the default of ``python -m smpc.warm``."""


def kernels() -> dict[str, CPUDispatcher]:
    """The compiled kernels of :mod:`smpc.ring`, by name."""
    return {k: v for k, v in vars(ring).items() if isinstance(v, CPUDispatcher)}


def warm(max_parties: int = MAX_PARTIES) -> None:
    """Call every ring kernel with the argument types jobs of 2..``max_parties`` parties use."""
    if not 2 <= max_parties <= 64:
        raise ValueError(f"max_parties must be in 2..64, got {max_parties}")
    z = np.zeros(4, dtype=np.uint64)
    m = np.zeros((2, 2), dtype=np.uint64)
    ring.from_float(np.zeros(4), 65536.0, 2.0**46)
    ring.add(z, z)
    ring.sub(z, z)
    ring.neg(z)
    ring.mul(z, z)
    ring.total(z)
    ring.sum_axis0(m)
    ring.matmul(m, m)
    ring.beaver_masked(z, z, z, z)
    ring.truncation_masked(z, z, True)
    ring.comparison_leaves(z, z, True)
    ring.comparison_bit(z[:1], z, z, z[:1], True)
    ring.tree_masked(z, z, z[:2], z[:2])
    ring.xor_public_bit(z, z, True)
    ring.dabit_product(z, z, z)
    for n in range(2, max_parties + 1):
        every, others = [z] * n, [z] * (n - 1)
        ring.sum_shares(every)
        ring.xor_shares(every)
        ring.triple_correction(every, every, others)
        ring.binary_triple_correction(every, every, others)
        ring.truncation_corrections(every, others, others, 16)
        ring.comparison_corrections(every, [z[:1]] * n, others, others)
        ring.beaver_product([np.zeros(8, dtype=np.uint64)] * n, z, z, z, z, True)
        ring.truncation_finish(every, z, z, 16, True)
        ring.tree_combine([z] * n, z[:2], z[:2], z[:2], z[:2], True)
        ring.dabit_open([z[:1]] * n, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description="fill Numba's cache with the ring kernels")
    parser.add_argument(
        "--max-parties", type=int, default=MAX_PARTIES, help="largest job to compile for"
    )
    args = parser.parse_args()
    try:
        warm(args.max_parties)
    except ValueError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main()
