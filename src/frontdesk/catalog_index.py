"""Build a catalog's index with what it serves with: the index, and its own context gate.

``frontdesk.build_index`` (what ``frontdesk index build`` runs) is
:func:`frontdesk.index.build_index` plus, when the examples are enough, the
index's own context gate fitted from them
(:func:`~frontdesk.encoding.gate_training.fit_index_gate`): a gate fitted for
one catalog needs no compromise between catalogs, so conversations whose
latest message is a vague follow-up are answered from the earlier request
far more often than with the bundled gate. The gate is written into the new
index folder before it replaces the old one, so a failure leaves neither
behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .config import Settings
from .encoding import ContextEncoder
from .encoding.gate_training import fit_index_gate
from .index import build_index as build_index_only
from .schema import LabelledQuery, Workflow


def build_index(
    catalog: str | os.PathLike[str] | Sequence[Workflow],
    out: str | os.PathLike[str],
    *,
    examples: str | os.PathLike[str] | Sequence[LabelledQuery] | None = None,
    encoder: ContextEncoder | None = None,
    settings: Settings | None = None,
    dense: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    gate: bool | None = None,
) -> dict[str, Any]:
    """Build ``out`` from a catalog (atomically); returns the manifest.

    ``gate``: None fits the index's context gate from its examples (the catalog's own
    and ``examples``) when there are at least 1,000 (``AUTO_MIN_LABELLED``; the
    manifest's ``context_gate_skipped`` says why not), True fits one from as few as
    about 200 (fewer is an error), False never fits one. Without one, the bundled gate
    serves.
    """
    settings = settings or Settings.from_env()
    named = [str(p) for p in (catalog, examples) if isinstance(p, (str, os.PathLike))]
    source = " + ".join(named) or "examples"  # the rows are the catalog's and --examples'
    if dense and encoder is None:  # one encoder for the build and the gate
        encoder = ContextEncoder(
            settings.model, batch_size=settings.batch_size, device=settings.device
        )

    def finish(folder: Path, rows: Sequence[LabelledQuery]) -> dict[str, Any]:
        if progress is not None:
            progress("fitting the context gate", 0, 3)
        return fit_index_gate(
            folder, rows, required=gate, source=source,
            encoder=encoder, settings=settings, progress=progress,
        )  # fmt: skip

    return build_index_only(
        catalog, out, examples=examples, encoder=encoder, settings=settings, dense=dense,
        progress=progress, finish=finish,
    )  # fmt: skip
