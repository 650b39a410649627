"""Tune an index's prototype weight on its own held-out examples, at build time.

The labelled examples an index is built from are also its best validation
data: hold out a stratified 10 % of the example documents, index the rest,
and score each candidate weight by top-1 of hybrid retrieval on the held-out
questions. Their vectors were computed for the index anyway, so tuning costs
no extra encoding. Catalogs with too few examples to tune on (fewer than
``MIN_HELDOUT`` held out: under about 30 per workflow on BANKING77) take
``FEW_EXAMPLES_WEIGHT``; catalogs without examples keep 0 (their prototype is
their own texts' mean, which the vote already reads).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import Settings
from .subset import subset_searcher

PROTOTYPE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
MIN_HELDOUT = 200
# Chosen on validation carved from train (benchmarks/few_shot.py --split val, 3 seeds,
# FRONTDESK_PROTOTYPE_WEIGHT set): with 1, 5 and 10 examples per workflow, 0.5 gave
# BANKING77 top-1 71.9 / 80.9 / 83.8 % and CLINC150 82.8 / 88.1 / 91.1 %; 0 gave
# 70.7 / 79.7 / 83.3 and 81.0 / 86.0 / 88.7; 0.8 gave 72.0 / 80.3 / 82.7 and
# 83.3 / 89.1 / 91.5. 0.5 is within a point of the better of the two everywhere.
FEW_EXAMPLES_WEIGHT = 0.5


def heldout_examples(
    is_example: np.ndarray, owner: np.ndarray, fraction: float, seed: int, cap: int
) -> np.ndarray:
    """Document positions to hold out: ``fraction`` of each workflow's examples (>= 3 needed)."""
    by_wf: dict[int, list[int]] = defaultdict(list)
    for d in np.flatnonzero(is_example).tolist():
        by_wf[int(owner[d])].append(d)
    rng = random.Random(seed)
    out: list[int] = []
    for w in sorted(by_wf):
        docs = by_wf[w]
        if len(docs) >= 3:
            out.extend(rng.sample(docs, max(1, round(len(docs) * fraction))))
    if len(out) > cap:
        out = rng.sample(out, cap)
    return np.asarray(sorted(out), dtype=np.int64)


def tune_prototype_weight(
    vectors: np.ndarray,
    owner: np.ndarray,
    is_example: np.ndarray,
    tokens: Sequence[Sequence[str]],
    n_workflows: int,
    settings: Settings,
    *,
    fraction: float = 0.1,
    seed: int = 0,
    cap: int = 3000,
) -> dict[str, Any]:
    """The weight with the best held-out top-1 (ties: the smaller weight), and the evidence."""
    held = heldout_examples(is_example, owner, fraction, seed, cap)
    if len(held) < MIN_HELDOUT:
        weight = FEW_EXAMPLES_WEIGHT if bool(np.any(is_example)) else 0.0
        return {
            "weight": weight,
            "heldout": int(len(held)),
            "reason": f"fewer than {MIN_HELDOUT} held-out examples; not tuned"
            + ("" if weight == 0.0 else ": the few-examples default"),
        }
    keep = np.ones(len(owner), dtype=bool)
    keep[held] = False
    subset = subset_searcher(vectors, owner, tokens, keep, n_workflows, settings, 0.0)
    gold = owner[held]
    queries = vectors[held]
    query_tokens = [list(tokens[i]) for i in held.tolist()]
    top1: dict[str, float] = {}
    for weight in PROTOTYPE_WEIGHTS:
        subset.hybrid.dense.prototype_weight = weight
        hybrid = subset.hybrid
        hits = hybrid.search(queries, query_tokens, k=1)
        top1[str(weight)] = float(
            np.mean(
                [
                    len(fused) > 0 and fused.ids[0] == g
                    for (fused, _, _), g in zip(hits, gold, strict=True)
                ]
            )
        )
    best = max(PROTOTYPE_WEIGHTS, key=lambda w: (top1[str(w)], -w))
    return {"weight": best, "heldout": int(len(held)), "top1_by_weight": top1}
