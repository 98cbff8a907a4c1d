"""The errors a data source raises: they name column and row, never a value."""

from __future__ import annotations

from smpc.errors import SMPCError


class DataSourceError(SMPCError, ValueError):
    """Local data, or a job's request for it, is unusable; names column and row, never a value."""


class FilterSyntaxError(DataSourceError):
    """A filter string is malformed; ``position`` is the 0-based offset where parsing failed."""

    def __init__(self, reason: str, text: str, position: int) -> None:
        self.position = position
        after = text[max(0, position - 24) : position].lstrip()
        where = f" (after {after!r})" if after else ""
        super().__init__(f"malformed filter at character {position + 1}{where}: {reason}")


__all__ = ["DataSourceError", "FilterSyntaxError"]
