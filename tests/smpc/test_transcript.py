"""Per-channel transcripts: both ends of every channel hash the same bytes."""

from __future__ import annotations

import numpy as np
import pytest

from smpc.errors import TranscriptMismatchError
from smpc.local import LocalFederation
from smpc.transcript import Envelope, Transcript, check_channels


def _job(rt, _):
    x = rt.input(np.arange(6.0) if rt.party == 0 else None, 0, (6,))
    y = rt.mul(x, x)
    return rt.open(y, to=[1])


@pytest.mark.parametrize("n", [2, 3, 5])
def test_sent_digest_of_i_equals_received_digest_of_j(n: int) -> None:
    res = LocalFederation(n).run(_job, inputs=[None] * n)
    transcripts = res.transcripts
    for i in range(n):
        for j in range(n):
            if i != j:
                assert transcripts[i].sent_digest(j) == transcripts[j].received_digest(i)
    check_channels(transcripts)


def test_a_changed_message_breaks_the_channel_check() -> None:
    res = LocalFederation(3).run(_job, inputs=[None] * 3)
    tampered = res.transcripts[2]
    tampered.record(Envelope(res.job, 99, 0, 2, 0, "open"), np.zeros(1, dtype=np.uint64))
    with pytest.raises(TranscriptMismatchError, match="party 2"):
        check_channels(res.transcripts)


def test_digests_depend_on_job_payload_and_header() -> None:
    payload = np.arange(4, dtype=np.uint64)

    def digest(job: str, purpose: str, data: np.ndarray) -> str:
        t = Transcript(job, 0, 2)
        t.record(Envelope(job, 1, 0, 0, 1, purpose), data)
        return t.sent_digest(1)

    base = digest("job", "open", payload)
    assert base != digest("job2", "open", payload)
    assert base != digest("job", "beaver", payload)
    assert base != digest("job", "open", payload + np.uint64(1))
    assert base == digest("job", "open", payload.copy())


def test_jobs_run_without_transcripts_report_none() -> None:
    res = LocalFederation(2, transcripts=False).run(_job, inputs=[None] * 2)
    assert res.transcripts == [None, None]


def test_a_channel_digest_is_sha256_of_the_documented_encoding() -> None:
    # the oracle: the layout written out by hand from the module's docstrings
    import hashlib
    import struct

    job, purpose = "job-7", "beaver"
    first = np.arange(3, dtype="<u8").reshape(3, 1)
    second = np.arange(12, dtype="<i4").reshape(3, 4)[:, ::2]  # not contiguous
    expected = hashlib.sha256(b"smpc/transcript/v1")
    expected.update(struct.pack(">H", len(job)) + job.encode() + struct.pack(">HH", 1, 2))
    for seq, data in enumerate((first, second)):
        dtype = data.dtype.str.encode()
        expected.update(
            struct.pack(">QIHH", 4, seq, 1, 2)
            + struct.pack(">H", len(purpose))
            + purpose.encode()
            + struct.pack(">B", len(dtype))
            + dtype
            + struct.pack(">Q", data.size * data.itemsize)
        )
        expected.update(data.copy(order="C").tobytes())
    sender, receiver = Transcript(job, 1, 3), Transcript(job, 2, 3)
    for seq, data in enumerate((first, second)):
        sender.record(Envelope(job, 4, seq, 1, 2, purpose), data)
        receiver.record(Envelope(job, 4, seq, 1, 2, purpose), data)
    assert sender.sent_digest(2) == expected.hexdigest()
    assert receiver.received_digest(1) == expected.hexdigest()
