"""Features of (conversation, candidate workflow) pairs for the learning-to-rank layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..encoding import EncodedContexts
from ..index import WorkflowIndex
from ..retrieval import HybridSearcher, Ranked
from ..schema import Workflow
from .classifier import WorkflowClassifier
from .priors import PROFILE_FIELDS, WorkflowPriors

MAX_TURNS = 3

FEATURE_NAMES: tuple[str, ...] = (
    # the retrievers' own view
    "fused_score", "fused_rank", "fused_gap",
    "dense_score", "dense_rank", "dense_gap", "dense_missing",
    "sparse_score", "sparse_rank", "sparse_gap", "sparse_missing",
    # the conversation vector against the workflow's documents
    "example_max", "example_mean", "example_top3", "example_max_gap", "log_examples",
    "title_sim", "workflow_text_sim", "prototype_sim", "prototype_gap",
    # the latest text alone, and each earlier turn (most recent first)
    "text_example_max", "text_prototype_sim",
    *(f"turn{j}_sim" for j in range(1, MAX_TURNS + 1)), "turn_max_sim", "n_turns",
    *(f"turn{j}_example_max" for j in range(1, MAX_TURNS + 1)), "turn_example_max",
    # the earlier user turns alone (what was asked before "any update?"), and how far
    # the latest text and that earlier request each stand above the other candidates
    "context_dense_score", "context_dense_rank", "context_dense_gap",
    "context_example_max", "context_example_top3", "context_example_max_gap",
    "context_prototype_sim", "context_prototype_gap",
    "text_example_top3", "text_example_max_gap", "text_prototype_gap",
    # a linear classifier fitted on the labelled rows (NaN: a workflow it never saw),
    # on the conversation vector, the latest text and the earlier user turns
    "classifier_logp", "classifier_gap", "text_classifier_logp", "context_classifier_logp",
    # priors from training data
    "log_popularity", *(f"profile_{f}_fit" for f in PROFILE_FIELDS),
    "query_tokens",
)  # fmt: skip


@dataclass
class CandidateSet:
    """One query's candidates as retrieved: fused, dense and sparse lists (workflow positions)."""

    fused: Ranked
    dense: Ranked
    sparse: Ranked
    context: Ranked | None = None  # dense hits of the earlier user turns, when there are any


def retrieve_candidates(
    hybrid: HybridSearcher,
    vectors: np.ndarray,
    token_lists: Sequence[Sequence[str]],
    top_n: int,
    context_vectors: np.ndarray | None = None,
    context_n: int = 0,
) -> list[CandidateSet]:
    """Hybrid top-``top_n`` per query, with the dense and sparse lists kept for features.

    With ``context_n`` > 0, a query with earlier user turns also gets the dense
    top-``context_n`` of those turns alone (``context_vectors``), appended
    after the hybrid list at its lowest score: after "any update?" the
    conversation vector can push the question's workflow out of the top
    ``top_n``, and the ranker's turn features can only lift what is there.
    """
    found = [CandidateSet(f, d, s) for f, d, s in hybrid.search(vectors, token_lists, top_n)]
    if context_n <= 0 or context_vectors is None:
        return found
    rows = np.flatnonzero(np.any(context_vectors != 0, axis=1))
    if len(rows) == 0:
        return found
    hits_per_row = hybrid.dense.search(context_vectors[rows], max(context_n, hybrid.depth))
    for i, hits in zip(rows.tolist(), hits_per_row, strict=True):
        c = found[i]
        top = hits.ids[:context_n]
        extra = top[~np.isin(top, c.fused.ids)]
        fused = c.fused
        if len(extra):
            floor = float(fused.scores[-1]) if len(fused) else 0.0
            fused = Ranked(
                np.concatenate([fused.ids, extra]),
                np.concatenate([fused.scores, np.full(len(extra), floor)]),
            )
        found[i] = CandidateSet(fused, c.dense, c.sparse, hits)
    return found


class FeatureExtractor:
    """Computes ``FEATURE_NAMES`` for every candidate of every query, from one encoding."""

    def __init__(
        self,
        workflows: Sequence[Workflow],
        doc_vectors: np.ndarray,
        doc_workflow: np.ndarray,
        doc_is_example: np.ndarray,
        title_vectors: np.ndarray,
        prototypes: np.ndarray,
        priors: WorkflowPriors,
        classifier: WorkflowClassifier | None = None,
    ) -> None:
        self.workflows = list(workflows)
        self.title_vectors = title_vectors
        self.prototypes = prototypes
        self.priors = priors
        self.classifier = classifier
        self.class_of = (
            classifier.columns([wf.id for wf in self.workflows])
            if classifier is not None
            else np.full(len(self.workflows), -1, dtype=np.int64)
        )
        # documents grouped by workflow, the workflow's own text first in its group
        order = np.lexsort((doc_is_example.astype(np.int8), doc_workflow))
        self.vectors = np.ascontiguousarray(doc_vectors[order])
        owner = doc_workflow[order]
        n = len(self.workflows)
        self.start = np.searchsorted(owner, np.arange(n), side="left")
        self.end = np.searchsorted(owner, np.arange(n), side="right")
        examples_sorted = doc_is_example[order]
        self.n_examples = np.bincount(owner[examples_sorted], minlength=n)
        # own texts (whole text, then title) lead each group; examples follow
        self.n_texts = np.bincount(owner[~examples_sorted], minlength=n)

    def extract(
        self,
        encoded: EncodedContexts,
        candidates: Sequence[CandidateSet],
        query_tokens: Sequence[int],
    ) -> list[np.ndarray]:
        """Per query, a (candidates, features) float32 matrix in ``candidates[i].fused`` order."""
        out = [self._one(encoded, i, cands, query_tokens[i]) for i, cands in enumerate(candidates)]
        self._add_classifier(encoded, candidates, out)
        return out

    def _add_classifier(
        self, enc: EncodedContexts, candidates: Sequence[CandidateSet], out: list[np.ndarray]
    ) -> None:
        col = {name: j for j, name in enumerate(FEATURE_NAMES)}
        n = len(candidates)
        ctx = enc.context_vectors if enc.context_vectors is not None else None
        has_ctx = np.any(ctx != 0, axis=1) if ctx is not None else np.zeros(n, dtype=bool)
        logp: dict[str, np.ndarray | None] = {"": None, "text_": None, "context_": None}
        if self.classifier is not None and n:
            logp[""] = self.classifier.log_proba(enc.vectors)
            logp["text_"] = self.classifier.log_proba(enc.text_vectors)
            if ctx is not None and has_ctx.any():
                logp["context_"] = self.classifier.log_proba(ctx)
        for i, c in enumerate(candidates):
            x = out[i]
            if len(x) == 0:
                continue
            cls = self.class_of[c.fused.ids]
            known = cls >= 0
            for prefix, table in logp.items():
                values = np.full(len(x), np.nan, dtype=np.float32)
                if table is not None and (prefix != "context_" or has_ctx[i]):
                    values[known] = table[i, cls[known]]
                x[:, col[f"{prefix}classifier_logp"]] = values
            values = x[:, col["classifier_logp"]]
            best = np.max(values[known]) if known.any() else np.nan
            x[:, col["classifier_gap"]] = best - values

    def _one(self, enc: EncodedContexts, i: int, c: CandidateSet, n_tokens: int) -> np.ndarray:
        ids = c.fused.ids
        m = len(ids)
        out = np.zeros((m, len(FEATURE_NAMES)), dtype=np.float32)
        if m == 0:
            return out
        v, t = enc.vectors[i], enc.text_vectors[i]
        ctx = enc.context_vectors[i] if enc.context_vectors is not None else np.zeros_like(t)
        col = {name: j for j, name in enumerate(FEATURE_NAMES)}

        fused = c.fused.scores
        out[:, col["fused_score"]] = fused
        out[:, col["fused_rank"]] = np.arange(1, m + 1)
        out[:, col["fused_gap"]] = fused[0] - fused
        lists = [("dense", c.dense), ("sparse", c.sparse)]
        if c.context is not None:
            lists.append(("context_dense", c.context))
        for name, ranked in lists:
            table = ranked.as_dict()
            top = float(ranked.scores[0]) if len(ranked) else 0.0
            floor = float(ranked.scores[-1]) if len(ranked) else 0.0
            scale = top if name == "sparse" and top > 0 else 1.0
            for r, w in enumerate(ids.tolist()):
                score, rank = table.get(w, (floor, len(ranked) + 1))
                out[r, col[f"{name}_score"]] = score / scale
                out[r, col[f"{name}_rank"]] = rank
                out[r, col[f"{name}_gap"]] = (top - score) / scale
                if name != "context_dense":
                    out[r, col[f"{name}_missing"]] = float(w not in table)

        spans = [np.arange(self.start[w], self.end[w]) for w in ids.tolist()]
        flat = np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)
        turns = enc.turn_vectors[i]
        recent = turns[::-1][:MAX_TURNS]  # most recent first
        sims = self.vectors[flat] @ np.stack([v, t, ctx, *recent], axis=1)  # (docs, 3 + turns)
        offset = 0
        for r, w in enumerate(ids.tolist()):
            span = sims[offset : offset + len(spans[r])]
            offset += len(spans[r])
            n_texts = int(self.n_texts[w])
            ex = span[n_texts:]
            if len(ex) == 0:
                ex = span  # no examples: the workflow text stands in
            out[r, col["example_max"]] = ex[:, 0].max()
            out[r, col["example_mean"]] = ex[:, 0].mean()
            k = min(3, len(ex))
            out[r, col["example_top3"]] = np.partition(ex[:, 0], len(ex) - k)[-k:].mean()
            out[r, col["text_example_max"]] = ex[:, 1].max()
            out[r, col["text_example_top3"]] = np.partition(ex[:, 1], len(ex) - k)[-k:].mean()
            out[r, col["context_example_max"]] = ex[:, 2].max()
            out[r, col["context_example_top3"]] = np.partition(ex[:, 2], len(ex) - k)[-k:].mean()
            for j in range(len(recent)):
                out[r, col[f"turn{j + 1}_example_max"]] = ex[:, 3 + j].max()
            if len(recent):
                out[r, col["turn_example_max"]] = ex[:, 3:].max()
            out[r, col["workflow_text_sim"]] = span[0, 0] if n_texts else 0.0
            out[r, col["log_examples"]] = math.log1p(int(self.n_examples[w]))
        for name in ("example_max", "context_example_max", "text_example_max"):
            out[:, col[f"{name}_gap"]] = out[:, col[name]].max() - out[:, col[name]]

        protos = self.prototypes[ids]
        out[:, col["title_sim"]] = self.title_vectors[ids] @ v
        out[:, col["prototype_sim"]] = protos @ v
        out[:, col["prototype_gap"]] = (
            out[:, col["prototype_sim"]].max() - out[:, col["prototype_sim"]]
        )
        out[:, col["text_prototype_sim"]] = protos @ t
        out[:, col["context_prototype_sim"]] = protos @ ctx
        for name in ("context_prototype", "text_prototype"):
            out[:, col[f"{name}_gap"]] = (
                out[:, col[f"{name}_sim"]].max() - out[:, col[f"{name}_sim"]]
            )

        if len(recent):
            turn_sims = protos @ recent.T  # (m, turns)
            for j in range(turn_sims.shape[1]):
                out[:, col[f"turn{j + 1}_sim"]] = turn_sims[:, j]
            out[:, col["turn_max_sim"]] = turn_sims.max(axis=1)
        out[:, col["n_turns"]] = len(turns)

        user = enc.profiles[i] if enc.profiles else None
        for r, w in enumerate(ids.tolist()):
            wf = self.workflows[w]
            out[r, col["log_popularity"]] = self.priors.popularity(wf.id)
            if user is not None:
                fits = self.priors.profile_fit(user, wf.tags)
                for f, value in zip(PROFILE_FIELDS, fits, strict=True):
                    out[r, col[f"profile_{f}_fit"]] = value
        out[:, col["query_tokens"]] = n_tokens
        return out


def full_extractor(
    index: WorkflowIndex, priors: WorkflowPriors, classifier: WorkflowClassifier | None = None
) -> FeatureExtractor:
    """Features against the whole index (inference, and an explicit validation file)."""
    assert index.title_vectors is not None and index.prototypes is not None
    return FeatureExtractor(
        index.workflows,
        index.document_vectors(),
        index.doc_workflow,
        index.doc_kind != 0,
        index.title_vectors,
        index.prototypes,
        priors,
        classifier,
    )
