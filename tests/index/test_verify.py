"""``index info`` fails (exit 2, the file named) when any file an index needs is missing;
an index is never served BM25-only because its dense part went missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from frontdesk import IndexIntegrityError, Suggester, WorkflowIndex, build_index
from frontdesk.cli import app
from frontdesk.index.store import SPARSE_FILES, required_files

# Every file of the tiny hybrid index (conftest's tiny_index), and what it is for.
HYBRID_FILES = {
    "workflows.jsonl": "the catalog",
    "documents.jsonl": "the indexed texts",
    "doc_workflow.npy": "each document's workflow",
    "doc_kind.npy": "each document's kind",
    **{f"sparse/{f}": "the BM25 index" for f in SPARSE_FILES},
    "dense.faiss": "the dense (FAISS) index",
    "prototypes.npy": "the dense part's workflow prototypes",
    "title_vectors.npy": "the dense part's title vectors",
}


def _copy(index: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "index"
    shutil.copytree(index, dst)
    return dst


def info(index: Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["index", "info", str(index)], catch_exceptions=False)


def test_a_hybrid_index_requires_every_file_it_has(tiny_index: Path) -> None:
    manifest = json.loads((tiny_index / "manifest.json").read_text())
    assert set(required_files(manifest)) == set(manifest["files"]) == set(HYBRID_FILES)


def test_a_sparse_index_requires_no_dense_file(tmp_path: Path, tiny_catalog: Path) -> None:
    m = build_index(tiny_catalog, tmp_path / "idx", dense=False)
    assert (
        set(required_files(m))
        == set(m["files"])
        == {k for k in HYBRID_FILES if not k.endswith((".faiss", "prototypes.npy", "vectors.npy"))}
    )


@pytest.mark.parametrize("name", sorted(HYBRID_FILES))
def test_index_info_fails_on_each_missing_file_naming_it(
    tiny_index: Path, tmp_path: Path, name: str
) -> None:
    idx = _copy(tiny_index, tmp_path)
    (idx / name).unlink()
    res = info(idx)
    assert res.exit_code == 2
    line = res.output.strip()
    assert line.startswith("error: ") and "\n" not in line
    assert f"{idx / name}: missing ({HYBRID_FILES[name]}" in line
    with pytest.raises(IndexIntegrityError, match=f"{name}: missing"):
        WorkflowIndex.load(idx, verify=False)  # presence is checked even unverified


def test_a_manifest_that_stops_listing_a_needed_file_is_refused(
    tiny_index: Path, tmp_path: Path
) -> None:
    """Deleting dense.faiss and its manifest entries still fails: the kind requires it."""
    idx = _copy(tiny_index, tmp_path)
    (idx / "dense.faiss").unlink()
    m = json.loads((idx / "manifest.json").read_text())
    del m["files"]["dense.faiss"], m["bytes"]["dense.faiss"]
    (idx / "manifest.json").write_text(json.dumps(m))
    res = info(idx)
    assert res.exit_code == 2
    assert "does not list dense.faiss (the dense (FAISS) index" in res.output


def test_a_hybrid_index_without_its_dense_part_is_not_served(
    tiny_index: Path, tmp_path: Path
) -> None:
    idx = _copy(tiny_index, tmp_path)
    (idx / "title_vectors.npy").unlink()
    with pytest.raises(IndexIntegrityError, match="title_vectors.npy: missing"):
        Suggester.load(idx, mode="sparse")  # not even for BM25 alone


def test_index_info_passes_a_whole_index(tiny_index: Path) -> None:
    res = info(tiny_index)
    assert res.exit_code == 0
    assert "12 verified" in res.output
