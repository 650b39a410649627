"""LambdaRank's query groups: one per labelled row whose workflow was among its candidates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ...schema import LabelledQuery
from ..features import FEATURE_NAMES, CandidateSet

# (features of every candidate, stacked; relevance 1 on the gold one, else 0; group sizes)
Groups = tuple[np.ndarray, np.ndarray, list[int]]


def ranking_groups(
    rows: Sequence[LabelledQuery],
    candidates: Sequence[CandidateSet],
    features: Sequence[np.ndarray],
    positions: Mapping[str, int],
) -> Groups:
    """The query groups of ``rows`` (``positions``: workflow id to position in the index).

    Out-of-scope rows, rows without candidates and rows whose workflow was not
    retrieved are left out: there is nothing to rank right in them.
    """
    xs, ys, sizes = [], [], []
    for q, c, x in zip(rows, candidates, features, strict=True):
        rel = _relevance(q, c, positions)
        if rel is None:
            continue
        xs.append(x)
        ys.append(rel)
        sizes.append(len(rel))
    if not xs:
        return np.zeros((0, len(FEATURE_NAMES)), np.float32), np.zeros(0, np.float32), []
    return np.concatenate(xs), np.concatenate(ys), sizes


def group_weights(
    rows: Sequence[LabelledQuery],
    candidates: Sequence[CandidateSet],
    weights: Sequence[float | None],
    positions: Mapping[str, int],
) -> np.ndarray:
    """Per candidate row of ``ranking_groups(rows, ...)``, its query's weight (``weights``:
    one per row). The weighted groups (a float) are scaled to average 1 among themselves, so
    the trees' regularisation reads as without weights; a group weighing None (a labelled
    file's row) weighs 1, whatever the others."""
    kept = [
        (w, len(c.fused))
        for q, c, w in zip(rows, candidates, weights, strict=True)
        if _relevance(q, c, positions) is not None
    ]
    if not kept:
        return np.zeros(0, np.float32)
    scaled = [w for w, _ in kept if w is not None]
    mean = float(np.mean(scaled)) if scaled else 1.0
    scale = 1.0 / mean if mean > 0 else 1.0
    return np.concatenate(
        [np.full(n, 1.0 if w is None else w * scale, np.float32) for w, n in kept]
    )


def first_of_each(weights: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Per group, its weight (``weights``: one per candidate row, as ``group_weights``)."""
    return weights[np.cumsum([0, *sizes[:-1]]).astype(np.int64)] if sizes else weights[:0]


def _relevance(
    q: LabelledQuery, c: CandidateSet, positions: Mapping[str, int]
) -> np.ndarray | None:
    """1 on the gold candidate, else 0; None when there is nothing to rank right (out of
    scope, no candidates, or the gold not retrieved)."""
    if q.label is None or len(c.fused) == 0:
        return None
    rel = (c.fused.ids == positions[q.label]).astype(np.float32)
    return rel if rel.sum() > 0 else None
