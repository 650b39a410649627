"""Calibration: P(top suggestion right) and P(in scope), fitted on validation's outcomes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ...schema import LabelledQuery
from ..calibration import CONFIDENCE_INPUTS, PlattCalibrator, confidence_inputs
from ..features import CandidateSet
from .rows import TrainingRows
from .validation import ValidationSet

Scores = Callable[[np.ndarray], np.ndarray]  # one query's candidate features -> scores


@dataclass(frozen=True)
class Calibration:
    """The fitted calibrators and validation's outcomes they were fitted on."""

    calibrator: PlattCalibrator  # P(top right): validation, then the extra negatives
    scope: PlattCalibrator | None  # P(in scope), when there were extra negatives
    inputs: np.ndarray  # validation's ``CONFIDENCE_INPUTS`` rows
    negative_inputs: np.ndarray  # the training file's out-of-scope rows' (never right)
    in_scope: np.ndarray  # validation's rows with a label
    top1_correct: np.ndarray  # validation's rows the reranked top is right for
    retrieval_top1_correct: np.ndarray  # ... and retrieval's own top


def calibration_negatives(
    data: TrainingRows, validation: Sequence[LabelledQuery]
) -> list[LabelledQuery]:
    """The training file's out-of-scope rows outside validation: negatives for calibration
    (never ranked, so the trees have not seen them); the threshold still reads val alone."""
    in_val = {id(q) for q in validation}
    return [q for q in data.given if q.label is None and id(q) not in in_val]


def fit_calibration(
    score: Scores,
    validation: ValidationSet,
    negatives: tuple[Sequence[CandidateSet], Sequence[np.ndarray]],
    positions: dict[str, int],
) -> Calibration:
    """Platt scaling of validation's outcomes under ``score``, the ``negatives``'
    (candidates, features) counted as wrong; and, with negatives, a separate P(in scope).

    "Right" mixes misranked questions with out-of-scope ones; the scope model
    asks only whether the catalog covers the query: validation's in-scope rows
    against the negatives, weighed equally. Validation's own out-of-scope rows
    stay unseen by it, for the threshold (its in-scope rows are seen: seven
    coefficients, so the optimism is small).
    """
    conf_in, in_scope, correct_rank, correct_ret = [], [], [], []
    for q, c, x in zip(
        validation.questions, validation.candidates, validation.features, strict=True
    ):
        scores = score(x)
        top = int(np.argmax(scores)) if len(scores) else -1
        gold = positions.get(q.label or "", -1)
        fused_top = float(c.fused.scores[0]) if len(c.fused) else 0.0
        conf_in.append(confidence_inputs(scores, fused_top, x))
        in_scope.append(q.label is not None)
        correct_rank.append(top >= 0 and int(c.fused.ids[top]) == gold)
        correct_ret.append(len(c.fused) > 0 and int(c.fused.ids[0]) == gold)
    x_conf = np.asarray(conf_in)
    ok = np.asarray(correct_rank)
    neg_c, neg_x = negatives
    x_neg = np.zeros((0, len(CONFIDENCE_INPUTS)))
    if len(neg_c):
        x_neg = np.asarray(
            [
                confidence_inputs(score(x), float(c.fused.scores[0]) if len(c.fused) else 0.0, x)
                for c, x in zip(neg_c, neg_x, strict=True)
            ]
        )
    calibrator = PlattCalibrator.fit(
        np.vstack([x_conf, x_neg]) if len(x_neg) else x_conf,
        np.concatenate([ok, np.zeros(len(x_neg), dtype=bool)]),
    )
    ins = np.asarray(in_scope, dtype=bool)
    scope = None
    if len(x_neg) and ins.any():
        scope = PlattCalibrator.fit(
            np.vstack([x_conf[ins], x_neg]),
            np.concatenate([np.ones(int(ins.sum()), dtype=bool), np.zeros(len(x_neg), bool)]),
            balanced=True,
        )
    return Calibration(calibrator, scope, x_conf, x_neg, ins, ok, np.asarray(correct_ret))
