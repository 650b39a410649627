"""index add / remove: only what changed is encoded, BM25 and FAISS stay in step, writes are atomic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from frontdesk import Conversation, Settings, Suggester, build_index
from frontdesk.cli import app
from frontdesk.errors import FrontdeskError, IndexIntegrityError
from frontdesk.index import WorkflowIndex, update_index
from frontdesk.ranking import FEATURE_NAMES
from frontdesk.ranking.features import retrieve_candidates

from ..conftest import TINY_CATALOG, write_jsonl

NEW = {
    "id": "dispute-evidence",
    "title": "Submit dispute evidence",
    "description": "Upload receipts and delivery proof to contest a chargeback.",
    "examples": ["how do I fight a chargeback", "upload proof for a dispute"],
}
CHANGED_PAYOUT_FAILED = dict(
    TINY_CATALOG[1],
    description="The payout was reversed by the receiving bank.",
    examples=["my payout got reversed"],
)
CHANGED_PAYOUT_FAILED_TEXT = (
    "Payout failed. The payout was reversed by the receiving bank. Read the failure code. "
    "Ask for new bank details"
)


class CountingEncoder:
    """The real encoder, remembering every text it was asked to encode."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.texts: list[str] = []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def encode(self, texts, progress=None):  # type: ignore[no-untyped-def]
        self.texts.extend(texts)
        return self.inner.encode(texts, progress=progress)


@pytest.fixture
def index_dir(tmp_path: Path, tiny_index: Path) -> Path:
    shutil.copytree(tiny_index, tmp_path / "index")
    return tmp_path / "index"


def _in_step(root: Path) -> WorkflowIndex:
    idx = WorkflowIndex.load(root)
    n = idx.manifest["counts"]["documents"]
    assert idx.dense.ntotal == n == len(idx.doc_workflow) == len(idx.documents())
    assert idx.bm25.scores["num_docs"] == n
    assert len(idx.prototypes) == len(idx.title_vectors) == len(idx.workflows)
    return idx


def test_add_encodes_only_the_new_workflow_and_keeps_old_vectors(
    tmp_path: Path, index_dir: Path, encoder
) -> None:
    before = WorkflowIndex.load(index_dir)
    counting = CountingEncoder(encoder)
    summary = update_index(
        index_dir, add=write_jsonl(tmp_path / "new.jsonl", [NEW]), encoder=counting
    )
    assert (summary["added"], summary["replaced"], summary["removed"]) == (1, 0, 0)
    # its text, its description, its two examples and its title; nothing else
    assert sorted(counting.texts) == sorted(
        ["Submit dispute evidence. Upload receipts and delivery proof to contest a chargeback"]
        + [NEW["description"]]
        + NEW["examples"]
        + [NEW["title"]]
    )
    assert summary["encoded_texts"] == 5
    after = _in_step(index_dir)
    assert after.workflow_ids == before.workflow_ids + ["dispute-evidence"]
    n_old = len(before.doc_workflow)
    assert np.array_equal(after.document_vectors()[:n_old], before.document_vectors())
    assert np.array_equal(after.title_vectors[:-1], before.title_vectors)
    # its whole text, its title and its description are its own documents, as in a fresh build
    new_pos = after.workflow_ids.index("dispute-evidence")
    own = [
        t
        for t, w, k in zip(after.documents(), after.doc_workflow, after.doc_kind, strict=True)
        if w == new_pos and k == 0
    ]
    assert own == [
        "Submit dispute evidence. Upload receipts and delivery proof to contest a chargeback",
        NEW["title"],
        NEW["description"],
    ]
    s = Suggester.load(index_dir, encoder=encoder)
    assert s.suggest("contest a chargeback with proof", k=1)[0].workflow_id == "dispute-evidence"
    assert after.manifest["updates"][-1]["added"] == 1


def test_same_id_new_text_replaces_the_workflow_in_place(
    tmp_path: Path, index_dir: Path, encoder
) -> None:
    update_index(
        index_dir, add=write_jsonl(tmp_path / "c.jsonl", [CHANGED_PAYOUT_FAILED]), encoder=encoder
    )
    idx = _in_step(index_dir)
    assert idx.workflow_ids == [wf["id"] for wf in TINY_CATALOG]  # same order, same count
    pos = idx.workflow_ids.index("payout-failed")
    docs = [t for t, w in zip(idx.documents(), idx.doc_workflow, strict=True) if w == pos]
    assert "my payout got reversed" in docs
    assert "payout bounced back" not in docs  # the old example went with the old text
    assert idx.workflows[pos].description.startswith("The payout was reversed")


def test_an_identical_workflow_changes_nothing(tmp_path: Path, index_dir: Path, encoder) -> None:
    manifest = (index_dir / "manifest.json").read_text()
    summary = update_index(
        index_dir, add=write_jsonl(tmp_path / "same.jsonl", [TINY_CATALOG[0]]), encoder=encoder
    )
    assert summary["unchanged"] == 1 and summary["encoded_texts"] == 0
    assert (index_dir / "manifest.json").read_text() == manifest


def test_remove_drops_the_workflow_from_both_searchers(index_dir: Path, encoder) -> None:
    summary = update_index(index_dir, remove=["login-2fa"], encoder=encoder)
    assert summary["removed"] == 1 and summary["encoded_texts"] == 0
    idx = _in_step(index_dir)
    assert "login-2fa" not in idx.workflow_ids
    for mode in ("dense", "sparse", "hybrid"):
        s = Suggester.load(index_dir, encoder=encoder, mode=mode)
        hits = s.suggest("lost my phone with the authenticator 2fa", k=6)
        assert "login-2fa" not in [h.workflow_id for h in hits]


def test_updated_index_matches_a_fresh_build(tmp_path: Path, index_dir: Path, encoder) -> None:
    update_index(index_dir, remove=["login-2fa"], encoder=encoder)
    update_index(
        index_dir,
        add=write_jsonl(tmp_path / "a.jsonl", [NEW, CHANGED_PAYOUT_FAILED]),
        encoder=encoder,
    )
    final = [wf for wf in TINY_CATALOG if wf["id"] != "login-2fa"]
    final[1] = CHANGED_PAYOUT_FAILED
    fresh = tmp_path / "fresh"
    build_index(write_jsonl(tmp_path / "f.jsonl", final + [NEW]), fresh, encoder=encoder)
    a = Suggester.load(index_dir, encoder=encoder)
    b = Suggester.load(fresh, encoder=encoder)
    for q in ["payout reversed by the bank", "fight a chargeback", "refund a buyer", "api key"]:
        ra, rb = a.suggest(q, k=3), b.suggest(q, k=3)
        assert [h.workflow_id for h in ra] == [h.workflow_id for h in rb]
        assert np.allclose([h.score for h in ra], [h.score for h in rb], atol=1e-5)


def test_readers_of_the_old_version_keep_working(tmp_path: Path, index_dir: Path, encoder) -> None:
    old = Suggester.load(index_dir, encoder=encoder)
    update_index(index_dir, remove=["refund-issue"], encoder=encoder)
    assert old.suggest("how do I refund a customer", k=1)[0].workflow_id == "refund-issue"
    new = Suggester.load(index_dir, encoder=encoder)
    assert new.suggest("how do I refund a customer", k=1)[0].workflow_id != "refund-issue"


def test_a_failed_update_leaves_the_index_as_it_was(
    tmp_path: Path, index_dir: Path, encoder
) -> None:
    manifest = (index_dir / "manifest.json").read_text()

    class Broken(CountingEncoder):
        def encode(self, texts, progress=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        update_index(
            index_dir, add=write_jsonl(tmp_path / "n.jsonl", [NEW]), encoder=Broken(encoder)
        )
    assert (index_dir / "manifest.json").read_text() == manifest
    _in_step(index_dir)
    assert not [p for p in index_dir.parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_bad_requests_are_refused_with_the_reason(tmp_path: Path, index_dir: Path, encoder) -> None:
    with pytest.raises(FrontdeskError, match="no workflow with id nope"):
        update_index(index_dir, remove=["nope"], encoder=encoder)
    with pytest.raises(FrontdeskError, match="both added and removed"):
        update_index(
            index_dir,
            add=write_jsonl(tmp_path / "n.jsonl", [NEW]),
            remove=["dispute-evidence"],
            encoder=encoder,
        )
    with pytest.raises(FrontdeskError, match="leave no workflow"):
        update_index(index_dir, remove=[wf["id"] for wf in TINY_CATALOG], encoder=encoder)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    with pytest.raises(FrontdeskError, match=r"bad.jsonl:1: title"):
        update_index(index_dir, add=bad, encoder=encoder)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_update_and_keep_their_kind(
    tmp_path: Path, tiny_catalog: Path, encoder, kind: str
) -> None:
    root = tmp_path / "idx"
    settings = Settings(dense_index=kind)
    build_index(tiny_catalog, root, encoder=encoder, settings=settings)
    update_index(root, add=write_jsonl(tmp_path / "n.jsonl", [NEW]), encoder=encoder)
    update_index(root, remove=["api-key-rotate"], encoder=encoder)
    idx = _in_step(root)
    params = idx.manifest["dense"]["index"]
    assert params["type"] == kind and "recall_at_10" in params
    s = Suggester.load(root, encoder=encoder)
    assert s.suggest("upload proof for a chargeback", k=1)[0].workflow_id == "dispute-evidence"


def test_auto_switches_kind_when_the_size_crosses_the_threshold(
    tmp_path: Path, tiny_catalog: Path, encoder
) -> None:
    root = tmp_path / "idx"
    build_index(tiny_catalog, root, encoder=encoder, settings=Settings(exact_max=25))
    n = WorkflowIndex.load(root).manifest["counts"]["documents"]
    assert n <= 25 and WorkflowIndex.load(root).manifest["dense"]["index"]["type"] == "flat"
    update_index(
        root,
        add=write_jsonl(tmp_path / "n.jsonl", [NEW]),
        encoder=encoder,
        settings=Settings(exact_max=25),
    )
    assert WorkflowIndex.load(root).manifest["dense"]["index"]["type"] == "ivf"


def test_cli_add_and_remove(tmp_path: Path, index_dir: Path, monkeypatch) -> None:
    runner = CliRunner()
    new = write_jsonl(tmp_path / "n.jsonl", [NEW])
    res = runner.invoke(app, ["index", "add", str(index_dir), str(new), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["added"] == 1
    ids = tmp_path / "ids.txt"
    ids.write_text("# retired\napi-key-rotate\n")
    res = runner.invoke(
        app, ["index", "remove", str(index_dir), "login-2fa", "--from-file", str(ids), "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["removed"] == 2 and out["workflows"] == len(TINY_CATALOG) - 1
    res = runner.invoke(app, ["index", "remove", str(index_dir), "nope"])
    assert res.exit_code == 2 and "no workflow with id nope" in res.output


def test_labelled_examples_of_a_replaced_workflow_stay(tmp_path: Path, encoder) -> None:
    root = tmp_path / "idx"
    catalog = write_jsonl(tmp_path / "c.jsonl", TINY_CATALOG)
    labelled = write_jsonl(
        tmp_path / "ex.jsonl", [{"text": "the bank bounced my money", "label": "payout-failed"}]
    )
    build_index(catalog, root, examples=labelled, encoder=encoder)
    update_index(
        root, add=write_jsonl(tmp_path / "n.jsonl", [CHANGED_PAYOUT_FAILED]), encoder=encoder
    )
    idx = _in_step(root)
    pos = idx.workflow_ids.index("payout-failed")
    docs = [t for t, w in zip(idx.documents(), idx.doc_workflow, strict=True) if w == pos]
    assert "the bank bounced my money" in docs and "payout bounced back" not in docs
    # the kept example now comes before the new own texts in document order; the
    # ranker's features still read the new whole text as the workflow's text
    from frontdesk.ranking import WorkflowPriors
    from frontdesk.ranking.features import full_extractor

    assert docs.index("the bank bounced my money") < docs.index("Payout failed")
    extractor = full_extractor(idx, WorkflowPriors.fit(idx.workflows, []))
    # whole text, title and description; two catalog examples
    assert extractor.n_texts[pos] == 3 and extractor.n_examples[pos] == 2
    s = Suggester.load(root, encoder=encoder)
    conv = Conversation(text="payout reversed by the bank")
    enc = encoder.encode_contexts([conv])
    cands = retrieve_candidates(s.hybrid, enc.vectors, [s.query_tokens(conv)], 6)
    (x,) = extractor.extract(enc, cands, [4])
    r = cands[0].fused.ids.tolist().index(pos)
    whole = CHANGED_PAYOUT_FAILED_TEXT
    expected = float(encoder.encode([whole])[0] @ enc.vectors[0])
    assert x[r, FEATURE_NAMES.index("workflow_text_sim")] == pytest.approx(expected, abs=1e-5)


def test_an_index_keeps_its_layout_through_updates(tmp_path: Path, encoder) -> None:
    """Built without title documents (or before they existed): an update adds none."""
    root = tmp_path / "idx"
    catalog = write_jsonl(tmp_path / "c.jsonl", TINY_CATALOG)
    build_index(catalog, root, encoder=encoder, settings=Settings(title_documents=False))
    before = WorkflowIndex.load(root)
    assert before.layout == "text"
    assert before.manifest["counts"]["workflow_texts"] == len(TINY_CATALOG)
    update_index(root, add=write_jsonl(tmp_path / "n.jsonl", [NEW]), encoder=encoder)
    after = _in_step(root)
    assert after.layout == "text"
    assert after.manifest["counts"]["workflow_texts"] == len(TINY_CATALOG) + 1
    assert NEW["title"] not in after.documents()
    # a manifest from before the key existed reads as "text"
    from frontdesk.artifacts import write_manifest

    m = json.loads((root / "manifest.json").read_text())
    del m["layout"]
    write_manifest(root, m)
    assert WorkflowIndex.load(root).layout == "text"


def test_a_removal_needs_no_encoder(index_dir: Path, encoder) -> None:
    class Unusable(CountingEncoder):
        def encode(self, texts, progress=None):  # type: ignore[no-untyped-def]
            raise AssertionError("nothing should be encoded")

    assert update_index(index_dir, remove=["api-key-rotate"], encoder=Unusable(encoder))["removed"]


def test_another_model_is_refused(tmp_path: Path, index_dir: Path, encoder) -> None:
    class Other(CountingEncoder):
        fingerprint = "0" * 64

    with pytest.raises(IndexIntegrityError, match="rebuild the index instead"):
        update_index(
            index_dir, add=write_jsonl(tmp_path / "n.jsonl", [NEW]), encoder=Other(encoder)
        )


def test_missing_dense_files_are_refused_not_dropped(tmp_path: Path, index_dir: Path) -> None:
    (index_dir / "dense.faiss").unlink()
    with pytest.raises(IndexIntegrityError, match=r"dense\.faiss: missing"):
        update_index(index_dir, remove=["api-key-rotate"])


def test_a_second_writer_is_turned_away(tmp_path: Path, index_dir: Path, encoder) -> None:
    from frontdesk.artifacts import folder_lock

    with folder_lock(index_dir), pytest.raises(FrontdeskError, match="another build or update"):
        update_index(index_dir, remove=["api-key-rotate"], encoder=encoder)
    update_index(index_dir, remove=["api-key-rotate"], encoder=encoder)  # free again
