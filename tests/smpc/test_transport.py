"""Transport accounting and message checks in the base class."""

from __future__ import annotations

import numpy as np
import pytest

from smpc.errors import MalformedMessageError, PeerTimeoutError, UnknownPartyError
from smpc.transcript import Envelope
from smpc.transport import Expect, InMemoryTransport, LocalNetwork

U64 = np.dtype(np.uint64)


def _pair(deadline: float | None = None) -> tuple[InMemoryTransport, InMemoryTransport]:
    net = LocalNetwork(2)
    return (
        InMemoryTransport(net, "job", 0, deadline=deadline),
        InMemoryTransport(net, "job", 1, deadline=deadline),
    )


def test_exchange_counts_rounds_and_payload_bytes() -> None:
    a, b = _pair()
    payload = np.arange(10, dtype=np.uint64)
    a.exchange({1: payload}, {}, "open")
    got = b.exchange({}, {0: Expect(U64, 10)}, "open")
    np.testing.assert_array_equal(got[0], payload)
    assert (a.rounds, a.bytes_sent, a.messages_sent) == (1, payload.nbytes, 1)
    assert (b.rounds, b.bytes_received) == (1, payload.nbytes)


def test_received_payloads_cannot_be_modified() -> None:
    a, b = _pair()
    a.exchange({1: np.zeros(3, dtype=np.uint64)}, {}, "open")
    got = b.exchange({}, {0: Expect(U64, 3)}, "open")[0]
    with pytest.raises(ValueError, match="read-only"):
        got[0] = 1


@pytest.mark.parametrize(
    ("sent", "purpose", "match"),
    [
        (np.zeros(4, dtype=np.uint64), "open", "payload of 4"),
        (np.zeros(3, dtype=np.uint8), "open", "uint8"),
        (np.zeros(3, dtype=np.uint64), "beaver", "purpose"),
    ],
)
def test_malformed_messages_name_the_sender(sent: np.ndarray, purpose: str, match: str) -> None:
    a, b = _pair()
    a.exchange({1: sent}, {}, purpose)
    with pytest.raises(MalformedMessageError, match=match) as err:
        b.exchange({}, {0: Expect(U64, 3)}, "open")
    assert err.value.party == "party 0" and err.value.job == "job"


def test_messages_from_another_round_are_refused() -> None:
    a, b = _pair()
    b.rounds = 4  # b believes it is further along than a
    a.exchange({1: np.zeros(1, dtype=np.uint64)}, {}, "open")
    with pytest.raises(MalformedMessageError, match="out of order"):
        b.exchange({}, {0: Expect(U64, 1)}, "open")


def test_forged_envelopes_are_refused() -> None:
    _, b = _pair()
    b.network.put(Envelope("other-job", 1, 0, 0, 1, "open"), np.zeros(1, dtype=np.uint64))
    with pytest.raises(MalformedMessageError, match="another job"):
        b.exchange({}, {0: Expect(U64, 1)}, "open")


def test_unknown_peers_are_refused() -> None:
    a, _ = _pair()
    with pytest.raises(UnknownPartyError):
        a.exchange({7: np.zeros(1, dtype=np.uint64)}, {}, "open")
    with pytest.raises(UnknownPartyError):
        a.exchange({0: np.zeros(1, dtype=np.uint64)}, {}, "open")


def test_a_missing_message_times_out_at_the_deadline() -> None:
    import time

    _, b = _pair(deadline=time.monotonic() + 0.2)
    with pytest.raises(PeerTimeoutError, match="party 0"):
        b.exchange({}, {0: Expect(U64, 1)}, "open")
