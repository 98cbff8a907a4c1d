"""Correlated randomness: plans, items, sources, and the seed-based dealer."""

from smpc.preprocessing.dealer import AheadFeed, CorrectionFeed, Dealer, SeededSource
from smpc.preprocessing.items import (
    BinaryTriple,
    ComparisonMask,
    HeldTriple,
    MatrixTriple,
    Triple,
    TruncationTuple,
)
from smpc.preprocessing.plan import Plan, Request
from smpc.preprocessing.source import DeferredSource, PreprocessingSource, RecordingSource

__all__ = [
    "AheadFeed",
    "BinaryTriple",
    "ComparisonMask",
    "CorrectionFeed",
    "Dealer",
    "DeferredSource",
    "HeldTriple",
    "MatrixTriple",
    "Plan",
    "PreprocessingSource",
    "RecordingSource",
    "Request",
    "SeededSource",
    "Triple",
    "TruncationTuple",
]
