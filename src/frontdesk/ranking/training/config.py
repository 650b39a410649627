"""What ``train_ranker`` is asked to do beyond its data: the knobs, checked once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import FrontdeskError


@dataclass(frozen=True)
class RankerTrainingConfig:
    """The training knobs, grouped so that each step reads the ones it needs.

    ``folds``: out-of-fold splits (at least 2). ``top_n``: hybrid candidates
    reranked per query. ``context_candidates``: dense candidates added from a
    conversation's earlier turns alone. ``seed``: the folds, the carved
    validation, the multi-turn forms and the cold-start draws.
    ``augment_context``: the share of labelled rows that also train in each
    multi-turn form (a distractor turn first; the question then a vague
    follow-up; other workflows' finished exchanges, then the question), so the
    turn features carry signal. ``cold_start``: the share of workflows each
    fold treats as new (no examples in the index, no popularity, no class), so
    the ranker learns to rank a workflow added to the catalog after training.
    ``min_in_scope_accuracy``, ``min_oos_recall``: the abstention goal
    (``abstention.choose_abstention``).
    """

    folds: int = 5
    top_n: int = 30
    seed: int = 0
    augment_context: float = 0.6
    context_candidates: int = 10
    cold_start: float = 0.1
    min_in_scope_accuracy: float | None = None
    min_oos_recall: float | None = None

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise FrontdeskError("--folds must be at least 2")

    def recorded(self) -> dict[str, Any]:
        """The knobs ``ranker.json`` records beside the features, in its order (the goal is
        recorded with the threshold it chose, ``AbstentionChoice.apply``)."""
        return {
            "top_n": self.top_n,
            "context_candidates": self.context_candidates,
            "folds": self.folds,
            "augment_context": self.augment_context,
            "cold_start": self.cold_start,
            "seed": self.seed,
        }
