"""FAISS inner-product indexes: exact up to a size, HNSW above it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings


def build_dense(vectors: np.ndarray, settings: Settings) -> tuple[Any, dict[str, Any]]:
    """An inner-product index over normalised vectors (= cosine), and its parameters."""
    import faiss

    n, d = vectors.shape
    if n <= settings.exact_max:
        index = faiss.IndexFlatIP(d)
        params: dict[str, Any] = {"type": "flat", "metric": "inner_product"}
    else:
        index = faiss.IndexHNSWFlat(d, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.hnsw_ef_construction
        params = {
            "type": "hnsw",
            "metric": "inner_product",
            "m": settings.hnsw_m,
            "ef_construction": settings.hnsw_ef_construction,
            "ef_search": settings.hnsw_ef_search,
        }
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, params


def write_dense(index: Any, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read_dense(path: Path, params: dict[str, Any]) -> Any:
    import faiss

    index = faiss.read_index(str(path))
    if params.get("type") == "hnsw":
        index.hnsw.efSearch = int(params.get("ef_search", 128))
    return index
