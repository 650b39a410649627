"""The abstention trade-off on a ranker's own validation rows.

Before choosing a goal (``frontdesk train threshold``), an analyst wants to
see what each threshold would cost and buy: how many questions go
unanswered, how many of the answered ones are right, how many out-of-scope
questions are caught. The ranker keeps validation's calibrated confidences
and outcomes (``ValidationOutcomes``), so the whole curve is read off them
without encoding anything. In-scope accuracy, OOS recall and precision are
counted as ``frontdesk eval`` counts them, as if the threshold were stored
with the ranker; the accuracy of what is answered and decision accuracy
are added, and 95 % intervals that show how few rows validation counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FrontdeskError
from ..ranking.abstention import saved_outcomes
from ..ranking.calibration import ValidationOutcomes, decision_accuracy
from ..ranking.reranker import LambdaRankReranker
from .suggestions import abstention_metrics, abstention_rates

MIN_STEP = 0.001  # at most 1,001 rows of grid


def threshold_grid(step: float) -> list[float]:
    """0, step, 2 step, ... and 1."""
    if not MIN_STEP <= step <= 1.0:
        raise FrontdeskError(f"--step must be in [{MIN_STEP:g}, 1], got {step:g}")
    grid = {round(i * step, 10) for i in range(int(np.floor(1.0 / step + 1e-9)) + 1)}
    return sorted(grid | {1.0})


def wilson_interval(successes: int, n: int, z: float = 1.96) -> list[float] | None:
    """The Wilson score interval (z = 1.96: 95 %) of a share, ``successes`` of ``n``:
    the range the share on more rows like these could take, given how few rows it
    counts. None without rows."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def tradeoff_rows(
    outcomes: ValidationOutcomes, thresholds: Sequence[float]
) -> list[dict[str, Any]]:
    """At each threshold (abstain below it): abstained_rate, in_scope_accuracy,
    answered_accuracy (right among the answered rows, out-of-scope ones counting
    wrong), oos_recall, oos_precision and decision_accuracy, with 95 % intervals of
    in-scope accuracy and OOS recall (``wilson_interval``). An OOS measure is None
    where it has nothing to count (no out-of-scope rows, nothing abstained)."""
    conf, ins, ok = outcomes.confidence, outcomes.in_scope, outcomes.top1_correct
    n_in, n_out = int(ins.sum()), int((~ins).sum())
    rows = []
    for t in thresholds:
        abstained = conf < t
        answered = ~abstained
        rates: dict[str, float | None] = dict(abstention_rates(ins, ok & ins, abstained))
        if ins.all():
            rates["oos_recall"] = rates["oos_precision"] = None
        elif not abstained.any():
            rates["oos_precision"] = None
        rows.append(
            {
                "threshold": float(t),
                "abstained_rate": float(abstained.mean()) if len(conf) else 0.0,
                "in_scope_accuracy": rates["in_scope_accuracy"] if ins.any() else None,
                "answered_accuracy": (
                    float(np.mean((ok & ins)[answered])) if answered.any() else None
                ),
                "oos_recall": rates["oos_recall"],
                "oos_precision": rates["oos_precision"],
                "decision_accuracy": decision_accuracy(conf, ins, ok, float(t)),
                "in_scope_accuracy_95ci": wilson_interval(int((ok & ins & answered).sum()), n_in),
                "oos_recall_95ci": wilson_interval(int((~ins & abstained).sum()), n_out),
            }
        )
    return rows


def ranker_tradeoff(ranker_dir: str | Path, step: float = 0.05) -> dict[str, Any]:
    """The trade-off table of a saved ranker on its validation outcomes, on a grid of
    thresholds with the stored one among them (marked ``stored``)."""
    grid = threshold_grid(step)  # refuse a bad step before loading anything
    reranker = LambdaRankReranker.load(ranker_dir)
    outcomes = saved_outcomes(reranker, ranker_dir, "to see its trade-off")
    stored = float(reranker.threshold)
    table = tradeoff_rows(outcomes, sorted({*grid, stored}))
    for row in table:
        row["stored"] = row["threshold"] == stored
    ins = outcomes.in_scope
    at_stored = abstention_metrics(
        ins, outcomes.top1_correct & ins, outcomes.confidence < stored, outcomes.confidence
    )
    return {
        "ranker": str(ranker_dir),
        "threshold": stored,
        "abstention_goal": reranker.config.get("abstention_goal"),
        "val_rows": len(outcomes.confidence),
        "val_out_of_scope": int((~ins).sum()),
        "auroc": at_stored.get("auroc"),
        "table": table,
    }
