"""Train the LambdaRank reranker from out-of-fold candidate features.

Training questions are usually also the index's examples. To train on
features that look like test-time features, each fold's questions are
searched in an in-memory copy of the index without their own example
documents (``retrieval.subset``): the ranker never sees a query that finds
itself in the index.
"""

from __future__ import annotations

import functools
import random
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..datasets.multiturn import KINDS, make_multiturn
from ..datasets.splits import carve_validation
from ..encoding import ContextEncoder
from ..errors import FrontdeskError
from ..index import WorkflowIndex
from ..index.builder import document_key
from ..retrieval.subset import subset_searcher
from ..schema import LabelledQuery
from ..suggester import Suggester
from .abstention import check_goal_for, choose_abstention, warn_if_missed
from .calibration import CONFIDENCE_INPUTS, PlattCalibrator, ValidationOutcomes, confidence_inputs
from .classifier import WorkflowClassifier
from .features import (
    FEATURE_NAMES,
    CandidateSet,
    FeatureExtractor,
    full_extractor,
    retrieve_candidates,
)
from .priors import WorkflowPriors
from .reranker import (
    DEFAULT_PARAMS,
    LambdaRankReranker,
    candidate_scores,
    choose_base_weight,
)

Progress = Callable[[str, int, int], None]


def _fit_classifier(
    rows: Sequence[LabelledQuery], vectors: np.ndarray, members: Sequence[int], leave_out: set[str]
) -> WorkflowClassifier | None:
    """The classifier on the labelled single-turn rows ``members``, minus workflows ``leave_out``."""
    keep = [i for i in members if rows[i].label is not None and rows[i].label not in leave_out]
    return WorkflowClassifier.fit(vectors[keep], [str(rows[i].label) for i in keep])


def _whole_index_candidates(
    suggester: Suggester,
    extractor: FeatureExtractor,
    encoder: ContextEncoder,
    rows: Sequence[LabelledQuery],
    top_n: int,
    context_n: int,
) -> tuple[list[CandidateSet], list[np.ndarray]]:
    """Candidates and features of rows that are not in the index (validation, negatives)."""
    assert suggester.hybrid is not None
    enc = encoder.encode_contexts(list(rows))
    tokens = [suggester.query_tokens(q) for q in rows]
    cands = retrieve_candidates(
        suggester.hybrid, enc.vectors, tokens, top_n, enc.context_vectors, context_n
    )
    return cands, extractor.extract(enc, cands, [len(t) for t in tokens])


def _groups(
    rows: Sequence[LabelledQuery],
    cands: Sequence[CandidateSet],
    feats: Sequence[np.ndarray],
    pos: dict[str, int],
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    xs, ys, sizes = [], [], []
    for q, c, x in zip(rows, cands, feats, strict=True):
        if q.label is None or len(c.fused) == 0:
            continue
        rel = (c.fused.ids == pos[q.label]).astype(np.float32)
        if rel.sum() == 0:  # gold not retrieved: nothing to learn from this group
            continue
        xs.append(x)
        ys.append(rel)
        sizes.append(len(rel))
    if not xs:
        return np.zeros((0, len(FEATURE_NAMES)), np.float32), np.zeros(0, np.float32), []
    return np.concatenate(xs), np.concatenate(ys), sizes


def _two_turn_forms(
    rows: Sequence[LabelledQuery], share: float, seed: int, distractors: Sequence[str]
) -> list[tuple[int, LabelledQuery]]:
    """Two-turn versions (every kind in ``KINDS``) of a seeded ``share`` of the labelled
    ``rows``, each with the position of the row it came from; phrases from the training pool."""
    if share <= 0:
        return []
    labelled = [i for i, q in enumerate(rows) if q.label is not None]
    picked = sorted(random.Random(seed + 1).sample(labelled, int(len(labelled) * share)))
    chosen = [rows[i] for i in picked]
    out: list[tuple[int, LabelledQuery]] = []
    for kind in KINDS:
        variants = make_multiturn(chosen, kind, seed=seed, distractors=distractors, phrases="train")
        out.extend(zip(picked, variants, strict=True))
    return out


def _cold_start_count(n_workflows: int, share: float) -> int:
    """How many workflows each fold treats as new: at least one when ``share`` > 0, so the
    trees always see a missing class (LightGBM reads an unseen NaN as 0, "certain")."""
    if share <= 0 or n_workflows < 2:
        return 0
    return min(max(1, int(n_workflows * share)), n_workflows - 1)


def train_ranker(
    index_dir: str | Path,
    rows: Sequence[LabelledQuery],
    out: str | Path,
    *,
    val_rows: Sequence[LabelledQuery] | None = None,
    folds: int = 5,
    top_n: int = 30,
    seed: int = 0,
    encoder: ContextEncoder | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    augment_context: float = 0.6,
    context_candidates: int = 10,
    cold_start: float = 0.1,
    min_in_scope_accuracy: float | None = None,
    min_oos_recall: float | None = None,
) -> dict[str, Any]:
    """Fit, calibrate and save a reranker for ``index_dir``; returns its config (with metrics).

    ``augment_context``: the share of labelled rows that also train in two-turn
    form (a distractor turn first; the question then a vague follow-up), so
    the turn features carry signal. Early stopping reads validation's questions
    and the same share of their two-turn forms (and, for a carved validation,
    the rows of each fold's new workflows once more, scored as new), so the
    trees are kept for every kind of conversation training serves;
    calibration and the threshold read validation as given.
    ``cold_start``: the share of workflows each fold treats as new (no examples
    in the index, no popularity, no class), so the ranker learns to rank a
    workflow added to the catalog after training.
    ``min_in_scope_accuracy``: the abstention goal; by default the threshold
    maximises decision accuracy on validation, with this it abstains on as
    much of validation's out-of-scope share as keeps in-scope accuracy there.
    ``min_oos_recall``: abstain on at least this share of validation's
    out-of-scope rows (needs some); with ``min_in_scope_accuracy`` too, the
    threshold is the middle of the range that meets both
    (``calibration.choose_threshold``).
    """
    settings = settings or Settings.from_env()
    index = WorkflowIndex.load(index_dir)
    suggester = Suggester(index, encoder=encoder, settings=settings)
    if suggester.mode != "hybrid" or suggester.encoder is None:
        raise FrontdeskError(f"{index_dir}: the ranker needs an index with a usable dense part")
    encoder = suggester.encoder
    if folds < 2:
        raise FrontdeskError("--folds must be at least 2")
    tick = progress or (lambda stage, done, total: None)

    pos = {wf.id: i for i, wf in enumerate(index.workflows)}
    vectors = index.document_vectors()
    owner, is_example = index.doc_workflow, index.doc_kind != 0
    documents = index.documents()
    tokens = [index.tokenizer(t) for t in documents]
    example_docs: dict[tuple[int, str], list[int]] = defaultdict(list)
    for d, text in enumerate(documents):
        if is_example[d]:
            example_docs[(int(owner[d]), document_key(text))].append(d)
    priors = WorkflowPriors.fit(index.workflows, rows)  # saved with the model, for inference
    assert suggester.dense is not None
    prototype_weight = suggester.dense.prototype_weight

    n_base = len(rows)
    base = list(rows)
    order = list(range(len(base)))
    random.Random(seed).shuffle(order)
    fold_of = {i: n % folds for n, i in enumerate(order)}
    parent = list(range(len(base)))
    distractors = [q.text for q in base if q.label is None]
    for i, v in _two_turn_forms(base, augment_context, seed, distractors):
        fold_of[len(parent)] = fold_of[i]
        parent.append(i)
        base.append(v)
    rows = base
    source_text = [rows[parent[i]].text for i in range(len(rows))]

    # a carved validation is chosen before the folds: its rows get features as at inference
    # (nothing of theirs treated as new), while the other rows train with cold-start folds
    in_val: set[int] = set()
    val_idx: list[int] = []
    if val_rows is None:
        ids = {id(q): i for i, q in enumerate(rows[:n_base])}
        _, val_part = carve_validation(rows[:n_base], fraction=0.1, seed=seed)
        val_idx = [ids[id(q)] for q in val_part]
        in_val = set(val_idx)
    checked = val_rows if val_rows is not None else [rows[i] for i in val_idx]
    if not any(q.label is not None for q in checked):
        raise FrontdeskError(
            "validation has no labelled rows (a --val file without them, or a carved 10 % "
            "too small to hold any): calibration and the threshold need in-scope questions"
        )
    # before any encoding, not after the trees
    check_goal_for(any(q.label is None for q in checked), min_in_scope_accuracy, min_oos_recall)

    tick("encoding", 0, 1)
    encoded = encoder.encode_contexts(rows)
    labelled_ids = sorted({str(q.label) for q in rows[:n_base] if q.label is not None})
    n_cold = _cold_start_count(len(labelled_ids), cold_start)
    cold_rng = random.Random(seed + 2)
    cold_rows: set[int] = set()  # training rows whose workflow was new in their fold
    qtokens = [suggester.query_tokens(q) for q in rows]
    row_key = [(rows[i].label, document_key(source_text[i])) for i in range(len(rows))]
    cands: list[CandidateSet | None] = [None] * len(rows)
    cold_copies: dict[int, tuple[CandidateSet, np.ndarray]] = {}  # validation rows, cold view
    feats: list[np.ndarray | None] = [None] * len(rows)
    assert index.title_vectors is not None
    for f in range(folds):
        tick("out-of-fold features", f, folds)
        members = [i for i in range(len(rows)) if fold_of[i] == f]
        own = {row_key[i] for i in members if rows[i].label is not None}
        keep = np.ones(len(owner), dtype=bool)
        for label, key in own:
            keep[example_docs.get((pos[str(label)], key), [])] = False
        # priors and the classifier from the other folds only, and not from their copies of
        # this fold's questions either: a row's own label must not shape its features
        others = [i for i in range(n_base) if fold_of[i] != f and row_key[i] not in own]
        # cold start: some workflows look as if added after training, with no examples in
        # the index, no popularity and no class in the classifier, so the ranker learns to
        # rank a new workflow from its own texts (their questions still train it)
        left_out = set(cold_rng.sample(labelled_ids, n_cold))
        trained = [i for i in members if parent[i] not in in_val]
        held = [i for i in members if parent[i] in in_val]
        cold_rows.update(i for i in trained if rows[i].label in left_out)
        # validation rows of this fold's new workflows are also scored in the cold view,
        # for early stopping only: it must value new workflows as training does
        held_cold = [i for i in held if rows[i].label in left_out]
        for group, new in ((trained + held_cold, left_out), (held, set())):
            if not group:
                continue
            view = keep & ~(is_example & np.isin(owner, [pos[w] for w in new]))
            sub = subset_searcher(
                vectors, owner, tokens, view, len(pos), settings, prototype_weight
            )
            kept = sub.keep
            extractor = FeatureExtractor(
                index.workflows,
                vectors[kept],
                owner[kept],
                is_example[kept],
                index.title_vectors,
                sub.prototypes,
                WorkflowPriors.fit(
                    index.workflows, [rows[i] for i in others if rows[i].label not in new]
                ),
                _fit_classifier(rows, encoded.vectors, others, new),
            )
            enc_g = encoded.take(group)
            cs = retrieve_candidates(
                sub.hybrid,
                enc_g.vectors,
                [qtokens[i] for i in group],
                top_n,
                enc_g.context_vectors,
                context_candidates,
            )
            xs = extractor.extract(enc_g, cs, [len(qtokens[i]) for i in group])
            for i, c, x in zip(group, cs, xs, strict=True):
                if new and parent[i] in in_val:
                    cold_copies[i] = (c, x)
                else:
                    cands[i], feats[i] = c, x
    tick("out-of-fold features", folds, folds)

    all_c = [c for c in cands if c is not None]
    all_x = [x for x in feats if x is not None]
    classifier = _fit_classifier(rows, encoded.vectors, range(n_base), set())  # saved with it
    whole_index = functools.cache(
        functools.partial(full_extractor, index, priors, classifier)
    )  # built once, if needed
    if val_rows is not None:
        train_idx = list(range(len(rows)))
        val_q = list(val_rows)
        val_c, val_x = _whole_index_candidates(
            suggester, whole_index(), encoder, val_q, top_n, context_candidates
        )
        val_source = "file"
        # early stopping also reads two-turn forms of validation's questions, so the trees
        # are not cut back to what single turns need (BENCHMARKS.md, seventh session)
        turn_q = [v for _, v in _two_turn_forms(val_q, augment_context, seed, distractors)]
        turn_c, turn_x = _whole_index_candidates(
            suggester, whole_index(), encoder, turn_q, top_n, context_candidates
        )
    else:
        train_idx = [i for i in range(len(rows)) if parent[i] not in in_val]
        val_q = [rows[i] for i in val_idx]
        val_c = [all_c[i] for i in val_idx]
        val_x = [all_x[i] for i in val_idx]
        val_source = "carved from training rows (10 %, out-of-fold features)"
        turns = [i for i in range(n_base, len(rows)) if parent[i] in in_val]
        turn_q = [rows[i] for i in turns] + [rows[i] for i in cold_copies]
        turn_c = [all_c[i] for i in turns] + [c for c, _ in cold_copies.values()]
        turn_x = [all_x[i] for i in turns] + [x for _, x in cold_copies.values()]

    tick("training", 0, 1)
    train = _groups(
        [rows[i] for i in train_idx],
        [all_c[i] for i in train_idx],
        [all_x[i] for i in train_idx],
        pos,
    )
    if not train[2]:
        raise FrontdeskError("no training row had its workflow among the candidates")
    # the classifier's weight in the trees' starting score, from the out-of-fold groups of
    # the rows as given (the two-turn copies' conversation vectors are mostly the distractor
    # or the follow-up, where the classifier says little; the trees learn those corrections)
    # whose workflow the fold's classifier knew (a new workflow's filled-in log-probability
    # would reward any weight that pushes the known ones down)
    given = [i for i in train_idx if i < n_base and i not in cold_rows]
    base_weight, base_top1 = choose_base_weight(
        _groups([rows[i] for i in given], [all_c[i] for i in given], [all_x[i] for i in given], pos)
    )
    stopping = _groups(val_q + turn_q, val_c + turn_c, val_x + turn_x, pos)
    booster = LambdaRankReranker.fit(train, stopping, base_weight=base_weight)
    # the trees read a missing class (a workflow added after training) well only if
    # training had some; LightGBM scores an unseen NaN as 0, log-probability "certain"
    missing_class_seen = bool(np.isnan(train[0][:, FEATURE_NAMES.index("classifier_logp")]).any())
    if classifier is not None and not missing_class_seen:
        warnings.warn(
            "no training row had a workflow without a class (--cold-start 0, or too few "
            "labelled workflows): workflows added after training will rank as if the "
            "classifier were sure of them; retrain after adding workflows",
            stacklevel=2,
        )
    score = functools.partial(candidate_scores, booster, base_weight=base_weight)

    conf_in, in_scope, correct_rank, correct_ret = [], [], [], []
    for q, c, x in zip(val_q, val_c, val_x, strict=True):
        scores = score(x)
        top = int(np.argmax(scores)) if len(scores) else -1
        gold = pos.get(q.label or "", -1)
        fused_top = float(c.fused.scores[0]) if len(c.fused) else 0.0
        conf_in.append(confidence_inputs(scores, fused_top, x))
        in_scope.append(q.label is not None)
        correct_rank.append(top >= 0 and int(c.fused.ids[top]) == gold)
        correct_ret.append(len(c.fused) > 0 and int(c.fused.ids[0]) == gold)
    x_conf = np.asarray(conf_in)
    ok = np.asarray(correct_rank)
    # The training file's out-of-scope rows are negatives for the calibrator too (never
    # ranked, so the booster has not seen them); the threshold is still chosen on val alone.
    in_val = {id(q) for q in val_q}
    negatives = [q for q in rows[:n_base] if q.label is None and id(q) not in in_val]
    x_neg = np.zeros((0, len(CONFIDENCE_INPUTS)))
    if negatives:
        neg_c, neg_x = _whole_index_candidates(
            suggester, whole_index(), encoder, negatives, top_n, context_candidates
        )
        x_neg = np.asarray(
            [
                confidence_inputs(
                    score(x),
                    float(c.fused.scores[0]) if len(c.fused) else 0.0,
                    x,
                )
                for c, x in zip(neg_c, neg_x, strict=True)
            ]
        )
    calibrator = PlattCalibrator.fit(
        np.vstack([x_conf, x_neg]) if len(x_neg) else x_conf,
        np.concatenate([ok, np.zeros(len(x_neg), dtype=bool)]),
    )
    ins = np.asarray(in_scope, dtype=bool)
    # A separate P(in scope): validation's in-scope rows against the training file's
    # out-of-scope rows, weighed equally. "Right" mixes misranked questions with
    # out-of-scope ones; this asks only whether the catalog covers the query.
    # Validation's own out-of-scope rows stay unseen by it, for the threshold (its
    # in-scope rows are seen: seven coefficients, so the optimism is small).
    scope = None
    if len(x_neg) and ins.any():
        scope = PlattCalibrator.fit(
            np.vstack([x_conf[ins], x_neg]),
            np.concatenate([np.ones(int(ins.sum()), dtype=bool), np.zeros(len(x_neg), bool)]),
            balanced=True,
        )
    reranker = LambdaRankReranker(
        booster, priors, calibrator, 0.0, {}, scope, classifier, base_weight
    )
    confidence = reranker.confidence(x_conf) if len(x_conf) else np.zeros(0)
    # kept with the model: another goal later is a new threshold on these, not a retraining
    reranker.validation = ValidationOutcomes(confidence, ins, ok)
    choice = choose_abstention(reranker.validation, min_in_scope_accuracy, min_oos_recall)
    warn_if_missed(choice)

    config: dict[str, Any] = {
        "feature_names": list(FEATURE_NAMES),
        "top_n": top_n,
        "context_candidates": context_candidates,
        "folds": folds,
        "augment_context": augment_context,
        "cold_start": cold_start,
        "seed": seed,
        "params": DEFAULT_PARAMS,
        "best_iteration": int(booster.best_iteration or booster.current_iteration()),
        "base_weight": base_weight,
        "retrieval": suggester.retrieval_signature(),
        "index": {
            "path": str(index_dir),
            "created_at": index.manifest["created_at"],
            "model_sha256": index.model_sha256,
            "workflows": len(index.workflows),
            "layout": index.layout,
        },
        "confidence": "P(top right) x P(in scope)" if scope is not None else "P(top right)",
        "training": {
            "rows": n_base,
            "context_augmented_rows": len(rows) - n_base,
            "train_groups": len(train[2]),
            "train_top1_base_margin": base_top1,
            "cold_start_workflows_per_fold": n_cold,
            "missing_class_seen": missing_class_seen,
            "val_rows": len(val_q),
            "early_stopping_two_turn_rows": len(turn_q) - len(cold_copies),
            "early_stopping_cold_rows": len(cold_copies),
            "val_source": val_source,
            "val_out_of_scope": int((~ins).sum()),
            "calibration_extra_negatives": len(negatives),
            "scope_model": scope is not None,
            "val_top1_retrieval": float(np.mean(np.asarray(correct_ret)[ins]))
            if ins.any()
            else None,
            "val_top1_reranked": float(np.mean(ok[ins])) if ins.any() else None,
        },
    }
    config = choice.apply(config)  # the goal, and validation's values at its threshold
    reranker.threshold, reranker.config = choice.threshold, config
    reranker.save(out)
    tick("training", 1, 1)
    extra = {"scope_calibration": scope.to_json()} if scope is not None else {}
    return {**config, "threshold": choice.threshold, "calibration": calibrator.to_json(), **extra}
