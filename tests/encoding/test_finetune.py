"""Encoder fine-tuning: pairs, batches without false negatives, a saved loadable folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frontdesk import ContextEncoder, LabelledQuery, Workflow, build_index
from frontdesk.encoding.finetune import distinct_label_batches, finetune_encoder, training_pairs

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


@pytest.mark.slow
def test_finetune_saves_a_folder_index_build_can_use(tmp_path: Path, tiny_catalog: Path) -> None:
    info = finetune_encoder(ROWS, WFS, tmp_path / "model", batch_size=3, epochs=2)
    assert info["batches"] >= 4 and (tmp_path / "model" / "frontdesk-finetune.json").is_file()
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
