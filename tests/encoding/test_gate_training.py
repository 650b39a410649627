"""`train gate`: a context gate fitted on one index's own labelled questions."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from frontdesk.encoding import gate_training
from frontdesk.encoding.context_gate import ContextGate
from frontdesk.errors import DataError
from frontdesk.schema import LabelledQuery
from tests.conftest import write_jsonl


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, encoder) -> tuple[Path, list[LabelledQuery]]:  # noqa: ANN001
    """The bundled demo catalog's index, and its examples as labelled questions."""
    from frontdesk import build_index
    from frontdesk.loaders import load_catalog

    catalog = Path(str(resources.files("frontdesk") / "data" / "demo_catalog.jsonl"))
    root = tmp_path_factory.mktemp("gate")
    build_index(catalog, root / "index", encoder=encoder)
    rows = [
        LabelledQuery(text=ex, label=wf.id) for wf in load_catalog(catalog) for ex in wf.examples
    ]
    return root / "index", rows


@pytest.mark.slow
def test_a_gate_fitted_on_held_out_questions_keeps_every_kind_at_least_latest(
    demo, encoder, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    from frontdesk import Suggester

    index_dir, rows = demo
    suggester = Suggester.load(index_dir, encoder=encoder)
    phrases: list[str] = []
    real_make = gate_training.make_multiturn
    monkeypatch.setattr(
        gate_training,
        "make_multiturn",
        lambda rs, kind, **kw: phrases.append(kw["phrases"]) or real_make(rs, kind, **kw),
    )
    searched: list[int] = []
    real_without = gate_training._index_without

    def without(s, held, positions):  # noqa: ANN001, ANN202
        searcher = real_without(s, held, positions)
        searched.append(searcher.dense.index.ntotal)
        return searcher

    monkeypatch.setattr(gate_training, "_index_without", without)
    gate, report = gate_training.train_gate(suggester, rows)
    # the test phrasings ("eval") are never used: train phrases fit, val phrases choose
    assert set(phrases) == {"train", "val"}
    # the held-out questions' example documents are out of the copy that is searched
    n_fit, n_val = gate.lineage["fit_rows"] // 3, gate.lineage["val_rows"] // 3  # 3 kinds
    assert searched == [suggester.index.manifest["counts"]["documents"] - n_fit - n_val]
    for kind, r in report["validation"].items():
        assert r["n"] == n_val, kind
        assert r["this_gate"] >= r["latest"], kind  # the thresholds' promise, on validation
    assert set(report["thresholds"]) == {"mixed", "earlier"}
    assert gate.lineage["held_out"] == gate_training.HELD_OUT


def test_a_gate_file_that_is_not_one_is_the_users_error(tiny_index: Path, tmp_path: Path) -> None:
    from frontdesk import Suggester
    from frontdesk.config import Settings
    from frontdesk.errors import SettingsError

    junk = write_jsonl(tmp_path / "junk.jsonl", [{"text": "hi", "label": None}])
    for path, why in (
        (junk, "not a frontdesk-context-gate/1 gate"),
        (tmp_path / "nope.jsonl", "no such file"),
        (tmp_path, "a folder, not a gate file"),
    ):
        with pytest.raises(SettingsError, match=rf"^FRONTDESK_CONTEXT_MODEL: {path}: .*{why}"):
            Suggester.load(tiny_index, settings=Settings(context_model=str(path)))


def test_too_few_labelled_questions_is_refused_naming_the_file(tiny_index: Path, encoder) -> None:  # noqa: ANN001
    from frontdesk import Suggester

    suggester = Suggester.load(tiny_index, encoder=encoder)
    rows = [LabelledQuery(text=f"refund {i}", label="refund-not-received") for i in range(30)]
    with pytest.raises(DataError, match=r"^q\.jsonl: label: 30 labelled questions: 20% .* \(6\)"):
        gate_training.train_gate(suggester, rows, source="q.jsonl")
    sparse = Suggester.load(tiny_index, mode="sparse")
    with pytest.raises(DataError, match="needs hybrid retrieval"):
        gate_training.train_gate(sparse, rows)


@pytest.mark.slow
def test_train_gate_cli_writes_a_gate_the_suggester_serves(
    demo, tiny_index: Path, tmp_path: Path
) -> None:  # noqa: ANN001
    other_index = tiny_index
    from typer.testing import CliRunner

    from frontdesk.cli import app

    index_dir, rows = demo
    labelled = write_jsonl(tmp_path / "q.jsonl", [{"text": q.text, "label": q.label} for q in rows])
    runner = CliRunner()
    gate_file = tmp_path / "gates" / "gate.jsonl"
    res = runner.invoke(
        app, ["train", "gate", str(index_dir), str(labelled), "--out", str(gate_file), "--json"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["gate"] == str(gate_file) and set(report["validation"]) == {
        "distractor_first", "vague_follow_up", "topic_shift",
    }  # fmt: skip
    gate = ContextGate.load(gate_file)
    assert gate.lineage["index"] == str(index_dir)
    assert not list(gate_file.parent.glob(".*tmp"))  # written whole, nothing left beside it
    res = runner.invoke(
        app,
        ["suggest", str(index_dir), "any update?", "--turn", "user: my card never arrived",
         "--json"],
        env={"FRONTDESK_CONTEXT_MODEL": str(gate_file)},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["query_from"] in {"latest", "mixed", "earlier"}
    # --out: an existing gate needs --overwrite, anything else is never replaced
    args = ["train", "gate", str(index_dir), str(labelled), "--out"]
    res = runner.invoke(app, [*args, str(gate_file)])
    assert res.exit_code == 2 and "exists: give --overwrite" in res.stderr
    res = runner.invoke(app, [*args, str(labelled), "--overwrite"])
    assert res.exit_code == 2 and "exists and is not a gate: not replaced" in res.stderr
    assert labelled.read_text().startswith('{"text"')
    res = runner.invoke(app, [*args, str(tmp_path)])
    assert res.exit_code == 2 and "a folder" in res.stderr
    # a gate fitted for another catalog still serves, with a warning
    from frontdesk import Suggester
    from frontdesk.config import Settings

    with pytest.warns(RuntimeWarning, match="fitted for another catalog"):
        Suggester.load(other_index, settings=Settings(context_model=str(gate_file)))
