"""Products of matrices two parties hold in the clear, secret-shared among all; two rounds.

Holder h knows X_h (m x k) and the owner knows W_h (k x n), both in the
clear (a hospital's own rows; a model owner's weights). Sharing both first
and opening the Beaver maskings would cost every party m*k words to every
peer; instead, with a held triple from the dealer (A_h known to h, B_h known
to the owner, additive shares of C_h = A_h @ B_h at every party):

1. The owner sends h E_h = W_h - B_h; every other message of this round
   is empty, so that the round tells each party that every other one has
   started the job (a party refuses a large message for a job it has not
   started yet).
2. h sends the owner D_h = X_h - A_h; nobody else sends anything.
3. X_h @ W_h = D_h @ W_h + A_h @ E_h + C_h, so the owner's share is
   D_h @ W_h + its C share, h's is A_h @ E_h + its C share, and every other
   party's is its C share.

All pairs share both rounds. A holder can expand its mask A_h during the
first, while the owner's small E_h is on its way.

Security (semi-honest parties, any coalition short of all of them, a
dealer that colludes with none): the argument of input sharing. A_h is
uniform in Z_2^64 and known only to h (and the dealer), so D_h is uniform
to every coalition without h; likewise E_h to every coalition without the
owner. C_h's shares come from every party's seed but the first's, whose
share the dealer sets to A_h @ B_h minus the others': a coalition lacking
any one party's share sees uniform shares, whoever holds A_h and B_h. The
result is an ordinary additive sharing, opened later only under fresh
masks. Bytes: h sends m*k words to the owner only, the owner k*n to h.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from smpc.errors import ShapeMismatchError
from smpc.transport import Expect

if TYPE_CHECKING:
    from smpc.runtime import Runtime

ROUNDS = 2
"""Rounds of :func:`held_products`, for any number of pairs and sizes."""

_U64 = np.dtype(np.uint64)
_EMPTY = np.empty(0, dtype=_U64)


def held_products(
    rt: Runtime,
    owner: int,
    holders: Sequence[int],
    shapes: Sequence[tuple[int, int, int]],
    mine: np.ndarray | Sequence[np.ndarray] | None,
) -> list[np.ndarray]:
    """This party's shares of X_h @ W_h for every holder h, in ``holders`` order; two rounds.

    ``shapes`` gives (m, k, n) per holder. A holder passes its X_h (ring
    values, m x k); the owner passes every W_h (ring values, k x n each, in
    ``holders`` order); every other party passes None. Holders are distinct
    and none is the owner.
    """
    owner = rt.transport.check_party(owner)
    holders = [rt.transport.check_party(h) for h in holders]
    if len(set(holders)) != len(holders) or owner in holders:
        raise ValueError("the holders are distinct parties, and none is the owner")
    if len(shapes) != len(holders):
        raise ValueError("give one (m, k, n) per holder")
    me = rt.party
    mine_list: list[np.ndarray] = []
    if me == owner or me in holders:
        if mine is None:
            raise ValueError(f"party {me} must pass what it holds of the product")
        mine_list = list(mine) if me == owner else [np.asarray(mine)]
        wanted = [(k, n) for _, k, n in shapes] if me == owner else [shapes[holders.index(me)][:2]]
        got = [tuple(v.shape) for v in mine_list]
        if got != wanted or any(v.dtype != _U64 for v in mine_list):
            raise ShapeMismatchError(
                f"party {me} holds uint64 arrays of shapes {got}, not {wanted}"
            )
    triples: list[tuple[np.ndarray, ...]] = []

    def take(upto: int) -> None:
        """Consume the held triples in plan order, up to index ``upto``."""
        while len(triples) <= upto:
            m, k, n = shapes[len(triples)]
            triples.append(rt.prep.held_triple(m, k, n, holders[len(triples)], owner).consume())

    ring = rt.ring
    peers = rt.transport.peers
    # Round 1: the owner's masked weights, and an empty message between every other pair.
    take(len(holders) - 1 if me == owner else -1)
    outgoing = {p: _EMPTY for p in peers}
    incoming = {p: Expect(_U64, 0) for p in peers}
    if me == owner:
        for h, w, (_, b, _) in zip(holders, mine_list, triples, strict=True):
            outgoing[h] = ring.sub(w, b).reshape(-1)
    elif me in holders:
        _, k, n = shapes[holders.index(me)]
        incoming[owner] = Expect(_U64, k * n)
    masked_weights = rt.transport.exchange(outgoing, incoming, "held-product")
    # Round 2: each holder's masked rows, to the owner alone (its own mask taken first; the
    # first party need not wait for the dealer's corrections of the other pairs' triples).
    outgoing, incoming = {}, {}
    if me == owner:
        incoming = {h: Expect(_U64, m * k) for h, (m, k, _) in zip(holders, shapes, strict=True)}
    elif me in holders:
        take(holders.index(me))
        outgoing[owner] = ring.sub(mine_list[0], triples[holders.index(me)][0]).reshape(-1)
    masked_rows = rt.transport.exchange(outgoing, incoming, "held-product")
    take(len(holders) - 1)
    out = []
    for i, (h, (a, _, c), (m, k, n)) in enumerate(zip(holders, triples, shapes, strict=True)):
        if me == owner:
            out.append(ring.add(c, ring.matmul(masked_rows[h].reshape(m, k), mine_list[i])))
        elif me == h:
            out.append(ring.add(c, ring.matmul(a, masked_weights[owner].reshape(k, n))))
        else:
            out.append(c)
    return out
