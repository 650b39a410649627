"""DenseSearcher: nearest documents in FAISS, aggregated per workflow."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

import numpy as np

from .ranked import Ranked, aggregate_decayed, aggregate_max


class DenseSearcher:
    """Cosine search over workflow texts and example questions; one hit list per workflow."""

    def __init__(
        self,
        index: Any,
        doc_workflow: np.ndarray,
        *,
        depth: int = 100,
        aggregate: Literal["max", "top3", "top5"] = "top3",
    ) -> None:
        self.index = index
        self.doc_workflow = doc_workflow
        self.depth = depth
        self._aggregate = (
            aggregate_max
            if aggregate == "max"
            else partial(aggregate_decayed, n=int(aggregate[3:]))
        )

    def search(self, vectors: np.ndarray, k: int) -> list[Ranked]:
        """For each query vector (rows of ``vectors``), the best ``k`` workflows."""
        if len(vectors) == 0:
            return []
        depth = min(max(self.depth, k), self.index.ntotal)
        scores, ids = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), depth)
        return [self._aggregate(ids[i], scores[i], self.doc_workflow, k) for i in range(len(ids))]
