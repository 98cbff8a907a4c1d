"""Protocols by name and pinned version: the only code a job can ask a party to run.

A protocol is a :class:`~protocols.context.ProtocolSpec`: ``run(rt, ctx)``
computes on secret shares and returns an :class:`~protocols.context.Outcome`
with its declared outputs still shared; the party layer reveals each output
only to the recipients the job names. Built-in protocols are listed here;
third-party ones arrive as Python entry points in the group
``smpc.protocols`` (each a ``ProtocolSpec``), so a hospital runs only code it
installed. The types live in :mod:`protocols.context`, below every protocol,
and are exported here too.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from protocols import glm, logistic, probe, statistics
from protocols.context import (
    JobContext,
    JobParamsError,
    NoParams,
    Outcome,
    Params,
    ProtocolSpec,
    UnknownProtocolError,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "JobContext",
    "JobParamsError",
    "NoParams",
    "Outcome",
    "Params",
    "ProtocolSpec",
    "UnknownProtocolError",
    "installed",
    "lookup",
]

ENTRY_POINT_GROUP = "smpc.protocols"


@functools.cache
def installed() -> dict[str, ProtocolSpec]:
    """Every protocol installed here: the built-ins and the entry points (read once)."""
    builtin = (*probe.PROTOCOLS, *logistic.PROTOCOLS, *statistics.PROTOCOLS, *glm.PROTOCOLS)
    found = {spec.name: spec for spec in builtin}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        spec = entry.load()
        if not isinstance(spec, ProtocolSpec):
            raise UnknownProtocolError(f"entry point {entry.name!r} is not a ProtocolSpec")
        found[spec.name] = spec
    return found


def lookup(name: str, version: str) -> ProtocolSpec:
    """The installed protocol ``name`` at exactly ``version``."""
    spec = installed().get(name)
    if spec is None:
        raise UnknownProtocolError(f"protocol {name!r} is not installed here")
    if spec.version != version:
        raise UnknownProtocolError(
            f"protocol {name!r} is installed at version {spec.version}, the job asks for {version}"
        )
    return spec
