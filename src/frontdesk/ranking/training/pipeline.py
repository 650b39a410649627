"""``train_ranker``: the training steps, composed, from an index folder to a saved ranker."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
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
from .feedback import FEEDBACK_VAL_SOURCE, FeedbackRows, combine, warn_if_validation_overlaps
from .folds import FoldIndex, Progress, out_of_fold_features, plan_folds
from .groups import group_weights
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
    feedback: FeedbackRows | None = None,
) -> dict[str, Any]:
    """Fit, calibrate and save a reranker for ``index_dir``; returns its config (with metrics).

    ``feedback``: agents' logged choices (``feedback.feedback_rows``) trained on
    beside ``rows``, each weighted against position bias (the trees, their early
    stopping and base weight; not the priors, the classifier nor calibration);
    without ``val_rows``, validation is carved from them alone, a contact's
    decisions (and rows of one label and text) together, and folds keep them
    together too.
    ``augment_context``: the share of labelled rows that also train in each
    multi-turn form (a distractor turn first; the question then a vague
    follow-up; a topic shift), so the turn features carry signal. Early
    stopping reads validation's questions and the same share of their
    multi-turn forms (and, for a carved validation,
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
    given, row_weights, carve_from, groups = combine(rows, feedback)
    if not given:
        raise FrontdeskError("no training rows: the labelled file and the feedback are empty")
    val_overlap = warn_if_validation_overlaps(feedback, val_rows)
    priors = WorkflowPriors.fit(index.workflows, given)  # saved with the model, for inference
    data = expand_rows(given, config, groups)
    # refusals come before any encoding
    split = split_validation(data, val_rows, config, carve_from)

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
    base_rows = base_weight_rows(data, train_rows, plan.cold_rows)
    weights = stopping_weights = base_weights = None
    if feedback is not None and feedback.bias.corrects:  # a two-turn form weighs as its parent

        def weigh(members: Sequence[int]) -> Any:
            return group_weights(
                [data.rows[i] for i in members],
                [oof.candidates[i] for i in members],
                [row_weights[data.parent[i]] for i in members],
                positions,
            )

        weights, base_weights = weigh(train_rows), weigh(base_rows)
        if split.file is None:  # carved from the feedback: as position-biased as training
            by_row = {id(q): row_weights[data.parent[i]] for i, q in enumerate(data.rows)}
            stopping_weights = validation.stopping_weights(positions, partial(_weight_of, by_row))
    trees = fit_trees(
        oof.groups(data, train_rows, positions),
        validation.stopping_groups(positions),
        oof.groups(data, base_rows, positions),
        weights,
        stopping_weights,
        base_weights,
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
    if feedback is not None:
        saved["training"]["feedback"] = {
            **feedback.record(),
            "rows_from_file": len(rows),
            "val_overlap_rows": val_overlap,
            "weighted": weights is not None,
            "early_stopping_weighted": stopping_weights is not None,
            "base_weight_weighted": base_weights is not None,
        }
        if val_rows is None:
            saved["training"]["val_source"] = FEEDBACK_VAL_SOURCE
    saved = choice.apply(saved)  # the goal, and validation's values at its threshold
    reranker.threshold, reranker.config = choice.threshold, saved
    reranker.save(out, lineage=feedback.lineage() if feedback is not None else None)
    tick("training", 1, 1)
    scope = calibration.scope
    extra = {"scope_calibration": scope.to_json()} if scope is not None else {}
    return {
        **saved,
        "threshold": choice.threshold,
        "calibration": calibration.calibrator.to_json(),
        **extra,
    }


def _weight_of(by_row: dict[int, float | None], q: LabelledQuery) -> float | None:
    """A validation question's weight: its training row's (``by_row``: by ``id`` of every
    training row); a question that is none of them is a bug, not a row weighing 1."""
    try:
        return by_row[id(q)]
    except KeyError:
        raise AssertionError(
            f"validation question {q.id or q.text[:40]!r} is not a training row"
        ) from None
