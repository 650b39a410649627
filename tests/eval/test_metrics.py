"""Ranking metrics on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from frontdesk.eval import carve_validation, evaluate_ranks, rank_of
from frontdesk.schema import LabelledQuery


def test_metrics_by_hand() -> None:
    # four queries: gold at rank 1, rank 3, rank 7, missing
    m = evaluate_ranks([1, 3, 7, None])
    assert m["n"] == 4
    assert m["top1"] == 0.25
    assert m["recall@3"] == 0.5
    assert m["recall@5"] == 0.5
    assert m["recall@10"] == 0.75
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 7) / 4)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(8)) / 4)


def test_rank_of() -> None:
    assert rank_of("b", ["a", "b", "c"]) == 2
    assert rank_of("z", ["a"]) is None


def test_empty_is_zero_not_an_error() -> None:
    assert evaluate_ranks([])["top1"] == 0.0


def test_carve_validation_is_stratified_and_deterministic() -> None:
    rows = [LabelledQuery(text=f"t{i}", label=lab) for lab in ("a", "b", None) for i in range(10)]
    rows.append(LabelledQuery(text="lonely", label="c"))  # a single row stays in train
    train, val = carve_validation(rows, fraction=0.2, seed=1)
    assert len(val) == 6 and len(train) == 25
    assert sorted((q.label or "") for q in val) == ["", "", "a", "a", "b", "b"]
    assert any(q.label == "c" for q in train)
    assert carve_validation(rows, fraction=0.2, seed=1) == (train, val)
    assert carve_validation(rows, fraction=0.2, seed=2)[1] != val


def test_abstention_metrics_by_hand() -> None:
    from frontdesk.eval.suggestions import abstention_metrics

    # rows: in-scope right & answered, in-scope right but abstained, in-scope wrong & answered,
    #       out of scope abstained, out of scope answered
    m = abstention_metrics(
        in_scope=[True, True, True, False, False],
        correct=[True, True, False, False, False],
        abstained=[False, True, False, True, False],
        confidence=[0.9, 0.3, 0.6, 0.2, 0.7],
    )
    assert m["in_scope_accuracy"] == pytest.approx(1 / 3)
    assert m["oos_recall"] == 0.5
    assert m["oos_precision"] == 0.5  # abstained on one OOS row and one in-scope row
    # OOS {0.2, 0.7} below in-scope {0.9, 0.3, 0.6}: 0.2 in 3 pairs, 0.7 in 1: 4 of 6
    assert m["auroc"] == pytest.approx(4 / 6)
