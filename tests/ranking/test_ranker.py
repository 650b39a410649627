"""Features, out-of-fold training, save/load, tamper detection and abstention."""

from __future__ import annotations

import functools
import json
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from frontdesk import (
    Conversation,
    FrontdeskError,
    IndexIntegrityError,
    LabelledQuery,
    Suggester,
    build_index,
)
from frontdesk.artifacts import read_manifest, write_manifest
from frontdesk.cli import app
from frontdesk.encoding import EncodedContexts
from frontdesk.eval import evaluate_suggester
from frontdesk.eval.thresholds import ranker_tradeoff
from frontdesk.index.builder import document_key, workflow_documents
from frontdesk.ranking import (
    FEATURE_NAMES,
    LambdaRankReranker,
    WorkflowPriors,
    change_abstention_goal,
    choose_threshold,
)
from frontdesk.ranking.calibration import (
    CONFIDENCE_INPUTS,
    LEGACY_INPUTS,
    PlattCalibrator,
    confidence_inputs,
)
from frontdesk.ranking.classifier import WorkflowClassifier
from frontdesk.ranking.features import full_extractor, retrieve_candidates
from frontdesk.ranking.reranker import BASE_WEIGHTS, choose_base_weight
from frontdesk.ranking.training import (
    FittedTrees,
    FoldIndex,
    FoldModels,
    FoldView,
    Groups,
    OutOfFoldFeatures,
    RankerTrainingConfig,
    ValidationSet,
    WholeIndexScorer,
    assemble_ranker,
    base_weight_rows,
    calibration_negatives,
    cold_start_count,
    expand_rows,
    fit_calibration,
    fit_classifier,
    fit_fold_models,
    fit_trees,
    missing_class_seen,
    out_of_fold_features,
    plan_folds,
    ranker_config,
    ranking_groups,
    split_validation,
    train_ranker,
    two_turn_forms,
    validation_set,
    warn_if_no_missing_class,
)

from ..conftest import TINY_CATALOG, write_jsonl

# Paraphrases per tiny-catalog workflow: enough rows for 3 folds and a val split.
PHRASES = {
    "payout-delayed": [
        "my payout is late",
        "payout still not in bank",
        "when does my payout land",
        "deposit has not shown up",
        "funds not arrived yet",
        "payout taking long",
    ],
    "payout-failed": [
        "payout was returned",
        "bank bounced the payout",
        "payout failed",
        "transfer to bank rejected",
        "payout marked failed",
        "returned payout",
    ],
    "refund-issue": [
        "refund my customer",
        "how to give a refund",
        "send money back to buyer",
        "issue refund",
        "refund an order",
        "partial refund please",
    ],
    "refund-not-received": [
        "customer never got refund",
        "refund not on their card",
        "buyer says refund missing",
        "where is the customer's refund",
        "refund not received",
        "refund never showed",
    ],
    "login-2fa": [
        "lost my 2fa phone",
        "authenticator gone",
        "cannot log in two factor",
        "new phone no codes",
        "2fa reset",
        "locked out by 2fa",
    ],
    "api-key-rotate": [
        "rotate api key",
        "roll my secret key",
        "new api key please",
        "change api secret",
        "replace the key",
        "key rotation",
    ],
}


def rows() -> list[LabelledQuery]:
    out = []
    for label, texts in PHRASES.items():
        for i, t in enumerate(texts):
            seg = "enterprise" if label.startswith("payout") else "smb"
            out.append(
                LabelledQuery(
                    id=f"{label}-{i}", text=t, label=label, context={"user": {"segment": seg}}
                )
            )
    return out


def val_rows() -> list[LabelledQuery]:
    """The fixture ranker's validation: two in-scope questions, two out of scope."""
    return [
        LabelledQuery(text="payout bounced", label="payout-failed"),
        LabelledQuery(text="customer refund didn't arrive", label="refund-not-received"),
        LabelledQuery(text="best lasagne recipe", label=None),
        LabelledQuery(text="who won the football", label=None),
    ]


def out_of_scope_rows() -> list[LabelledQuery]:
    """The training file's own null rows: extra calibration negatives."""
    return [
        LabelledQuery(id="oos-0", text="what's the weather in lisbon", label=None),
        LabelledQuery(id="oos-1", text="tell me a joke about cats", label=None),
        LabelledQuery(id="oos-2", text="how many moons does jupiter have", label=None),
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, encoder) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("ranker")
    catalog = write_jsonl(root / "catalog.jsonl", TINY_CATALOG)
    train = rows()
    build_index(catalog, root / "index", examples=train, encoder=encoder)
    config = train_ranker(
        root / "index",
        train + out_of_scope_rows(),
        root / "model",
        val_rows=val_rows(),
        folds=3,
        top_n=6,
        encoder=encoder,
    )
    return root / "index", root / "model", config


def _suggester_and_priors(index_dir: Path, encoder) -> tuple[Suggester, WorkflowPriors]:
    s = Suggester.load(index_dir, encoder=encoder)
    return s, WorkflowPriors.fit(s.index.workflows, rows())


def _features(
    s: Suggester,
    priors: WorkflowPriors,
    conv: Conversation,
    n_tokens: int,
    encoder,
    classifier: WorkflowClassifier | None = None,
):
    """One conversation's hybrid top-6 and its feature matrix: (x, workflow ids, candidates)."""
    enc = encoder.encode_contexts([conv])
    cands = retrieve_candidates(s.hybrid, enc.vectors, [s.query_tokens(conv)], 6)
    (x,) = full_extractor(s.index, priors, classifier).extract(enc, cands, [n_tokens])
    return x, [s.index.workflows[w].id for w in cands[0].fused.ids.tolist()], cands


class _Steps:
    """``train_ranker``'s steps run one by one on ``rows_`` (folds 3, top 6, as the fixture),
    each computed when first read; everything up to the folds' plan needs no encoding."""

    def __init__(
        self,
        index_dir: Path,
        encoder,
        rows_: list[LabelledQuery],
        val: list[LabelledQuery] | None = None,
        **knobs,
    ) -> None:
        self.encoder, self.index_dir, self.given = encoder, index_dir, list(rows_)
        self.config = RankerTrainingConfig(folds=3, top_n=6, **knobs)
        self.suggester = Suggester.load(index_dir, encoder=encoder)
        self.where = FoldIndex.of(self.suggester)
        self.positions = self.where.positions
        self.data = expand_rows(self.given, self.config)
        self.split = split_validation(self.data, val, self.config)
        self.plan = plan_folds(self.where, self.data, self.split.carved_set, self.config)

    @functools.cached_property
    def encoded(self) -> EncodedContexts:
        return self.encoder.encode_contexts(self.data.rows)

    def fold_models(self, view: FoldView) -> FoldModels:
        return fit_fold_models(self.where, view, self.data, self.encoded.vectors)

    def fold_members(self, view: FoldView) -> list[int]:
        return [i for i, f in enumerate(self.data.fold) if f == view.fold]

    def classifier_rows(self, view: FoldView) -> list[int]:
        """The rows the view's classifier is fitted on: its labelled fitting rows."""
        return [i for i in view.fit_rows if self.data.rows[i].label is not None]

    @functools.cached_property
    def oof(self) -> OutOfFoldFeatures:
        tokens = [self.suggester.query_tokens(q) for q in self.data.rows]
        return out_of_fold_features(
            self.where, self.plan, self.data, self.encoded, tokens, self.config
        )

    @functools.cached_property
    def classifier(self) -> WorkflowClassifier | None:
        return fit_classifier(self.data.rows, self.encoded.vectors, range(self.data.n_given))

    @functools.cached_property
    def priors(self) -> WorkflowPriors:
        return WorkflowPriors.fit(self.suggester.index.workflows, self.given)

    @functools.cached_property
    def outside(self) -> WholeIndexScorer:
        c = self.config
        return WholeIndexScorer(
            self.suggester, self.priors, self.classifier, c.top_n, c.context_candidates
        )

    @functools.cached_property
    def validation(self) -> ValidationSet:
        return validation_set(self.split, self.data, self.oof, self.outside, self.config)

    def groups(self, rows_: list[int]) -> Groups:
        return self.oof.groups(self.data, rows_, self.positions)

    @functools.cached_property
    def train_groups(self) -> Groups:
        return self.groups(self.split.trains(self.data))

    @functools.cached_property
    def base_groups(self) -> Groups:
        return self.groups(
            base_weight_rows(self.data, self.split.trains(self.data), self.plan.cold_rows)
        )


@pytest.fixture(scope="module")
def carved(trained, encoder) -> _Steps:
    """The steps on the fixture's rows without a validation file (10 % carved out)."""
    return _Steps(trained[0], encoder, rows())


def _relevant_logp(groups: tuple) -> np.ndarray:
    x, y, _ = groups
    return x[y > 0, FEATURE_NAMES.index("classifier_logp")]


def test_feature_matrix_on_fixture(trained, encoder) -> None:
    index_dir, model, _ = trained
    s, priors = _suggester_and_priors(index_dir, encoder)
    conv = Conversation(
        text="any news?",
        context={
            "turns": [{"role": "user", "text": "my payout was returned by the bank"}],
            "user": {"segment": "enterprise"},
        },
    )
    classifier = LambdaRankReranker.load(model).classifier
    x, ids, cands = _features(s, priors, conv, 2, encoder, classifier)
    assert x.shape == (len(cands[0].fused), len(FEATURE_NAMES)) and x.dtype == np.float32
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    assert x[:, col["fused_rank"]].tolist() == list(range(1, len(x) + 1))
    assert x[0, col["fused_gap"]] == 0.0 and np.all(x[:, col["fused_gap"]] >= 0)
    assert np.all(x[:, col["n_turns"]] == 1) and np.all(x[:, col["turn2_sim"]] == 0)
    payout_failed = ids.index("payout-failed")
    assert x[payout_failed, col["turn1_sim"]] == x[:, col["turn1_sim"]].max()
    assert x[payout_failed, col["turn1_example_max"]] == x[:, col["turn_example_max"]].max()
    # enterprise users ask about payouts in training data: positive fit, others not
    assert x[payout_failed, col["profile_segment_fit"]] > 0
    assert x[ids.index("login-2fa"), col["profile_segment_fit"]] <= 0
    assert np.all(x[:, col["log_examples"]] > 0)
    assert np.all(np.isfinite(x))
    # the classifier reads the earlier request ("returned by the bank") as payout-failed
    assert np.all(x[:, col["classifier_logp"]] <= 0) and np.all(x[:, col["classifier_gap"]] >= 0)
    assert x[payout_failed, col["context_classifier_logp"]] > np.log(0.5)
    assert x[:, col["classifier_gap"]].min() == 0.0


def test_classifier_features_are_missing_without_a_classifier_or_a_class(trained, encoder) -> None:
    """NaN, not a made-up number, where the classifier has nothing to say."""
    index_dir, model, _ = trained
    s, priors = _suggester_and_priors(index_dir, encoder)
    names = ["classifier_logp", "classifier_gap", "text_classifier_logp"]
    cols = [FEATURE_NAMES.index(n) for n in names]
    ctx_col = FEATURE_NAMES.index("context_classifier_logp")
    conv = Conversation(text="my payout was returned by the bank")
    x, _, _ = _features(s, priors, conv, 7, encoder)
    assert np.all(np.isnan(x[:, [*cols, ctx_col]]))
    full = LambdaRankReranker.load(model).classifier
    assert full is not None and sorted(full.workflow_ids) == sorted(PHRASES)
    x, ids, _ = _features(s, priors, conv, 7, encoder, full)
    assert np.all(np.isfinite(x[:, cols])) and np.all(np.isnan(x[:, ctx_col]))  # no context
    # a workflow the classifier never saw (added after training): missing, the rest known
    keep = [j for j, w in enumerate(full.workflow_ids) if w != "payout-failed"]
    partial = WorkflowClassifier([full.workflow_ids[j] for j in keep], full.weights[keep])
    x, ids, _ = _features(s, priors, conv, 7, encoder, partial)
    r = ids.index("payout-failed")
    assert np.all(np.isnan(x[r, cols]))
    others = np.delete(x[:, cols], r, axis=0)
    assert np.all(np.isfinite(others)) and np.all(others[:, 0] <= 0)
    assert np.isfinite(LambdaRankReranker.load(model).score(x)).all()  # the booster copes


def test_workflow_classifier_is_a_softmax_and_maps_unknown_workflows() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    x = np.vstack([c + 0.1 * rng.normal(size=(10, 8)) for c in centres])
    labels = [w for w in ("a", "b", "c") for _ in range(10)]
    clf = WorkflowClassifier.fit(x, labels)
    assert clf is not None and clf.workflow_ids == ["a", "b", "c"] and clf.dim == 8
    logp = clf.log_proba(x)
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=1e-5)
    assert (logp.argmax(axis=1) == np.repeat([0, 1, 2], 10)).all()
    assert clf.columns(["c", "new", "a"]).tolist() == [2, -1, 0]
    two = WorkflowClassifier.fit(x[:20], labels[:20])  # sklearn's one-row binary case
    from sklearn.linear_model import LogisticRegression

    ref = LogisticRegression(C=100.0, max_iter=1000).fit(x[:20], labels[:20])
    np.testing.assert_allclose(np.exp(two.log_proba(x[:20])), ref.predict_proba(x[:20]), atol=1e-4)
    assert WorkflowClassifier.fit(x[:10], labels[:10]) is None  # one workflow: nothing to learn


def test_cold_start_folds_make_some_workflows_new(trained, encoder) -> None:
    """Each fold treats some workflows as new: no class in its classifier, no examples in
    its index, no popularity; the classifier sees only the other folds' rows."""
    index_dir, _, config = trained
    assert config["cold_start"] == 0.1  # recorded as given (the default here), and so is
    assert RankerTrainingConfig(cold_start=0.34).recorded()["cold_start"] == 0.34  # another
    s = _Steps(
        index_dir, encoder, rows(), cold_start=0.34,
        val=[LabelledQuery(text="payout bounced", label="payout-failed")],
    )  # fmt: skip
    assert s.plan.new_per_fold == 2 and len(s.plan.views) == 3  # a val file: a view per fold
    index = s.suggester.index
    is_example = index.doc_kind != 0
    for view in s.plan.views:
        models = s.fold_models(view)
        clf, priors = models.extractor.classifier, models.extractor.priors
        assert clf is not None
        new = set(PHRASES) - set(clf.workflow_ids)
        assert new == view.new_workflows and len(new) == 2  # 2 of the 6 workflows are new
        # the view's models are fitted on its rows, and search its documents
        fit = [s.data.rows[i] for i in view.fit_rows]
        ref = fit_classifier(s.data.rows, s.encoded.vectors, view.fit_rows)
        assert ref is not None and np.array_equal(clf.weights, ref.weights)
        assert priors.to_json() == WorkflowPriors.fit(index.workflows, fit).to_json()
        np.testing.assert_array_equal(models.searcher.keep, np.flatnonzero(view.documents))
        new_pos = [index.workflow_ids.index(w) for w in new]
        new_examples = is_example & np.isin(index.doc_workflow, new_pos)
        keep = view.documents
        assert new_examples.any() and not keep[new_examples].any()  # none of their examples
        assert keep[~is_example].all()  # every workflow's own texts stay
        # no popularity either: no rows of theirs, so the floor every unseen workflow gets
        assert not new & {q.label for q in fit}
        assert all(priors.log_popularity[w] == min(priors.log_popularity.values()) for w in new)
        # none of the fold's own questions (nor their two-turn copies) trained the classifier
        asked = s.encoded.text_vectors[view.rows]
        assert (asked @ s.encoded.vectors[s.classifier_rows(view)].T).max() < 0.999
    assert sum(len(s.classifier_rows(v)) for v in s.plan.views) < 2 * len(rows())
    assert len({v.new_workflows for v in s.plan.views}) > 1  # a new draw per fold


def test_title_document_is_an_own_text_not_an_example(tiny_index: Path, encoder) -> None:
    """A workflow's title is indexed beside its whole text; example features skip both."""
    s = Suggester.load(tiny_index, encoder=encoder)
    priors = WorkflowPriors.fit(s.index.workflows, [])
    conv = Conversation(text="Payout failed")  # payout-failed's title, word for word
    x, ids, _ = _features(s, priors, conv, 2, encoder)
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    assert ids[0] == "payout-failed"
    whole = s.index.workflows[s.index.workflow_ids.index("payout-failed")].document()
    expected = float(encoder.encode([whole])[0] @ encoder.encode_contexts([conv]).vectors[0])
    assert x[0, col["workflow_text_sim"]] == pytest.approx(expected, abs=1e-5)
    assert x[0, col["title_sim"]] > 0.999
    # its examples ("payout bounced back", ...) are not the title
    assert x[0, col["example_max"]] < 0.95
    assert x[0, col["log_examples"]] == pytest.approx(np.log1p(2))


def test_without_examples_the_text_and_title_stand_in(tmp_path: Path, encoder) -> None:
    """A workflow with a description and no examples: its own texts (whole text, title,
    description) are its 'examples'."""
    catalog = [dict(wf) for wf in TINY_CATALOG]
    for wf in catalog:
        if wf["id"] == "payout-failed":
            wf.pop("examples")
    build_index(write_jsonl(tmp_path / "c.jsonl", catalog), tmp_path / "idx", encoder=encoder)
    s = Suggester.load(tmp_path / "idx", encoder=encoder)
    conv = Conversation(text="my payout failed")
    priors = WorkflowPriors.fit(s.index.workflows, [])
    x, ids, _ = _features(s, priors, conv, 3, encoder)
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    r = ids.index("payout-failed")
    wf = s.index.workflows[s.index.workflow_ids.index("payout-failed")]
    q = encoder.encode_contexts([conv]).vectors[0]
    own = workflow_documents(wf, s.index.layout)
    assert len(own) == 3
    sims = [float(v @ q) for v in encoder.encode(own)]
    assert x[r, col["workflow_text_sim"]] == pytest.approx(sims[0], abs=1e-5)
    assert x[r, col["example_max"]] == pytest.approx(max(sims), abs=1e-5)
    assert x[r, col["example_mean"]] == pytest.approx(sum(sims) / 3, abs=1e-5)
    assert x[r, col["log_examples"]] == 0.0


def test_earlier_request_adds_candidates_and_its_own_features(trained, encoder) -> None:
    """A follow-up that pushes the question's workflow out of the list gets it back."""
    index_dir, _, _ = trained
    s, priors = _suggester_and_priors(index_dir, encoder)
    conv = Conversation(
        text="rotate api key",
        context={
            "turns": [
                {"role": "user", "text": "my payout was returned by the bank"},
                {"role": "agent", "text": "Noted, thank you."},
            ]
        },
    )
    single = Conversation(text="rotate api key")
    enc = encoder.encode_contexts([conv, single])
    tokens = [s.query_tokens(conv), s.query_tokens(single)]
    plain = retrieve_candidates(s.hybrid, enc.vectors, tokens, 1)
    cands = retrieve_candidates(s.hybrid, enc.vectors, tokens, 1, enc.context_vectors, 1)
    ids = [s.index.workflows[w].id for w in cands[0].fused.ids.tolist()]
    assert [s.index.workflows[w].id for w in plain[0].fused.ids.tolist()] == ["api-key-rotate"]
    assert ids == ["api-key-rotate", "payout-failed"]
    assert cands[0].fused.scores[1] == cands[0].fused.scores[0]  # appended at the list's floor
    assert cands[1].context is None and len(cands[1].fused) == 1  # no earlier turns: as before
    # the trained ranker does the same end to end, and says where the candidate came from
    _, model, config = trained
    assert config["context_candidates"] == 10
    ranked = Suggester.load(index_dir, encoder=encoder, ranker=model)
    assert ranked.ranker is not None and ranked.ranker.context_candidates == 10
    follow_up = ranked.suggest(
        Conversation(
            text="any news?",
            context={"turns": [{"role": "user", "text": "the bank bounced my payout"}]},
        ),
        k=6,
    )
    assert follow_up[0].workflow_id == "payout-failed" and "context" in follow_up[0].sources
    x, x_single = full_extractor(s.index, priors).extract(enc, cands, [3, 3])
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    assert x[:, col["fused_rank"]].tolist() == [1, 2]
    assert x[1, col["context_dense_rank"]] == 1 and x[0, col["context_dense_rank"]] > 1
    assert x[1, col["context_example_max"]] > x[0, col["context_example_max"]]
    assert x[1, col["context_prototype_gap"]] == 0 and x[0, col["context_prototype_gap"]] > 0
    assert x[0, col["text_example_max_gap"]] == 0 and x[1, col["text_example_max_gap"]] > 0
    context_cols = [i for n, i in col.items() if n.startswith("context_")]
    assert not np.nan_to_num(x_single[:, context_cols]).any()  # zero, or missing (NaN)


def test_out_of_fold_features_never_see_their_own_example(trained, encoder) -> None:
    """Every training query's candidates come from an index without its own example."""
    s = _Steps(trained[0], encoder, rows(), cold_start=0.0)
    total = len(s.where.owner)
    # 36 example documents are split over 3 folds: each fold removes its 12 (in both of its
    # views: the training rows' and the carved validation rows')
    assert len(s.plan.views) == 6
    assert [int(v.documents.sum()) for v in s.plan.views] == [total - 12] * 6
    documents = s.suggester.index.documents()
    for view in s.plan.views:
        # the removed ones are the fold's own questions' examples, and no view scores a row
        # of another fold
        own = {s.data.key(i) for i in s.fold_members(view)}
        removed = np.flatnonzero(~view.documents).tolist()
        owners = [s.suggester.index.workflow_ids[int(s.where.owner[d])] for d in removed]
        assert {
            (w, document_key(documents[d])) for w, d in zip(owners, removed, strict=True)
        } <= own
        assert set(view.rows) <= set(s.fold_members(view))


def test_out_of_fold_candidates_have_no_self_match(carved) -> None:
    # every view of the question: the conversation, the latest text alone (a question
    # after small talk), the earlier request and each earlier turn (before a follow-up)
    views = [
        FEATURE_NAMES.index(n)
        for n in ("example_max", "text_example_max", "context_example_max", "turn_example_max")
    ]
    oof = carved.oof
    assert len(oof.features) == len(carved.data.rows)  # every row, from its own fold
    scored = oof.features + [x for _, x in oof.cold_copies.values()]
    # a query that could see its own example would score cosine 1.0 against it
    assert max(float(x[:, views].max()) for x in scored if len(x)) < 0.999
    assert max(len(t) for t in carved.encoded.turn_vectors) >= 1  # two-turn copies among them
    # against the whole index (as a validation file is scored) the same questions do
    _, whole = carved.outside(rows()[:3])
    assert min(float(x[:, views].max()) for x in whole) > 0.999


def test_save_load_round_trip_and_tamper(trained, tmp_path: Path) -> None:
    _, model, config = trained
    r = LambdaRankReranker.load(model)
    assert r.top_n == 6 and r.config["feature_names"] == list(FEATURE_NAMES)
    assert r.threshold == pytest.approx(config["threshold"])
    assert sorted(p.name for p in model.iterdir()) == [
        "classifier.npy",
        "manifest.json",
        "priors.json",
        "ranker.json",
        "ranker.txt",
        "validation_outcomes.npy",
    ]
    assert r.classifier is not None and r.config["classifier"]["workflow_ids"] == sorted(PHRASES)
    x = np.random.default_rng(0).normal(size=(5, len(FEATURE_NAMES))).astype(np.float32)
    np.testing.assert_allclose(LambdaRankReranker.load(model).score(x), r.score(x))
    bad = tmp_path / "model"
    shutil.copytree(model, bad)
    text = (bad / "ranker.txt").read_text()
    (bad / "ranker.txt").write_text(text.replace("learning_rate", "learning_ratf", 1))
    with pytest.raises(IndexIntegrityError, match="ranker.txt: checksum mismatch"):
        LambdaRankReranker.load(bad)
    shutil.rmtree(bad)
    shutil.copytree(model, bad)
    weights = np.load(bad / "classifier.npy")
    np.save(bad / "classifier.npy", weights * 2)
    with pytest.raises(IndexIntegrityError, match="classifier.npy: checksum mismatch"):
        LambdaRankReranker.load(bad)


def test_reranked_suggestions_and_abstention(trained, encoder) -> None:
    index_dir, model, config = trained
    s = Suggester.load(index_dir, encoder=encoder, ranker=model)
    res = s.suggest("the bank bounced my payout back", k=3)
    assert res[0].workflow_id == "payout-failed"
    assert res.confidence is not None and 0.0 <= res.confidence <= 1.0
    assert [x.rank for x in res] == [1, 2, 3]
    assert "fused" in res[0].sources
    weird = s.suggest("what is the capital of mongolia and how tall is its tallest tower", k=3)
    assert weird.confidence < res.confidence
    # validation had out-of-scope rows, so a threshold above 0 was chosen and applies here
    assert config["threshold"] > 0
    assert weird.abstained and len(weird) == 3  # candidates still listed
    assert not res.abstained


def test_calibration_reads_catalog_distance_and_counts_training_negatives(trained) -> None:
    _, model, config = trained
    assert config["training"]["calibration_extra_negatives"] == 3
    cal = LambdaRankReranker.load(model).calibrator
    assert cal.inputs == CONFIDENCE_INPUTS and len(cal.coef) == len(CONFIDENCE_INPUTS)
    x = np.zeros((6, len(FEATURE_NAMES)), dtype=np.float32)
    col = {n: j for j, n in enumerate(FEATURE_NAMES)}
    x[:, col["example_max"]] = [0.2, 0.9, 0.1, 0.3, 0.3, 0.3]
    x[:, col["prototype_sim"]] = [0.5, 0.7, 0.2, 0.1, 0.1, 0.1]
    x[:, col["query_tokens"]] = 4
    got = confidence_inputs(np.array([1.0, 3.0, 2.0]), 0.8, x)
    np.testing.assert_allclose(got, [3.0, 1.0, 0.8, 0.9, 0.7, 0.2, 4.0], rtol=1e-6)
    # an earlier request nearer the catalog than the conversation counts as the distance
    x[:, col["context_example_max"]] = 0.95
    x[2, col["context_prototype_sim"]] = 0.8
    got = confidence_inputs(np.array([1.0, 3.0, 2.0]), 0.8, x)
    np.testing.assert_allclose(got[3:6], [0.95, 0.8, 0.2], rtol=1e-6)


def test_in_scope_model_from_training_negatives_multiplies_the_confidence(
    trained, tmp_path: Path
) -> None:
    _, model, config = trained
    assert config["training"]["scope_model"] and "scope_calibration" in config
    r = LambdaRankReranker.load(model)
    assert r.scope is not None and r.scope.inputs == CONFIDENCE_INPUTS
    x = np.array([[2.0, 1.0, 0.8, 0.9, 0.8, 0.2, 5.0], [0.1, 0.0, 0.2, 0.1, 0.1, 0.0, 9.0]])
    np.testing.assert_allclose(r.confidence(x), r.calibrator(x) * r.scope(x))
    # near the catalog counts as in scope, far from it as out of scope
    assert r.scope(x)[0] > r.scope(x)[1]
    # a ranker without one (no out-of-scope training rows) loads and uses P(right) alone
    plain = tmp_path / "plain"
    shutil.copytree(model, plain)
    cfg = json.loads((plain / "ranker.json").read_text())
    cfg.pop("scope_calibration")
    (plain / "ranker.json").write_text(json.dumps(cfg))
    write_manifest(plain, read_manifest(plain, verify=False))  # re-checksum the edited file
    r_plain = LambdaRankReranker.load(plain)
    assert r_plain.scope is None
    np.testing.assert_allclose(r_plain.confidence(x), r.calibrator(x))
    cfg["scope_calibration"] = {"method": "platt", "coef": [1.0], "intercept": 0.0}
    (plain / "ranker.json").write_text(json.dumps(cfg))
    write_manifest(plain, read_manifest(plain, verify=False))
    with pytest.raises(IndexIntegrityError, match="ranker.json: calibration"):
        LambdaRankReranker.load(plain)


def test_calibrator_saved_before_the_distance_inputs_still_loads() -> None:
    legacy = {
        "method": "platt",
        "inputs": list(LEGACY_INPUTS),
        "coef": [1.0, 0.5, 0.0],
        "intercept": -1.0,
    }
    cal = PlattCalibrator.from_json(legacy)
    full = np.array([[2.0, 1.0, 0.3, 0.9, 0.9, 0.1, 7.0]])  # all inputs; it reads its three
    np.testing.assert_allclose(cal(full), 1 / (1 + np.exp(-(2.0 + 0.5 - 1.0))))
    assert PlattCalibrator.from_json({k: v for k, v in legacy.items() if k != "inputs"}).inputs == (
        LEGACY_INPUTS
    )
    with pytest.raises(ValueError, match="do not match its 2 coefficients"):
        PlattCalibrator.from_json({**legacy, "coef": [1.0, 0.5]})
    with pytest.raises(ValueError, match="unknown names"):
        PlattCalibrator.from_json({**legacy, "inputs": ["top_score", "margin", "moon_phase"]})


def test_platt_fit_applies_to_raw_inputs() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=400), rng.normal(size=400) * 50 + 10])  # other scales
    y = (x[:, 0] + 0.02 * x[:, 1] + 0.3 * rng.normal(size=400)) > 0.2
    cal = PlattCalibrator.fit(x, y, inputs=LEGACY_INPUTS[:2])
    assert cal.inputs == ("top_score", "margin")
    from sklearn.linear_model import LogisticRegression

    z = (x - x.mean(axis=0)) / x.std(axis=0)  # the fit's own scaling, folded into the saved coef
    ref = LogisticRegression(C=1.0, max_iter=1000).fit(z, y)
    np.testing.assert_allclose(cal(x), ref.predict_proba(z)[:, 1], rtol=1e-6, atol=1e-9)


def test_choose_threshold_maximises_decision_accuracy() -> None:
    # in-scope right (0.9, 0.8), in-scope wrong (0.4), out of scope (0.3, 0.5)
    t, acc = choose_threshold(
        [0.9, 0.8, 0.4, 0.3, 0.5],
        [True, True, True, False, False],
        [True, True, False, False, False],
    )
    assert t == pytest.approx(0.65) and acc == pytest.approx(0.8)  # midway between 0.5 and 0.8
    assert choose_threshold([0.2, 0.9], [True, True], [True, False])[0] == 0.0


def test_ranker_for_another_encoder_is_refused(trained, tmp_path: Path, encoder) -> None:
    index_dir, model, _ = trained
    bad = tmp_path / "model"
    shutil.copytree(model, bad)
    cfg = json.loads((bad / "ranker.json").read_text())
    cfg["index"]["model_sha256"] = "f" * 64
    (bad / "ranker.json").write_text(json.dumps(cfg))
    from frontdesk.artifacts import write_manifest

    m = json.loads((bad / "manifest.json").read_text())
    write_manifest(bad, m)  # re-sign, so only the encoder check can refuse it
    with pytest.raises(IndexIntegrityError, match="another encoder"):
        Suggester.load(index_dir, encoder=encoder, ranker=bad)


def test_ranker_for_another_document_layout_warns(trained, tmp_path: Path, encoder) -> None:
    """A ranker trained on a text-only index (or before layouts existed) says so."""
    index_dir, model, _ = trained
    layout = json.loads((model / "ranker.json").read_text())["index"]["layout"]
    assert layout == "text+title+description"
    old = tmp_path / "model"
    shutil.copytree(model, old)
    cfg = json.loads((old / "ranker.json").read_text())
    del cfg["index"]["layout"]
    (old / "ranker.json").write_text(json.dumps(cfg))
    from frontdesk.artifacts import write_manifest

    write_manifest(old, json.loads((old / "manifest.json").read_text()))
    with pytest.warns(RuntimeWarning, match="laid out differently.*retrain it"):
        s = Suggester.load(index_dir, encoder=encoder, ranker=old)
    assert s.ranker is not None


def test_ranker_refuses_other_retrieval_settings(trained, encoder) -> None:
    from frontdesk import Settings

    index_dir, model, _ = trained
    with pytest.raises(
        IndexIntegrityError, match=r"other retrieval settings \(fusion '\w+', here 'rrf'\)"
    ):
        Suggester.load(index_dir, encoder=encoder, ranker=model, settings=Settings(fusion="rrf"))
    # the context mode it was trained with (the default, gated) and the one asked for
    for asked in ("latest", "mixed"):
        with pytest.raises(
            IndexIntegrityError, match=rf"context 'gated', here '{asked}'.*FRONTDESK_CONTEXT=gated"
        ):
            Suggester.load(
                index_dir, encoder=encoder, ranker=model, settings=Settings(context=asked)
            )


def test_a_ranker_serves_in_its_own_context_mode_unless_another_is_asked(
    trained, tmp_path: Path, encoder
) -> None:
    """The default mode yields to a ranker's (with a warning); an asked-for mode refuses it."""
    from frontdesk import Settings
    from frontdesk.encoding.context_gate import ContextGate

    index_dir, model, _ = trained
    retrieval = json.loads((model / "ranker.json").read_text())["retrieval"]
    assert retrieval["context"] == "gated"
    assert retrieval["context_gate"] == ContextGate.load().fingerprint
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # trained in the default mode: attaches quietly
        assert Suggester.load(index_dir, encoder=encoder, ranker=model).settings.context == "gated"
    # a ranker saved before the gate was the default (mixed, recorded as absent)
    old = tmp_path / "old"
    shutil.copytree(model, old)
    cfg = json.loads((old / "ranker.json").read_text())
    for key in ("context", "context_gate"):
        del cfg["retrieval"][key]
    (old / "ranker.json").write_text(json.dumps(cfg))
    write_manifest(old, read_manifest(old, verify=False))
    with pytest.warns(RuntimeWarning, match="trained with context 'mixed'.*served in its own mode"):
        s = Suggester.load(index_dir, encoder=encoder, ranker=old)
    assert s.settings.context == "mixed" and s.ranker is not None
    with pytest.raises(
        IndexIntegrityError, match=r"context 'mixed', here 'gated'.*FRONTDESK_CONTEXT=mixed"
    ):
        Suggester.load(index_dir, encoder=encoder, ranker=old, settings=Settings(context="gated"))
    # another gate than the one it learned with
    other = ContextGate.load()
    other.thresholds = other.thresholds * 0.5
    other.save(tmp_path / "gate.json")
    with pytest.raises(IndexIntegrityError, match=r"context_gate .*FRONTDESK_CONTEXT_MODEL"):
        Suggester.load(
            index_dir, encoder=encoder, ranker=model,
            settings=Settings(context_model=str(tmp_path / "gate.json")),
        )  # fmt: skip


def test_priors_are_out_of_fold(trained, encoder) -> None:
    """Each fold's priors are fitted without that fold's rows; the saved ones on all."""
    index_dir, model, _ = trained
    s = _Steps(index_dir, encoder, rows(), cold_start=0.0)
    # 2 of 3 folds of the given rows for each fold's two views
    assert [len(v.fit_rows) for v in s.plan.views] == [24] * 6
    for view in s.plan.views:
        assert all(s.data.fold[i] != view.fold and i < s.data.n_given for i in view.fit_rows)
    # the ranker's own priors and classifier (for inference) read every given row
    f = _Steps(index_dir, encoder, rows() + out_of_scope_rows(), val=val_rows())
    saved = LambdaRankReranker.load(model)
    assert saved.priors.to_json() == f.priors.to_json()
    assert saved.classifier is not None and f.classifier is not None
    np.testing.assert_allclose(saved.classifier.weights, f.classifier.weights, rtol=1e-6)


def _two_candidates(fused: list[float], logp: list[float]) -> np.ndarray:
    x = np.zeros((len(fused), len(FEATURE_NAMES)), dtype=np.float32)
    x[:, FEATURE_NAMES.index("fused_score")] = fused
    x[:, FEATURE_NAMES.index("classifier_logp")] = logp
    return x


def test_base_margin_blends_the_classifier_and_spares_unknown_workflows() -> None:
    from frontdesk.ranking.reranker import base_margin, choose_base_weight

    x = _two_candidates([0.80, 0.78], [-3.0, -0.1])
    np.testing.assert_allclose(base_margin(x, 0.0), [0.80, 0.78], rtol=1e-6)
    np.testing.assert_allclose(base_margin(x, 0.1), [0.50, 0.77], rtol=1e-5)
    # a workflow the classifier never saw counts as likely as its best known one
    new = _two_candidates([0.80, 0.78], [np.nan, -0.1])
    np.testing.assert_allclose(base_margin(new, 0.1), [0.79, 0.77], rtol=1e-5)
    none = _two_candidates([0.5, 0.6], [np.nan, np.nan])
    np.testing.assert_allclose(base_margin(none, 0.3), [0.5, 0.6], rtol=1e-6)

    # groups where retrieval puts the wrong one first and the classifier knows better
    groups = np.vstack([x, x, _two_candidates([0.9, 0.1], [-0.1, -5.0])])
    y = np.array([0, 1, 0, 1, 1, 0], dtype=np.float32)
    weight, share = choose_base_weight((groups, y, [2, 2, 2]))
    assert share == 1.0 and 0 < weight <= 0.1  # the smallest weight that gets all three
    assert choose_base_weight((groups, y, [2, 2, 2]), grid=(0.0,)) == (0.0, 1 / 3)


def test_ranker_scores_start_from_the_base_margin(trained) -> None:
    _, model, config = trained
    r = LambdaRankReranker.load(model)
    assert r.base_weight == config["base_weight"] and r.base_weight in BASE_WEIGHTS
    x = _two_candidates([0.8, 0.7], [-0.2, -2.0])
    from frontdesk.ranking.reranker import base_margin

    trees = r.booster.predict(x, num_threads=1)
    np.testing.assert_allclose(r.score(x), base_margin(x, r.base_weight) + trees)


def test_choose_threshold_for_an_in_scope_accuracy_goal() -> None:
    conf = [0.9, 0.8, 0.6, 0.4, 0.3, 0.5, 0.7]
    ins = [True, True, True, True, False, False, False]
    ok = [True, True, True, False, False, False, False]
    # in-scope accuracy must stay >= 0.75: abstain below 0.6 keeps 3 of 4 right
    # and catches 2 of 3 out-of-scope rows; abstaining above 0.6 would lose a right one
    t, recall = choose_threshold(conf, ins, ok, min_in_scope_accuracy=0.75)
    assert t == pytest.approx(0.55) and recall == pytest.approx(2 / 3)
    t, recall = choose_threshold(conf, ins, ok, min_in_scope_accuracy=0.5)
    assert t == pytest.approx(0.75) and recall == pytest.approx(1.0)
    assert choose_threshold(conf, ins, ok, min_in_scope_accuracy=0.99) == (0.0, 0.0)


def test_choose_threshold_for_an_oos_recall_goal_and_for_both() -> None:
    # in-scope rows: 8, right ones at 0.9 .. 0.55; out-of-scope rows: 4
    conf = [0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.62]
    ins = [True] * 8 + [False] * 4
    ok = [True] * 7 + [False] + [False] * 4
    # recall >= 0.75 alone: the lowest threshold abstaining on 3 of 4 (0.4, 0.45, 0.5)
    t, kept = choose_threshold(conf, ins, ok, min_oos_recall=0.75)
    assert t == pytest.approx(0.525) and kept == pytest.approx(7 / 8)
    # recall 1 needs the 0.62 row abstained on too, which costs the right one at 0.6
    t, kept = choose_threshold(conf, ins, ok, min_oos_recall=1.0)
    assert t == pytest.approx(0.635) and kept == pytest.approx(6 / 8)
    # both: in-scope >= 6/8 and recall >= 3/4 hold at the candidates 0.525, 0.575,
    # 0.61 and 0.635: the middle one (the later of the two middles)
    t, recall = choose_threshold(conf, ins, ok, min_in_scope_accuracy=0.75, min_oos_recall=0.75)
    assert t == pytest.approx(0.61) and recall == pytest.approx(0.75)
    # none meets both: the largest smaller margin in standard errors. At 0.525 (in-scope
    # 7/8, recall 3/4) recall is 4.8 errors short; recall 1 at 0.635 would leave
    # in-scope 6/8, 6.8 errors short; answering everything, recall 19.9 short
    t, recall = choose_threshold(conf, ins, ok, min_in_scope_accuracy=0.99, min_oos_recall=0.99)
    assert t == pytest.approx(0.525) and recall == pytest.approx(0.75)
    with pytest.raises(ValueError, match="min_oos_recall"):
        choose_threshold(conf, ins, ok, min_oos_recall=1.5)
    # without out-of-scope rows a recall goal cannot be judged: the other goal decides
    assert choose_threshold(conf[:8], ins[:8], ok[:8], min_oos_recall=0.9) == (0.0, 7 / 8)
    assert choose_threshold(
        conf[:8], ins[:8], ok[:8], min_in_scope_accuracy=0.5, min_oos_recall=0.9
    ) == choose_threshold(conf[:8], ins[:8], ok[:8], min_in_scope_accuracy=0.5)
    assert choose_threshold([], [], [], min_oos_recall=0.5) == (0.0, 0.0)


def test_early_stopping_reads_two_turn_forms_of_validation(trained, carved) -> None:
    """Early stopping sees validation's questions and their two-turn forms (from a val
    file, or the carved rows' own out-of-fold copies); the threshold sees single turns."""
    _, _, config = trained
    # the val file's 2 labelled rows: 1 of them (60 %) in both two-turn kinds (a topic
    # shift needs another workflow's request among the picked rows: none here)
    assert config["training"]["early_stopping_two_turn_rows"] == 2
    assert config["training"]["val_rows"] == 4
    v = carved.validation
    assert v.questions == [carved.data.rows[i] for i in carved.split.carved]
    assert all(not q.context.turns for q in v.questions)  # what calibration reads
    turns = len(v.extra_questions) - v.cold
    assert turns > 0  # the multi-turn forms of each picked validation row
    assert all(len(q.context.turns) >= 1 for q in v.extra_questions[:turns])
    # every validation conversation ranks all 6 workflows, so each is a group
    stopping = v.stopping_groups(carved.positions)
    assert len(stopping[2]) == len(v.questions) + turns + v.cold


def test_two_turn_forms_are_seeded_and_point_at_their_rows() -> None:
    qs = rows() + [LabelledQuery(text="tell me a joke", label=None)]
    a = two_turn_forms(qs, 0.5, 3, ["what's the time"])
    b = two_turn_forms(qs, 0.5, 3, ["what's the time"])
    assert [(i, v.model_dump()) for i, v in a] == [(i, v.model_dump()) for i, v in b]
    assert len(a) == 3 * (len(rows()) // 2)  # distractor first, vague follow-up, topic shift
    assert all(v.label == qs[i].label and len(v.context.turns) >= 1 for i, v in a)
    assert two_turn_forms(qs, 0.0, 3, []) == []
    # a topic shift's earlier requests are of other workflows, from the same fold when given
    fold_of = {i: i % 2 for i in range(len(qs))}
    for i, v in two_turn_forms(qs, 0.5, 3, [], fold_of)[-(len(rows()) // 2) :]:
        earlier = {t.text for t in v.context.turns if t.role == "user"}
        sources = [j for j, q in enumerate(rows()) if q.text in earlier]
        assert sources and all(fold_of[j] == fold_of[i] for j in sources)
        assert all(rows()[j].label != v.label for j in sources)


def test_training_rows_keep_their_parents_fold_and_validation_is_carved_per_label() -> None:
    config = RankerTrainingConfig(folds=3)
    qs = rows() + out_of_scope_rows()
    data = expand_rows(qs, config)
    fold_of = dict(enumerate(data.fold[: len(qs)]))
    forms = two_turn_forms(qs, config.augment_context, config.seed, data.distractors, fold_of)
    assert data.given == qs and data.rows[len(qs) :] == [v for _, v in forms]
    assert data.parent == list(range(len(qs))) + [i for i, _ in forms]
    assert data.distractors == [q.text for q in out_of_scope_rows()]
    assert all(data.fold[i] == data.fold[data.parent[i]] for i in range(len(data.rows)))
    assert sorted(Counter(data.fold[: len(qs)]).values()) == [13, 13, 13]
    assert expand_rows(qs, config) == data  # seeded
    split = split_validation(data, None, config)
    # round(6 x 10 %) = 1 row of each workflow, and none of the 3 out-of-scope rows
    assert sorted(str(data.rows[i].label) for i in split.carved) == sorted(PHRASES)
    assert split_validation(data, None, config) == split
    train = split.trains(data)
    assert not {data.parent[i] for i in train} & split.carved_set
    validating = [i for i in range(len(data.rows)) if data.parent[i] in split.carved_set]
    assert sorted(train + validating) == list(range(len(data.rows)))
    given = split_validation(data, val_rows(), config)
    assert given.carved == [] and given.questions(data) == val_rows()
    assert given.trains(data) == list(range(len(data.rows)))
    with pytest.raises(FrontdeskError, match="--folds must be at least 2"):
        RankerTrainingConfig(folds=1)


def test_carved_validation_is_never_cold_and_training_sees_missing_classes(
    trained, encoder
) -> None:
    """Cold-start folds make training rows new; a carved validation row is scored as at
    inference (its workflow has a class), and early stopping also sees it scored as new."""
    s = _Steps(trained[0], encoder, rows(), cold_start=0.34)
    assert s.plan.new_per_fold == 2
    train = s.train_groups
    assert missing_class_seen(train) is True
    assert np.isnan(_relevant_logp(train)).any()  # the cold rows of the training folds
    assert s.plan.cold_rows and all(i in s.split.trains(s.data) for i in s.plan.cold_rows)
    # validation rows (what calibration reads) are scored as at inference; early stopping
    # also reads the new workflows' ones once more, scored as new
    v = s.validation
    as_given = ranking_groups(v.questions, v.candidates, v.features, s.positions)
    assert len(as_given[2]) and not np.isnan(_relevant_logp(as_given)).any()
    stopping = v.stopping_groups(s.positions)
    assert v.cold > 0 and int(np.isnan(_relevant_logp(stopping)).sum()) == v.cold
    # the base weight is chosen on the groups it is given; no group at all is refused
    trees = fit_trees(train, stopping, s.base_groups)
    assert (trees.base_weight, trees.base_top1) == choose_base_weight(s.base_groups)
    assert trees.train_groups == len(train[2]) and trees.missing_class_seen
    assert not set(base_weight_rows(s.data, s.split.trains(s.data), s.plan.cold_rows)) & (
        s.plan.cold_rows
    )
    with pytest.raises(FrontdeskError, match="no training row had its workflow"):
        fit_trees(ranking_groups([], [], [], s.positions), stopping, s.base_groups)
    # calibration reads the carved rows once each (no cold copies; no negatives here)
    assert calibration_negatives(s.data, v.questions) == []
    cal = fit_calibration(trees.score, v, ([], []), s.positions)
    assert len(cal.inputs) == len(v.questions) > 0 and len(cal.negative_inputs) == 0
    assert cal.scope is None
    assert cal.calibrator.to_json() == PlattCalibrator.fit(cal.inputs, cal.top1_correct).to_json()


def test_cold_start_leaves_out_at_least_one_workflow() -> None:
    assert cold_start_count(6, 0.1) == 1  # int(0.6) would have been none
    assert cold_start_count(150, 0.1) == 15
    assert cold_start_count(6, 0.0) == 0 and cold_start_count(1, 0.5) == 0
    assert cold_start_count(2, 0.9) == 1  # one workflow always keeps its class


def test_fold_classifier_never_sees_a_copy_of_the_folds_questions(trained, encoder) -> None:
    """A question repeated in the training file (same text, same workflow) must not train
    the classifier that scores its copy in another fold."""
    dup = [
        LabelledQuery(id=f"dup-{k}", text="payout failed", label="payout-failed") for k in range(4)
    ]
    s = _Steps(trained[0], encoder, rows() + dup, cold_start=0.0, augment_context=0.0)
    assert len(s.plan.views) >= 3  # one classifier per view of each fold
    copies = [i for i, q in enumerate(s.data.rows) if q.text == "payout failed"]
    assert len({s.data.fold[i] for i in copies}) > 1  # the copies are in several folds
    for view in s.plan.views:
        asked = s.encoded.text_vectors[view.rows]
        assert (asked @ s.encoded.vectors[s.classifier_rows(view)].T).max() < 0.999
    # --cold-start 0: no training row without a class, and training says so
    assert missing_class_seen(s.train_groups) is False
    with pytest.warns(UserWarning, match="without a class"):
        warn_if_no_missing_class(s.classifier, missing_class_seen(s.train_groups))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_no_missing_class(s.classifier, True)
        warn_if_no_missing_class(None, False)  # no classifier: nothing is missing


def test_trees_start_from_a_nonzero_classifier_weight(carved, tmp_path: Path) -> None:
    """End to end with w > 0: stored, loaded, and added to the trees' output."""
    from frontdesk.ranking.reranker import base_margin

    s = carved
    train, stopping = s.train_groups, s.validation.stopping_groups(s.positions)
    booster = LambdaRankReranker.fit(train, stopping, base_weight=0.2)
    trees = FittedTrees(booster, 0.2, 0.5, len(train[2]), missing_class_seen(train))
    cal = fit_calibration(trees.score, s.validation, ([], []), s.positions)
    reranker = assemble_ranker(trees, s.priors, s.classifier, cal)
    assert reranker.validation is not None
    np.testing.assert_array_equal(reranker.validation.confidence, reranker.confidence(cal.inputs))
    config = ranker_config(
        s.config, s.index_dir, s.suggester, s.data, s.plan, s.validation, trees, cal
    )
    assert config["training"]["val_rows"] == len(s.validation.questions)
    assert config["training"]["early_stopping_cold_rows"] == s.validation.cold
    reranker.config = config
    reranker.save(tmp_path / "m9")
    r = LambdaRankReranker.load(tmp_path / "m9")
    assert config["base_weight"] == r.base_weight == 0.2
    x = _two_candidates([0.8, 0.7], [-0.2, -2.0])
    trees_out = r.booster.predict(x, num_threads=1)
    np.testing.assert_allclose(r.score(x), np.array([0.76, 0.3]) + trees_out, rtol=1e-5)
    np.testing.assert_allclose(r.score(x), base_margin(x, 0.2) + trees_out)
    np.testing.assert_allclose(r.score(x), trees.score(x))  # as training scored it


def test_both_abstention_goals_are_met_on_validation_and_recorded(trained, encoder) -> None:
    index_dir, _, _ = trained
    val = [
        LabelledQuery(text="payout bounced", label="payout-failed"),
        LabelledQuery(text="customer refund didn't arrive", label="refund-not-received"),
        LabelledQuery(text="rotate the api key please", label="api-key-rotate"),
        LabelledQuery(text="best lasagne recipe", label=None),
        LabelledQuery(text="who won the football", label=None),
    ]
    model = index_dir.parent / "m-goal"
    config = train_ranker(
        index_dir, rows(), model, val_rows=val, folds=3, top_n=6, encoder=encoder,
        min_in_scope_accuracy=0.6, min_oos_recall=0.5,
    )  # fmt: skip
    t = config["training"]
    assert config["min_in_scope_accuracy"] == 0.6 and config["min_oos_recall"] == 0.5
    assert "the middle of the thresholds that meet both" in config["abstention_goal"]
    # the stored threshold meets both on validation, and the saved model carries it
    assert t["val_in_scope_accuracy"] >= 0.6 and t["val_oos_recall"] >= 0.5
    assert LambdaRankReranker.load(model).threshold == config["threshold"] > 0
    # a goal no threshold meets (a question labelled with the wrong workflow): a warning
    wrong = [*val, LabelledQuery(text="rotate my api key", label="payout-failed")]
    with pytest.warns(UserWarning, match="no threshold meets the abstention goal"):
        train_ranker(
            index_dir, rows(), model, val_rows=wrong, folds=3, top_n=6, encoder=encoder,
            min_in_scope_accuracy=1.0,
        )  # fmt: skip


def test_ranker_of_another_format_and_all_out_of_scope_validation_are_refused(
    trained, tmp_path: Path, encoder
) -> None:
    index_dir, model, _ = trained
    old = tmp_path / "old"
    shutil.copytree(model, old)
    cfg = json.loads((old / "ranker.json").read_text())
    assert cfg["ranker_format"] == 2
    cfg.pop("ranker_format")  # saved before the format was recorded
    (old / "ranker.json").write_text(json.dumps(cfg))
    write_manifest(old, read_manifest(old, verify=False))
    with pytest.raises(IndexIntegrityError, match="ranker format 1"):
        LambdaRankReranker.load(old)
    with pytest.raises(FrontdeskError, match="no labelled rows"):
        train_ranker(
            index_dir, rows(), tmp_path / "m", val_rows=[LabelledQuery(text="hi", label=None)],
            folds=3, top_n=6, encoder=encoder,
        )  # fmt: skip
    with pytest.raises(FrontdeskError, match="within"):
        train_ranker(index_dir, rows(), tmp_path / "m", min_oos_recall=1.5, encoder=encoder)
    # an OOS recall goal with no out-of-scope row in validation: refused before encoding
    with pytest.raises(FrontdeskError, match="min-oos-recall needs out-of-scope rows"):
        train_ranker(
            index_dir, rows(), tmp_path / "m", val_rows=rows()[:4], folds=3, top_n=6,
            encoder=encoder, min_oos_recall=0.8,
        )  # fmt: skip
    # too few rows per workflow for a carved 10 % to hold any labelled one
    few = [q for q in rows() if int(str(q.id).rsplit("-", 1)[1]) < 4]
    few += [LabelledQuery(id=f"oos-{k}", text=f"off topic line {k}", label=None) for k in range(11)]
    with pytest.raises(FrontdeskError, match="carved 10 %"):
        train_ranker(index_dir, few, tmp_path / "m", folds=3, top_n=6, encoder=encoder)
    assert not (tmp_path / "m").exists()


def test_changing_the_goal_gives_what_training_with_it_gives(trained, encoder, tmp_path) -> None:
    index_dir, model, config = trained
    saved = LambdaRankReranker.load(model).validation
    assert saved is not None and len(saved.confidence) == config["training"]["val_rows"] == 4
    assert saved.in_scope.tolist() == [True, True, False, False]
    goal = {"min_in_scope_accuracy": 0.5, "min_oos_recall": 1.0}
    changed = change_abstention_goal(model, tmp_path / "changed", **goal)
    assert changed["before"]["threshold"] == config["threshold"]
    # the same as training with that goal from the start: same threshold, values, trees
    direct = train_ranker(
        index_dir, rows() + out_of_scope_rows(), tmp_path / "direct", val_rows=val_rows(),
        folds=3, top_n=6, encoder=encoder, **goal,
    )  # fmt: skip
    a = LambdaRankReranker.load(tmp_path / "changed")
    assert a.threshold == direct["threshold"] == changed["after"]["threshold"]
    # all of ranker.json but the change's own record, and the other files byte for byte
    saved = {
        d: json.loads((tmp_path / d / "ranker.json").read_text()) for d in ("changed", "direct")
    }
    assert saved["changed"].pop("goal_changes") and saved["changed"] == saved["direct"]
    for name in ("ranker.txt", "classifier.npy", "priors.json", "validation_outcomes.npy"):
        assert (tmp_path / "changed" / name).read_bytes() == (
            tmp_path / "direct" / name
        ).read_bytes()
    for key in ("val_in_scope_accuracy", "val_oos_recall", "val_decision_accuracy"):
        assert a.config["training"][key] == changed["after"][key]
    assert changed["after"]["missed"] == []
    # the goal is met on validation, at another threshold than the default's
    assert a.config["training"]["val_oos_recall"] == 1.0 and a.threshold != config["threshold"]
    assert (
        changed["after"]["val_in_scope_accuracy"]
        == 0.5
        < changed["before"]["val_in_scope_accuracy"]
    )
    x = np.random.default_rng(1).normal(size=(6, len(FEATURE_NAMES))).astype(np.float32)
    np.testing.assert_array_equal(a.score(x), LambdaRankReranker.load(model).score(x))
    np.testing.assert_array_equal(
        a.confidence(np.ones((2, len(CONFIDENCE_INPUTS)))),
        LambdaRankReranker.load(model).confidence(np.ones((2, len(CONFIDENCE_INPUTS)))),
    )
    assert [c["threshold_before"] for c in a.config["goal_changes"]] == [config["threshold"]]
    # back to the default goal, in place: the trained threshold again, two changes recorded
    back = change_abstention_goal(tmp_path / "changed", tmp_path / "changed")
    b = LambdaRankReranker.load(tmp_path / "changed")
    assert back["after"]["threshold"] == b.threshold == config["threshold"]
    assert b.config["abstention_goal"] == config["abstention_goal"]
    assert len(b.config["goal_changes"]) == 2 and b.config["min_oos_recall"] is None


def test_tradeoff_table_reads_the_saved_outcomes_as_eval_would(trained, encoder) -> None:
    index_dir, model, config = trained
    result = ranker_tradeoff(model, step=0.25)
    thresholds = [row["threshold"] for row in result["table"]]
    assert thresholds == sorted({0.0, 0.25, 0.5, 0.75, 1.0, config["threshold"]})
    (stored,) = [row for row in result["table"] if row["stored"]]
    assert stored["threshold"] == config["threshold"] == result["threshold"]
    assert (result["val_rows"], result["val_out_of_scope"]) == (4, 2)
    val = config["training"]
    for key in ("in_scope_accuracy", "oos_recall", "decision_accuracy"):
        assert stored[key] == val[f"val_{key}"]
    # evaluating the validation rows with the ranker gives the stored row's numbers
    report = evaluate_suggester(
        Suggester.load(index_dir, ranker=model, encoder=encoder), val_rows()
    )
    for key in ("in_scope_accuracy", "oos_recall", "oos_precision"):
        assert report[key] == (stored[key] or 0.0)
    assert report["auroc"] == result["auroc"]
    # the CLI prints the same, as JSON or as a table marking the stored threshold
    res = CliRunner().invoke(app, ["eval", "thresholds", str(model), "--step", "0.25", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == result
    res = CliRunner().invoke(app, ["eval", "thresholds", str(model), "--step", "0.25"])
    assert res.exit_code == 0 and f"* {config['threshold']:.6f}" in res.stdout, res.output
    lo, hi = stored["oos_recall_95ci"]
    assert f"OOS recall there {stored['oos_recall']:.2%}, 95 % interval {lo:.1%}-{hi:.1%}" in (
        res.stdout
    )
    res = CliRunner().invoke(app, ["eval", "thresholds", str(model), "--step", "0"])
    assert res.exit_code == 2 and "--step must be in [0.001, 1]" in res.output


def test_changing_the_goal_is_refused_without_what_it_needs(trained, tmp_path: Path) -> None:
    _, model, _ = trained
    with pytest.raises(FrontdeskError, match="within"):
        change_abstention_goal(model, tmp_path / "x", min_in_scope_accuracy=1.5)
    # validation outcomes without out-of-scope rows: no OOS recall goal
    only_in = tmp_path / "only-in"
    shutil.copytree(model, only_in)
    table = np.load(only_in / "validation_outcomes.npy")
    table[:, 1] = 1.0
    np.save(only_in / "validation_outcomes.npy", table)
    write_manifest(only_in, read_manifest(only_in, verify=False))
    with pytest.raises(IndexIntegrityError, match="0 out-of-scope rows, ranker.json says 2"):
        LambdaRankReranker.load(only_in)
    cfg = json.loads((only_in / "ranker.json").read_text())
    cfg["validation_outcomes"]["out_of_scope"] = 0
    (only_in / "ranker.json").write_text(json.dumps(cfg))
    write_manifest(only_in, read_manifest(only_in, verify=False))
    with pytest.raises(FrontdeskError, match="needs out-of-scope rows.*retrain it with a --val"):
        change_abstention_goal(only_in, tmp_path / "x", min_oos_recall=0.5)
    # a goal no threshold meets on validation: stored with a warning, and reported
    unmet = tmp_path / "unmet"
    shutil.copytree(model, unmet)
    table = np.load(unmet / "validation_outcomes.npy")
    table[0, 2] = 0.0  # the first in-scope row ranked wrong
    np.save(unmet / "validation_outcomes.npy", table)
    write_manifest(unmet, read_manifest(unmet, verify=False))
    with pytest.warns(UserWarning, match="no threshold meets the abstention goal"):
        result = change_abstention_goal(unmet, unmet, min_in_scope_accuracy=1.0)
    assert result["after"]["missed"] == ["in-scope accuracy 0.5000 < 1"]
    # not beside the ranker but inside it, or over a file: refused
    with pytest.raises(FrontdeskError, match="inside the ranker folder"):
        change_abstention_goal(unmet, unmet / "goal")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        change_abstention_goal(unmet, tmp_path / "a-file")
    # tampered, or not what the config says, or saved before the outcomes were kept
    np.save(only_in / "validation_outcomes.npy", table[:3])
    with pytest.raises(IndexIntegrityError, match="validation_outcomes.npy: checksum mismatch"):
        LambdaRankReranker.load(only_in)
    write_manifest(only_in, read_manifest(only_in, verify=False))
    with pytest.raises(IndexIntegrityError, match=r"float64 \(3, 3\) does not match"):
        LambdaRankReranker.load(only_in)
    np.save(only_in / "validation_outcomes.npy", table.astype(np.float32))
    write_manifest(only_in, read_manifest(only_in, verify=False))
    with pytest.raises(IndexIntegrityError, match=r"float32 \(4, 3\) does not match"):
        LambdaRankReranker.load(only_in)
    cfg = json.loads((only_in / "ranker.json").read_text())
    cfg.pop("validation_outcomes")
    (only_in / "ranker.json").write_text(json.dumps(cfg))
    (only_in / "validation_outcomes.npy").unlink()
    write_manifest(only_in, read_manifest(only_in, verify=False))
    assert LambdaRankReranker.load(only_in).validation is None  # still serves
    with pytest.raises(FrontdeskError, match="retrain it"):
        change_abstention_goal(only_in, tmp_path / "x", min_in_scope_accuracy=0.9)
    with pytest.raises(FrontdeskError, match="retrain it .* to see its trade-off"):
        ranker_tradeoff(only_in)
    assert not (tmp_path / "x").exists()


def test_training_searches_the_queries_the_context_mode_makes(
    trained, tmp_path: Path, encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ranker trained with context=latest learns from latest-text queries, as it serves."""
    from frontdesk.config import Settings
    from frontdesk.index import WorkflowIndex
    from frontdesk.ranking.training import candidates, folds

    index_dir, _, _ = trained
    searched: list[np.ndarray] = []
    texts: list[str] = []
    encode_contexts = encoder.encode_contexts

    def recorded(convs, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        texts.extend(c.text for c in convs)
        return encode_contexts(convs, *args, **kwargs)

    monkeypatch.setattr(encoder, "encode_contexts", recorded)
    for module in (folds, candidates):
        real = module.retrieve_candidates

        def spy(hybrid, vectors, *args, _real=real, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            searched.append(np.asarray(vectors))
            return _real(hybrid, vectors, *args, **kwargs)

        monkeypatch.setattr(module, "retrieve_candidates", spy)

    def nearest_text(settings: Settings) -> np.ndarray:
        """Per searched query, its cosine to the nearest latest text of any training row."""
        searched.clear(), texts.clear()
        train_ranker(index_dir, rows(), tmp_path / settings.context, val_rows=val_rows(),
                     folds=3, top_n=6, encoder=encoder, settings=settings)  # fmt: skip
        own = encoder.encode(sorted(set(texts)))
        return (np.concatenate(searched) @ own.T).max(axis=1)

    # training adds two-turn forms: mixed, their queries blend in the earlier turn
    assert (nearest_text(Settings(context="mixed")) < 0.999).any()
    # latest: every query it searched is a latest text's own vector
    assert (nearest_text(Settings(context="latest")) > 0.999).all()
    s = Suggester(WorkflowIndex.load(index_dir), encoder=encoder,
                  settings=Settings(context="latest"))  # fmt: skip
    s.attach_ranker(tmp_path / "latest")  # trained for the mode it serves
    # gated: out of fold, the gate chooses from each fold's own copy of the index
    from frontdesk.encoding import context_gate

    searchers: list[int] = []
    real_inputs = context_gate.gate_inputs

    def gate_inputs(hybrid, *args):  # noqa: ANN001, ANN002, ANN202
        searchers.append(id(hybrid))
        return real_inputs(hybrid, *args)

    monkeypatch.setattr(context_gate, "gate_inputs", gate_inputs)
    train_ranker(index_dir, rows(), tmp_path / "gated", val_rows=val_rows(), folds=3,
                 top_n=6, encoder=encoder, settings=Settings(context="gated"))  # fmt: skip
    assert len(set(searchers)) >= 3  # the folds' searchers (and the whole index's for val)
