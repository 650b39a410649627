"""Train the LambdaRank reranker from out-of-fold candidate features.

Training questions are usually also the index's examples. To train on
features that look like test-time features, each fold's questions are
searched in an in-memory copy of the index without their own example
documents (``retrieval.subset``): the ranker never sees a query that finds
itself in the index.

``train_ranker`` composes the steps, one module each, in this order:

- ``config``: ``RankerTrainingConfig``, the knobs;
- ``rows``: ``expand_rows``, the given rows, their two-turn forms and folds;
- ``validation``: ``split_validation`` (a file, or 10 % carved out), before
  any encoding, and later ``validation_set``, what early stopping,
  calibration and the threshold read;
- ``folds``: ``plan_folds`` (which rows, documents, new workflows and
  fitting rows each fold's views have), ``fit_fold_models`` and
  ``out_of_fold_features``;
- ``candidates``: ``WholeIndexScorer``, features of rows not in the index;
- ``groups``: ``ranking_groups``, LambdaRank's query groups;
- ``trees``: ``fit_trees``, the base weight, then the booster;
- ``calibrate``: ``fit_calibration``, P(top right) and P(in scope);
- ``model``: ``assemble_ranker`` and ``ranker_config``, what is saved.

Beside them, ``feedback`` (``feedback_rows``: agents' logged choices as
training rows, validation carved from them) and ``position_bias``
(``estimate_position_bias``: θ per shown position, the labels' weights).
"""

from .calibrate import Calibration, calibration_negatives, fit_calibration
from .candidates import WholeIndexScorer
from .config import RankerTrainingConfig
from .feedback import FeedbackRows, feedback_rows, warn_if_validation_overlaps
from .folds import (
    FoldIndex,
    FoldModels,
    FoldPlan,
    FoldView,
    OutOfFoldFeatures,
    cold_start_count,
    fit_fold_models,
    out_of_fold_features,
    plan_folds,
)
from .groups import Groups, group_weights, ranking_groups
from .model import assemble_ranker, ranker_config
from .pipeline import train_ranker
from .position_bias import PositionBias, estimate_position_bias
from .rows import TrainingRows, expand_rows, fit_classifier, two_turn_forms
from .trees import (
    FittedTrees,
    base_weight_rows,
    fit_trees,
    missing_class_seen,
    warn_if_no_missing_class,
)
from .validation import ValidationSet, ValidationSplit, split_validation, validation_set

__all__ = [
    "Calibration",
    "FeedbackRows",
    "FittedTrees",
    "FoldIndex",
    "FoldModels",
    "FoldPlan",
    "FoldView",
    "Groups",
    "OutOfFoldFeatures",
    "PositionBias",
    "RankerTrainingConfig",
    "TrainingRows",
    "ValidationSet",
    "ValidationSplit",
    "WholeIndexScorer",
    "assemble_ranker",
    "base_weight_rows",
    "calibration_negatives",
    "cold_start_count",
    "estimate_position_bias",
    "expand_rows",
    "feedback_rows",
    "fit_calibration",
    "fit_classifier",
    "fit_fold_models",
    "fit_trees",
    "group_weights",
    "missing_class_seen",
    "out_of_fold_features",
    "plan_folds",
    "ranker_config",
    "ranking_groups",
    "split_validation",
    "train_ranker",
    "two_turn_forms",
    "validation_set",
    "warn_if_no_missing_class",
    "warn_if_validation_overlaps",
]
