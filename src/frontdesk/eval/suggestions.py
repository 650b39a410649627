"""Evaluate a Suggester over labelled queries.

Ranking metrics are over rows with a label. With a ranker, and rows labelled
null (out of scope) in the file, abstention is judged too, at the threshold
stored with the ranker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..schema import LabelledQuery
from ..suggester import Suggester
from .metrics import METRICS, evaluate_ranks, rank_of
from .report import RowResult


def abstention_rates(
    in_scope: Sequence[bool], correct: Sequence[bool], abstained: Sequence[bool]
) -> dict[str, float]:
    """in_scope_accuracy (right and answered, over in-scope rows), oos_recall and
    oos_precision (fractions; 0.0 where a denominator is empty)."""
    ins = np.asarray(in_scope, dtype=bool)
    ok = np.asarray(correct, dtype=bool)
    ab = np.asarray(abstained, dtype=bool)
    oos = ~ins
    return {
        "in_scope_accuracy": float(np.mean(ok[ins] & ~ab[ins])) if ins.any() else 0.0,
        "oos_recall": float(np.mean(ab[oos])) if oos.any() else 0.0,
        "oos_precision": float(np.mean(oos[ab])) if ab.any() else 0.0,
    }


def abstention_metrics(
    in_scope: Sequence[bool],
    correct: Sequence[bool],
    abstained: Sequence[bool],
    confidence: Sequence[float],
) -> dict[str, float]:
    """``abstention_rates`` and OOS-detection AUROC (fractions)."""
    out = abstention_rates(in_scope, correct, abstained)
    ins = np.asarray(in_scope, dtype=bool)
    oos = ~ins
    if ins.any() and oos.any():
        from sklearn.metrics import roc_auc_score

        out["auroc"] = float(roc_auc_score(oos.astype(int), -np.asarray(confidence, dtype=float)))
    return out


def evaluate_suggester(
    suggester: Suggester,
    queries: Sequence[LabelledQuery],
    *,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
    details: list[RowResult] | None = None,
) -> dict[str, Any]:
    """top1, recall@3/5/10, mrr@10, ndcg@10, n; with a ranker and null rows, abstention too.

    Pass a list as ``details`` to receive one ``RowResult`` per evaluated row (for reports).
    """
    with_ranker = suggester.ranker is not None
    rows = list(queries) if with_ranker else [q for q in queries if q.label is not None]
    depth = max(int(m.split("@")[1]) for m in METRICS if "@" in m)
    ranks: list[int | None] = []
    in_scope, correct, abstained, confidence = [], [], [], []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        results = suggester.suggest_many(batch, k=depth)
        for q, sugg in zip(batch, results, strict=True):
            ids = [s.workflow_id for s in sugg]
            rank = rank_of(q.label, ids) if q.label is not None else None
            if q.label is not None:
                ranks.append(rank)
            if details is not None:
                details.append(
                    RowResult(
                        q.id,
                        q.label,
                        ids,
                        rank,
                        sugg.confidence,
                        sugg.abstained,
                        q.user.fields(),
                        q.text,
                        sugg.query_from,
                    )  # fmt: skip
                )
            in_scope.append(q.label is not None)
            correct.append(q.label is not None and bool(ids) and ids[0] == q.label)
            abstained.append(sugg.abstained)
            confidence.append(sugg.confidence if sugg.confidence is not None else 1.0)
        if progress is not None:
            progress(len(batch))
    report: dict[str, Any] = evaluate_ranks(ranks)
    report["mode"] = suggester.mode + ("+ranker" if with_ranker else "")
    # which turns made the queries (FRONTDESK_CONTEXT), and the gate's file for gated
    report["context"] = suggester.settings.context
    if suggester.settings.context == "gated":
        report["context_gate"] = suggester.context_gate_name
    report["n_unlabelled"] = sum(q.label is None for q in queries)
    if with_ranker:
        report["threshold"] = suggester.ranker.threshold
        report["abstained_rate"] = float(np.mean(abstained)) if abstained else 0.0
        if report["n_unlabelled"]:
            report.update(abstention_metrics(in_scope, correct, abstained, confidence))
    return report
