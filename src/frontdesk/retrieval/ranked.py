"""Ranked: a best-first list of workflow positions with their scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ranked:
    """Workflow positions (into the index's workflow list), best first, with scores."""

    ids: np.ndarray  # int64
    scores: np.ndarray  # float64

    @classmethod
    def empty(cls) -> Ranked:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_scores(cls, scores: dict[int, float], k: int) -> Ranked:
        """The best ``k`` of ``{workflow position: score}``; ties broken by position."""
        order = sorted(scores, key=lambda w: (-scores[w], w))[:k]
        return cls(
            np.asarray(order, dtype=np.int64),
            np.asarray([scores[w] for w in order], dtype=np.float64),
        )

    def top(self, k: int) -> Ranked:
        return Ranked(self.ids[:k], self.scores[:k])

    def as_dict(self) -> dict[int, tuple[float, int]]:
        """``{workflow position: (score, 1-based rank)}``."""
        return {
            int(i): (float(s), r)
            for r, (i, s) in enumerate(zip(self.ids, self.scores, strict=True), 1)
        }


def aggregate_max(doc_ids: np.ndarray, scores: np.ndarray, owner: np.ndarray, k: int) -> Ranked:
    """Per workflow, the best score among its documents' hits (hits sorted best first)."""
    seen: dict[int, float] = {}
    for d, s in zip(doc_ids.tolist(), scores.tolist(), strict=True):
        if d < 0:
            continue
        w = int(owner[d])
        if w not in seen:
            seen[w] = s
            if len(seen) == k:
                break
    return Ranked(
        np.fromiter(seen, dtype=np.int64, count=len(seen)),
        np.fromiter(seen.values(), dtype=np.float64, count=len(seen)),
    )


def aggregate_decayed(
    doc_ids: np.ndarray, scores: np.ndarray, owner: np.ndarray, k: int, n: int = 3
) -> Ranked:
    """Per workflow, a soft k-NN vote: its ``n`` best hits weighted 1, 1/2, 1/4, …

    Normalised by the weights' sum so the score stays on the cosine scale; a
    workflow with fewer than ``n`` hits in the window repeats its last one.
    """
    acc: dict[int, list[float]] = {}
    for d, s in zip(doc_ids.tolist(), scores.tolist(), strict=True):
        if d < 0:
            continue
        hits = acc.setdefault(int(owner[d]), [])
        if len(hits) < n:
            hits.append(s)
    weights = [0.5**i for i in range(n)]
    norm = sum(weights)
    fused = {
        w: sum(wt * h for wt, h in zip(weights, hits + [hits[-1]] * (n - len(hits)), strict=True))
        / norm
        for w, hits in acc.items()
    }
    return Ranked.from_scores(fused, k)
