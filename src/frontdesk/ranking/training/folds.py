"""Out-of-fold candidate features: each fold's rows searched as if they had never been seen.

Training questions are usually also the index's examples. Each fold's rows are
searched in an in-memory copy of the index without their own example documents
(``retrieval.subset``), with priors and a classifier fitted on the other folds
only, so the ranker never trains on a query that finds itself. Cold start: in
each fold some workflows also look as if added after training (no examples,
no popularity, no class), so the ranker learns to rank a new workflow.

``plan_folds`` decides all of that from the rows alone (no encoding);
``fit_fold_models`` builds one view's searcher and extractor;
``out_of_fold_features`` runs every view.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ...config import Settings
from ...encoding import EncodedContexts
from ...encoding.context_gate import ContextGate, context_queries, gate_source
from ...index import WorkflowIndex
from ...retrieval.subset import SubsetSearcher, subset_searcher
from ...suggester import Suggester
from ..features import CandidateSet, FeatureExtractor, retrieve_candidates
from ..priors import WorkflowPriors
from .config import RankerTrainingConfig
from .groups import Groups, ranking_groups
from .rows import TrainingRows, fit_classifier

Progress = Callable[[str, int, int], None]


def cold_start_count(n_workflows: int, share: float) -> int:
    """How many workflows each fold treats as new: at least one when ``share`` > 0, so the
    trees always see a missing class (LightGBM reads an unseen NaN as 0, "certain")."""
    if share <= 0 or n_workflows < 2:
        return 0
    return min(max(1, int(n_workflows * share)), n_workflows - 1)


@dataclass(frozen=True)
class FoldIndex:
    """An index as the fold searches read it, with the retrieval settings of its suggester."""

    index: WorkflowIndex
    settings: Settings
    prototype_weight: float
    positions: dict[str, int]  # workflow id -> position
    vectors: np.ndarray  # every document's vector
    owner: np.ndarray  # every document's workflow position
    is_example: np.ndarray  # an example, not one of the workflow's own texts
    tokens: list[list[str]]  # every document's BM25 tokens
    examples: dict[tuple[int, str], list[int]]  # (workflow, document key) -> example documents

    @classmethod
    def of(cls, suggester: Suggester) -> FoldIndex:
        """The documents of ``suggester``'s index, tokenised once for every fold."""
        index = suggester.index
        assert suggester.dense is not None
        owner, is_example = index.doc_workflow, index.doc_kind != 0
        documents = index.documents()
        return cls(
            index,
            suggester.settings,
            suggester.dense.prototype_weight,
            {wf.id: i for i, wf in enumerate(index.workflows)},
            index.document_vectors(),
            owner,
            is_example,
            [index.tokenizer(t) for t in documents],
            index.example_documents(),
        )


@dataclass(frozen=True)
class FoldView:
    """One search of some of one fold's rows, and what its models may learn from.

    A fold has up to two views: its training rows (and, with a carved
    validation, the validation rows of its new workflows, as cold copies),
    with ``new_workflows`` treated as new; and its carved validation rows,
    with none new, as at inference.
    """

    fold: int
    rows: list[int]  # the rows scored
    new_workflows: frozenset[str]  # no examples searched, no popularity, no class
    documents: np.ndarray  # bool per index document: searched in this view
    fit_rows: list[int]  # the given rows the view's priors and classifier are fitted on
    cold_copies: list[int] = field(default_factory=list)  # validation rows scored as new here


@dataclass(frozen=True)
class FoldPlan:
    """Every fold's views, and which training rows were new in their fold."""

    views: list[FoldView]
    new_per_fold: int  # workflows each fold treats as new
    cold_rows: set[int]  # training rows whose workflow was new in their fold


def plan_folds(
    where: FoldIndex,
    data: TrainingRows,
    held_out: set[int],
    config: RankerTrainingConfig,
) -> FoldPlan:
    """Each fold's views: which rows, which documents, which workflows new, fitted on what.

    ``held_out``: the given rows carved out as validation (empty with a
    validation file); they and their two-turn forms are scored in a view of
    their own, where nothing is new, and the rows of the fold's new workflows
    among them once more as new, for early stopping only (it must value new
    workflows as training does). Every view searches without the fold's own
    questions' example documents. Its priors and classifier come from the
    other folds' given rows, less those with a copy in this fold (same label,
    same text) and those of its new workflows: a row's own label must not
    shape its features.
    """
    rows, pos = data.rows, where.positions
    labelled_ids = sorted({str(q.label) for q in data.given if q.label is not None})
    n_cold = cold_start_count(len(labelled_ids), config.cold_start)
    cold_rng = random.Random(config.seed + 2)
    row_key = [data.key(i) for i in range(len(rows))]
    views: list[FoldView] = []
    cold_rows: set[int] = set()
    for f in range(config.folds):
        members = [i for i in range(len(rows)) if data.fold[i] == f]
        own = {row_key[i] for i in members if rows[i].label is not None}
        keep = np.ones(len(where.owner), dtype=bool)
        for label, key in own:
            keep[where.examples.get((pos[str(label)], key), [])] = False
        others = [i for i in range(data.n_given) if data.fold[i] != f and row_key[i] not in own]
        left_out = set(cold_rng.sample(labelled_ids, n_cold))
        trained = [i for i in members if data.parent[i] not in held_out]
        held = [i for i in members if data.parent[i] in held_out]
        cold_rows.update(i for i in trained if rows[i].label in left_out)
        held_cold = [i for i in held if rows[i].label in left_out]
        for group, new, copies in ((trained + held_cold, left_out, held_cold), (held, set(), [])):
            if not group:
                continue
            documents = keep & ~(where.is_example & np.isin(where.owner, [pos[w] for w in new]))
            fit_rows = [i for i in others if rows[i].label not in new]
            views.append(FoldView(f, group, frozenset(new), documents, fit_rows, copies))
    return FoldPlan(views, n_cold, cold_rows)


@dataclass(frozen=True)
class FoldModels:
    """One view's searcher (its documents only) and feature extractor (its priors, classifier)."""

    searcher: SubsetSearcher
    extractor: FeatureExtractor


def fit_fold_models(
    where: FoldIndex, view: FoldView, data: TrainingRows, row_vectors: np.ndarray
) -> FoldModels:
    """The searcher over ``view.documents`` and the extractor with priors and classifier
    fitted on ``view.fit_rows`` (``row_vectors``: every training row's conversation vector)."""
    index = where.index
    assert index.title_vectors is not None
    sub = subset_searcher(
        where.vectors,
        where.owner,
        where.tokens,
        view.documents,
        len(where.positions),
        where.settings,
        where.prototype_weight,
    )
    kept = sub.keep
    extractor = FeatureExtractor(
        index.workflows,
        where.vectors[kept],
        where.owner[kept],
        where.is_example[kept],
        index.title_vectors,
        sub.prototypes,
        WorkflowPriors.fit(index.workflows, [data.rows[i] for i in view.fit_rows]),
        fit_classifier(data.rows, row_vectors, view.fit_rows),
    )
    return FoldModels(sub, extractor)


@dataclass(frozen=True)
class OutOfFoldFeatures:
    """Every training row's out-of-fold candidates and features, and the cold copies."""

    candidates: list[CandidateSet]
    features: list[np.ndarray]
    # carved validation rows of their fold's new workflows, scored as new (early stopping)
    cold_copies: dict[int, tuple[CandidateSet, np.ndarray]]

    def groups(self, data: TrainingRows, rows: Sequence[int], positions: dict[str, int]) -> Groups:
        """The query groups of training rows ``rows``."""
        return ranking_groups(
            [data.rows[i] for i in rows],
            [self.candidates[i] for i in rows],
            [self.features[i] for i in rows],
            positions,
        )


def out_of_fold_features(
    where: FoldIndex,
    plan: FoldPlan,
    data: TrainingRows,
    encoded: EncodedContexts,
    query_tokens: Sequence[Sequence[str]],
    config: RankerTrainingConfig,
    progress: Progress | None = None,
) -> OutOfFoldFeatures:
    """Candidates (hybrid top ``config.top_n``, plus the earlier turns' dense ones) and
    features of every row, each from the views of its fold (``encoded``, ``query_tokens``:
    of every row of ``data``)."""
    tick = progress or (lambda stage, done, total: None)
    gate = functools.cache(
        lambda: ContextGate.load(
            gate_source(where.settings.context_model, where.index.context_gate_file)[0]
        )
    )
    n = len(data.rows)
    cands: list[CandidateSet | None] = [None] * n
    feats: list[np.ndarray | None] = [None] * n
    cold_copies: dict[int, tuple[CandidateSet, np.ndarray]] = {}
    for f in range(config.folds):
        tick("out-of-fold features", f, config.folds)
        for view in (v for v in plan.views if v.fold == f):
            models = fit_fold_models(where, view, data, encoded.vectors)
            # the queries inference would make (context mode), from this fold's documents
            enc_g, toks, *_ = context_queries(
                where.settings.context,
                models.searcher.hybrid,
                encoded.take(view.rows),
                [data.rows[i] for i in view.rows],
                where.index.tokenizer,
                [list(query_tokens[i]) for i in view.rows],
                gate,
                keep_hits=False,
            )
            assert toks is not None
            cs = retrieve_candidates(
                models.searcher.hybrid,
                enc_g.vectors,
                toks,
                config.top_n,
                enc_g.context_vectors,
                config.context_candidates,
            )
            xs = models.extractor.extract(enc_g, cs, [len(t) for t in toks])
            copies = set(view.cold_copies)
            for i, c, x in zip(view.rows, cs, xs, strict=True):
                if i in copies:
                    cold_copies[i] = (c, x)
                else:
                    cands[i], feats[i] = c, x
    tick("out-of-fold features", config.folds, config.folds)
    # every row is in one fold, and scored in one of its views other than as a cold copy
    assert all(c is not None for c in cands) and all(x is not None for x in feats)
    return OutOfFoldFeatures(
        [c for c in cands if c is not None], [x for x in feats if x is not None], cold_copies
    )
