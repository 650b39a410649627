"""Candidate workflows for a query: dense (FAISS), sparse (BM25) and their fusion."""

from .dense import DenseSearcher
from .fusion import reciprocal_rank_fusion, weighted_score_fusion
from .hybrid import HybridSearcher
from .ranked import Ranked
from .sparse import SparseSearcher

__all__ = [
    "DenseSearcher",
    "HybridSearcher",
    "Ranked",
    "SparseSearcher",
    "reciprocal_rank_fusion",
    "weighted_score_fusion",
]
