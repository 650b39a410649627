"""An in-memory hybrid searcher over a subset of an index's documents.

Used where an index must be searched as if some of its examples were not in
it: tuning on held-out examples, and out-of-fold features for the ranker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..config import Settings
from .dense import DenseSearcher, workflow_prototypes
from .hybrid import HybridSearcher
from .sparse import SparseSearcher, bm25_index


@dataclass
class SubsetSearcher:
    """A hybrid searcher over ``keep`` documents, plus what it was built from."""

    hybrid: HybridSearcher
    keep: np.ndarray  # positions of the kept documents in the full index
    prototypes: np.ndarray


def subset_searcher(
    vectors: np.ndarray,
    owner: np.ndarray,
    tokens: Sequence[Sequence[str]],
    keep: np.ndarray,
    n_workflows: int,
    settings: Settings,
    prototype_weight: float,
) -> SubsetSearcher:
    """Flat FAISS + BM25 + prototypes over the kept documents only (positions stay per workflow)."""
    import faiss

    kept = np.flatnonzero(keep) if keep.dtype == bool else np.asarray(keep)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.ascontiguousarray(vectors[kept], dtype=np.float32))
    bm25 = bm25_index([tokens[i] for i in kept.tolist()], k1=settings.bm25_k1, b=settings.bm25_b)
    protos = workflow_prototypes(vectors[kept], owner[kept], n_workflows)
    dense = DenseSearcher(
        flat,
        owner[kept],
        depth=settings.dense_depth,
        aggregate=settings.dense_aggregate,
        prototypes=protos,
        prototype_weight=prototype_weight,
        prototype_scan_max=settings.prototype_scan_max,
    )
    sparse = SparseSearcher(bm25, owner[kept], depth=settings.sparse_depth)
    hybrid = HybridSearcher(
        dense,
        sparse,
        fusion=settings.fusion,
        dense_weight=settings.dense_weight,
        rrf_k=settings.rrf_k,
    )
    return SubsetSearcher(hybrid, kept, protos)
