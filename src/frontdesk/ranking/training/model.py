"""The saved ranker: its parts put together, and the config ``ranker.json`` records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...suggester import Suggester
from ..calibration import ValidationOutcomes
from ..classifier import WorkflowClassifier
from ..features import FEATURE_NAMES
from ..priors import WorkflowPriors
from ..reranker import DEFAULT_PARAMS, LambdaRankReranker
from .calibrate import Calibration
from .config import RankerTrainingConfig
from .folds import FoldPlan
from .rows import TrainingRows
from .trees import FittedTrees
from .validation import ValidationSet


def assemble_ranker(
    trees: FittedTrees,
    priors: WorkflowPriors,
    classifier: WorkflowClassifier | None,
    calibration: Calibration,
) -> LambdaRankReranker:
    """The reranker (no threshold or config yet), with validation's outcomes under its
    confidence: kept with the model, so another goal later is a new threshold on them."""
    reranker = LambdaRankReranker(
        trees.booster,
        priors,
        calibration.calibrator,
        0.0,
        {},
        calibration.scope,
        classifier,
        trees.base_weight,
    )
    x_conf = calibration.inputs
    confidence = reranker.confidence(x_conf) if len(x_conf) else np.zeros(0)
    reranker.validation = ValidationOutcomes(
        confidence, calibration.in_scope, calibration.top1_correct
    )
    return reranker


def ranker_config(
    config: RankerTrainingConfig,
    index_dir: str | Path,
    suggester: Suggester,
    data: TrainingRows,
    plan: FoldPlan,
    validation: ValidationSet,
    trees: FittedTrees,
    calibration: Calibration,
) -> dict[str, Any]:
    """What ``ranker.json`` says of the training (before the abstention goal's part): the
    knobs, the index it is for, and the counts and validation scores of the run."""
    index = suggester.index
    ins, ok = calibration.in_scope, calibration.top1_correct
    scope = calibration.scope
    return {
        "feature_names": list(FEATURE_NAMES),
        **config.recorded(),
        "params": DEFAULT_PARAMS,
        "best_iteration": int(trees.booster.best_iteration or trees.booster.current_iteration()),
        "base_weight": trees.base_weight,
        "retrieval": suggester.retrieval_signature(),
        "index": {
            "path": str(index_dir),
            "created_at": index.manifest["created_at"],
            "model_sha256": index.model_sha256,
            "workflows": len(index.workflows),
            "layout": index.layout,
        },
        "confidence": "P(top right) x P(in scope)" if scope is not None else "P(top right)",
        "training": {
            "rows": data.n_given,
            "context_augmented_rows": len(data.rows) - data.n_given,
            "train_groups": trees.train_groups,
            "train_top1_base_margin": trees.base_top1,
            "cold_start_workflows_per_fold": plan.new_per_fold,
            "missing_class_seen": trees.missing_class_seen,
            "val_rows": len(validation.questions),
            "early_stopping_two_turn_rows": len(validation.extra_questions) - validation.cold,
            "early_stopping_cold_rows": validation.cold,
            "val_source": validation.source,
            "val_out_of_scope": int((~ins).sum()),
            "calibration_extra_negatives": len(calibration.negative_inputs),
            "scope_model": scope is not None,
            "val_top1_retrieval": float(np.mean(calibration.retrieval_top1_correct[ins]))
            if ins.any()
            else None,
            "val_top1_reranked": float(np.mean(ok[ins])) if ins.any() else None,
        },
    }
