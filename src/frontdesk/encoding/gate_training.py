"""Fit a context gate for one index, from its own labelled questions (`train gate`).

The bundled gate (``data/context_gate.jsonl``) was fitted on BANKING77 and
CLINC150 together, so its thresholds are a compromise: CLINC150 has intents
that read like follow-ups ("yes", "thanks"), and a bar low enough to recover
BANKING77's vague follow-ups loses real CLINC150 requests. A catalog's own gate
needs no compromise. Of each workflow's labelled questions, ``held_out`` are
taken out of a copy of the index (their example documents removed; nothing is
re-encoded), so retrieval cannot simply find them; half of those become
conversations of every multi-turn kind phrased from the training pool, to fit
the weights, and half conversations phrased from the validation pool, to
choose the thresholds so that no kind falls below the latest message alone.
The test phrasings (``frontdesk datasets multiturn``'s default) are never used.

``frontdesk index build`` (``frontdesk.build_index``) fits one this way from
the examples it indexes, when there are enough (:func:`fit_index_gate`), and
keeps it in the index folder, where the Suggester finds it.
"""

from __future__ import annotations

import json
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import MANIFEST
from ..config import Settings
from ..datasets.multiturn import ALL_KINDS, make_multiturn
from ..datasets.splits import carve_validation
from ..errors import DataError
from ..index import WorkflowIndex
from ..index.builder import document_key
from ..retrieval.hybrid import HybridSearcher
from ..retrieval.subset import subset_searcher
from ..schema import LabelledQuery
from ..suggester import Suggester
from .context_gate import (
    VARIANTS,
    ContextGate,
    accuracy,
    fit_gate,
    gate_inputs,
    tune_thresholds,
)
from .encoder import ContextEncoder

HELD_OUT = 0.2  # of each workflow's labelled questions, held out of the index copy
MIN_PER_SPLIT = 20  # questions below which fitting or choosing thresholds means nothing
INDEX_GATE_FILE = "context_gate.jsonl"  # an index's own gate, in its folder
AUTO_MIN_LABELLED = 1000  # index build fits a gate unasked from this many examples up
MAX_HELD_OUT = 5000  # questions an index's gate holds out at most (a smaller share above)

Progress = Callable[[str, int, int], None]


@dataclass
class GateSplit:
    """One split's conversations as the gate reads them."""

    features: np.ndarray  # (n, A, F)
    correct: np.ndarray  # (n, V) each variant's top-1 is the label
    available: np.ndarray  # (n, V)
    kinds: np.ndarray  # (n,) conversation kind


def train_gate(
    suggester: Suggester,
    rows: Sequence[LabelledQuery],
    *,
    held_out: float = HELD_OUT,
    seed: int = 0,
    source: str = "labelled questions",
    progress: Progress | None = None,
) -> tuple[ContextGate, dict[str, Any]]:
    """A gate fitted for ``suggester``'s index, and its validation report.

    The report gives, per conversation kind, validation top-1 of the latest
    message alone, of the bundled gate and of this one (thresholds were chosen
    on these conversations, so judge the gate on test ones with ``frontdesk eval``).
    ``source`` names the rows' file in errors.
    """
    tick = progress or (lambda stage, done, total: None)
    if suggester.mode != "hybrid" or suggester.hybrid is None:
        raise DataError(
            str(suggester.index.root), None, None,
            "a context gate needs hybrid retrieval (a dense index and its encoder): "
            "rebuild the index without --sparse-only",
        )  # fmt: skip
    positions = {w: i for i, w in enumerate(suggester.index.workflow_ids)}
    labelled = [q for q in rows if q.label is not None]
    _, held = carve_validation(labelled, held_out, seed=seed) if labelled else ([], [])
    # halves of the held-out questions, not per workflow: a workflow may have only one
    order = random.Random(seed).sample(range(len(held)), len(held))
    fit_rows = [held[i] for i in sorted(order[: len(held) // 2])]
    val_rows = [held[i] for i in sorted(order[len(held) // 2 :])]
    if min(len(fit_rows), len(val_rows)) < MIN_PER_SPLIT:
        raise DataError(
            source, None, "label",
            f"{len(labelled)} labelled questions: {held_out:.0%} of each workflow's are held "
            f"out ({len(held)}), half to fit the gate ({len(fit_rows)}) and half to choose its "
            f"thresholds ({len(val_rows)}); each half needs at least {MIN_PER_SPLIT} (about "
            f"{int(2 * MIN_PER_SPLIT / held_out)} questions, several per workflow)",
        )  # fmt: skip
    tick("removing held-out questions from a copy of the index", 0, 3)
    searcher = _index_without(suggester, held, positions)
    splits = {}
    for step, (split, part, phrases) in enumerate(
        (("fit", fit_rows, "train"), ("val", val_rows, "val")), 1
    ):
        tick(f"searching {split} conversations", step, 3)
        splits[split] = _split(suggester, searcher, part, phrases, seed, positions)
    fit, val = splits["fit"], splits["val"]
    gate = fit_gate(fit.features, fit.correct, fit.available)
    gate.thresholds = tune_thresholds(gate, val.features, val.correct, val.available, val.kinds)
    tick("done", 3, 3)
    report = _report(gate, val)
    gate.lineage = {
        "fit": f"{len(fit_rows)} labelled questions held out of the index, train phrases",
        "val": f"{len(val_rows)} others, val phrases; thresholds keep every kind >= latest",
        "fit_rows": int(len(fit.kinds)),
        "val_rows": int(len(val.kinds)),
        "index": str(suggester.index.root),
        "catalog": suggester.index.catalog_digest,  # the Suggester warns on another catalog
        "workflows": len(positions),
        "held_out": held_out,
        "seed": seed,
    }
    return gate, report


def min_labelled(held_out: float = HELD_OUT) -> int:
    """About how many labelled questions a gate needs (each half of the held-out part
    ``MIN_PER_SPLIT``), for messages."""
    return int(2 * MIN_PER_SPLIT / held_out)


def fit_index_gate(
    folder: Path,
    rows: Sequence[LabelledQuery],
    *,
    required: bool | None = None,
    source: str = "examples",
    encoder: ContextEncoder | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fit the context gate of the index in ``folder`` from ``rows`` (its examples) and
    write it there (``INDEX_GATE_FILE``); the manifest entries that record it.

    ``required`` None: fitted when the index is hybrid and has ``AUTO_MIN_LABELLED``
    distinct labelled ``rows``, else skipped (``context_gate_skipped`` says why; the
    bundled gate then serves), and a failure to fit is a warning, not a failed build;
    True: fitted, too few rows (``train_gate``'s minimum) is an error; False: skipped.
    ``source`` names the rows in errors. At most ``MAX_HELD_OUT`` questions are held out,
    so a large catalog's gate costs no more than BANKING77's or CLINC150's.
    """
    if required is False:
        return {"context_gate_skipped": "not asked for (--no-gate)"}
    manifest = json.loads((folder / MANIFEST).read_text())
    if not manifest.get("dense"):
        if required:
            raise DataError(source, None, None, "a context gate needs a dense part: build "
                            "without --sparse-only, or without --gate")  # fmt: skip
        return {"context_gate_skipped": "BM25 only: no gate runs"}
    # one question per (workflow, text): a catalog example repeated in --examples is one
    labelled = list({(q.label, document_key(q.text)): q for q in rows if q.label}.values())
    held_out = min(HELD_OUT, MAX_HELD_OUT / max(1, len(labelled)))
    if required is None:
        # thresholds chosen on fewer validation conversations than this are too noisy
        # to trust unasked; the bundled gate was fitted on thousands
        if len(labelled) < AUTO_MIN_LABELLED:
            return {
                "context_gate_skipped": f"{len(labelled)} labelled examples, fewer than "
                f"{AUTO_MIN_LABELLED:,}: the bundled gate serves (--gate fits one from "
                f"{min_labelled()} or so)"
            }
        held = len(carve_validation(labelled, held_out)[1])
        if held // 2 < MIN_PER_SPLIT:  # every workflow keeps one: one example each is none
            return {
                "context_gate_skipped": f"{len(labelled)} labelled examples, but only {held} "
                "can be held out (a workflow keeps at least one): the bundled gate serves"
            }
    t0 = time.perf_counter()
    # the bundled gate for the comparison it reports: never FRONTDESK_CONTEXT_MODEL's
    settings = (settings or Settings.from_env()).model_copy(update={"context_model": "bundled"})
    try:
        index = WorkflowIndex.load(folder, verify=False)  # written just now, by this build
        suggester = Suggester(index, encoder=encoder, settings=settings)
        gate, report = train_gate(
            suggester, labelled, held_out=held_out, source=source, progress=progress
        )
    except DataError as exc:
        if required:
            raise DataError(exc.path, exc.line, exc.field,
                            f"{exc.reason}; without --gate the bundled gate serves") from None  # fmt: skip
        return {"context_gate_skipped": exc.reason}
    except Exception as exc:  # an optional part: the index is still good without it
        if required:
            raise
        warnings.warn(
            f"{source}: no context gate fitted ({type(exc).__name__}: {exc}); the bundled "
            "gate serves this index",
            RuntimeWarning,
            stacklevel=2,
        )
        return {"context_gate_skipped": f"fitting failed: {type(exc).__name__}: {exc}"}
    # the same data gives the same gate (and fingerprint) wherever the index is built
    gate.lineage["index"] = "its own index"
    gate.save(folder / INDEX_GATE_FILE)
    return {
        "context_gate": {
            "file": INDEX_GATE_FILE,
            "fingerprint": gate.fingerprint,
            "labelled_examples": len(labelled),
            "seconds": round(time.perf_counter() - t0, 1),
            **report,
        }
    }


def _index_without(
    suggester: Suggester, held: Sequence[LabelledQuery], positions: dict[str, int]
) -> HybridSearcher:
    """The index's hybrid search over every document except the held-out questions'."""
    index = suggester.index
    assert suggester.dense is not None
    documents, examples = index.documents(), index.example_documents()
    keep = np.ones(len(documents), dtype=bool)
    for q in held:
        keep[examples.get((positions[str(q.label)], document_key(q.text)), [])] = False
    return subset_searcher(
        index.document_vectors(),
        index.doc_workflow,
        [index.tokenizer(t) for t in documents],
        keep,
        len(positions),
        suggester.settings,
        suggester.dense.prototype_weight,
    ).hybrid


def _split(
    suggester: Suggester,
    searcher: HybridSearcher,
    rows: Sequence[LabelledQuery],
    phrases: str,
    seed: int,
    positions: dict[str, int],
) -> GateSplit:
    convs: list[LabelledQuery] = []
    kinds: list[str] = []
    for kind in ALL_KINDS:
        made = make_multiturn(rows, kind, seed=seed, phrases=phrases)
        convs += made
        kinds += [kind] * len(made)
    encoded = suggester.encode(convs)
    assert encoded is not None
    inputs = gate_inputs(searcher, encoded, convs, suggester.index.tokenizer)
    labels = np.array([positions[str(q.label)] for q in convs])
    return GateSplit(inputs.features, inputs.top == labels[:, None], inputs.available,
                     np.array(kinds))  # fmt: skip


def _report(gate: ContextGate, val: GateSplit) -> dict[str, Any]:
    """Validation top-1 per kind: latest alone, the bundled gate, this gate."""
    bundled = ContextGate.load()
    mine = gate.choose(val.features, val.available)
    theirs = bundled.choose(val.features, val.available)
    kinds = {}
    for kind in ALL_KINDS:
        m = val.kinds == kind
        kinds[kind] = {
            "n": int(m.sum()),
            "latest": float(val.correct[m, 0].mean()),
            "bundled_gate": accuracy(theirs[m], val.correct[m]),
            "this_gate": accuracy(mine[m], val.correct[m]),
        }
    return {
        "held_out": len(val.kinds) // len(ALL_KINDS),  # validation questions (per kind)
        "validation": kinds,
        "thresholds": dict(zip(VARIANTS[1:], gate.thresholds.tolist(), strict=True)),
        "searched": [VARIANTS[v] for v in gate.searched],
    }
