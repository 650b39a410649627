"""The LambdaRank trees: the classifier's weight in their starting score, and their fit."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import FrontdeskError
from ..classifier import WorkflowClassifier
from ..features import FEATURE_NAMES
from ..reranker import LambdaRankReranker, candidate_scores, choose_base_weight
from .groups import Groups, first_of_each
from .rows import TrainingRows


@dataclass(frozen=True)
class FittedTrees:
    """A booster and the base weight it starts from (``reranker.base_margin``)."""

    booster: Any
    base_weight: float
    base_top1: float  # share of the base weight's groups whose gold the blend ranks first
    train_groups: int
    missing_class_seen: bool  # some training group's gold had no class (NaN log-probability)

    def score(self, features: np.ndarray) -> np.ndarray:
        """One query's candidate scores, as the saved ranker gives them."""
        return candidate_scores(self.booster, features, base_weight=self.base_weight)


def base_weight_rows(
    data: TrainingRows, train_rows: Sequence[int], cold_rows: set[int]
) -> list[int]:
    """The rows the base weight is chosen on: training rows as given, whose workflow their
    fold's classifier knew.

    The two-turn copies' conversation vectors are mostly the distractor or the
    follow-up, where the classifier says little (the trees learn those
    corrections); a new workflow's filled-in log-probability would reward any
    weight that pushes the known ones down.
    """
    return [i for i in train_rows if i < data.n_given and i not in cold_rows]


def missing_class_seen(train: Groups) -> bool:
    """Whether any training candidate had no class (a workflow new in its fold)."""
    return bool(np.isnan(train[0][:, FEATURE_NAMES.index("classifier_logp")]).any())


def fit_trees(
    train: Groups,
    stopping: Groups,
    base: Groups,
    weights: np.ndarray | None = None,
    stopping_weights: np.ndarray | None = None,
    base_weights: np.ndarray | None = None,
) -> FittedTrees:
    """The base weight chosen on ``base`` groups, then trees fitted on ``train`` from it,
    early stopping on ``stopping``; refused without a single training group. ``weights``,
    ``stopping_weights``, ``base_weights``: one per candidate row of ``train``,
    ``stopping``, ``base`` (``groups.group_weights``), None for all 1."""
    if not train[2]:
        raise FrontdeskError("no training row had its workflow among the candidates")
    per_group = first_of_each(base_weights, base[2]) if base_weights is not None else None
    base_weight, base_top1 = choose_base_weight(base, weights=per_group)
    booster = LambdaRankReranker.fit(
        train, stopping, base_weight=base_weight, weights=weights, val_weights=stopping_weights
    )
    return FittedTrees(booster, base_weight, base_top1, len(train[2]), missing_class_seen(train))


def warn_if_no_missing_class(classifier: WorkflowClassifier | None, seen: bool) -> None:
    """A warning (for ``train_ranker``'s caller) when training had no workflow without a class.

    The trees read a missing class (a workflow added after training) well only
    if training had some; LightGBM scores an unseen NaN as 0, log-probability
    "certain".
    """
    if classifier is not None and not seen:
        warnings.warn(
            "no training row had a workflow without a class (--cold-start 0, or too few "
            "labelled workflows): workflows added after training will rank as if the "
            "classifier were sure of them; retrain after adding workflows",
            stacklevel=3,
        )
