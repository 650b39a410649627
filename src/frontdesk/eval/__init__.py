"""Offline evaluation: ranking metrics over labelled queries."""

from ..datasets.splits import carve_validation
from .metrics import METRICS, evaluate_ranks, rank_of
from .suggestions import evaluate_suggester
from .thresholds import ranker_tradeoff, tradeoff_rows

__all__ = [
    "METRICS",
    "carve_validation",
    "evaluate_ranks",
    "evaluate_suggester",
    "rank_of",
    "ranker_tradeoff",
    "tradeoff_rows",
]
