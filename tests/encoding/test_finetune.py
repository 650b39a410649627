"""Encoder fine-tuning: pairs, batches without false negatives, a saved loadable folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frontdesk import ContextEncoder, LabelledQuery, Workflow, build_index
from frontdesk.encoding.finetune import (
    MAX_AUTO_EPOCHS,
    auto_epochs,
    distinct_label_batches,
    finetune_encoder,
    out_of_scope_negatives,
    training_pairs,
)

WFS = [
    Workflow(id="a", title="Payout late"),
    Workflow(id="b", title="Refund failed"),
    Workflow(id="c", title="Reset 2FA"),
]
ROWS = [
    LabelledQuery(text=t, label=lab)
    for t, lab in [
        ("where is my payout", "a"),
        ("payout not in bank", "a"),
        ("payout delayed again", "a"),
        ("refund bounced", "b"),
        ("refund did not go through", "b"),
        ("lost 2fa phone", "c"),
        ("new authenticator", "c"),
        ("what's the weather", None),  # out of scope: no pair
    ]
]


def test_pairs_are_seeded_and_positive_is_same_workflow() -> None:
    pairs = training_pairs(ROWS, WFS, seed=1)
    assert len(pairs) == 7 and pairs == training_pairs(ROWS, WFS, seed=1)
    texts_of = {
        lab: {q.text for q in ROWS if q.label == lab} | {w.document() for w in WFS if w.id == lab}
        for lab in "abc"
    }
    for anchor, positive, label in pairs:
        assert anchor in texts_of[label] and positive in texts_of[label] and anchor != positive


def test_batches_never_repeat_a_workflow() -> None:
    batches = distinct_label_batches(training_pairs(ROWS, WFS), batch_size=2)
    assert all(len({p[2] for p in b}) == len(b) for b in batches)
    assert sum(len(b) for b in batches) >= 6


def test_out_of_scope_rows_are_negatives_only() -> None:
    rows = [*ROWS, LabelledQuery(text="tell me a joke", label=None)]
    negs = out_of_scope_negatives(rows, n_batches=4, per_batch=8, seed=3)
    assert negs == out_of_scope_negatives(rows, n_batches=4, per_batch=8, seed=3)
    assert len(negs) == 4
    # capped at the two distinct out-of-scope questions, never a labelled one
    assert all(sorted(n) == ["tell me a joke", "what's the weather"] for n in negs)
    assert all(len(n) == 1 for n in out_of_scope_negatives(rows, 3, per_batch=1))
    # and never anchors: the pairs come from labelled rows alone
    assert {a for a, _, _ in training_pairs(rows, WFS)} == {q.text for q in ROWS if q.label}
    assert out_of_scope_negatives(ROWS[:-1], 2, per_batch=8) == [[], []]
    # a null row repeating a labelled text is no negative; repeats count once
    noisy = [*rows, LabelledQuery(text="refund bounced", label=None), rows[-1]]
    assert all(
        sorted(n) == ["tell me a joke", "what's the weather"]
        for n in out_of_scope_negatives(noisy, 3, per_batch=8)
    )
    assert out_of_scope_negatives(rows, 2, per_batch=0) == [[], []]


def test_unasked_epochs_reach_about_200_steps_for_few_questions_and_one_pass_for_many() -> None:
    assert auto_epochs(313) == 1  # BANKING77's 10,003 train questions in batches of 32
    assert auto_epochs(100) == 2
    assert auto_epochs(25) == MAX_AUTO_EPOCHS  # 10 per workflow: 8 passes, 200 steps
    assert auto_epochs(3) == MAX_AUTO_EPOCHS  # never more than that, however few


@pytest.mark.slow
def test_finetune_saves_a_folder_index_build_can_use(tmp_path: Path, tiny_catalog: Path) -> None:
    info = finetune_encoder(ROWS, WFS, tmp_path / "model", batch_size=3, epochs=2, oos_negatives=4)
    assert info["batches"] >= 4 and (tmp_path / "model" / "frontdesk-finetune.json").is_file()
    assert info["out_of_scope_rows"] == 1 and info["out_of_scope_negatives_per_batch"] == 1
    assert info["oos_negatives"] == 4 and "extra negatives" in info["loss"]
    tuned = ContextEncoder(tmp_path / "model")
    v = tuned.encode(["where is my payout"])
    assert v.shape == (1, 384) and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    assert tuned.fingerprint != ContextEncoder().fingerprint
    m = build_index(tiny_catalog, tmp_path / "idx", encoder=tuned)
    assert m["dense"]["model"]["sha256"] == tuned.fingerprint
    # the index remembers its model: loading it needs no setting
    from frontdesk import Suggester

    s = Suggester.load(tmp_path / "idx")
    assert s.mode == "hybrid" and s.encoder.path == (tmp_path / "model").resolve()
