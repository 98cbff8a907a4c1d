"""Exceptions of the ledger logic, all below :class:`smpc.errors.SMPCError`."""

from __future__ import annotations

from smpc.errors import SMPCError


class ChainError(SMPCError):
    """Root of every error raised by ``smpc.chain``."""


class ChainEncodingError(ChainError, ValueError):
    """Bytes are not the canonical encoding of a value, or a value cannot be encoded."""


class RecordError(ChainError, ValueError):
    """A record's fields break its rules (unknown scope, bad length, unsorted parties, ...)."""


class ChainStoreError(ChainError):
    """A store was asked to do something that would break the chain (e.g. skip a height)."""


class EquivocationError(ChainError):
    """An authority was asked to seal a second, different block at a height it already sealed."""


class ChainVerificationError(ChainError):
    """A chain breaks a rule; names the height, the field and the reason."""

    def __init__(self, height: int, field: str, reason: str) -> None:
        self.height = height
        self.field = field
        self.reason = reason
        super().__init__(f"block {height}: {field}: {reason}")
