"""Evaluate a Suggester over labelled queries (rows labelled null are not scored here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..api import Suggester
from ..schema import LabelledQuery
from .metrics import METRICS, evaluate_ranks, rank_of


def evaluate_suggester(
    suggester: Suggester,
    queries: Sequence[LabelledQuery],
    *,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """top1, recall@3/5/10, mrr@10, ndcg@10 and n over rows with a label."""
    rows = [q for q in queries if q.label is not None]
    depth = max(int(m.split("@")[1]) for m in METRICS if "@" in m)
    ranks: list[int | None] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        results = suggester.suggest_many(batch, k=depth)
        for q, sugg in zip(batch, results, strict=True):
            ranks.append(rank_of(q.label or "", [s.workflow_id for s in sugg]))
        if progress is not None:
            progress(len(batch))
    report: dict[str, Any] = evaluate_ranks(ranks)
    report["mode"] = suggester.mode
    report["n_unlabelled"] = len(queries) - len(rows)
    return report
