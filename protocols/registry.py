"""Protocols by name and pinned version: the only code a job can ask a party to run.

A protocol is ``run(rt, ctx) -> {output name: SharedTensor}``: it computes on
secret shares and returns its declared outputs still shared; the party layer
reveals each output only to the recipients the job names. Built-in protocols
are listed here; third-party ones arrive as Python entry points in the group
``smpc.protocols`` (each a ``ProtocolSpec``), so a hospital runs only code it
installed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import numpy as np

from smpc.errors import SMPCError
from smpc.runtime import Runtime
from smpc.shares import SharedTensor

ENTRY_POINT_GROUP = "smpc.protocols"


class UnknownProtocolError(SMPCError, LookupError):
    """A job names a protocol (or version) that is not installed here."""


class JobParamsError(SMPCError, ValueError):
    """The job itself does not fit its protocol: its parameters, outputs or selected columns.

    Decided from the signed job alone, never from a party's rows, so its
    message may go back to the analyst as it is. A failure that depends on
    the rows must never be raised as this.
    """


@dataclass(frozen=True)
class JobContext:
    """What a protocol sees of its job at one party: public parameters and local inputs.

    ``values`` are this party's selected rows (rows x columns, NaN where
    missing), already filtered locally; ``columns`` name them.
    """

    params: Mapping[str, Any]
    parties: tuple[str, ...]
    party: str
    columns: tuple[str, ...] = ()
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    min_cell_size: int = 5
    model: Any = None  # a model owner's model, loaded from its model file
    reveal_probabilities: bool = False  # the job's flag: probabilities reveal the model
    allow_min_max: bool = False  # this party's policy permits revealing a minimum or maximum
    text: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Categorical columns as stripped strings ("" where missing), for protocols that ask."""
    selections: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Every party's selected columns as the signed job names them (public to every party)."""
    delivered: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-row outputs this party received; the party keeps them locally once the job ends."""
    outputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """The job's recipients of each output: the only place a protocol may take them from."""

    def recipients(self, output: str) -> tuple[int, ...]:
        """Party indices of the recipients the job names for ``output`` (none if not named)."""
        return tuple(self.parties.index(r) for r in self.outputs.get(output, ()))


@dataclass(frozen=True)
class ProtocolSpec:
    """A named, versioned protocol with the outputs it declares."""

    name: str
    version: str
    run: Callable[[Runtime, JobContext], dict[str, SharedTensor]]
    outputs: tuple[str, ...]
    reveals: str
    categorical: bool = False
    """True if the protocol reads text columns (``JobContext.text``), e.g. a contingency table."""
    scope: str = "statistics"
    """The consent scope of every job of this protocol: patients are asked about this use."""


@functools.cache
def installed() -> dict[str, ProtocolSpec]:
    """Every protocol installed here: the built-ins and the entry points (read once)."""
    from protocols import logistic, probe, statistics

    builtin = (
        *probe.PROTOCOLS,
        *logistic.PROTOCOLS,
        *statistics.PROTOCOLS,
    )
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
