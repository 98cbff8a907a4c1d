"""What a party process sets up before it reports ready, so its first job runs as its tenth.

Measured on freshly started processes (``python -m benchmarks.job_path``),
a first job otherwise paid, at each party, for work that later jobs find
done: the data-plane connections to its peers (dialled once the process
was up, so a job submitted as soon as every party said ``ready`` waited for
their TCP and TLS handshakes), the channel to the dealer (connected by the
first provisioning), the crypto library's first use of the job-signature
checks, reading the installed protocols, and the first run of each step of
a job in the process (dry run, seed expansion, corrections, transcripts).
:func:`warm` (called as a node starts) does the first four; the service
runs :func:`warm_job`, a count job on zeros among in-process parties, once
its ring kernels are loaded (:mod:`smpc.warm`), before it starts its node,
and :func:`warm_patients` where consent keys patients by a column. Last,
:func:`settle` keeps full garbage collections, which paused jobs, from
walking what starting loaded. Nothing here reads data: the checks run on
this member's own certificate and a throwaway key, the patient kernels on
made-up identifiers.

Peers need not be up: one that refuses the connection is not waited for
(its link is dialled when it comes, as always), and one that answers is
waited for at most :data:`CONNECT_S`.
"""

from __future__ import annotations

import gc
import logging
import secrets
import time
from concurrent import futures

import numpy as np

from parties.jobs.spec import warm_verification
from parties.ledger.patients import PatientKeys
from parties.service.dataplane import DataPlane
from parties.service.dealer_service import DealerLink
from parties.service.mesh import Mesh
from protocols import statistics
from protocols.registry import installed
from smpc.chain import patients
from smpc.local import LocalFederation

log = logging.getLogger(__name__)

CONNECT_S = 1.0
"""The longest a starting party waits for the data-plane links of peers that are up."""
WARM_ROWS = 8
"""Rows of zeros each party of :func:`warm_job` holds."""


def warm(mesh: Mesh, plane: DataPlane, dealer: DealerLink, timeout: float = CONNECT_S) -> None:
    """Connect to the dealer and the peers that are up, and run each first-use check once."""
    start = time.perf_counter()
    dealer.connect()
    installed()
    warm_verification(mesh.member)
    missing = connect_peers(mesh, plane, timeout)
    log.info(
        "%s: warmed up in %.2f s%s",
        mesh.name,
        time.perf_counter() - start,
        f"; not linked yet with {', '.join(missing)}" if missing else "",
    )


def connect_peers(mesh: Mesh, plane: DataPlane, timeout: float = CONNECT_S) -> list[str]:
    """Open the data-plane link to every computing peer that is up; the peers not linked.

    Each peer gets one health call that fails at once if it is not
    listening. One that answers is up: its link is dialled now if this
    member dials it, and if the peer dials, the call itself tells it to
    (its node's ``on_health``). Then the links of the peers that answered
    are waited for, together at most ``timeout`` seconds.
    """
    names = [p.name for p in mesh.member.computing_peers]
    if not names:
        return []
    deadline = time.monotonic() + timeout

    def answers(peer: str) -> bool:
        try:
            mesh.locate(peer, timeout, wait=False)
        except OSError:
            return False
        plane.need(peer)
        return True

    with futures.ThreadPoolExecutor(len(names), thread_name_prefix="warm-link") as pool:
        up = [p for p, ok in zip(names, pool.map(answers, names), strict=True) if ok]
    plane.wait_connected(max(0.0, deadline - time.monotonic()), up)
    return [p for p in names if not plane.wait_connected(0.0, [p])]


def warm_job(parties: int, rows: int = WARM_ROWS) -> int:
    """Run a count job over ``rows`` zeros at each of ``parties`` in-process parties; the count.

    The job takes every step a party's job takes in this process (a dry run,
    the seed-based dealer's seeds and corrections, each party's expansion of
    its preprocessing, transcripts, the protocol's rounds), so each runs its
    one-time setup here; only the transport is in memory.
    """
    zeros = [np.zeros((rows, 1)) for _ in range(parties)]
    ctxs = statistics.contexts(zeros, ("x",), min_cell_size=1)
    summary, _ = statistics.run_local(LocalFederation(parties), "stats-count", ctxs)
    return int(summary["count"])


def warm_patients() -> int:
    """Load the patient ledger's kernels with two made-up identifiers; the leaves they make.

    A hospital with a patient column keys each selected patient by its
    identifier (:class:`~parties.ledger.patients.PatientKeys`) and commits
    the job's patients as sorted leaves (:func:`smpc.chain.patients.leaves`);
    their Numba kernels took 25-35 ms to load at the first such job. The
    secret and the job key are throwaway random bytes, the identifiers no
    patient's.
    """
    keys = PatientKeys().array(secrets.token_bytes(32), np.array(["warm-up-0", "warm-up-1"]))
    leaves = patients.leaves(secrets.token_bytes(patients.KEY_SIZE), keys)
    return len(leaves) // patients.LEAF_SIZE


def settle() -> None:
    """Collect what starting left behind, then leave every object still alive out of later
    full collections (:func:`gc.freeze`); the last step before a service reports ready.

    A party holds about 140,000 objects once its kernels, protocols and
    channels are loaded. Each full collection walked them all, 50-130 ms
    under load, and one came every second or so while jobs ran: a pause in
    whichever job it hit, the first one included. Frozen, they are not
    walked again (0.3 ms a full collection); what jobs allocate is collected
    as before.
    """
    gc.collect()
    gc.freeze()
