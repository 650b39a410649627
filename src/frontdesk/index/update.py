"""Incremental index updates: add, replace or remove workflows, encoding only what changed.

A workflow whose id is already indexed replaces the old one in place: its
text and catalog examples are re-indexed, and the labelled examples indexed
for its id (``index build --examples``) stay, since they were labelled with
that id. ``examples`` attaches more labelled examples (workflow id, text) to
indexed workflows, e.g. the questions agents confirmed (``index add
--from-feedback``), given as a list or as a function of the workflow ids the
updated index will hold (called under the lock, so it reads them from the
version it updates): a text already an example of its workflow is a
duplicate, counted and not indexed twice. Kept documents keep their vectors (read back
from FAISS); only new texts and changed titles go through the encoder. BM25
is rebuilt from the documents' tokens (bm25s has no in-place add). The dense
index follows its kind: flat is rebuilt (a copy), IVF reuses its trained quantiser, HNSW
appends when nothing was removed and is rebuilt otherwise; ``auto`` switches
kind when the new size crosses ``exact_max``. The prototype weight tuned at
build time is kept (rebuild to retune). The new version is written beside
the old and swapped in at the end, under a lock; processes that loaded the
old version keep serving it until they reload.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import INDEX, MANIFEST, atomic_folder, folder_lock, sha256_file, write_manifest
from ..config import Settings
from ..encoding import ContextEncoder
from ..errors import FrontdeskError, IndexIntegrityError
from ..lineage import FEEDBACK_LINEAGE_FILE, FeedbackLineage
from ..loaders import load_catalog
from ..schema import Workflow
from .builder import (
    DOC_CATALOG_EXAMPLE,
    DOC_LABELLED_EXAMPLE,
    DOC_WORKFLOW,
    document_key,
    encode_distinct,
    workflow_documents,
    write_dense_part,
    write_documents,
)
from .dense import add_to_trained, build_dense, choose_kind, describe, ivf_lists, tune_search
from .store import WorkflowIndex

Progress = Callable[[str, int, int], None]
Examples = Sequence[tuple[str, str]]  # (workflow id, text)
# (workflow id, document_key of a text) -> the logged decision ids it came from
Learned = dict[tuple[str, str], list[str]]
# the workflow ids the updated index holds -> its examples, and where they came from (and,
# optionally, the decision ids behind each, recorded in the index's feedback lineage)
ExamplesFor = Callable[
    [list[str]], tuple[Examples, dict[str, Any]] | tuple[Examples, dict[str, Any], Learned]
]


def update_index(
    root: str | os.PathLike[str],
    *,
    add: str | os.PathLike[str] | Sequence[Workflow] = (),
    remove: Sequence[str] = (),
    examples: Examples | ExamplesFor = (),
    examples_source: dict[str, Any] | None = None,
    encoder: ContextEncoder | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Add or replace the workflows in ``add``, drop the ids in ``remove`` and attach the
    labelled ``examples`` ((workflow id, text): an id the updated index lacks, or a blank
    text, is refused; or a function of the updated index's workflow ids giving them and
    their source, called under the lock); a summary. ``examples_source`` is recorded with
    the update (where they came from; a function's source is merged over it)."""
    root = Path(root)
    settings = settings or Settings.from_env()
    tick = progress or (lambda stage, done, total: None)
    new_wfs = load_catalog(add) if isinstance(add, (str, os.PathLike)) else list(add)
    with folder_lock(root):
        tick("loading", 0, 1)
        loaded_manifest = sha256_file(root / "manifest.json") if root.is_dir() else None
        index = WorkflowIndex.load(root)  # refuses an index missing any file, dense ones too
        sparse = index.manifest["sparse"]  # the index's own BM25, not today's settings
        settings = settings.model_copy(update={"bm25_k1": sparse["k1"], "bm25_b": sparse["b"]})
        plan = _Plan(index, new_wfs, remove)
        wanted = examples
        learned: Learned = {}
        if callable(examples):
            got = examples([wf.id for wf in plan.workflows])
            wanted, source = got[0], got[1]
            learned = got[2] if len(got) > 2 else {}  # type: ignore[misc]
            examples_source = {**(examples_source or {}), **source}
        plan.plan_examples(index, wanted)
        if not plan.changed:
            return plan.summary(index, encoded=0, dense=_dense_line(index.manifest))
        with atomic_folder(root, MANIFEST, "index", INDEX) as tmp:
            manifest, encoded = _write_updated(tmp, index, plan, encoder, settings, tick)
            if examples_source is not None:
                manifest["updates"][-1]["examples_source"] = examples_source
            _carry_lineage(root, tmp, plan, learned, examples_source, manifest)
            write_manifest(tmp, manifest)
            if sha256_file(root / "manifest.json") != loaded_manifest:
                raise IndexIntegrityError(
                    f"{root}: replaced by another writer during this update; try again"
                )
        return plan.summary(index, encoded=encoded, dense=_dense_line(manifest))


def _carry_lineage(
    root: Path,
    tmp: Path,
    plan: _Plan,
    learned: Learned,
    source: dict[str, Any] | None,
    manifest: dict[str, Any],
) -> None:
    """Write the index's feedback lineage into the new version: the old one (verified
    against the old manifest), plus the decision ids behind the examples this update adds;
    named in ``manifest["feedback_lineage"]``."""
    lineage = FeedbackLineage.load(root)
    ids = [
        d
        for pos, text in plan.examples
        for d in learned.get((plan.workflows[pos].id, document_key(text)), ())
    ]
    if ids:
        info = {k: v for k, v in (source or {}).items() if k in ("path", "manifest_sha256")}
        added = FeedbackLineage.of_rows(ids, [], {**info, "decisions": len(ids)})
        lineage = added.merged(lineage)
    if lineage is None:
        return
    lineage.save(tmp)
    manifest["feedback_lineage"] = {
        "file": FEEDBACK_LINEAGE_FILE,
        "decisions": len(lineage.decisions),
        "sources": len(lineage.sources),
    }


def _dense_line(manifest: dict[str, Any]) -> str | None:
    d = manifest.get("dense")
    return describe(d["index"]) if d else None


class _Plan:
    """What changes: the new workflow list, and which old documents survive where."""

    def __init__(
        self, index: WorkflowIndex, new_wfs: Sequence[Workflow], remove: Sequence[str]
    ) -> None:
        old_pos = {wf.id: i for i, wf in enumerate(index.workflows)}
        incoming: dict[str, Workflow] = {}
        for wf in new_wfs:
            if wf.id in incoming:
                raise FrontdeskError(f"workflow '{wf.id}' is given twice")
            incoming[wf.id] = wf
        both = sorted(set(remove) & set(incoming))
        if both:
            raise FrontdeskError(f"{', '.join(both)}: both added and removed")
        unknown = [i for i in remove if i not in old_pos]
        if unknown:
            raise FrontdeskError(f"{index.root}: no workflow with id {', '.join(unknown)}")
        self.removed = set(remove)
        self.replaced = {
            i
            for i, wf in incoming.items()
            if i in old_pos and wf.model_dump() != index.workflows[old_pos[i]].model_dump()
        }
        self.unchanged = sum(1 for i in incoming if i in old_pos and i not in self.replaced)
        self.added = [wf for i, wf in incoming.items() if i not in old_pos]
        self.workflows: list[Workflow] = [
            incoming[wf.id] if wf.id in self.replaced else wf
            for wf in index.workflows
            if wf.id not in self.removed
        ] + self.added
        if not self.workflows:
            raise FrontdeskError(f"{index.root}: the update would leave no workflow")
        new_pos = {wf.id: i for i, wf in enumerate(self.workflows)}
        # old workflow position -> new position (-1: removed)
        self.wf_map = np.array([new_pos.get(wf.id, -1) for wf in index.workflows], dtype=np.int64)
        replaced_old = np.zeros(len(index.workflows), dtype=bool)
        replaced_old[[old_pos[i] for i in self.replaced]] = True
        owner, kind = index.doc_workflow, index.doc_kind
        self.kept_docs = np.flatnonzero(
            (self.wf_map[owner] >= 0) & (~replaced_old[owner] | (kind == DOC_LABELLED_EXAMPLE))
        )
        # workflows whose title and documents must be encoded (new position order)
        self.encode_wfs = sorted(new_pos[i] for i in self.replaced) + [
            new_pos[wf.id] for wf in self.added
        ]
        self.examples: list[tuple[int, str]] = []  # (new workflow position, text)
        self.example_duplicates = 0
        self.examples_per_workflow: Counter[str] = Counter()

    @property
    def changed(self) -> bool:
        """Whether the update changes the index at all."""
        return bool(self.removed or self.replaced or self.added or self.examples)

    def plan_examples(self, index: WorkflowIndex, examples: Examples) -> None:
        """Which labelled examples are new: not already an example (catalog or labelled) of
        their workflow after the update, nor given twice."""
        if not examples:
            return
        new_pos = {wf.id: i for i, wf in enumerate(self.workflows)}
        unknown = sorted({w for w, _ in examples if w not in new_pos})
        if unknown:
            raise FrontdeskError(
                f"{index.root}: examples for unknown workflow id {', '.join(unknown[:5])}"
            )
        blank = next((w for w, t in examples if not document_key(t)), None)
        if blank is not None:
            raise FrontdeskError(f"{index.root}: a blank example text for workflow {blank}")
        documents = index.documents()
        have = {
            (int(self.wf_map[index.doc_workflow[d]]), document_key(documents[d]))
            for d in self.kept_docs.tolist()
            if index.doc_kind[d] != DOC_WORKFLOW
        }
        have.update(
            (w, document_key(ex)) for w in self.encode_wfs for ex in self.workflows[w].examples
        )
        for wf_id, text in examples:
            key = (new_pos[wf_id], document_key(text))
            if key in have:
                self.example_duplicates += 1
                continue
            have.add(key)
            self.examples.append((key[0], text))
            self.examples_per_workflow[wf_id] += 1

    def summary(self, index: WorkflowIndex, *, encoded: int, dense: str | None) -> dict[str, Any]:
        return {
            "index": str(index.root),
            "added": len(self.added),
            "replaced": len(self.replaced),
            "removed": len(self.removed),
            "unchanged": self.unchanged,
            "examples_added": len(self.examples),
            "example_duplicates": self.example_duplicates,
            "examples_per_workflow": dict(self.examples_per_workflow.most_common()),
            "encoded_texts": encoded,
            "workflows": len(self.workflows),
            "dense": dense,
        }


def _new_documents(
    plan: _Plan,
    kept_texts: list[str],
    kept_owner: np.ndarray,
    kept_kind: np.ndarray,
    layout: str,
) -> tuple[list[str], list[int], list[int]]:
    """Documents of the new and replaced workflows in the index's own layout,
    deduplicated per workflow and kind (as in ``collect_documents``)."""
    seen = {
        (int(w), int(k) != DOC_WORKFLOW, document_key(t))
        for w, k, t in zip(kept_owner.tolist(), kept_kind.tolist(), kept_texts, strict=True)
    }
    texts: list[str] = []
    owner: list[int] = []
    kind: list[int] = []
    for w in plan.encode_wfs:
        wf = plan.workflows[w]
        for text, k in [(t, DOC_WORKFLOW) for t in workflow_documents(wf, layout)] + [
            (ex, DOC_CATALOG_EXAMPLE) for ex in wf.examples
        ]:
            key = (w, k != DOC_WORKFLOW, document_key(text))
            if key[2] and key not in seen:
                seen.add(key)
                texts.append(text)
                owner.append(w)
                kind.append(k)
    for w, text in plan.examples:  # already deduplicated against every example of w
        texts.append(text)
        owner.append(w)
        kind.append(DOC_LABELLED_EXAMPLE)
    return texts, owner, kind


def _write_updated(
    tmp: Path,
    index: WorkflowIndex,
    plan: _Plan,
    encoder: ContextEncoder | None,
    settings: Settings,
    tick: Progress,
) -> tuple[dict[str, Any], int]:
    documents = index.documents()
    kept = plan.kept_docs
    kept_texts = [documents[d] for d in kept.tolist()]
    kept_owner = plan.wf_map[index.doc_workflow[kept]]
    new_texts, new_owner, new_kind = _new_documents(
        plan, kept_texts, kept_owner, index.doc_kind[kept], index.layout
    )
    texts = kept_texts + new_texts
    owner = np.concatenate([kept_owner, np.asarray(new_owner, dtype=np.int64)]).astype(np.int32)
    kind = np.concatenate([index.doc_kind[kept], np.asarray(new_kind, dtype=np.int8)])
    tokens = [index.tokenizer(t) for t in texts]
    tick("bm25", 0, 1)
    manifest = write_documents(
        tmp, plan.workflows, texts, owner, kind, tokens, index.tokenizer, settings, index.layout
    )
    old = index.manifest
    manifest["source"] = old.get("source")
    manifest["updates"] = [
        *old.get("updates", []),
        {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "added": len(plan.added),
            "replaced": len(plan.replaced),
            "removed": len(plan.removed),
            "examples_added": len(plan.examples),
        },
    ]
    if index.dense is None:
        return manifest, 0

    titles = [plan.workflows[w].title for w in plan.encode_wfs]
    total = len(set(new_texts + titles))
    done = 0

    def ticked(n: int) -> None:
        nonlocal done
        done += n
        tick("encoding", done, total)

    dim = int(index.manifest["dense"]["dim"])
    if total:  # a removal alone needs no encoder at all
        encoded = encode_distinct(
            _index_encoder(index, settings, encoder), new_texts + titles, progress=ticked
        )
    else:
        encoded = np.zeros((0, dim), dtype=np.float32)
    new_vectors, new_titles = encoded[: len(new_texts)], encoded[len(new_texts) :]
    vectors = np.concatenate([index.document_vectors()[kept], new_vectors]).astype(np.float32)

    assert index.title_vectors is not None
    title_vectors = np.zeros((len(plan.workflows), vectors.shape[1]), dtype=np.float32)
    survivors = np.flatnonzero(plan.wf_map >= 0)
    title_vectors[plan.wf_map[survivors]] = index.title_vectors[survivors]
    title_vectors[plan.encode_wfs] = new_titles

    tick("dense index", 0, 1)
    probes = np.flatnonzero(kind != DOC_WORKFLOW)
    dense_index, params = _dense_for(index, plan, vectors, new_vectors, probes, settings)
    dense_meta = old["dense"]
    tuning = dict(dense_meta["prototypes"]["tuning"])
    tuning["kept_from_build"] = True
    manifest["dense"] = write_dense_part(
        tmp, dense_index, params, vectors, title_vectors, owner, dense_meta["model"], tuning
    )
    gate = old.get("context_gate")
    if gate:  # kept, as the prototype weight is: its features are scale-free search signals
        shutil.copyfile(index.root / gate["file"], tmp / gate["file"])
        manifest["context_gate"] = {**gate, "kept_from_build": True}
    return manifest, total


def _index_encoder(
    index: WorkflowIndex, settings: Settings, encoder: ContextEncoder | None = None
) -> ContextEncoder:
    """The encoder the index was built with (any other, given or configured, is refused)."""
    model = index.manifest["dense"]["model"]
    encoder = encoder or ContextEncoder(
        settings.model or model.get("path"), batch_size=settings.batch_size, device=settings.device
    )
    if encoder.fingerprint != model["sha256"]:
        raise IndexIntegrityError(
            f"{index.root}: built with {model['name']} (sha256 {model['sha256'][:12]}…) but "
            f"{encoder.path} has sha256 {encoder.fingerprint[:12]}…; rebuild the index instead"
        )
    return encoder


def _dense_for(
    index: WorkflowIndex,
    plan: _Plan,
    vectors: np.ndarray,
    new_vectors: np.ndarray,
    probe_rows: np.ndarray,
    settings: Settings,
) -> tuple[Any, dict[str, Any]]:
    """The dense index for the updated documents, reusing what the old one allows."""
    old = dict(index.manifest["dense"]["index"])
    requested = old.get("requested", "auto")  # indexes before --dense-index chose by size
    kind = choose_kind(len(vectors), requested, settings.exact_max)
    appended_only = len(plan.kept_docs) == index.dense.ntotal
    lists_now = settings.ivf_lists or ivf_lists(len(vectors))
    if kind == old["type"] == "ivf" and lists_now <= 2 * int(old.get("lists", 0)):
        dense = add_to_trained(index.dense, vectors, old)
    elif kind == old["type"] == "hnsw" and appended_only:
        dense = index.dense  # this process's copy; other readers keep their own
        dense.add(np.ascontiguousarray(new_vectors, dtype=np.float32))
    else:
        return build_dense(vectors, settings, requested, probe_rows)
    retuned = {"nprobe", "ef_search", "recall_at_10", "tuning"}
    params = {k: v for k, v in old.items() if k not in retuned}
    params.update(tune_search(dense, vectors, kind, settings.dense_recall_target, probe_rows))
    return dense, params


def read_ids(path: str | os.PathLike[str]) -> list[str]:
    """Workflow ids, one per line (blank lines and # comments skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]
