"""`frontdesk.build_index` / `index build`: the index, and its own context gate from its examples."""

from __future__ import annotations

import json
import shutil
import warnings
from importlib import resources
from pathlib import Path

import pytest

from frontdesk.encoding import gate_training
from frontdesk.encoding.context_gate import ContextGate
from frontdesk.errors import DataError, SettingsError
from tests.conftest import TINY_CATALOG, write_jsonl

DEMO = Path(str(resources.files("frontdesk") / "data" / "demo_catalog.jsonl"))


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory, encoder) -> Path:  # noqa: ANN001
    """The demo catalog's index with a gate fitted from its own examples (asked for:
    264 examples are fewer than an unasked gate needs). Read-only: copy to modify."""
    from frontdesk import build_index

    root = tmp_path_factory.mktemp("gated") / "index"
    build_index(DEMO, root, encoder=encoder, gate=True)
    return root


def test_an_asked_for_gate_is_part_of_the_index_and_serves_it(gated: Path, encoder) -> None:  # noqa: ANN001
    from frontdesk import Suggester, WorkflowIndex
    from frontdesk.config import Settings

    index = WorkflowIndex.load(gated)  # verified: the gate's checksum is in the manifest
    entry = index.manifest["context_gate"]
    assert entry["file"] in index.manifest["files"]
    assert entry["labelled_examples"] == index.manifest["counts"]["catalog_examples"]
    assert set(entry["validation"]) == {"distractor_first", "vague_follow_up", "topic_shift"}
    gate = ContextGate.load(index.context_gate_file)
    assert entry["fingerprint"] == gate.fingerprint
    assert gate.lineage["index"] == "its own index"  # no path: a temp folder's, or any
    assert gate.lineage["catalog"] == index.catalog_digest
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own catalog: no warning
        suggester = Suggester(index, encoder=encoder)
        assert suggester.context_gate_name == "index"
        assert suggester.context_gate().fingerprint == gate.fingerprint
    bundled = Suggester(index, encoder=encoder, settings=Settings(context_model="bundled"))
    assert bundled.context_gate_name == "bundled"
    assert bundled.context_gate().fingerprint == ContextGate.load().fingerprint
    with pytest.raises(SettingsError, match="FRONTDESK_CONTEXT_MODEL: .*no such file"):
        Suggester(index, encoder=encoder, settings=Settings(context_model=str(gated / "x")))


def test_an_update_keeps_the_gate_and_a_damaged_one_is_refused(
    gated: Path, tmp_path: Path, encoder
) -> None:  # noqa: ANN001
    from frontdesk import Suggester, WorkflowIndex
    from frontdesk.errors import IndexIntegrityError
    from frontdesk.index import update_index

    root = tmp_path / "index"
    shutil.copytree(gated, root)
    new = write_jsonl(tmp_path / "new.jsonl", [TINY_CATALOG[0] | {"id": "brand-new"}])
    update_index(root, add=new, encoder=encoder)
    index = WorkflowIndex.load(root)
    assert index.manifest["context_gate"]["kept_from_build"] is True
    assert (
        ContextGate.load(index.context_gate_file).fingerprint
        == (index.manifest["context_gate"]["fingerprint"])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # another catalog digest now, but the index's own gate
        assert Suggester(index, encoder=encoder).context_gate_name == "index"
    (root / index.manifest["context_gate"]["file"]).write_text("{}\n")
    with pytest.raises(IndexIntegrityError, match="context_gate.jsonl"):
        WorkflowIndex.load(root)


def test_too_few_examples_leave_the_bundled_gate_unless_one_is_asked_for(
    tiny_index: Path, tmp_path: Path, encoder
) -> None:  # noqa: ANN001
    from frontdesk import WorkflowIndex, build_index

    catalog = write_jsonl(tmp_path / "catalog.jsonl", TINY_CATALOG)
    built = build_index(catalog, tmp_path / "auto", encoder=encoder)
    assert "context_gate" not in built
    assert built["context_gate_skipped"].startswith(
        f"{built['counts']['catalog_examples']} labelled examples, fewer than 1,000"
    )
    assert WorkflowIndex.load(tmp_path / "auto").context_gate_file is None
    built = build_index(catalog, tmp_path / "auto", encoder=encoder, gate=False)
    assert built["context_gate_skipped"] == "not asked for (--no-gate)"
    # asked for with too few: refused, naming the examples, and the old index is untouched
    before = (tmp_path / "auto" / "manifest.json").read_text()
    examples = write_jsonl(tmp_path / "q.jsonl", [{"text": "where is my refund", "label": None}])
    with pytest.raises(DataError, match=r"q\.jsonl: label: \d+ labelled .*without --gate the"):
        build_index(catalog, tmp_path / "auto", examples=examples, encoder=encoder, gate=True)
    assert (tmp_path / "auto" / "manifest.json").read_text() == before
    left = sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock")
    assert left == ["auto", "catalog.jsonl", "q.jsonl"]  # no temporary folder left behind
    # BM25 only: no gate runs, so none is fitted; asked for, it is refused
    built = build_index(catalog, tmp_path / "sparse", dense=False, gate=None)
    assert "context_gate" not in built
    with pytest.raises(DataError, match="needs a dense part: build without --sparse-only, or"):
        build_index(catalog, tmp_path / "sparse", dense=False, gate=True)


def test_an_unasked_gate_needs_a_thousand_distinct_examples(tmp_path: Path) -> None:
    from frontdesk.schema import LabelledQuery

    (tmp_path / "manifest.json").write_text('{"dense": {"file": "dense.faiss"}}')
    # 999 questions, each twice: one per (workflow, text); nothing else is read
    rows = [LabelledQuery(text=f"q {i}", label="a") for i in range(999)] * 2
    got = gate_training.fit_index_gate(tmp_path, rows)
    assert "999 labelled examples, fewer than 1,000" in got["context_gate_skipped"]
    # one example per workflow: none can be held out, whatever their number
    rows = [LabelledQuery(text=f"q {i}", label=f"w{i}") for i in range(5000)]
    got = gate_training.fit_index_gate(tmp_path, rows)
    assert "5000 labelled examples, but only 0 can be held out" in got["context_gate_skipped"]


def test_the_same_data_gives_the_same_gate_wherever_built_whatever_gate_is_set(
    gated: Path, tmp_path: Path, encoder, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    from frontdesk import WorkflowIndex, build_index

    # a stale FRONTDESK_CONTEXT_MODEL is no reason for a build to fail
    monkeypatch.setenv("FRONTDESK_CONTEXT_MODEL", str(tmp_path / "gone.jsonl"))
    built = build_index(DEMO, tmp_path / "elsewhere" / "idx", encoder=encoder, gate=True)
    assert (
        built["context_gate"]["fingerprint"]
        == (WorkflowIndex.load(gated).manifest["context_gate"]["fingerprint"])
    )


def test_index_build_cli_says_which_gate_serves(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from frontdesk.cli import app

    catalog = write_jsonl(tmp_path / "catalog.jsonl", TINY_CATALOG)
    res = CliRunner().invoke(app, ["index", "build", str(catalog), "--out", str(tmp_path / "i")])
    assert res.exit_code == 0, res.output
    assert "context gate: the bundled one; " in res.stdout
    res = CliRunner().invoke(
        app, ["index", "build", str(catalog), "--out", str(tmp_path / "i"), "--no-gate", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["context_gate_skipped"] == "not asked for (--no-gate)"
