"""Real party processes over gRPC + mutual TLS on distinct loopback addresses."""

from __future__ import annotations

import numpy as np
import pytest

from parties.local.process_federation import ProcessFederation
from protocols.operations import mul_matmul_open
from smpc.errors import JobReplayError

pytestmark = pytest.mark.process


@pytest.mark.parametrize("n", [3, 5])
def test_processes_compute_mul_matmul_open_like_numpy(make_federation, n: int) -> None:
    members = [
        m for m in make_federation([f"hospital-{c}" for c in "abcde"[:n]]) if m.role == "hospital"
    ]
    hosts = {m.address.rsplit(":", 1)[0] for m in members}
    assert len(hosts) == n  # each party on its own loopback address, as on its own host
    rng = np.random.default_rng(n)
    data = [rng.uniform(-30, 30, (20, 12)) for _ in range(n)]
    with ProcessFederation(members) as fed:
        assert all(p.pid != 0 and p.is_alive() for p in fed.processes)
        res = fed.run(mul_matmul_open, data)
        x, y, w = data[0], data[1], data[-1][:12, :5]
        for product, matrix, total in res.results:
            np.testing.assert_allclose(product, x * y, atol=2e-3)
            np.testing.assert_allclose(matrix, x @ w, atol=2e-2)
            np.testing.assert_allclose(total, x + y, atol=1e-4)
        for i, ri in enumerate(res.reports):
            for j, rj in enumerate(res.reports):
                if i != j:
                    assert ri.transcript["sent"][j] == rj.transcript["received"][i]
            assert ri.wire_bytes_sent > ri.bytes_sent
        # the same processes serve a second job; a repeated job id is refused
        again = fed.run(mul_matmul_open, data, job="second")
        np.testing.assert_allclose(again.results[0][2], x + y, atol=1e-4)
        with pytest.raises(JobReplayError):
            fed.run(mul_matmul_open, data, job="second")
