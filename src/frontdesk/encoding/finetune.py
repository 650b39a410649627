"""Fine-tune the sentence-transformers encoder on labelled questions, on the CPU.

Contrastive training with in-batch negatives (``MultipleNegativesRankingLoss``):
each question is pulled towards a positive of its own workflow and pushed from
every other pair in the batch. Half the positives are another question of the
same workflow (what k-NN over examples needs), half the workflow's own text
(what a workflow with no examples yet needs). Every batch holds distinct
workflows, so no in-batch "negative" is secretly a positive. Rows labelled
null (out of scope) are never anchors; ``oos_negatives`` of them (32 by
default, when there are any) join every batch as extra negatives, to keep
questions no workflow covers away from all of them (on CLINC150 this widened
the range of abstention thresholds that meet both out-of-scope targets: see
BENCHMARKS.md). A plain torch loop: no ``datasets``/``accelerate`` extras
needed.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from ..artifacts import atomic_folder
from ..errors import FrontdeskError
from ..schema import LabelledQuery, Workflow
from .encoder import ContextEncoder
from .model_files import model_fingerprint

Progress = Callable[[int, int, float], None]  # (batches done, total, last loss)
PROVENANCE = "frontdesk-finetune.json"
MIN_STEPS = 200  # optimizer steps that epochs chosen unasked reach, up to MAX_AUTO_EPOCHS
MAX_AUTO_EPOCHS = 8


def auto_epochs(batches_per_epoch: int) -> int:
    """Epochs for about ``MIN_STEPS`` optimizer steps: one for thousands of questions, up to
    ``MAX_AUTO_EPOCHS`` for a few per workflow (BANKING77 with 10 per workflow, validation
    top-1: 83.95 before fine-tuning, 85.34 after 100 steps, 85.94 after 200)."""
    return max(1, min(MAX_AUTO_EPOCHS, math.ceil(MIN_STEPS / max(1, batches_per_epoch))))


def training_pairs(
    rows: Sequence[LabelledQuery], workflows: Sequence[Workflow], seed: int = 0
) -> list[tuple[str, str, str]]:
    """(anchor question, positive text, workflow id) per labelled row, in a seeded order."""
    rng = random.Random(seed)
    docs = {w.id: w.document() for w in workflows}
    by_label: dict[str, list[str]] = defaultdict(list)
    for q in rows:
        if q.label is not None:
            by_label[q.label].append(q.text)
    pairs = []
    for q in rows:
        if q.label is None:
            continue
        others = [t for t in by_label[q.label] if t != q.text]
        positive = rng.choice(others) if others and rng.random() < 0.5 else docs[q.label]
        pairs.append((q.text, positive, q.label))
    rng.shuffle(pairs)
    return pairs


def distinct_label_batches(
    pairs: Sequence[tuple[str, str, str]], batch_size: int
) -> list[list[tuple[str, str, str]]]:
    """Greedy batching in order, deferring a pair whose workflow is already in the batch."""
    batches: list[list[tuple[str, str, str]]] = []
    pending = list(pairs)
    while pending:
        batch, seen, rest = [], set(), []
        for p in pending:
            if len(batch) < batch_size and p[2] not in seen:
                batch.append(p)
                seen.add(p[2])
            else:
                rest.append(p)
        if len(batch) < 2:  # one workflow left: no negatives to learn from
            break
        batches.append(batch)
        pending = rest
    return batches


def out_of_scope_texts(rows: Sequence[LabelledQuery]) -> list[str]:
    """The distinct texts of rows labelled null, less any text also labelled with a
    workflow (as a negative it would be some question's false negative)."""
    labelled = {q.text for q in rows if q.label is not None}
    return [t for t in dict.fromkeys(q.text for q in rows if q.label is None) if t not in labelled]


def out_of_scope_negatives(
    rows: Sequence[LabelledQuery], n_batches: int, per_batch: int, seed: int = 0
) -> list[list[str]]:
    """Per batch, ``per_batch`` distinct ``out_of_scope_texts``, seeded.

    Empty lists when there are none (or ``per_batch`` is 0).
    """
    texts = out_of_scope_texts(rows)
    if not texts or per_batch <= 0:
        return [[] for _ in range(n_batches)]
    rng = random.Random(seed)
    k = min(per_batch, len(texts))
    return [rng.sample(texts, k) for _ in range(n_batches)]


def finetune_encoder(
    rows: Sequence[LabelledQuery],
    workflows: Sequence[Workflow],
    out: str | os.PathLike[str],
    *,
    base: str | os.PathLike[str] | None = None,
    epochs: int | None = None,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    seed: int = 0,
    oos_negatives: int = 32,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train and save a sentence-transformers folder at ``out`` (atomically); returns provenance.

    ``oos_negatives``: out-of-scope rows added to each batch as extra negatives
    (when ``rows`` has any; 0 drops them). ``epochs`` None: :func:`auto_epochs`.
    """
    known = {w.id for w in workflows}
    unknown = sorted({q.label for q in rows if q.label is not None and q.label not in known})
    if unknown:
        raise FrontdeskError(f"labels not in the catalog: {', '.join(unknown[:5])}")
    base_encoder = ContextEncoder(base)
    if base_encoder.kind != "sentence-transformers":  # refused before torch is imported
        raise FrontdeskError(
            f"{base_encoder.path}: a {base_encoder.kind} encoder cannot be fine-tuned; fine-tune "
            "the sentence-transformers folder it was built from, then `train distill` the result"
        )
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(seed)
    model = base_encoder.sentence_transformer()
    # default directions (query to document): a third column of another length is only
    # extra candidates; other directions or hardness modes need equal-length columns
    loss_fn = MultipleNegativesRankingLoss(model)
    first = distinct_label_batches(training_pairs(rows, workflows, seed), batch_size)
    if epochs is None:
        epochs = auto_epochs(len(first))
    batches_per_epoch = [first] + [
        distinct_label_batches(training_pairs(rows, workflows, seed + e), batch_size)
        for e in range(1, epochs)
    ]
    total = sum(len(b) for b in batches_per_epoch)
    if total == 0:
        raise FrontdeskError("need labelled rows of at least two workflows to fine-tune")
    negatives_per_epoch = [
        out_of_scope_negatives(rows, len(batches), oos_negatives, seed + e)
        for e, batches in enumerate(batches_per_epoch)
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, (total - step) / total)
    )
    model.train()
    losses: list[float] = []
    done = 0
    t0 = time.perf_counter()
    for batches, negatives in zip(batches_per_epoch, negatives_per_epoch, strict=True):
        for batch, negs in zip(batches, negatives, strict=True):
            columns = [
                model.tokenize([a for a, _, _ in batch]),
                model.tokenize([p for _, p, _ in batch]),
            ]
            if negs:  # candidates for every anchor, the positive of none
                columns.append(model.tokenize(negs))
            loss = loss_fn(columns, None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            done += 1
            if progress is not None:
                progress(done, total, losses[-1])
    model.eval()
    seconds = time.perf_counter() - t0

    with atomic_folder(out, PROVENANCE, "fine-tuned model") as tmp:
        model.save(str(tmp))
        window = max(1, len(losses) // 10)
        per_batch = max((len(n) for negs in negatives_per_epoch for n in negs), default=0)
        provenance = {
            "base": {
                "path": str(base_encoder.path),
                "sha256": model_fingerprint(base_encoder.path),
            },
            "loss": "MultipleNegativesRankingLoss (in-batch negatives, distinct workflows per batch"
            + (", out-of-scope rows as extra negatives)" if per_batch else ")"),
            "rows": sum(q.label is not None for q in rows),
            "oos_negatives": oos_negatives,
            "out_of_scope_rows": len(out_of_scope_texts(rows)),
            "out_of_scope_negatives_per_batch": per_batch,
            "workflows": len({q.label for q in rows if q.label is not None}),
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "batches": total,
            "seconds": round(seconds, 1),
            "loss_first": round(sum(losses[:window]) / window, 4),
            "loss_last": round(sum(losses[-window:]) / window, 4),
        }
        (tmp / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance
