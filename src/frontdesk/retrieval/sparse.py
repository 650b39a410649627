"""SparseSearcher: BM25 (bm25s) over workflow texts and examples, aggregated per workflow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .ranked import Ranked, aggregate_max

EMPTY_DOCUMENT = ""
"""bm25s's token for a document without tokens; never searched (see :meth:`SparseSearcher._one`)."""


def bm25_index(tokens: Sequence[Sequence[str]], *, k1: float, b: float) -> Any:
    """A bm25s (Lucene) index of these token lists.

    When no document has a single token (titles all stopwords, or in a script the
    tokenizer does not read, such as Chinese), bm25s cannot build an index
    (``max() arg is an empty sequence``): each document then holds the empty-document
    token alone, so the index builds and BM25 finds nothing, as it would for a query
    of unknown words.
    """
    import bm25s

    docs = [list(t) for t in tokens]
    if docs and not any(docs):
        docs = [[EMPTY_DOCUMENT] for _ in docs]
    bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
    bm25.index(docs, show_progress=False)
    return bm25


def has_tokens(tokens: Sequence[Sequence[str]]) -> bool:
    """Whether BM25 would know any word of these documents."""
    return any(t != EMPTY_DOCUMENT for doc in tokens for t in doc)


class SparseSearcher:
    """Lexical search; robust to unknown words (a query of only unknown words finds nothing)."""

    def __init__(self, bm25: Any, doc_workflow: np.ndarray, *, depth: int = 100) -> None:
        self.bm25 = bm25
        self.doc_workflow = doc_workflow
        self.depth = depth
        self._vocab = bm25.vocab_dict

    def search(self, token_lists: Sequence[Sequence[str]], k: int) -> list[Ranked]:
        """For each token list, the best ``k`` workflows by their best document's BM25 score."""
        return [self._one(tokens, k) for tokens in token_lists]

    def _one(self, tokens: Sequence[str], k: int) -> Ranked:
        known = [t for t in tokens if t in self._vocab and t != EMPTY_DOCUMENT]
        if not known:  # bm25s raises IndexError on an all-unknown query
            return Ranked.empty()
        scores = self.bm25.get_scores(known)
        depth = min(max(self.depth, k), len(scores))
        top = top_indices(scores, depth)
        top = top[scores[top] > 0]
        return aggregate_max(top, scores[top], self.doc_workflow, k)


def top_indices(scores: np.ndarray, depth: int) -> np.ndarray:
    """Positions of the ``depth`` best scores, best first (ties: arbitrary but complete).

    Above 64k documents a threshold from a 1-in-16 sample cuts the
    candidates before the partial sort; the result is exact because it is
    only used when at least ``depth`` scores reach the threshold.
    """
    n = len(scores)
    if n > 65_536:
        sample = scores[::16]
        rank = min(len(sample) - 1, 2 * depth // 16 + 8)
        threshold = np.partition(sample, len(sample) - 1 - rank)[len(sample) - 1 - rank]
        if threshold > 0:
            cand = np.flatnonzero(scores >= threshold)
            if len(cand) >= depth:
                sub = scores[cand]
                part = np.argpartition(-sub, depth - 1)[:depth]
                top = cand[part]
                return top[np.argsort(-scores[top], kind="stable")]
    top = np.argpartition(-scores, depth - 1)[:depth]
    return top[np.argsort(-scores[top], kind="stable")]
