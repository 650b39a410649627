"""Fusion of dense and sparse lists, on hand-made rankings."""

from __future__ import annotations

import numpy as np
import pytest

from frontdesk.retrieval import Ranked, reciprocal_rank_fusion, weighted_score_fusion
from frontdesk.retrieval.ranked import aggregate_decayed, aggregate_max


def r(ids: list[int], scores: list[float]) -> Ranked:
    return Ranked(np.asarray(ids, dtype=np.int64), np.asarray(scores, dtype=np.float64))


DENSE = r([1, 2, 3], [0.9, 0.8, 0.5])  # workflow 4 missing from dense
SPARSE = r([2, 4, 1], [10.0, 8.0, 2.0])  # workflow 3 missing from sparse


def test_rrf_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion(DENSE, SPARSE, k=4, rrf_k=60)
    # 2: 1/62 + 1/61 beats 1: 1/61 + 1/63
    assert fused.ids.tolist() == [2, 1, 4, 3]
    assert fused.scores[0] == pytest.approx(1 / 62 + 1 / 61)


def test_weighted_fusion_scales_bm25_by_best_and_floors_missing_dense() -> None:
    fused = weighted_score_fusion(DENSE, SPARSE, k=4, dense_weight=0.5)
    expected = {
        1: 0.5 * 0.9 + 0.5 * 0.2,
        2: 0.5 * 0.8 + 0.5 * 1.0,
        3: 0.5 * 0.5 + 0.0,  # absent from sparse: 0
        4: 0.5 * 0.5 + 0.5 * 0.8,  # absent from dense: dense list's lowest score
    }
    assert fused.ids.tolist() == sorted(expected, key=lambda w: -expected[w])
    assert dict(zip(fused.ids.tolist(), fused.scores.tolist(), strict=True)) == pytest.approx(
        expected
    )


def test_weighted_fusion_with_empty_sparse_keeps_dense_order() -> None:
    fused = weighted_score_fusion(DENSE, Ranked.empty(), k=2, dense_weight=0.9)
    assert fused.ids.tolist() == [1, 2]


def test_aggregations_over_document_hits() -> None:
    owner = np.array([0, 0, 1, 1, 1, 2])  # documents -> workflows
    docs = np.array([2, 0, 3, 4, 1, -1])  # FAISS pads with -1
    sims = np.array([0.9, 0.85, 0.8, 0.7, 0.6, 0.0])
    assert aggregate_max(docs, sims, owner, k=5).ids.tolist() == [1, 0]
    # workflow 1: (0.9 + 0.8/2 + 0.7/4)/1.75 = 0.843; workflow 0: (0.85 + 0.6/2 + 0.6/4)/1.75 = 0.743
    vote = aggregate_decayed(docs, sims, owner, k=5, n=3)
    assert vote.ids.tolist() == [1, 0]
    assert vote.scores.tolist() == pytest.approx(
        [(0.9 + 0.4 + 0.175) / 1.75, (0.85 + 0.3 + 0.15) / 1.75]
    )
