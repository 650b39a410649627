"""Build an index folder from a catalog (+ labelled examples), atomically."""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..artifacts import FORMAT_VERSION, INDEX, MANIFEST, atomic_folder, folder_lock, write_manifest
from ..config import Settings
from ..encoding import ContextEncoder
from ..errors import DataError
from ..loaders import load_catalog, load_queries
from ..retrieval.dense import workflow_prototypes
from ..retrieval.sparse import bm25_index, has_tokens
from ..retrieval.tuning import tune_prototype_weight
from ..schema import LabelledQuery, Workflow
from .dense import build_dense, write_dense
from .tokenize import Tokenizer

# What each indexed document is: the workflow's own text, or an example question.
DOC_WORKFLOW, DOC_CATALOG_EXAMPLE, DOC_LABELLED_EXAMPLE = 0, 1, 2

# Which own texts each workflow has as documents (``Settings.title_documents``;
# ``workflow_documents``). An index keeps its layout through updates; a ranker
# trained on one layout warns on another. Indexes built before the key existed
# are "text"; new ones "text+title+description" (or "text" above
# ``Settings.title_documents_max`` workflows).
LAYOUT_TEXT, LAYOUT_TEXT_TITLE = "text", "text+title"
LAYOUT_TEXT_TITLE_DESCRIPTION = "text+title+description"

DENSE_FILE = "dense.faiss"
PROTOTYPES_FILE = "prototypes.npy"
TITLES_FILE = "title_vectors.npy"
DOCUMENTS_FILE = "documents.jsonl"
SPARSE_DIR = "sparse"


def document_key(text: str) -> str:
    """How two texts are judged the same document (dedup, and out-of-fold removal)."""
    return " ".join(text.lower().split())


def with_titles(settings: Settings, n_workflows: int) -> bool:
    """Whether a new index of ``n_workflows`` gets title documents (its layout)."""
    return settings.title_documents and n_workflows <= settings.title_documents_max


def layout_of(titles: bool, descriptions: bool = True) -> str:
    """The layout of a new index: with title (and description) documents, or without."""
    if not titles:
        return LAYOUT_TEXT
    return LAYOUT_TEXT_TITLE_DESCRIPTION if descriptions else LAYOUT_TEXT_TITLE


def workflow_documents(wf: Workflow, layout: str) -> list[str]:
    """A workflow's own texts as documents under ``layout``.

    "text": its whole text; "text+title": and its title alone
    (``Workflow.documents``); "text+title+description": and its description
    alone, where it is neither. A question reads like the description's
    sentence more than like the title and steps around it: with 0, 1, 5 and 10
    examples per workflow, validation top-1 (``benchmarks/few_shot.py --split
    val``, against ``FRONTDESK_DESCRIPTION_DOCUMENTS=0``) rose 0.3, 0.6, 0.4 and
    0.1 points on BANKING77 and moved +0.1, +0.5, -0.1 and 0.0 on CLINC150.
    """
    docs = wf.documents(layout != LAYOUT_TEXT)
    if layout != LAYOUT_TEXT_TITLE_DESCRIPTION:
        return docs
    key = document_key(wf.description)
    if key and key not in {document_key(d) for d in docs}:
        docs.append(wf.description.strip())
    return docs


def encode_distinct(
    encoder: ContextEncoder, texts: Sequence[str], progress: Callable[[int], None] | None = None
) -> np.ndarray:
    """One vector per text, each distinct text encoded once (a title is often also a
    document of its own)."""
    distinct = list(dict.fromkeys(texts))
    vectors = encoder.encode(distinct, progress=progress)
    row = {t: i for i, t in enumerate(distinct)}
    return vectors[[row[t] for t in texts]] if len(texts) else vectors


def collect_documents(
    workflows: Sequence[Workflow],
    examples: Sequence[LabelledQuery] = (),
    titles: bool = True,
    descriptions: bool = True,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """One document per distinct workflow text (whole text, title, description) and example
    question, in the layout ``layout_of(titles, descriptions)`` (``workflow_documents``).

    Own texts and examples are deduplicated apart: an example that repeats the
    title stays an example (it is a labelled question, removed out of fold).
    """
    position = {wf.id: i for i, wf in enumerate(workflows)}
    texts: list[str] = []
    owner: list[int] = []
    kind: list[int] = []
    seen: set[tuple[int, bool, str]] = set()

    def add(text: str, wf_idx: int, k: int) -> None:
        key = (wf_idx, k != DOC_WORKFLOW, document_key(text))
        if not key[2] or key in seen:
            return
        seen.add(key)
        texts.append(text)
        owner.append(wf_idx)
        kind.append(k)

    for i, wf in enumerate(workflows):
        for text in workflow_documents(wf, layout_of(titles, descriptions)):
            add(text, i, DOC_WORKFLOW)
        for ex in wf.examples:
            add(ex, i, DOC_CATALOG_EXAMPLE)
    for q in examples:
        if q.label is not None:
            add(q.text, position[q.label], DOC_LABELLED_EXAMPLE)
    return texts, np.asarray(owner, dtype=np.int32), np.asarray(kind, dtype=np.int8)


def _versions() -> dict[str, str]:
    import bm25s
    import faiss

    return {"frontdesk": __version__, "faiss": faiss.__version__, "bm25s": bm25s.__version__}


def build_index(
    catalog: str | os.PathLike[str] | Sequence[Workflow],
    out: str | os.PathLike[str],
    *,
    examples: str | os.PathLike[str] | Sequence[LabelledQuery] | None = None,
    encoder: ContextEncoder | None = None,
    settings: Settings | None = None,
    dense: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    finish: Callable[[Path, Sequence[LabelledQuery]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build ``out`` from a catalog; returns the manifest.

    Everything is written to a temporary sibling folder that replaces ``out``
    only once complete, so a failure at any point leaves the previous index as
    it was. ``progress(stage, done, total)`` is called while encoding.
    ``finish(folder, examples)`` runs on the complete new index (it loads and
    verifies; ``examples``: every example it holds, the catalog's own and
    ``examples``, as labelled questions) before it replaces ``out``: files it adds
    to the folder, and the manifest entries it returns, become part of the index
    (``frontdesk.build_index`` fits the index's context gate here).
    """
    settings = settings or Settings.from_env()
    out = Path(out)
    if isinstance(catalog, (str, os.PathLike)):
        catalog_source = str(catalog)
        workflows = load_catalog(catalog)
    else:
        catalog_source = "<in-memory>"
        workflows = list(catalog)
    if isinstance(examples, (str, os.PathLike)):
        example_rows = load_queries(examples, workflow_ids={wf.id for wf in workflows})
    else:
        example_rows = list(examples or [])
        ids = {wf.id for wf in workflows}
        for q in example_rows:
            if q.label is not None and q.label not in ids:
                raise ValueError(f"example {q.id or q.text!r}: unknown workflow id '{q.label}'")

    titles = with_titles(settings, len(workflows))
    descriptions = settings.description_documents
    texts, owner, kind = collect_documents(workflows, example_rows, titles, descriptions)
    tokens = _bm25_tokens(texts, catalog_source, dense)
    with folder_lock(out):  # held until the new manifest is read back
        with atomic_folder(out, MANIFEST, "index", INDEX) as tmp:
            layout = layout_of(titles, descriptions)
            manifest = _build_into(
                tmp,
                workflows,
                texts,
                tokens,
                owner,
                kind,
                layout,
                encoder,
                settings,
                dense,
                progress,
            )
            manifest["source"] = {"catalog": catalog_source, "examples": _source_name(examples)}
            write_manifest(tmp, manifest)
            if finish is not None:
                catalog_rows = [
                    LabelledQuery(text=ex, label=wf.id) for wf in workflows for ex in wf.examples
                ]
                manifest.update(finish(tmp, catalog_rows + example_rows))
                write_manifest(tmp, manifest)
        return json.loads((out / MANIFEST).read_text())


def _bm25_tokens(texts: Sequence[str], catalog: str, dense: bool) -> list[list[str]]:
    """Each document's BM25 tokens; refused (BM25 alone) or warned about (hybrid) when
    not one document has a word BM25 can index."""
    tokenizer = Tokenizer()
    tokens = [tokenizer(t) for t in texts]
    if has_tokens(tokens):
        return tokens
    why = (
        "no workflow text has a word BM25 can index (only stopwords, or a script such as "
        "Chinese that its tokenizer does not read)"
    )
    if not dense:
        raise DataError(
            catalog,
            None,
            None,
            f"{why}; BM25 alone would find nothing: build with the dense part (without --sparse-only)",
        )
    warnings.warn(
        f"{catalog}: {why}; suggestions come from dense retrieval alone",
        RuntimeWarning,
        stacklevel=3,
    )
    return tokens


def _source_name(examples: object) -> str | None:
    if examples is None:
        return None
    return str(examples) if isinstance(examples, (str, os.PathLike)) else "<in-memory>"


def _build_into(
    root: Path,
    workflows: Sequence[Workflow],
    texts: list[str],
    tokens: list[list[str]],
    owner: np.ndarray,
    kind: np.ndarray,
    layout: str,
    encoder: ContextEncoder | None,
    settings: Settings,
    dense: bool,
    progress: Callable[[str, int, int], None] | None,
) -> dict[str, Any]:
    tokenizer = Tokenizer()
    manifest = write_documents(
        root, workflows, texts, owner, kind, tokens, tokenizer, settings, layout
    )
    if dense:
        encoder = encoder or ContextEncoder(
            settings.model, batch_size=settings.batch_size, device=settings.device
        )
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress("encoding", done, n_distinct)

        to_encode = texts + [wf.title for wf in workflows]
        n_distinct = len(set(to_encode))
        encoded = encode_distinct(encoder, to_encode, progress=tick)
        vectors, title_vectors = encoded[: len(texts)], encoded[len(texts) :]
        if progress is not None:
            progress("dense index", 0, 1)
        index, params = build_dense(
            vectors, settings, probe_rows=np.flatnonzero(kind != DOC_WORKFLOW)
        )
        if progress is not None:
            progress("tuning", 0, 1)
        tuning = tune_prototype_weight(
            vectors, owner, kind != DOC_WORKFLOW, tokens, len(workflows), settings
        )
        manifest["dense"] = write_dense_part(
            root, index, params, vectors, title_vectors, owner, model_record(encoder), tuning
        )
    return manifest


def model_record(encoder: ContextEncoder) -> dict[str, str]:
    """How the manifest names the encoder that built the vectors."""
    return {
        "name": encoder.name,
        "sha256": encoder.fingerprint,
        "path": str(encoder.path.resolve()),
    }


def write_documents(
    root: Path,
    workflows: Sequence[Workflow],
    texts: Sequence[str],
    owner: np.ndarray,
    kind: np.ndarray,
    tokens: Sequence[Sequence[str]],
    tokenizer: Tokenizer,
    settings: Settings,
    layout: str,
) -> dict[str, Any]:
    """Write workflows, documents, their maps and the BM25 part; the manifest so far."""
    with open(root / "workflows.jsonl", "w", encoding="utf-8") as fh:
        for wf in workflows:
            fh.write(json.dumps(wf.model_dump(), ensure_ascii=False) + "\n")
    with open(root / DOCUMENTS_FILE, "w", encoding="utf-8") as fh:
        for text in texts:
            fh.write(json.dumps(text, ensure_ascii=False) + "\n")
    np.save(root / "doc_workflow.npy", owner, allow_pickle=False)
    np.save(root / "doc_kind.npy", kind, allow_pickle=False)

    bm25 = bm25_index(tokens, k1=settings.bm25_k1, b=settings.bm25_b)
    bm25.save(str(root / SPARSE_DIR), show_progress=False)

    return {
        "kind": INDEX,
        "format_version": FORMAT_VERSION,
        "layout": layout,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "counts": {
            "workflows": len(workflows),
            "documents": len(texts),
            "workflow_texts": int((kind == DOC_WORKFLOW).sum()),
            "catalog_examples": int((kind == DOC_CATALOG_EXAMPLE).sum()),
            "labelled_examples": int((kind == DOC_LABELLED_EXAMPLE).sum()),
        },
        "sparse": {
            "library": "bm25s",
            "method": "lucene",
            "k1": settings.bm25_k1,
            "b": settings.bm25_b,
            "tokenizer": tokenizer.config,
            "folder": SPARSE_DIR,
        },
        "dense": None,
    }


def write_dense_part(
    root: Path,
    index: Any,
    params: dict[str, Any],
    vectors: np.ndarray,
    title_vectors: np.ndarray,
    owner: np.ndarray,
    model: dict[str, str],
    tuning: dict[str, Any],
) -> dict[str, Any]:
    """Write the FAISS index, prototypes and title vectors; the manifest's dense entry."""
    write_dense(index, root / DENSE_FILE)
    np.save(root / TITLES_FILE, title_vectors, allow_pickle=False)
    np.save(
        root / PROTOTYPES_FILE,
        workflow_prototypes(vectors, owner, len(title_vectors)),
        allow_pickle=False,
    )
    return {
        "file": DENSE_FILE,
        "dim": int(vectors.shape[1]),
        "count": int(vectors.shape[0]),
        "index": params,
        "model": model,
        "prototypes": {"file": PROTOTYPES_FILE, "weight": tuning["weight"], "tuning": tuning},
        "titles": {"file": TITLES_FILE},
    }
