"""Candidates and features of rows that are not in the index, as inference computes them."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ...schema import LabelledQuery
from ...suggester import Suggester
from ..classifier import WorkflowClassifier
from ..features import CandidateSet, FeatureExtractor, full_extractor, retrieve_candidates
from ..priors import WorkflowPriors


class WholeIndexScorer:
    """Features against the whole index, with the priors and classifier saved with the ranker.

    For rows no index example came from (a validation file, its two-turn forms,
    the training file's out-of-scope rows): they need no fold, and see exactly
    what they would see at inference.
    """

    def __init__(
        self,
        suggester: Suggester,
        priors: WorkflowPriors,
        classifier: WorkflowClassifier | None,
        top_n: int,
        context_n: int,
    ) -> None:
        assert suggester.hybrid is not None and suggester.encoder is not None
        self.suggester = suggester
        self.priors = priors
        self.classifier = classifier
        self.top_n = top_n
        self.context_n = context_n

    @functools.cached_property
    def extractor(self) -> FeatureExtractor:
        """Built once, on first use (a carved validation without negatives never needs it)."""
        return full_extractor(self.suggester.index, self.priors, self.classifier)

    def __call__(
        self, rows: Sequence[LabelledQuery]
    ) -> tuple[list[CandidateSet], list[np.ndarray]]:
        """Each row's hybrid candidates and their feature matrix."""
        s = self.suggester
        assert s.hybrid is not None and s.encoder is not None
        enc = s.encoder.encode_contexts(list(rows))
        tokens = [s.query_tokens(q) for q in rows]
        # the queries inference makes
        enc, query, *_ = s.context_queries(list(rows), enc, tokens, keep_hits=False)
        assert query is not None
        tokens = query
        cands = retrieve_candidates(
            s.hybrid, enc.vectors, tokens, self.top_n, enc.context_vectors, self.context_n
        )
        return cands, self.extractor.extract(enc, cands, [len(t) for t in tokens])
