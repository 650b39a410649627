"""Few-shot train files: seeded per-workflow samples, nested across counts, via the CLI too."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from frontdesk import LabelledQuery, load_queries
from frontdesk.cli import app
from frontdesk.datasets import import_dataset, sample_shots

ROWS = [
    LabelledQuery(id=f"{label}-{i}", text=f"{label} question {i}", label=label)
    for label in ("a", "b", "c")
    for i in range(12)
] + [
    LabelledQuery(id="d-0", text="only one of d", label="d"),
    LabelledQuery(id="oos-0", text="what is the meaning of life", label=None),
    LabelledQuery(id="oos-1", text="how tall is everest", label=None),
]


def test_each_workflow_gets_shots_rows_and_out_of_scope_rows_stay() -> None:
    out = sample_shots(ROWS, 5, seed=0)
    assert Counter(q.label for q in out) == {"a": 5, "b": 5, "c": 5, "d": 1, None: 2}
    # input order is kept
    positions = [ROWS.index(q) for q in out]
    assert positions == sorted(positions)


def test_same_seed_same_sample_and_smaller_samples_are_nested() -> None:
    assert sample_shots(ROWS, 5, seed=1) == sample_shots(ROWS, 5, seed=1)
    assert sample_shots(ROWS, 5, seed=1) != sample_shots(ROWS, 5, seed=2)
    one, five, ten = (set(q.id for q in sample_shots(ROWS, n, seed=3)) for n in (1, 5, 10))
    assert one < five < ten


def test_a_workflows_sample_does_not_depend_on_the_others() -> None:
    only_a = [q for q in ROWS if q.label == "a"]
    a_alone = [q.id for q in sample_shots(only_a, 4, seed=0)]
    a_among_all = [q.id for q in sample_shots(ROWS, 4, seed=0) if q.label == "a"]
    assert a_alone == a_among_all


def test_zero_shots_keeps_out_of_scope_rows_only_and_negative_is_refused() -> None:
    assert [q.label for q in sample_shots(ROWS, 0)] == [None, None]
    with pytest.raises(ValueError, match="shots"):
        sample_shots(ROWS, -1)


def _tiny_banking77(tmp_path: Path) -> Path:
    src = tmp_path / "b77"
    src.mkdir()
    lines = ["text,category"] + [f"card question {i},card_arrival" for i in range(8)]
    lines += [f"freeze question {i},lost_or_stolen_card" for i in range(3)]
    (src / "train.csv").write_text("\n".join(lines) + "\n")
    (src / "test.csv").write_text("text,category\nstill no card,card_arrival\n")
    return src


def test_import_with_shots_samples_train_only(tmp_path: Path) -> None:
    counts = import_dataset("banking77", _tiny_banking77(tmp_path), tmp_path / "out", shots=2)
    assert counts == {"workflows": 2, "train": 4, "test": 1}
    train = load_queries(tmp_path / "out" / "train.jsonl")
    assert Counter(q.label for q in train) == {"card_arrival": 2, "lost_or_stolen_card": 2}
    with pytest.raises(ValueError, match="unknown dataset"):
        import_dataset("nope", tmp_path, tmp_path / "x")


def test_cli_import_shots_and_seed(tmp_path: Path) -> None:
    src = _tiny_banking77(tmp_path)
    runner = CliRunner()
    texts = []
    for seed in (0, 0, 1):
        res = runner.invoke(
            app,
            ["datasets", "import", "banking77", str(src), "--out", str(tmp_path / "o"),
             "--shots", "3", "--seed", str(seed), "--json"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert (out["shots"], out["seed"], out["counts"]["train"]) == (3, seed, 6)
        texts.append([q.text for q in load_queries(tmp_path / "o" / "train.jsonl")])
    assert texts[0] == texts[1] != texts[2]
    res = runner.invoke(
        app, ["datasets", "import", "banking77", str(src), "--out", str(tmp_path / "o"),
              "--shots", "-1"],
    )  # fmt: skip
    assert res.exit_code == 2 and "--shots" in res.output
