"""DenseSearcher: nearest documents in FAISS, aggregated per workflow, blended with prototypes."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

import numpy as np

from .ranked import Ranked, aggregate_decayed, aggregate_max


def workflow_prototypes(vectors: np.ndarray, owner: np.ndarray, n_workflows: int) -> np.ndarray:
    """Per workflow, the normalised mean of its documents' vectors (its 'prototype')."""
    protos = np.zeros((n_workflows, vectors.shape[1]), dtype=np.float64)
    np.add.at(protos, owner, vectors)
    norms = np.linalg.norm(protos, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (protos / norms).astype(np.float32)


class DenseSearcher:
    """Cosine search over workflow texts and example questions; one score per workflow.

    A workflow's score is a soft k-NN vote over its nearest documents, blended
    with the query's cosine to the workflow's prototype (mean of its document
    vectors) by ``prototype_weight``. The vote is sharp where a workflow's
    examples are varied (BANKING77); the prototype is robust where each
    example is short and noisy (CLINC150). The weight is tuned per index on
    held-out examples at build time (see ``retrieval.tuning``).
    """

    def __init__(
        self,
        index: Any,
        doc_workflow: np.ndarray,
        *,
        depth: int = 100,
        aggregate: Literal["max", "top3", "top5"] = "top3",
        prototypes: np.ndarray | None = None,
        prototype_weight: float = 0.0,
        prototype_scan_max: int = 20_000,
    ) -> None:
        self.index = index
        self.doc_workflow = doc_workflow
        self.depth = depth
        self._aggregate = (
            aggregate_max
            if aggregate == "max"
            else partial(aggregate_decayed, n=int(aggregate[3:]))
        )
        self.prototypes = prototypes
        self.prototype_weight = prototype_weight if prototypes is not None else 0.0
        # Above this many workflows, prototypes rescore the k-NN candidates instead of
        # being scanned in full (a full scan of 100k measured ~13 ms a query).
        self.prototype_scan_max = prototype_scan_max

    def search(self, vectors: np.ndarray, k: int) -> list[Ranked]:
        """For each query vector (rows of ``vectors``), the best ``k`` workflows."""
        if len(vectors) == 0:
            return []
        q = np.ascontiguousarray(vectors, dtype=np.float32)
        depth = min(max(self.depth, k), self.index.ntotal)
        scores, ids = self.index.search(q, depth)
        c = self.prototype_weight
        if c <= 0.0 or self.prototypes is None:
            return [self._aggregate(ids[i], scores[i], self.doc_workflow, k) for i in range(len(q))]
        if len(self.prototypes) > self.prototype_scan_max:
            return [self._rescored(q[i], ids[i], scores[i], k, c) for i in range(len(q))]
        proto_sims = q @ self.prototypes.T  # (n, workflows)
        m = min(max(k, 10), proto_sims.shape[1])
        proto_top = np.argpartition(-proto_sims, m - 1, axis=1)[:, :m]
        out = []
        for i in range(len(q)):
            knn = self._aggregate(ids[i], scores[i], self.doc_workflow, max(k, m))
            knn_scores = dict(zip(knn.ids.tolist(), knn.scores.tolist(), strict=True))
            floor = float(knn.scores[-1]) if len(knn) else 0.0
            cands = set(knn_scores) | set(proto_top[i].tolist())
            fused = {
                w: (1.0 - c) * knn_scores.get(w, floor) + c * float(proto_sims[i, w]) for w in cands
            }
            out.append(Ranked.from_scores(fused, k))
        return out

    def _rescored(
        self, q: np.ndarray, ids: np.ndarray, scores: np.ndarray, k: int, c: float
    ) -> Ranked:
        """The k-NN candidates' scores blended with their prototypes' cosine (no full scan)."""
        assert self.prototypes is not None
        knn = self._aggregate(ids, scores, self.doc_workflow, max(k, 10))
        if len(knn) == 0:
            return knn
        sims = np.asarray(self.prototypes[np.sort(knn.ids)] @ q, dtype=np.float64)
        proto = dict(zip(np.sort(knn.ids).tolist(), sims.tolist(), strict=True))
        fused = {
            w: (1.0 - c) * s + c * proto[w]
            for w, s in zip(knn.ids.tolist(), knn.scores.tolist(), strict=True)
        }
        return Ranked.from_scores(fused, k)
