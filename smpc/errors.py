"""The project's exceptions: one root, one documented subclass per kind of failure.

Messages say what went wrong and what to change. They never carry a share, a
seed, a key or an input value.
"""

from __future__ import annotations


class SMPCError(Exception):
    """Root of every error raised by the engine."""


class FixedPointRangeError(SMPCError, ValueError):
    """A value is NaN, infinite, or outside the fixed-point range."""


class ShapeMismatchError(SMPCError, ValueError):
    """Operands or messages do not have the shapes the operation needs."""


class UnknownPartyError(SMPCError, ValueError):
    """A party index or name is not part of this job."""


class PreprocessingError(SMPCError):
    """Correlated randomness was misused or does not match the plan."""


class PreprocessingExhausted(PreprocessingError):
    """A protocol asked for more correlated randomness than its plan declared."""


class PlanMismatchError(PreprocessingError):
    """A request differs from the plan entry at the same position."""


class ReuseError(PreprocessingError):
    """A triple, tuple or random stream was asked for a second time."""


class JobReplayError(SMPCError):
    """A job id that was already seen is refused."""


class ProtocolAbort(SMPCError):
    """A job was aborted; names the job, the party and the kind of failure."""

    def __init__(self, job: str, party: str, kind: str, detail: str = "") -> None:
        self.job = job
        self.party = party
        self.kind = kind
        self.detail = detail
        text = f"job {job} aborted: party {party}: {kind}"
        super().__init__(f"{text} ({detail})" if detail else text)


class MalformedMessageError(ProtocolAbort):
    """A peer sent a message of the wrong round, purpose, type or size."""


class PeerTimeoutError(ProtocolAbort):
    """A peer did not send what it owed before the job's deadline."""


class PeerAuthenticationError(SMPCError):
    """A peer could not be authenticated, or claimed an identity it does not hold."""


class TranscriptMismatchError(SMPCError):
    """What one party hashed as sent differs from what its peer hashed as received."""
