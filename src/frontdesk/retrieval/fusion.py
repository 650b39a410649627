"""Fusing two ranked lists: reciprocal-rank fusion and weighted score fusion."""

from __future__ import annotations

from .ranked import Ranked


def reciprocal_rank_fusion(dense: Ranked, sparse: Ranked, k: int, rrf_k: int = 60) -> Ranked:
    """Sum of 1 / (rrf_k + rank) over the lists a workflow appears in (Cormack et al., 2009)."""
    fused: dict[int, float] = {}
    for ranked in (dense, sparse):
        for rank, w in enumerate(ranked.ids.tolist(), start=1):
            fused[w] = fused.get(w, 0.0) + 1.0 / (rrf_k + rank)
    return Ranked.from_scores(fused, k)


def weighted_score_fusion(dense: Ranked, sparse: Ranked, k: int, dense_weight: float) -> Ranked:
    """``w * cosine + (1 - w) * BM25 / max BM25`` per workflow.

    BM25 scores are scaled by the query's best score so both sides live in
    [0, 1]; a workflow missing from the dense list takes that list's lowest
    score (an upper bound on what it would have had), one missing from the
    sparse list takes 0.
    """
    d = dict(zip(dense.ids.tolist(), dense.scores.tolist(), strict=True))
    top_sparse = float(sparse.scores[0]) if len(sparse) and sparse.scores[0] > 0 else 1.0
    s = {
        w: v / top_sparse for w, v in zip(sparse.ids.tolist(), sparse.scores.tolist(), strict=True)
    }
    floor = float(dense.scores[-1]) if len(dense) else 0.0
    fused = {
        w: dense_weight * d.get(w, floor) + (1.0 - dense_weight) * s.get(w, 0.0)
        for w in set(d) | set(s)
    }
    return Ranked.from_scores(fused, k)
