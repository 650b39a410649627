"""Confidence that the top suggestion is right (Platt scaling), and the abstention threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexIntegrityError
from .features import FEATURE_NAMES

# The ranker's view of its top answer, then how close the query comes to anything in
# the catalog at all (an out-of-scope question is far from every example and
# prototype, however the candidates rank among themselves).
CONFIDENCE_INPUTS = (
    "top_score", "margin", "top_fused",
    "example_best", "prototype_best", "prototype_margin", "query_tokens",
)  # fmt: skip
LEGACY_INPUTS = CONFIDENCE_INPUTS[:3]  # what rankers saved before the catalog-distance inputs
_COL = {name: j for j, name in enumerate(FEATURE_NAMES)}


def confidence_inputs(
    ranker_scores: np.ndarray, fused_top: float, features: np.ndarray | None = None
) -> np.ndarray:
    """``CONFIDENCE_INPUTS`` for one query: the ranker's top score and margin, retrieval's
    top score, and from the candidates' features (``FEATURE_NAMES`` columns) the best
    example and prototype similarity (of the conversation or of the earlier request,
    whichever is nearer), the prototype margin and the query's length."""
    if len(ranker_scores) == 0:
        return np.array([-10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    s = np.sort(ranker_scores)[::-1]
    margin = float(s[0] - s[1]) if len(s) > 1 else 10.0
    distance = [0.0, 0.0, 0.0, 0.0]
    if features is not None and len(features):
        protos = np.sort(features[:, _COL["prototype_sim"]])[::-1]
        # the nearer of the conversation and the earlier request (zero without one): after
        # "any update?" the conversation vector is far from the catalog, the question is not
        distance = [
            float(features[:, [_COL["example_max"], _COL["context_example_max"]]].max()),
            max(float(protos[0]), float(features[:, _COL["context_prototype_sim"]].max())),
            float(protos[0] - protos[1]) if len(protos) > 1 else 1.0,
            float(features[0, _COL["query_tokens"]]),
        ]
    return np.array([float(s[0]), margin, float(fused_top), *distance])


@dataclass
class PlattCalibrator:
    """Logistic regression from some of ``CONFIDENCE_INPUTS`` to P(top suggestion is right).

    ``inputs`` names the ones it reads (rankers saved before the catalog-distance
    inputs read the first three); it is called with all of them.
    """

    coef: list[float]
    intercept: float
    inputs: tuple[str, ...] = CONFIDENCE_INPUTS

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        correct: np.ndarray,
        inputs: Sequence[str] = CONFIDENCE_INPUTS,
        balanced: bool = False,
    ) -> PlattCalibrator:
        """Fit on rows of ``inputs`` (columns in that order) and whether the top was right.

        ``balanced`` weighs both outcomes equally (for a target as rare as
        out-of-scope rows among validation questions)."""
        from sklearn.linear_model import LogisticRegression

        inputs = tuple(inputs)
        if x.shape[1] != len(inputs):
            raise ValueError(f"{x.shape[1]} columns for {len(inputs)} inputs")
        if len(set(correct.tolist())) < 2:  # all right or all wrong: a constant confidence
            p = float(np.clip(correct.mean() if len(correct) else 0.5, 1e-3, 1 - 1e-3))
            return cls([0.0] * x.shape[1], float(np.log(p / (1 - p))), inputs)
        # standardised for the fit (token counts and cosines differ in scale), then
        # folded back so that the saved coefficients apply to raw inputs
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0
        lr = LogisticRegression(
            C=1.0, max_iter=1000, class_weight="balanced" if balanced else None
        ).fit((x - mean) / scale, correct.astype(int))
        coef = lr.coef_[0] / scale
        intercept = float(lr.intercept_[0] - (coef * mean).sum())
        return cls([float(c) for c in coef], intercept, inputs)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x)
        if self.inputs != CONFIDENCE_INPUTS:
            x = x[:, [CONFIDENCE_INPUTS.index(name) for name in self.inputs]]
        z = x @ np.asarray(self.coef) + self.intercept
        from scipy.special import expit

        return expit(z)  # 1 / (1 + e^-z), without overflowing for a very negative z

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "platt",
            "inputs": list(self.inputs),
            "coef": self.coef,
            "intercept": self.intercept,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PlattCalibrator:
        inputs = tuple(obj.get("inputs", LEGACY_INPUTS))
        unknown = [name for name in inputs if name not in CONFIDENCE_INPUTS]
        if unknown or len(inputs) != len(obj["coef"]):
            raise ValueError(
                f"calibration inputs {list(inputs)} do not match its {len(obj['coef'])} "
                f"coefficients or include unknown names {unknown}"
            )
        return cls(list(obj["coef"]), float(obj["intercept"]), inputs)


def decision_accuracy(
    confidence: np.ndarray, in_scope: np.ndarray, top1_correct: np.ndarray, threshold: float
) -> float:
    """Share of rows decided right at ``threshold``: in-scope rows answered right, and
    out-of-scope rows abstained on."""
    if len(confidence) == 0:
        return 0.0
    answer = confidence >= threshold
    return float(np.mean(np.where(in_scope, answer & top1_correct, ~answer)))


def check_goals(min_in_scope_accuracy: float | None, min_oos_recall: float | None) -> None:
    """Refuse an abstention goal outside [0, 1] (ValueError naming it)."""
    for name, goal in (
        ("min_in_scope_accuracy", min_in_scope_accuracy),
        ("min_oos_recall", min_oos_recall),
    ):
        if goal is not None and not 0.0 <= goal <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], not {goal}")


def choose_threshold(
    confidence: Sequence[float],
    in_scope: Sequence[bool],
    top1_correct: Sequence[bool],
    min_in_scope_accuracy: float | None = None,
    min_oos_recall: float | None = None,
) -> tuple[float, float]:
    """The abstention threshold for a stated goal, and the goal's value on these rows.

    Default goal: maximise decision accuracy over in-scope and out-of-scope
    rows. A decision is right when an in-scope row's top suggestion is right
    and not abstained on, or when an out-of-scope row is abstained on; with no
    out-of-scope rows this never abstains.

    - ``min_in_scope_accuracy`` alone: abstain on as many out-of-scope rows as
      possible while the in-scope rows answered right stay at or above that
      share (returns the OOS recall; if no threshold keeps it, the one that
      keeps the most, which is 0).
    - ``min_oos_recall`` alone: the lowest threshold that abstains on at least
      that share of out-of-scope rows, which keeps in-scope accuracy highest
      (returns the in-scope accuracy). Ignored without out-of-scope rows.
    - Both: the middle of the range of thresholds that meet both, in
      validation's own order, so that neither constraint is met only on its
      edge (BENCHMARKS.md: on random halves of CLINC150 val, the middle met both
      on the other half more often than either end or the largest margin in
      standard errors); when none meets both, the one with the largest smaller
      margin in standard errors. Returns the OOS recall.

    Thresholds are midpoints between observed confidences, so that a value
    seen in validation is not balanced on the edge.
    """
    check_goals(min_in_scope_accuracy, min_oos_recall)
    conf = np.asarray(confidence, dtype=float)
    ins = np.asarray(in_scope, dtype=bool)
    ok = np.asarray(top1_correct, dtype=bool)
    if not len(conf):
        return 0.0, 0.0
    levels = np.unique(conf)
    candidates = np.concatenate([[0.0], (levels[1:] + levels[:-1]) / 2, levels[-1:] + 1e-6])
    # per candidate: in-scope rows answered right (confidence >= t) and out-of-scope
    # rows abstained on (confidence < t), by counting in sorted confidences
    n_in, n_out = int(ins.sum()), int((~ins).sum())
    right = np.sort(conf[ins & ok])
    answered_right = len(right) - np.searchsorted(right, candidates, side="left")
    abstained_out = np.searchsorted(np.sort(conf[~ins]), candidates, side="left")
    kept = answered_right / n_in if n_in else np.ones(len(candidates))
    recall = abstained_out / n_out if n_out else np.zeros(len(candidates))
    if min_oos_recall is not None and not n_out:
        min_oos_recall = None  # nothing to recall: the other goal (or the default) decides
    if min_in_scope_accuracy is not None and min_oos_recall is not None:
        a, b = min_in_scope_accuracy, min_oos_recall
        feasible = np.flatnonzero((kept >= a) & (recall >= b))
        if len(feasible):
            i = int(feasible[len(feasible) // 2])
        else:
            z_in = (kept - a) / np.sqrt(max(a * (1 - a), 1e-6) / max(n_in, 1))
            z_out = (recall - b) / np.sqrt(max(b * (1 - b), 1e-6) / n_out)
            i = int(np.argmax(np.minimum(z_in, z_out)))
        return float(candidates[i]), float(recall[i])
    if min_oos_recall is not None:
        i = int(np.flatnonzero(recall >= min_oos_recall)[0])  # the last candidate has recall 1
        return float(candidates[i]), float(kept[i])
    if min_in_scope_accuracy is not None:
        allowed = (kept >= min_in_scope_accuracy) | (candidates == 0.0)
        value = np.where(allowed, recall, -1.0)
        i = int(np.argmax(value))  # the first best: the lowest such threshold
        return float(candidates[i]), float(value[i])
    decision = (answered_right + abstained_out) / len(conf)
    i = int(np.argmax(decision))  # the first best: the lowest such threshold
    return float(candidates[i]), float(decision[i])


OUTCOMES_FILE = "validation_outcomes.npy"
OUTCOME_COLUMNS = ("confidence", "in_scope", "top1_correct")


@dataclass
class ValidationOutcomes:
    """Validation's calibrated confidences, which rows were in scope and which were
    ranked right: all a new abstention goal needs, kept beside the ranker so that
    the goal can change without retraining (``frontdesk train threshold``)."""

    confidence: np.ndarray
    in_scope: np.ndarray
    top1_correct: np.ndarray

    def save(self, folder: Path) -> dict[str, Any]:
        """Write ``OUTCOMES_FILE`` (one row per validation row); returns its config entry."""
        table = np.column_stack([self.confidence, self.in_scope, self.top1_correct])
        np.save(folder / OUTCOMES_FILE, table.astype(np.float64), allow_pickle=False)
        return {
            "file": OUTCOMES_FILE,
            "columns": list(OUTCOME_COLUMNS),
            "rows": len(table),
            "out_of_scope": int((~np.asarray(self.in_scope, dtype=bool)).sum()),
        }

    @classmethod
    def load(cls, folder: Path, entry: Any) -> ValidationOutcomes:
        """Read the file an entry of ``save`` names, and check it against the entry."""
        path = folder / OUTCOMES_FILE
        expected = {"file": OUTCOMES_FILE, "columns": list(OUTCOME_COLUMNS)}
        if not isinstance(entry, dict) or any(entry.get(k) != v for k, v in expected.items()):
            raise IndexIntegrityError(f"{folder}: ranker.json: validation_outcomes: {entry!r}")
        try:
            table = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexIntegrityError(f"{path}: unreadable: {exc}") from None
        if table.dtype != np.float64 or table.shape != (entry.get("rows"), len(OUTCOME_COLUMNS)):
            raise IndexIntegrityError(
                f"{path}: {table.dtype} {table.shape} does not match its entry in ranker.json "
                f"(float64, {entry.get('rows')} rows of {list(OUTCOME_COLUMNS)})"
            )
        conf, flags = table[:, 0], table[:, 1:]
        if not (np.isfinite(conf).all() and ((conf >= 0) & (conf <= 1)).all()):
            raise IndexIntegrityError(f"{path}: confidences outside [0, 1]")
        if not np.isin(flags, (0.0, 1.0)).all():
            raise IndexIntegrityError(f"{path}: in_scope and top1_correct must be 0 or 1")
        if int((flags[:, 0] == 0).sum()) != entry.get("out_of_scope"):
            raise IndexIntegrityError(
                f"{path}: {int((flags[:, 0] == 0).sum())} out-of-scope rows, ranker.json says "
                f"{entry.get('out_of_scope')}"
            )
        return cls(conf, flags[:, 0] == 1, flags[:, 1] == 1)
