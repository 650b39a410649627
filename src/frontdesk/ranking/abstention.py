"""A ranker's abstention goal: the threshold it implies on validation, and changing it.

Validation's outcomes are saved with the ranker (``ValidationOutcomes``), so
another goal is a new threshold read off them, without retraining: the
booster, calibration and classifier stay as they are. Training chooses its
first threshold through the same ``choose_abstention``.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import read_manifest
from ..errors import FrontdeskError
from .calibration import ValidationOutcomes, check_goals, choose_threshold, decision_accuracy
from .reranker import LambdaRankReranker


@dataclass(frozen=True)
class AbstentionChoice:
    """A threshold and what it gives on validation."""

    threshold: float
    goal: str  # in words, as saved in ranker.json
    min_in_scope_accuracy: float | None
    min_oos_recall: float | None
    goal_value: float  # what choose_threshold returns for this goal
    decision_accuracy: float
    in_scope_accuracy: float | None  # None without in-scope rows
    oos_recall: float | None  # None without out-of-scope rows

    @property
    def missed(self) -> list[str]:
        """The stated constraints this threshold does not meet on validation."""
        return [
            f"{name} {value:.4f} < {target:g}"
            for name, value, target in (
                ("in-scope accuracy", self.in_scope_accuracy, self.min_in_scope_accuracy),
                ("OOS recall", self.oos_recall, self.min_oos_recall),
            )
            if target is not None and value is not None and value < target
        ]

    def apply(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` (a ranker's) with this goal and its validation values recorded."""
        training = {
            **config.get("training", {}),
            "val_decision_accuracy": self.decision_accuracy,
            "val_goal_value": self.goal_value,
            "val_in_scope_accuracy": self.in_scope_accuracy,
            "val_oos_recall": self.oos_recall,
        }
        return {
            **config,
            "abstention_goal": self.goal,
            "min_in_scope_accuracy": self.min_in_scope_accuracy,
            "min_oos_recall": self.min_oos_recall,
            "training": training,
        }


def goal_text(min_in_scope_accuracy: float | None, min_oos_recall: float | None) -> str:
    """The abstention goal in words, as saved in ``ranker.json``."""
    if min_in_scope_accuracy is not None and min_oos_recall is not None:
        return (
            f"in-scope accuracy >= {min_in_scope_accuracy:g} and OOS recall >= "
            f"{min_oos_recall:g} on validation: the middle of the thresholds that meet both"
        )
    if min_oos_recall is not None:
        return (
            f"abstain on >= {min_oos_recall:g} of out-of-scope validation rows, keeping "
            "in-scope accuracy highest"
        )
    if min_in_scope_accuracy is not None:
        return (
            "abstain on the most out-of-scope validation rows with in-scope accuracy >= "
            f"{min_in_scope_accuracy:g}"
        )
    return "maximise accuracy over in-scope and out-of-scope validation rows"


TRAINING_REMEDY = (
    "give a --val file with some, or put some in the training file for the carved 10 %"
)


def check_goal_for(
    outcomes_have_oos: bool,
    min_in_scope_accuracy: float | None,
    min_oos_recall: float | None,
    remedy: str = TRAINING_REMEDY,
) -> None:
    """Refuse a goal outside [0, 1], or an OOS recall goal without out-of-scope rows
    (FrontdeskError, saying what to do: ``remedy``), before any work."""
    try:
        check_goals(min_in_scope_accuracy, min_oos_recall)
    except ValueError as exc:
        raise FrontdeskError(str(exc)) from exc
    if min_oos_recall is not None and not outcomes_have_oos:
        raise FrontdeskError(
            f"--min-oos-recall needs out-of-scope rows (label null) in validation: {remedy}"
        )


def choose_abstention(
    outcomes: ValidationOutcomes,
    min_in_scope_accuracy: float | None = None,
    min_oos_recall: float | None = None,
) -> AbstentionChoice:
    """The threshold for a goal (``calibration.choose_threshold``) and its validation values."""
    conf, ins, ok = outcomes.confidence, outcomes.in_scope, outcomes.top1_correct
    threshold, value = choose_threshold(conf, ins, ok, min_in_scope_accuracy, min_oos_recall)
    answered = conf >= threshold
    return AbstentionChoice(
        threshold=threshold,
        goal=goal_text(min_in_scope_accuracy, min_oos_recall),
        min_in_scope_accuracy=min_in_scope_accuracy,
        min_oos_recall=min_oos_recall,
        goal_value=value,
        decision_accuracy=decision_accuracy(conf, ins, ok, threshold),
        in_scope_accuracy=float(np.mean(answered[ins] & ok[ins])) if ins.any() else None,
        oos_recall=float(np.mean(~answered[~ins])) if (~ins).any() else None,
    )


def warn_if_missed(choice: AbstentionChoice) -> None:
    """A warning when no threshold met the stated goal on validation."""
    if choice.missed:
        warnings.warn(
            f"no threshold meets the abstention goal on validation ({', '.join(choice.missed)}); "
            "stored the nearest one",
            stacklevel=3,
        )


def saved_outcomes(
    reranker: LambdaRankReranker, ranker_dir: str | Path, purpose: str
) -> ValidationOutcomes:
    """The validation outcomes saved with a ranker; a FrontdeskError saying to retrain
    it (``purpose``: what the retraining is for) when it was saved without them."""
    if reranker.validation is None:
        raise FrontdeskError(
            f"{ranker_dir}: saved without its validation outcomes (by a frontdesk before "
            f"they were kept); retrain it with `frontdesk train ranker` {purpose}"
        )
    return reranker.validation


def change_abstention_goal(
    ranker_dir: str | Path,
    out: str | Path,
    *,
    min_in_scope_accuracy: float | None = None,
    min_oos_recall: float | None = None,
) -> dict[str, Any]:
    """Write a copy of a saved ranker at ``out`` (which may be ``ranker_dir`` itself:
    replaced atomically) whose threshold is chosen for another goal on the validation
    outcomes saved with it; returns the goal, the old and new thresholds and the
    validation values at each. No goal: the default (maximise decision accuracy)."""
    src, dst = Path(ranker_dir).resolve(), Path(out).resolve()
    if src in dst.parents:
        raise FrontdeskError(
            f"{out}: inside the ranker folder {ranker_dir}, whose manifest would not list "
            "it; write the new ranker beside it, or over it (--out the same folder)"
        )
    reranker = LambdaRankReranker.load(ranker_dir)  # verifies the checksums
    # the training's record, kept through goal changes (verified just above)
    manifest = read_manifest(src, verify=False)
    outcomes = saved_outcomes(reranker, ranker_dir, "to change its goal")
    check_goal_for(
        bool((~outcomes.in_scope).any()),
        min_in_scope_accuracy,
        min_oos_recall,
        remedy="this ranker's validation had none; retrain it with a --val file that has some",
    )
    old = reranker.config.get("training", {})
    before = {
        "threshold": reranker.threshold,
        "abstention_goal": reranker.config.get("abstention_goal"),
        "val_in_scope_accuracy": old.get("val_in_scope_accuracy"),
        "val_oos_recall": old.get("val_oos_recall"),
        "val_decision_accuracy": old.get("val_decision_accuracy"),
    }
    choice = choose_abstention(outcomes, min_in_scope_accuracy, min_oos_recall)
    warn_if_missed(choice)
    history = [*reranker.config.get("goal_changes", []), {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "from": str(ranker_dir),
        "threshold_before": reranker.threshold,
        "goal_before": before["abstention_goal"],
        "source_created_at": manifest.get("created_at"),
        "source_versions": manifest.get("versions"),
    }]  # fmt: skip
    reranker.config = {**choice.apply(reranker.config), "goal_changes": history}
    reranker.threshold = choice.threshold
    reranker.save(out)
    after = {
        "threshold": choice.threshold,
        "abstention_goal": choice.goal,
        "val_in_scope_accuracy": choice.in_scope_accuracy,
        "val_oos_recall": choice.oos_recall,
        "val_decision_accuracy": choice.decision_accuracy,
        "missed": choice.missed,  # the goal's constraints not met on validation
    }
    return {"ranker": str(out), "source": str(ranker_dir), "before": before, "after": after}
