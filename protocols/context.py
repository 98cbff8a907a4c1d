"""What every protocol is written against: its job's context, parameters, result and spec.

This module sits below every protocol and below the registry (which imports
the protocols), so nothing here imports a protocol.

A protocol is ``run(rt, ctx) -> Outcome``: it computes on secret shares and
returns its declared outputs still shared (``Outcome.revealed``), for the
party layer to reveal to the recipients the job names, and any per-row
outputs this party received itself (``Outcome.delivered``). Its public
parameters are a frozen :class:`Params` dataclass, read from the signed job
with :meth:`Params.from_mapping` and written into a job with
:meth:`Params.to_mapping`, so the analyst's client checks them before it
signs, by the same code the parties run.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from smpc.errors import SMPCError
from smpc.runtime import Runtime
from smpc.shares import SharedTensor

if TYPE_CHECKING:
    from protocols.local_data import ColumnFacts


class UnknownProtocolError(SMPCError, LookupError):
    """A job names a protocol (or version) that is not installed here."""


class JobParamsError(SMPCError, ValueError):
    """The job itself does not fit its protocol: its parameters, outputs or selected columns.

    Decided from the signed job alone, never from a party's rows, so its
    message may go back to the analyst as it is. A failure that depends on
    the rows must never be raised as this. ``field`` names what is wrong as
    the job spells it (``params.edges``, ``columns``, ``where``) and the
    message reads ``"<field> <reason>"``; :meth:`named` rewrites it with
    another name for the field, e.g. a command-line flag.
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(reason if field is None else f"{field} {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.reason, self.field)

    def named(self, names: Mapping[str, str]) -> str:
        """The message with the field called ``names[field]`` (unchanged if it has no name)."""
        if self.field is None or self.field not in names:
            return str(self)
        return f"{names[self.field]} {self.reason}"


class Params:
    """Base of a protocol's public parameters: subclasses are frozen dataclasses.

    A subclass declares typed fields with defaults (or none, for required
    ones) and validates and normalises every field in ``__post_init__``,
    raising :meth:`invalid`; so an instance is valid by construction, and
    that is the only place its checks live.
    """

    error: ClassVar[type[JobParamsError]] = JobParamsError
    """The error raised for a parameter that does not fit (statistics use their subclass)."""

    @classmethod
    def invalid(cls, name: str, reason: str) -> JobParamsError:
        """The error for parameter ``name``: ``params.<name> <reason>``."""
        return cls.error(reason, f"params.{name}")

    @classmethod
    def from_mapping(cls, mapping: object) -> Self:
        """The parameters a job's ``params`` mapping gives; unknown or missing keys are errors.

        An instance of this class is taken as it is (it is valid by construction).
        """
        if isinstance(mapping, cls):
            return mapping
        if isinstance(mapping, Params):
            raise cls.error(f"must be {cls.__name__}, not {type(mapping).__name__}", "params")
        if mapping is None:
            mapping = {}
        if not isinstance(mapping, Mapping):
            raise cls.error("must be an object of named parameters", "params")
        known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        for key in mapping:
            if key not in known:
                takes = ", ".join(known) if known else "no parameters"
                raise cls.error(
                    f"is not a parameter of this protocol (it takes {takes})", f"params.{key}"
                )
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and f.name not in mapping:
                raise cls.invalid(f.name, "is required")
        return cls(**dict(mapping))

    def to_mapping(self) -> dict[str, Any]:
        """The parameters as the job carries them: JSON-ready, fields that are None left out."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if getattr(self, f.name) is not None
        }

    def check_inputs(self, parties: Sequence[str], selections: Mapping[str, Sequence[str]]) -> None:
        """Raise :attr:`error` if the parties' selected columns do not fit these parameters.

        Decided from the job alone; the default accepts any selection.
        """


def is_number(value: object) -> bool:
    """A real number (numpy scalars too) that is not a bool: what a numeric parameter takes."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def is_integer(value: object) -> bool:
    """An integer (numpy scalars too) that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def plain_number(value: object) -> int | float:
    """A number as JSON carries it: an int if it is integral, else a float (numpy scalars too)."""
    if is_integer(value) or (is_number(value) and float(value).is_integer()):  # type: ignore[arg-type]
        return int(value)  # type: ignore[call-overload]
    return float(value)  # type: ignore[arg-type]


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class NoParams(Params):
    """A protocol that takes no public parameters."""


@dataclass(frozen=True)
class JobContext:
    """What a protocol sees of its job at one party: public parameters and local inputs.

    ``values`` are this party's selected rows (rows x columns, NaN where
    missing), already filtered locally; ``columns`` name them. ``params`` is
    the signed job's mapping; the protocol reads it with its Params class.
    """

    params: Mapping[str, Any]
    parties: tuple[str, ...]
    party: str
    columns: tuple[str, ...] = ()
    values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    min_cell_size: int = 5
    model: Any = None  # a model owner's model, read from its model file by the party
    reveal_probabilities: bool = False  # the job's flag: probabilities reveal the model
    allow_min_max: bool = False  # this party's policy permits revealing a minimum or maximum
    text: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Categorical columns as stripped strings ("" where missing), for protocols that ask."""
    selections: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Every party's selected columns as the signed job names them (public to every party)."""
    outputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """The job's recipients of each output: the only place a protocol may take them from."""
    data: Any = None
    """A ``protocols.local_data.LocalData`` that answers local aggregates where the rows
    live (e.g. in a database), for a protocol whose spec sets ``aggregates``; ``values``
    is then empty. None: aggregates are computed from ``values`` and ``text``."""
    facts: Mapping[str, ColumnFacts] = field(default_factory=dict)
    """``protocols.local_data.ColumnFacts`` per requested column: validity checked over
    all of the party's rows before filter and consent, so a refusal does not depend on
    which rows the job selected. Empty when the rows came without them."""

    def recipients(self, output: str) -> tuple[int, ...]:
        """Party indices of the recipients the job names for ``output`` (none if not named)."""
        return tuple(self.parties.index(r) for r in self.outputs.get(output, ()))


@dataclass(frozen=True)
class Outcome:
    """What a protocol returns at one party.

    ``revealed``: declared outputs, still shared, for the party layer to
    reveal to the job's recipients. ``delivered``: per-row outputs this party
    already received in the clear (e.g. its own patients' labels), which it
    keeps locally once the job succeeds.
    """

    revealed: Mapping[str, SharedTensor] = field(default_factory=dict)
    delivered: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ProtocolSpec:
    """A named, versioned protocol with the outputs it declares and the parameters it takes."""

    name: str
    version: str
    run: Callable[[Runtime, JobContext], Outcome]
    outputs: tuple[str, ...]
    reveals: str
    params: type[Params] = NoParams
    """The protocol's parameters: a job's ``params`` must read as one of these."""
    categorical: bool = False
    """True if the protocol reads text columns (``JobContext.text``), e.g. a contingency table."""
    scope: str = "statistics"
    """The consent scope of every job of this protocol: patients are asked about this use."""
    aggregates: bool = False
    """True if the protocol reads its party's data only through ``JobContext.data``'s local
    aggregates (``protocols.local_data``), so a database source may compute them in place."""
