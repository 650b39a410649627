"""Importers on tiny hand-written sources, and on the real datasets when present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frontdesk import DataError, load_catalog, load_queries
from frontdesk.datasets import import_abcd, import_banking77, import_clinc150


def test_banking77_tiny(tmp_path: Path) -> None:
    src = tmp_path / "b77"
    src.mkdir()
    (src / "train.csv").write_text(
        'text,category\n"where is my card?",card_arrival\n"freeze it, please",lost_or_stolen_card\n'
    )
    (src / "test.csv").write_text("text,category\nstill no card,card_arrival\n")
    counts = import_banking77(src, tmp_path / "out")
    assert counts == {"workflows": 2, "train": 2, "test": 1}
    wfs = load_catalog(tmp_path / "out" / "workflows.jsonl")
    assert [w.id for w in wfs] == ["card_arrival", "lost_or_stolen_card"]
    assert wfs[0].title == "New card has not arrived"  # the project's own workflow text
    assert wfs[0].description.startswith("The customer ordered")
    test = load_queries(tmp_path / "out" / "test.jsonl", workflow_ids={w.id for w in wfs})
    assert (test[0].text, test[0].label) == ("still no card", "card_arrival")


def test_banking77_bad_row_names_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "b77"
    src.mkdir()
    (src / "train.csv").write_text("text,category\nok,a\n,b\n")
    (src / "test.csv").write_text("text,category\n")
    with pytest.raises(DataError, match=r"train\.csv:3: text: empty"):
        import_banking77(src, tmp_path / "out")


def test_clinc150_tiny_oos_is_null(tmp_path: Path) -> None:
    src = tmp_path / "clinc"
    src.mkdir()
    data = {
        "train": [["how do i say hi in french", "translate"]],
        "val": [["translate hello", "translate"]],
        "test": [["freeze my account", "freeze_account"]],
        "oos_train": [["what's the meaning of life", "oos"]],
        "oos_val": [["a show on broadway", "oos"]],
        "oos_test": [["how tall is everest", "oos"]],
    }
    (src / "data_full.json").write_text(json.dumps(data))
    (src / "domains.json").write_text(
        json.dumps({"banking": ["freeze_account"], "utility": ["translate"]})
    )
    counts = import_clinc150(src, tmp_path / "out")
    assert counts == {"workflows": 2, "train": 2, "val": 2, "test": 2}
    val = load_queries(tmp_path / "out" / "val.jsonl")
    assert [q.label for q in val] == ["translate", None]
    wfs = {w.id: w for w in load_catalog(tmp_path / "out" / "workflows.jsonl")}
    assert wfs["freeze_account"].tags == ["banking"]
    # the project's own title and description (data/clinc150_workflows.jsonl)
    assert wfs["freeze_account"].title == "Freeze a bank account"
    assert wfs["translate"].description.startswith("The user wants a word or phrase translated")


def test_real_datasets(tmp_path: Path, datasets_dir: Path) -> None:
    b = import_banking77(datasets_dir / "banking77", tmp_path / "b")
    assert b == {"workflows": 77, "train": 10003, "test": 3080}
    c = import_clinc150(datasets_dir / "clinc150", tmp_path / "c")
    assert c == {"workflows": 150, "train": 15100, "val": 3100, "test": 5500}
    clinc = load_catalog(tmp_path / "c" / "workflows.jsonl")
    assert all(w.description for w in clinc)  # a bundled text for every intent
    test = load_queries(tmp_path / "c" / "test.jsonl")
    assert sum(q.label is None for q in test) == 1000
    a = import_abcd(datasets_dir / "abcd", tmp_path / "a")
    assert a == {"workflows": 55, "test": 3}
    wfs = {w.id: w for w in load_catalog(tmp_path / "a" / "workflows.jsonl")}
    assert {"refund_initiate", "reset_2fa", "manage_cancel", "boots"} <= set(wfs)
    assert wfs["reset_2fa"].title == "Account Access: Reset Two-Factor Auth"
    assert len(wfs["reset_2fa"].steps) >= 2 and "Pull up Account" in wfs["reset_2fa"].steps[0]
    convs = load_queries(tmp_path / "a" / "test.jsonl", workflow_ids=set(wfs))
    assert {q.label for q in convs} == {"return_size", "refund_status", "timing"}
    assert all(q.context.metadata["full_dialogue"] for q in convs)
