"""Index round-trip, integrity checks, atomic rebuilds and the BM25 fallback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from frontdesk import IndexIntegrityError, Suggester, WorkflowIndex, build_index
from frontdesk.encoding import model_files
from frontdesk.index import builder
from frontdesk.retrieval.tuning import FEW_EXAMPLES_WEIGHT

from ..conftest import TINY_CATALOG, write_jsonl


def _copy(index: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "index"
    shutil.copytree(index, dst)
    return dst


def test_round_trip_keeps_workflows_counts_and_manifest(tiny_index: Path) -> None:
    idx = WorkflowIndex.load(tiny_index)
    assert idx.workflow_ids == [w["id"] for w in TINY_CATALOG]
    m = idx.manifest
    # 6 workflow texts, 5 titles apart from their text (api-key-rotate's title is its
    # whole text), 3 descriptions + 9 distinct catalog examples
    assert m["counts"] == {
        "workflows": 6,
        "documents": 23,
        "workflow_texts": 14,
        "catalog_examples": 9,
        "labelled_examples": 0,
    }
    assert m["layout"] == "text+title+description"
    assert m["dense"]["dim"] == 384 and m["dense"]["index"]["type"] == "flat"
    assert m["dense"]["model"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(m["dense"]["model"]["sha256"]) == 64
    assert set(m["versions"]) == {"frontdesk", "faiss", "bm25s"}
    assert {"dense.faiss", "prototypes.npy", "workflows.jsonl"} <= set(m["files"])
    # nine examples are too few to tune the prototype blend on: the few-examples default
    assert m["dense"]["prototypes"]["weight"] == FEW_EXAMPLES_WEIGHT
    assert "not tuned" in m["dense"]["prototypes"]["tuning"]["reason"]
    assert idx.prototypes.shape == (6, 384)
    assert idx.dense.ntotal == 23
    # text + title (+ description) + examples; api-key-rotate: its title is its text
    assert np.array_equal(np.bincount(idx.doc_workflow), [5, 5, 5, 3, 4, 1])


def test_title_is_a_document_and_an_example_repeating_it_stays_an_example(
    tmp_path: Path, tiny_catalog: Path, encoder, monkeypatch
) -> None:
    ex = write_jsonl(tmp_path / "ex.jsonl", [{"text": "payout failed", "label": "payout-failed"}])
    calls: list[list[str]] = []
    real = type(encoder).encode

    def counting(self, texts, progress=None):  # type: ignore[no-untyped-def]
        calls.append(list(texts))
        return real(self, texts, progress)

    monkeypatch.setattr(type(encoder), "encode", counting)
    build_index(tiny_catalog, tmp_path / "idx", examples=ex, encoder=encoder)
    idx = WorkflowIndex.load(tmp_path / "idx")
    pos = idx.workflow_ids.index("payout-failed")
    docs = [
        (t, int(k))
        for t, w, k in zip(idx.documents(), idx.doc_workflow, idx.doc_kind, strict=True)
        if w == pos
    ]
    assert docs[:2] == [
        (
            "Payout failed. The bank returned the payout. Read the failure code. Ask for new "
            "bank details",
            builder.DOC_WORKFLOW,
        ),
        ("Payout failed", builder.DOC_WORKFLOW),
    ]
    assert ("payout failed", builder.DOC_LABELLED_EXAMPLE) in docs
    # a workflow whose title is its whole text has one own document
    rotate = idx.workflow_ids.index("api-key-rotate")
    assert [t for t, w in zip(idx.documents(), idx.doc_workflow, strict=True) if w == rotate] == [
        "Rotate an API key"
    ]
    # every title is also a title vector, yet each distinct text is encoded once
    encoded = [t for call in calls for t in call]
    assert len(encoded) == len(set(encoded))
    assert np.allclose(
        idx.title_vectors[pos], idx.document_vectors()[idx.documents().index("Payout failed")]
    )


def test_large_catalogs_are_built_without_title_documents(
    tmp_path: Path, tiny_catalog: Path, encoder
) -> None:
    from frontdesk import Settings

    m = build_index(
        tiny_catalog, tmp_path / "idx", encoder=encoder, settings=Settings(title_documents_max=5)
    )
    assert m["layout"] == "text" and m["counts"]["workflow_texts"] == len(TINY_CATALOG)
    m = build_index(
        tiny_catalog, tmp_path / "idx", encoder=encoder, settings=Settings(title_documents_max=6)
    )
    assert m["layout"] == "text+title+description" and m["counts"]["workflow_texts"] == 14
    no_descriptions = Settings(title_documents_max=6, description_documents=False)
    m = build_index(tiny_catalog, tmp_path / "idx", encoder=encoder, settings=no_descriptions)
    assert m["layout"] == "text+title" and m["counts"]["workflow_texts"] == 11


def test_labelled_examples_attach_to_their_workflow(
    tmp_path: Path, tiny_catalog: Path, encoder
) -> None:
    ex = write_jsonl(
        tmp_path / "ex.jsonl",
        [
            {"text": "my API secret needs changing", "label": "api-key-rotate"},
            {"text": "what's the weather", "label": None},  # out of scope: not indexed
        ],
    )
    m = build_index(tiny_catalog, tmp_path / "idx", examples=ex, encoder=encoder)
    assert m["counts"]["labelled_examples"] == 1
    top = Suggester.load(tmp_path / "idx", encoder=encoder).suggest("change my API secret", k=1)
    assert top[0].workflow_id == "api-key-rotate"


def test_tampered_file_is_detected(tiny_index: Path, tmp_path: Path) -> None:
    idx = _copy(tiny_index, tmp_path)
    raw = bytearray((idx / "workflows.jsonl").read_bytes())
    raw[10] ^= 0x01
    (idx / "workflows.jsonl").write_bytes(bytes(raw))
    with pytest.raises(IndexIntegrityError, match=r"workflows\.jsonl: checksum mismatch"):
        WorkflowIndex.load(idx)


def test_unlisted_file_and_missing_manifest_are_detected(tiny_index: Path, tmp_path: Path) -> None:
    idx = _copy(tiny_index, tmp_path)
    (idx / "extra.npy").write_bytes(b"x")
    with pytest.raises(IndexIntegrityError, match=r"files not in the manifest: extra\.npy"):
        WorkflowIndex.load(idx)
    (idx / "manifest.json").unlink()
    with pytest.raises(IndexIntegrityError, match=r"manifest\.json: missing"):
        WorkflowIndex.load(idx)


def test_other_format_or_library_version_is_refused(tiny_index: Path, tmp_path: Path) -> None:
    idx = _copy(tiny_index, tmp_path)
    m = json.loads((idx / "manifest.json").read_text())
    m["versions"]["faiss"] = "0.1"
    (idx / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexIntegrityError, match=r"built with faiss 0\.1"):
        WorkflowIndex.load(idx)
    m["format_version"] = 99
    (idx / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexIntegrityError, match=r"index format 99"):
        WorkflowIndex.load(idx)


def test_index_built_with_another_model_is_refused(
    tiny_index: Path, tmp_path: Path, encoder
) -> None:
    idx = _copy(tiny_index, tmp_path)
    m = json.loads((idx / "manifest.json").read_text())
    m["dense"]["model"]["sha256"] = "0" * 64
    (idx / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexIntegrityError, match="query vectors would not match"):
        Suggester.load(idx, encoder=encoder)


def test_failed_build_leaves_previous_index_untouched(
    tiny_index: Path, tmp_path: Path, tiny_catalog: Path, encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    idx = _copy(tiny_index, tmp_path)
    before = {p.name: p.read_bytes() for p in idx.rglob("*") if p.is_file()}

    def explode(*args, **kwargs):
        raise RuntimeError("disk full half-way")

    monkeypatch.setattr(builder, "write_dense", explode)  # after BM25 and arrays were written
    with pytest.raises(RuntimeError, match="half-way"):
        build_index(tiny_catalog, idx, encoder=encoder)
    after = {p.name: p.read_bytes() for p in idx.rglob("*") if p.is_file()}
    assert after == before
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".index.lock", "catalog.jsonl", "index"]  # no temp left; the writers' lock
    WorkflowIndex.load(idx)


def test_bad_catalog_leaves_nothing_behind(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n')
    with pytest.raises(ValueError, match="title: is required"):
        build_index(bad, tmp_path / "idx", dense=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_refuses_to_replace_a_folder_that_is_not_an_index(
    tmp_path: Path, tiny_catalog: Path
) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "thesis.txt").write_text("do not delete")
    with pytest.raises(FileExistsError, match="not a frontdesk index"):
        build_index(tiny_catalog, target, dense=False)
    assert (target / "thesis.txt").read_text() == "do not delete"


def test_missing_dense_file_is_refused_not_served_bm25_only(
    tiny_index: Path, tmp_path: Path
) -> None:
    idx = _copy(tiny_index, tmp_path)
    (idx / "dense.faiss").unlink()
    with pytest.raises(IndexIntegrityError, match=r"dense\.faiss: missing \(the dense \(FAISS\)"):
        Suggester.load(idx)


def test_missing_model_package_falls_back_to_bm25(
    tiny_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from frontdesk import ModelUnavailableError

    def gone():
        raise ModelUnavailableError("the bundled encoder package is not installed")

    monkeypatch.setattr(model_files, "default_model_path", gone)
    with pytest.warns(RuntimeWarning, match="falling back to BM25 alone"):
        s = Suggester.load(tiny_index)
    assert s.mode == "sparse"
    assert s.suggest("lost my authenticator phone", k=1)[0].workflow_id == "login-2fa"


def test_sparse_only_build_needs_no_model(tmp_path: Path, tiny_catalog: Path) -> None:
    m = build_index(tiny_catalog, tmp_path / "idx", dense=False)
    assert m["dense"] is None
    s = Suggester.load(tmp_path / "idx")
    assert s.mode == "sparse"
    assert s.suggest("refund a customer", k=1)[0].workflow_id == "refund-issue"


def test_dense_index_hnsw_on_request(tmp_path: Path, tiny_catalog: Path, encoder) -> None:
    from frontdesk import Settings

    settings = Settings(dense_index="hnsw")
    m = build_index(tiny_catalog, tmp_path / "idx", encoder=encoder, settings=settings)
    params = m["dense"]["index"]
    assert (params["type"], params["m"], params["ef_construction"]) == ("hnsw", 32, 200)
    s = Suggester.load(tmp_path / "idx", encoder=encoder)
    assert s.index.dense.hnsw.efSearch == params["ef_search"]
    assert s.suggest("the bank rejected my payout", k=1)[0].workflow_id == "payout-failed"


def test_above_exact_max_auto_picks_ivf_and_records_its_tuning(
    tmp_path: Path, tiny_catalog: Path, encoder
) -> None:
    from frontdesk import Settings

    m = build_index(tiny_catalog, tmp_path / "idx", encoder=encoder, settings=Settings(exact_max=5))
    params = m["dense"]["index"]
    assert params["type"] == "ivf" and params["requested"] == "auto"
    assert {"lists", "nprobe", "recall_at_10", "codes", "tuning"} <= set(params)
    s = Suggester.load(tmp_path / "idx", encoder=encoder)
    assert s.index.dense.nprobe == params["nprobe"]
    assert s.suggest("the bank rejected my payout", k=1)[0].workflow_id == "payout-failed"


def test_prototype_rescoring_matches_the_full_scan_on_its_candidates(
    tiny_index: Path, encoder
) -> None:
    from frontdesk import Settings

    full = Suggester.load(tiny_index, encoder=encoder, settings=Settings(prototype_weight=0.3))
    rescored = Suggester.load(
        tiny_index, encoder=encoder, settings=Settings(prototype_weight=0.3, prototype_scan_max=0)
    )
    assert full.dense.prototype_scan_max > 6 and rescored.dense.prototype_scan_max == 0
    for q in ["the bank rejected my payout", "refund a buyer", "lost my authenticator"]:
        a = {h.workflow_id: h.sources["dense"]["score"] for h in full.suggest(q, k=6)}
        b = {h.workflow_id: h.sources["dense"]["score"] for h in rescored.suggest(q, k=6)}
        assert next(iter(a)) == next(iter(b))
        shared = set(a) & set(b)
        assert len(shared) >= 3
        assert all(abs(a[w] - b[w]) < 1e-6 for w in shared)
