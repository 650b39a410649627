"""Prototype blending and its build-time tuning, on hand-made vectors."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from frontdesk import Settings
from frontdesk.retrieval import DenseSearcher
from frontdesk.retrieval.dense import workflow_prototypes
from frontdesk.retrieval.tuning import (
    FEW_EXAMPLES_WEIGHT,
    heldout_examples,
    tune_prototype_weight,
)


def unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_prototypes_are_normalised_means() -> None:
    vecs = np.stack([unit(1, 0), unit(0, 1), unit(1, 0)])
    protos = workflow_prototypes(vecs, np.array([0, 0, 1]), 2)
    np.testing.assert_allclose(protos, [unit(1, 1), unit(1, 0)], atol=1e-6)


def test_prototype_weight_can_overturn_a_single_outlier_neighbour() -> None:
    # workflow 0: one document right on the query, one far away;
    # workflow 1: two documents both close to the query.
    vecs = np.stack([unit(1, 0, 0), unit(0, 0, 1), unit(1, 0.3, 0), unit(1, -0.3, 0)])
    owner = np.array([0, 0, 1, 1])
    index = faiss.IndexFlatIP(3)
    index.add(vecs)
    protos = workflow_prototypes(vecs, owner, 2)
    q = unit(1, 0, 0)[None, :]
    knn_only = DenseSearcher(index, owner, aggregate="max", prototypes=protos, prototype_weight=0.0)
    blended = DenseSearcher(index, owner, aggregate="max", prototypes=protos, prototype_weight=0.8)
    assert knn_only.search(q, k=2)[0].ids.tolist() == [0, 1]
    (res,) = blended.search(q, k=2)
    assert res.ids.tolist() == [1, 0]
    # workflow 1: 0.2 * cos(q, doc 2) + 0.8 * cos(q, prototype 1)
    assert res.scores[0] == pytest.approx(0.2 * (1 / np.hypot(1, 0.3)) + 0.8 * 1.0, rel=1e-5)


def test_heldout_is_stratified_and_skips_sparse_workflows() -> None:
    owner = np.array([0] * 20 + [1] * 2 + [2] * 10)
    is_example = np.ones(len(owner), dtype=bool)
    is_example[0] = False  # a workflow text is never held out
    held = heldout_examples(is_example, owner, fraction=0.1, seed=0, cap=100)
    assert np.bincount(owner[held], minlength=3).tolist() == [2, 0, 1]
    assert 0 not in held.tolist()


def test_too_few_examples_take_the_few_examples_weight_and_none_take_zero() -> None:
    vecs = np.eye(4, dtype=np.float32)
    out = tune_prototype_weight(vecs, np.arange(4), np.ones(4, bool), [["a"]] * 4, 4, Settings())
    assert out["weight"] == FEW_EXAMPLES_WEIGHT > 0.0 and "not tuned" in out["reason"]
    out = tune_prototype_weight(vecs, np.arange(4), np.zeros(4, bool), [["a"]] * 4, 4, Settings())
    assert out["weight"] == 0.0 and "not tuned" in out["reason"]


def test_tuning_prefers_prototypes_when_examples_are_noisy() -> None:
    # 20 workflows on orthogonal axes, 30 examples each = axis + heavy noise: the
    # mean of a workflow's examples is a far better guide than any one neighbour.
    rng = np.random.default_rng(0)
    n_wf, per, dim = 20, 30, 64
    centres = np.eye(dim, dtype=np.float32)[:n_wf]
    owner = np.repeat(np.arange(n_wf), per)
    vecs = centres[owner] + rng.normal(scale=0.35, size=(len(owner), dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    tokens = [["x"]] * len(owner)  # BM25 carries no signal here
    out = tune_prototype_weight(
        vecs, owner, np.ones(len(owner), bool), tokens, n_wf, Settings(), fraction=0.34
    )
    assert out["heldout"] >= 200
    scores = out["top1_by_weight"]
    assert out["weight"] > 0.0
    assert scores[str(out["weight"])] > scores["0.0"]
