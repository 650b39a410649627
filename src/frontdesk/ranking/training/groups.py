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
        if q.label is None or len(c.fused) == 0:
            continue
        rel = (c.fused.ids == positions[q.label]).astype(np.float32)
        if rel.sum() == 0:  # gold not retrieved: nothing to learn from this group
            continue
        xs.append(x)
        ys.append(rel)
        sizes.append(len(rel))
    if not xs:
        return np.zeros((0, len(FEATURE_NAMES)), np.float32), np.zeros(0, np.float32), []
    return np.concatenate(xs), np.concatenate(ys), sizes
