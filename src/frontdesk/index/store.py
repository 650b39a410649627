"""A built index, loaded and verified: workflows, document map, FAISS and bm25s parts."""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import INDEX, MANIFEST, read_manifest, recover, verify_files
from ..errors import IndexIntegrityError
from ..schema import Workflow
from .dense import read_dense, reconstruct_all
from .tokenize import Tokenizer

SPARSE_FILES = (
    "params.index.json",
    "vocab.index.json",
    "data.csc.index.npy",
    "indices.csc.index.npy",
    "indptr.csc.index.npy",
)
"""What bm25s writes for a lucene BM25 index (in the manifest's ``sparse.folder``)."""


def _major(version: str) -> str:
    return str(version).split(".")[0]


@dataclass
class WorkflowIndex:
    """What ``frontdesk index build`` wrote, ready to search. ``dense`` may be None."""

    root: Path
    manifest: dict[str, Any]
    workflows: list[Workflow]
    doc_workflow: np.ndarray
    doc_kind: np.ndarray
    bm25: Any
    tokenizer: Tokenizer
    dense: Any = None
    prototypes: np.ndarray | None = None
    title_vectors: np.ndarray | None = None
    _documents: list[str] | None = None

    def documents(self) -> list[str]:
        """The indexed texts (workflow texts, titles and examples), in document order.

        Read at load with the arrays they pair with, so that a later rebuild
        of the folder cannot mix new texts with old arrays.
        """
        if self._documents is None:
            raise IndexIntegrityError(f"{self.root}: documents were not loaded")
        return self._documents

    def example_documents(self) -> dict[tuple[int, str], list[int]]:
        """Example documents by (workflow position, ``document_key`` of their text): where a
        labelled question's own document is, to leave it out of a search."""
        from .builder import document_key

        out: dict[tuple[int, str], list[int]] = defaultdict(list)
        for d, text in enumerate(self.documents()):
            if self.doc_kind[d] != 0:
                out[(int(self.doc_workflow[d]), document_key(text))].append(d)
        return dict(out)

    def document_vectors(self) -> np.ndarray:
        """All document vectors, read back from FAISS (IVF-SQ8: decoded, within ~1e-3)."""
        if self.dense is None:
            raise IndexIntegrityError(f"{self.root}: has no dense part")
        return reconstruct_all(self.dense)

    @property
    def prototype_weight(self) -> float:
        """The weight tuned at build time on held-out examples (0 without a dense part)."""
        d = self.manifest.get("dense")
        return float(d["prototypes"]["weight"]) if d else 0.0

    @property
    def workflow_ids(self) -> list[str]:
        return [wf.id for wf in self.workflows]

    @property
    def catalog_digest(self) -> str:
        """A short digest of the workflow ids: which catalog a model was fitted for."""
        text = "\n".join(sorted(self.workflow_ids))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def context_gate_file(self) -> Path | None:
        """The index's own context gate (fitted from its examples at build), if it has one."""
        gate = self.manifest.get("context_gate")
        return self.root / str(gate["file"]) if gate else None

    @property
    def model_sha256(self) -> str | None:
        d = self.manifest.get("dense")
        return d["model"]["sha256"] if d else None

    @property
    def layout(self) -> str:
        """Which own texts each workflow has as documents: "text+title", or "text" (also
        an index built before titles could be documents of their own)."""
        return str(self.manifest.get("layout", "text"))

    @classmethod
    def load(cls, root: str | os.PathLike[str], verify: bool = True) -> WorkflowIndex:
        """Load and verify an index (``verify``: every file's sha256; without it, that
        every file the index needs is there).

        An index missing any file it needs (``required_files``), the dense part of a
        hybrid index included, is refused: it is never served BM25-only in silence.
        A write a crash interrupted is first finished (``artifacts.recover``).
        """
        root = Path(root)
        recover(root)
        manifest = read_manifest(root, verify=False, kind=INDEX)
        check_required(root, manifest)  # first: it says what a missing file was for
        if verify:
            verify_files(root, manifest)
        _check_versions(root, manifest)
        try:
            workflows = [
                Workflow.model_validate_json(line)
                for line in (root / "workflows.jsonl").read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            doc_workflow = np.load(root / "doc_workflow.npy", allow_pickle=False)
            doc_kind = np.load(root / "doc_kind.npy", allow_pickle=False)
            with open(root / "documents.jsonl", encoding="utf-8") as fh:
                documents = [json.loads(line) for line in fh]
        except (OSError, ValueError) as exc:
            raise IndexIntegrityError(f"{root}: cannot read index files: {exc}") from None
        counts = manifest.get("counts")
        if not isinstance(counts, dict) or not all(
            isinstance(counts.get(k), int) for k in ("workflows", "documents")
        ):
            raise IndexIntegrityError(
                f"{root / MANIFEST}: counts must give the workflows and documents; the "
                "manifest is damaged — rebuild the index"
            )
        if (
            len(workflows) != counts["workflows"]
            or len(doc_workflow) != counts["documents"]
            or len(documents) != counts["documents"]
        ):
            raise IndexIntegrityError(f"{root}: counts do not match the manifest")

        import bm25s

        sparse = manifest["sparse"]
        bm25 = bm25s.BM25.load(str(root / sparse["folder"]), mmap=False, show_progress=False)
        tokenizer = Tokenizer.from_config(sparse["tokenizer"])

        dense = prototypes = title_vectors = None
        dense_meta = manifest.get("dense")
        if dense_meta:
            path = root / dense_meta["file"]
            # memory-mapped: at a million workflows only the rows a query touches are read
            try:
                prototypes = np.load(
                    root / dense_meta["prototypes"]["file"], allow_pickle=False, mmap_mode="r"
                )
                title_vectors = np.load(
                    root / dense_meta["titles"]["file"], allow_pickle=False, mmap_mode="r"
                )
            except (OSError, ValueError) as exc:
                raise IndexIntegrityError(f"{root}: cannot read index files: {exc}") from None
            dense = read_dense(path, dense_meta["index"])
            if dense.ntotal != counts["documents"] or dense.d != dense_meta["dim"]:
                raise IndexIntegrityError(f"{path}: vector count or dimension differs")
        return cls(
            root,
            manifest,
            workflows,
            doc_workflow,
            doc_kind,
            bm25,
            tokenizer,
            dense,
            prototypes,
            title_vectors,
            documents,
        )


def required_files(manifest: dict[str, Any], where: str | Path = MANIFEST) -> dict[str, str]:
    """Every file an index with this (shape-checked) manifest needs, and what it is:
    the catalog, documents and their maps, the BM25 part, and for a hybrid index its
    dense part (FAISS index, prototypes, title vectors), any feedback lineage and any
    context gate of its own.

    Raises IndexIntegrityError (naming ``where``) when the manifest lacks what names them.
    """
    try:
        sparse = str(manifest["sparse"]["folder"])
        need = {
            "workflows.jsonl": "the catalog",
            "documents.jsonl": "the indexed texts",
            "doc_workflow.npy": "each document's workflow",
            "doc_kind.npy": "each document's kind",
            **{f"{sparse}/{name}": "the BM25 index" for name in SPARSE_FILES},
        }
    except (KeyError, TypeError):
        raise IndexIntegrityError(f"{where}: no sparse part; rebuild the index") from None
    dense = manifest.get("dense")
    if dense:
        try:
            need[str(dense["file"])] = "the dense (FAISS) index of a hybrid index"
            need[str(dense["prototypes"]["file"])] = "the dense part's workflow prototypes"
            need[str(dense["titles"]["file"])] = "the dense part's title vectors"
        except (KeyError, TypeError):
            raise IndexIntegrityError(
                f"{where}: dense part lacks prototypes or titles; the index was built by an "
                "older frontdesk — rebuild it"
            ) from None
    for key, what in (
        ("feedback_lineage", "the feedback lineage"),
        ("context_gate", "the index's context gate"),
    ):
        if manifest.get(key):
            try:
                need[str(manifest[key]["file"])] = what
            except (KeyError, TypeError):
                raise IndexIntegrityError(f"{where}: {key} names no file") from None
    return need


def check_required(root: Path, manifest: dict[str, Any]) -> None:
    """Every file the index needs is listed in its manifest and present (IndexIntegrityError
    naming the first that is not)."""
    need = required_files(manifest, root / MANIFEST)
    listed = manifest.get("files", {})
    for rel, what in need.items():
        if rel not in listed:
            raise IndexIntegrityError(
                f"{root / MANIFEST}: does not list {rel} ({what}); the manifest is damaged — "
                "rebuild the index"
            )
        if not (root / rel).is_file():
            raise IndexIntegrityError(
                f"{root / rel}: missing ({what}); the index cannot be used without it — "
                "rebuild it with `frontdesk index build`"
            )


def _check_versions(root: Path, manifest: dict[str, Any]) -> None:
    import bm25s
    import faiss

    built = manifest.get("versions")
    built = built if isinstance(built, dict) else {}
    for name, now in (("faiss", faiss.__version__), ("bm25s", bm25s.__version__)):
        then = built.get(name)
        if then is None or _major(then) != _major(now):
            raise IndexIntegrityError(
                f"{root}/manifest.json: built with {name} {then}, installed {name} {now} "
                "reads a different format; rebuild the index"
            )
