"""BANKING77 smoke test: a small index of real questions answers real test questions.

A slice (12 intents, 30 train examples each) keeps it to a few seconds; the
full-size numbers come from benchmarks/retrieval_quality.py.
"""

from __future__ import annotations

from pathlib import Path

from frontdesk import Suggester, build_index, load_catalog, load_queries
from frontdesk.datasets import import_banking77
from frontdesk.eval import evaluate_suggester


def test_banking77_slice_hybrid_beats_chance_by_far(
    tmp_path: Path, datasets_dir: Path, encoder
) -> None:
    import_banking77(datasets_dir / "banking77", tmp_path)
    catalog = load_catalog(tmp_path / "workflows.jsonl")[:12]
    keep = {w.id for w in catalog}
    train, per = [], dict.fromkeys(keep, 0)
    for q in load_queries(tmp_path / "train.jsonl"):
        if q.label in keep and per[q.label] < 30:
            per[q.label] += 1
            train.append(q)
    test = [q for q in load_queries(tmp_path / "test.jsonl") if q.label in keep][:120]
    build_index(catalog, tmp_path / "idx", examples=train, encoder=encoder)
    report = evaluate_suggester(Suggester.load(tmp_path / "idx", encoder=encoder), test)
    assert report["n"] == 120
    assert report["top1"] >= 0.8  # chance is 1/12
    assert report["recall@5"] >= 0.95
