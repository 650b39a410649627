"""A built index, loaded and verified: workflows, document map, FAISS and bm25s parts."""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import INDEX, read_manifest
from ..errors import IndexIntegrityError
from ..schema import Workflow
from .dense import read_dense, reconstruct_all
from .tokenize import Tokenizer


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
        """Load and verify an index; a missing dense part degrades to BM25 with a warning."""
        root = Path(root)
        dense_meta = None
        with contextlib.suppress(OSError, ValueError):  # read_manifest reports it properly
            dense_meta = json.loads((root / "manifest.json").read_text()).get("dense")
        optional: frozenset[str] = frozenset()
        if dense_meta:
            try:
                optional = frozenset(
                    {
                        dense_meta["file"],
                        dense_meta["prototypes"]["file"],
                        dense_meta["titles"]["file"],
                    }
                )
            except (KeyError, TypeError):
                raise IndexIntegrityError(
                    f"{root / 'manifest.json'}: dense part lacks prototypes or titles; the index "
                    "was built by an older frontdesk — rebuild it"
                ) from None
        manifest = read_manifest(root, verify=verify, optional=optional, kind=INDEX)
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
        counts = manifest["counts"]
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
        if dense_meta:
            path = root / dense_meta["file"]
            proto_path = root / dense_meta["prototypes"]["file"]
            titles_path = root / dense_meta["titles"]["file"]
            missing = [p for p in (path, proto_path, titles_path) if not p.is_file()]
            if not missing:
                # memory-mapped: at a million workflows only the rows a query touches are read
                prototypes = np.load(proto_path, allow_pickle=False, mmap_mode="r")
                title_vectors = np.load(titles_path, allow_pickle=False, mmap_mode="r")
                dense = read_dense(path, dense_meta["index"])
                if dense.ntotal != counts["documents"] or dense.d != dense_meta["dim"]:
                    raise IndexIntegrityError(f"{path}: vector count or dimension differs")
            else:
                warnings.warn(
                    f"{missing[0]}: dense index missing; retrieval falls back to BM25 alone",
                    RuntimeWarning,
                    stacklevel=2,
                )
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


def _check_versions(root: Path, manifest: dict[str, Any]) -> None:
    import bm25s
    import faiss

    built = manifest.get("versions", {})
    for name, now in (("faiss", faiss.__version__), ("bm25s", bm25s.__version__)):
        then = built.get(name)
        if then is None or _major(then) != _major(now):
            raise IndexIntegrityError(
                f"{root}/manifest.json: built with {name} {then}, installed {name} {now} "
                "reads a different format; rebuild the index"
            )
