"""Ranking metrics for one relevant workflow per query, named by string (``"ndcg@10"``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

METRICS = ("top1", "recall@3", "recall@5", "recall@10", "mrr@10", "ndcg@10")


def rank_of(label: str, ranked_ids: Sequence[str]) -> int | None:
    """1-based rank of ``label`` in ``ranked_ids``, or None when absent."""
    for i, wid in enumerate(ranked_ids, start=1):
        if wid == label:
            return i
    return None


def _metric(name: str, rank: int | None) -> float:
    if name == "top1":
        return float(rank == 1)
    kind, _, cut = name.partition("@")
    k = int(cut)
    if rank is None or rank > k:
        return 0.0
    if kind == "recall":
        return 1.0
    if kind == "mrr":
        return 1.0 / rank
    if kind == "ndcg":  # one relevant item: ideal DCG is 1
        return 1.0 / math.log2(rank + 1)
    raise ValueError(f"unknown metric {name!r}")


def evaluate_ranks(
    ranks: Sequence[int | None], metrics: Sequence[str] = METRICS
) -> dict[str, float]:
    """Mean of each metric over queries, given the rank of each query's label."""
    n = len(ranks)
    out: dict[str, float] = {
        m: (sum(_metric(m, r) for r in ranks) / n if n else 0.0) for m in metrics
    }
    out["n"] = n
    return out
