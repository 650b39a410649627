"""FAISS inner-product indexes chosen by size: exact (flat), HNSW, or IVF with 8-bit codes.

``auto`` keeps exact search up to ``Settings.exact_max`` vectors and uses
IVF-SQ8 above it (a trained coarse quantiser, one byte per dimension: a
quarter of the memory of flat, and seconds to build where HNSW takes many
minutes on two cores). The search-time knob (``nprobe`` for IVF, ``efSearch``
for HNSW) is tuned at build time: the smallest value whose recall@10 against
exact search reaches ``Settings.dense_recall_target`` on probe queries.

The probes are the index's own example questions when it has at least
``MIN_EXAMPLE_PROBES`` (each searched for its ten nearest *other*
documents): they are real user questions, and on the scale benchmark their
recall tracks that of unseen test questions within a point at every
``nprobe``. A catalog without examples gets synthetic probes at cosine
``PROBE_COSINE`` from random indexed vectors instead, which is pessimistic
(a larger knob than needed, never a smaller one). Everything chosen and
measured goes into the manifest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..config import Settings
from ..errors import FrontdeskError

DenseKind = Literal["auto", "flat", "hnsw", "ivf"]
DENSE_KINDS: tuple[str, ...] = ("auto", "flat", "hnsw", "ivf")
PROBE_COSINE = 0.75
PROBE_QUERIES = 300
MIN_EXAMPLE_PROBES = 100
RECALL_K = 10
NPROBES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
EF_SEARCHES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def choose_kind(n: int, requested: str, exact_max: int) -> str:
    """The index kind for ``n`` vectors: as requested, or by size for ``auto``."""
    if requested not in DENSE_KINDS:
        raise ValueError(f"dense index {requested!r}: must be one of {', '.join(DENSE_KINDS)}")
    if requested != "auto":
        return requested
    return "flat" if n <= exact_max else "ivf"


def ivf_lists(n: int) -> int:
    """IVF list count: about sqrt(n), a power of two, at least 1 and at most n / 39.

    FAISS wants >= 39 training points per centroid; sqrt(n) keeps k-means
    training to seconds on two cores and scans about 1/sqrt(n) of the vectors
    per probed list.
    """
    target = 2 ** round(math.log2(max(1.0, math.sqrt(n))))
    return int(max(1, min(target, n // 39)))


def build_dense(
    vectors: np.ndarray,
    settings: Settings,
    requested: str | None = None,
    probe_rows: np.ndarray | None = None,
) -> tuple[Any, dict[str, Any]]:
    """An inner-product index over normalised vectors (= cosine), and its parameters.

    ``probe_rows``: the rows that are example questions (tuning probes; see above).
    """
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = x.shape
    requested = requested or settings.dense_index
    kind = choose_kind(n, requested, settings.exact_max)
    params: dict[str, Any] = {"type": kind, "requested": requested, "metric": "inner_product"}
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
        index.add(x)
        return index, params
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.hnsw_ef_construction
        index.add(x)
        params.update(m=settings.hnsw_m, ef_construction=settings.hnsw_ef_construction)
    else:
        nlist = settings.ivf_lists or ivf_lists(n)
        if nlist > n:
            raise FrontdeskError(
                f"ivf_lists (FRONTDESK_IVF_LISTS) is {nlist}, more than the {n} vectors to "
                "index: each list needs at least one training vector (unset it for about sqrt(n))"
            )
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.cp.min_points_per_centroid = 1  # small catalogs: no FAISS warning, fewer points
        train = x
        cap = nlist * 64
        if n > cap:
            rows = np.random.default_rng(0).choice(n, cap, replace=False)
            train = x[np.sort(rows)]
        index.train(train)
        index.add(x)
        params.update(lists=nlist, codes="sq8", trained_on=int(len(train)))
    params.update(tune_search(index, x, kind, settings.dense_recall_target, probe_rows))
    apply_search_params(index, params)
    return index, params


def add_to_trained(old: Any, vectors: np.ndarray, params: dict[str, Any]) -> Any:
    """A new IVF index with ``old``'s trained quantiser, holding ``vectors`` (no retraining)."""
    import faiss

    index = faiss.clone_index(old)
    index.reset()
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    apply_search_params(index, params)
    return index


def probe_queries(x: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Unit queries at cosine ``PROBE_COSINE`` from ``count`` random rows of ``x``."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(x), min(count, len(x)), replace=False)
    base = x[rows].astype(np.float64)
    noise = rng.standard_normal(base.shape)
    noise -= (noise * base).sum(axis=1, keepdims=True) * base  # orthogonal to the base row
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = PROBE_COSINE * base + math.sqrt(1 - PROBE_COSINE**2) * noise
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def exact_neighbours(x: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The true top-``k`` rows of ``x`` for each query (FAISS flat, inner product)."""
    import faiss

    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(np.ascontiguousarray(x, dtype=np.float32))
    return flat.search(queries, k)[1]


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each query's true neighbours that were found."""
    k = truth.shape[1]
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits) / k)


def tune_search(
    index: Any, x: np.ndarray, kind: str, target: float, probe_rows: np.ndarray | None = None
) -> dict[str, Any]:
    """The smallest search-time knob reaching ``target`` recall@10 on probe queries."""
    k = min(RECALL_K, len(x) - 1) if probe_rows is not None else min(RECALL_K, len(x))
    if probe_rows is not None and len(probe_rows) >= MIN_EXAMPLE_PROBES and k > 0:
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(probe_rows, min(PROBE_QUERIES, len(probe_rows)), replace=False))
        queries = x[rows]
        probes = "examples"

        def top(found: np.ndarray) -> np.ndarray:  # each probe's k nearest other documents
            return np.array(
                [[d for d in r if d != q][:k] for q, r in zip(rows, found, strict=True)]
            )

        truth = top(exact_neighbours(x, queries, k + 1))
        search = lambda: top(index.search(queries, k + 1)[1])  # noqa: E731
    else:
        k = min(RECALL_K, len(x))
        queries = probe_queries(x, PROBE_QUERIES)
        probes = f"cosine {PROBE_COSINE} from random documents"
        truth = exact_neighbours(x, queries, k)
        search = lambda: index.search(queries, k)[1]  # noqa: E731
    name, grid = ("nprobe", NPROBES) if kind == "ivf" else ("ef_search", EF_SEARCHES)
    if kind == "ivf":
        grid = tuple(v for v in grid if v < index.nlist) + (index.nlist,)
    measured: dict[str, float] = {}
    chosen = grid[-1]
    for value in grid:
        apply_search_params(index, {"type": kind, name: value})
        measured[str(value)] = round(recall_at(search(), truth), 4)
        if measured[str(value)] >= target:
            chosen = value
            break
    return {
        name: chosen,
        "recall_at_10": measured[str(chosen)],
        "recall_target": target,
        "tuning": {"probes": probes, "probe_queries": len(queries), name: measured},
    }


def apply_search_params(index: Any, params: dict[str, Any]) -> None:
    """Set the search-time knob recorded in ``params`` on a loaded index."""
    if params.get("type") == "hnsw":
        index.hnsw.efSearch = int(params.get("ef_search", 128))
    elif params.get("type") == "ivf":
        index.nprobe = int(params.get("nprobe", 32))


def reconstruct_all(index: Any) -> np.ndarray:
    """Every stored vector, in id order (IVF: the decoded 8-bit codes, within ~1e-3)."""
    import faiss

    if index.ntotal == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
        ivf.make_direct_map()
    return index.reconstruct_n(0, index.ntotal)


def write_dense(index: Any, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read_dense(path: Path, params: dict[str, Any]) -> Any:
    import faiss

    index = faiss.read_index(str(path))
    apply_search_params(index, params)
    return index


def describe(params: dict[str, Any]) -> str:
    """One line for people: kind and its search knob."""
    kind = params.get("type", "?")
    extras: Sequence[str] = []
    if kind == "ivf":
        extras = [f"{params.get('lists')} lists", f"nprobe {params.get('nprobe')}"]
    elif kind == "hnsw":
        extras = [f"M {params.get('m')}", f"efSearch {params.get('ef_search')}"]
    recall = params.get("recall_at_10")
    if recall is not None:
        extras = [*extras, f"probe recall@10 {recall:.3f}"]
    return f"{kind} ({', '.join(extras)})" if extras else kind
