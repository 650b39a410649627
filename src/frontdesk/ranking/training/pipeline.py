"""``train_ranker``: the training steps, composed, from an index folder to a saved ranker."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...config import Settings
from ...encoding import ContextEncoder
from ...errors import FrontdeskError
from ...index import WorkflowIndex
from ...schema import LabelledQuery
from ...suggester import Suggester
from ..abstention import choose_abstention, warn_if_missed
from ..priors import WorkflowPriors
from .calibrate import calibration_negatives, fit_calibration
from .candidates import WholeIndexScorer
from .config import RankerTrainingConfig
from .folds import FoldIndex, Progress, out_of_fold_features, plan_folds
from .model import assemble_ranker, ranker_config
from .rows import expand_rows, fit_classifier
from .trees import base_weight_rows, fit_trees, warn_if_no_missing_class
from .validation import split_validation, validation_set


def train_ranker(
    index_dir: str | Path,
    rows: Sequence[LabelledQuery],
    out: str | Path,
    *,
    val_rows: Sequence[LabelledQuery] | None = None,
    folds: int = 5,
    top_n: int = 30,
    seed: int = 0,
    encoder: ContextEncoder | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    augment_context: float = 0.6,
    context_candidates: int = 10,
    cold_start: float = 0.1,
    min_in_scope_accuracy: float | None = None,
    min_oos_recall: float | None = None,
) -> dict[str, Any]:
    """Fit, calibrate and save a reranker for ``index_dir``; returns its config (with metrics).

    ``augment_context``: the share of labelled rows that also train in two-turn
    form (a distractor turn first; the question then a vague follow-up), so
    the turn features carry signal. Early stopping reads validation's questions
    and the same share of their two-turn forms (and, for a carved validation,
    the rows of each fold's new workflows once more, scored as new), so the
    trees are kept for every kind of conversation training serves;
    calibration and the threshold read validation as given.
    ``cold_start``: the share of workflows each fold treats as new (no examples
    in the index, no popularity, no class), so the ranker learns to rank a
    workflow added to the catalog after training.
    ``min_in_scope_accuracy``: the abstention goal; by default the threshold
    maximises decision accuracy on validation, with this it abstains on as
    much of validation's out-of-scope share as keeps in-scope accuracy there.
    ``min_oos_recall``: abstain on at least this share of validation's
    out-of-scope rows (needs some); with ``min_in_scope_accuracy`` too, the
    threshold is the middle of the range that meets both
    (``calibration.choose_threshold``).
    """
    settings = settings or Settings.from_env()
    index = WorkflowIndex.load(index_dir)
    suggester = Suggester(index, encoder=encoder, settings=settings)
    if suggester.mode != "hybrid" or suggester.encoder is None:
        raise FrontdeskError(f"{index_dir}: the ranker needs an index with a usable dense part")
    encoder = suggester.encoder
    config = RankerTrainingConfig(
        folds=folds,
        top_n=top_n,
        seed=seed,
        augment_context=augment_context,
        context_candidates=context_candidates,
        cold_start=cold_start,
        min_in_scope_accuracy=min_in_scope_accuracy,
        min_oos_recall=min_oos_recall,
    )
    tick = progress or (lambda stage, done, total: None)

    where = FoldIndex.of(suggester)
    priors = WorkflowPriors.fit(index.workflows, rows)  # saved with the model, for inference
    data = expand_rows(rows, config)
    split = split_validation(data, val_rows, config)  # refusals come before any encoding

    tick("encoding", 0, 1)
    encoded = encoder.encode_contexts(data.rows)
    plan = plan_folds(where, data, split.carved_set, config)
    tokens = [suggester.query_tokens(q) for q in data.rows]
    oof = out_of_fold_features(where, plan, data, encoded, tokens, config, tick)
    classifier = fit_classifier(data.rows, encoded.vectors, range(data.n_given))  # saved with it
    outside = WholeIndexScorer(suggester, priors, classifier, top_n, context_candidates)
    validation = validation_set(split, data, oof, outside, config)

    tick("training", 0, 1)
    positions = where.positions
    train_rows = split.trains(data)
    trees = fit_trees(
        oof.groups(data, train_rows, positions),
        validation.stopping_groups(positions),
        oof.groups(data, base_weight_rows(data, train_rows, plan.cold_rows), positions),
    )
    warn_if_no_missing_class(classifier, trees.missing_class_seen)
    negatives = calibration_negatives(data, validation.questions)
    calibration = fit_calibration(
        trees.score, validation, outside(negatives) if negatives else ([], []), positions
    )
    reranker = assemble_ranker(trees, priors, classifier, calibration)
    assert reranker.validation is not None
    choice = choose_abstention(reranker.validation, min_in_scope_accuracy, min_oos_recall)
    warn_if_missed(choice)
    saved = ranker_config(config, index_dir, suggester, data, plan, validation, trees, calibration)
    saved = choice.apply(saved)  # the goal, and validation's values at its threshold
    reranker.threshold, reranker.config = choice.threshold, saved
    reranker.save(out)
    tick("training", 1, 1)
    scope = calibration.scope
    extra = {"scope_calibration": scope.to_json()} if scope is not None else {}
    return {
        **saved,
        "threshold": choice.threshold,
        "calibration": calibration.calibrator.to_json(),
        **extra,
    }
