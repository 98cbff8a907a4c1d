"""Per-channel transcripts: both ends of every channel hash the same bytes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


_LAYOUTS = st.sampled_from(["contiguous", "strided", "transposed", "read-only"])


@settings(max_examples=60)
@given(
    dtype=st.sampled_from(["<u8", "<i8", ">u8", "|u1", "|b1", "<i4", ">i4"]),
    shape=st.tuples(st.integers(0, 4), st.integers(1, 5)),
    layout=_LAYOUTS,
    purpose=st.text(max_size=12),
    round_=st.integers(0, 2**40),
    seq=st.integers(0, 2**31),
)
def test_any_payload_is_hashed_as_its_documented_header_and_c_order_bytes(
    dtype: str, shape: tuple[int, int], layout: str, purpose: str, round_: int, seq: int
) -> None:
    """Any dtype, byte order, layout and write flag: the header's fields, then the C-order bytes."""
    import hashlib
    import struct

    base = np.arange(shape[0] * shape[1] * 2, dtype=np.int64).astype(dtype)
    data = base.reshape(shape[0], 2 * shape[1])[:, : shape[1]]  # a contiguous or strided view
    if layout == "contiguous":
        data = np.ascontiguousarray(data)
    elif layout == "transposed":
        data = np.ascontiguousarray(data).T
    elif layout == "read-only":
        data = np.ascontiguousarray(data)
        data.flags.writeable = False
    job = "job-h"
    expected = hashlib.sha256(b"smpc/transcript/v1")
    expected.update(struct.pack(">H", len(job)) + job.encode() + struct.pack(">HH", 0, 1))
    text, kind = purpose.encode(), data.dtype.str.encode()
    expected.update(
        struct.pack(">QIHH", round_, seq, 0, 1)
        + struct.pack(">H", len(text))
        + text
        + struct.pack(">B", len(kind))
        + kind
        + struct.pack(">Q", data.size * data.itemsize)
    )
    expected.update(data.copy(order="C").tobytes())
    transcript = Transcript(job, 0, 2)
    transcript.record(Envelope(job, round_, seq, 0, 1, purpose), data)
    assert transcript.sent_digest(1) == expected.hexdigest()
