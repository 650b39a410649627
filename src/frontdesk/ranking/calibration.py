"""Confidence that the top suggestion is right (Platt scaling), and the abstention threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIDENCE_INPUTS = ("top_score", "margin", "top_fused")


def confidence_inputs(ranker_scores: np.ndarray, fused_top: float) -> np.ndarray:
    """What calibration reads from one query: the ranker's top score, its margin, retrieval's top."""
    if len(ranker_scores) == 0:
        return np.array([-10.0, 0.0, 0.0])
    s = np.sort(ranker_scores)[::-1]
    margin = float(s[0] - s[1]) if len(s) > 1 else 10.0
    return np.array([float(s[0]), margin, float(fused_top)])


@dataclass
class PlattCalibrator:
    """Logistic regression from ``CONFIDENCE_INPUTS`` to P(top suggestion is right)."""

    coef: list[float]
    intercept: float

    @classmethod
    def fit(cls, x: np.ndarray, correct: np.ndarray) -> PlattCalibrator:
        from sklearn.linear_model import LogisticRegression

        if len(set(correct.tolist())) < 2:  # all right or all wrong: a constant confidence
            p = float(np.clip(correct.mean() if len(correct) else 0.5, 1e-3, 1 - 1e-3))
            return cls([0.0] * x.shape[1], float(np.log(p / (1 - p))))
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(x, correct.astype(int))
        return cls([float(c) for c in lr.coef_[0]], float(lr.intercept_[0]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(x) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "platt",
            "inputs": list(CONFIDENCE_INPUTS),
            "coef": self.coef,
            "intercept": self.intercept,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PlattCalibrator:
        return cls(list(obj["coef"]), float(obj["intercept"]))


def choose_threshold(
    confidence: Sequence[float], in_scope: Sequence[bool], top1_correct: Sequence[bool]
) -> tuple[float, float]:
    """The threshold that maximises decision accuracy over in-scope and out-of-scope rows.

    A decision is right when an in-scope row's top suggestion is right and not
    abstained on, or when an out-of-scope row is abstained on. Returns
    (threshold, accuracy); with no out-of-scope rows this never abstains.
    Thresholds are midpoints between observed confidences, so that a value
    seen in validation is not balanced on the edge.
    """
    conf = np.asarray(confidence, dtype=float)
    ins = np.asarray(in_scope, dtype=bool)
    ok = np.asarray(top1_correct, dtype=bool)
    best_t, best_acc = 0.0, -1.0
    levels = np.unique(conf)
    candidates = np.concatenate([[0.0], (levels[1:] + levels[:-1]) / 2, levels[-1:] + 1e-6])
    for t in candidates:
        answer = conf >= t
        acc = float(np.mean(np.where(ins, answer & ok, ~answer))) if len(conf) else 0.0
        if acc > best_acc + 1e-12:
            best_t, best_acc = float(t), acc
    return best_t, best_acc
