"""Deterministic, label-stratified validation splits carved from training data."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

from ..schema import LabelledQuery

Q = TypeVar("Q", bound=LabelledQuery)


def carve_validation(
    rows: Sequence[Q], fraction: float = 0.1, seed: int = 0
) -> tuple[list[Q], list[Q]]:
    """Split ``rows`` into (train, val), taking ``fraction`` of every label (null included).

    Every label keeps at least one training row; order within each part follows the input.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must be in (0, 1)")
    by_label: dict[str | None, list[int]] = defaultdict(list)
    for i, q in enumerate(rows):
        by_label[q.label].append(i)
    rng = random.Random(seed)
    val_idx: set[int] = set()
    for label in sorted(by_label, key=lambda x: (x is None, x or "")):
        idx = by_label[label]
        take = min(len(idx) - 1, round(len(idx) * fraction))
        val_idx.update(rng.sample(idx, take) if take > 0 else [])
    train = [q for i, q in enumerate(rows) if i not in val_idx]
    val = [q for i, q in enumerate(rows) if i in val_idx]
    return train, val


def sample_shots(rows: Sequence[Q], shots: int, seed: int = 0) -> list[Q]:
    """``shots`` rows of every workflow label, drawn with a seeded generator; input order kept.

    Each label's rows are shuffled by a generator seeded with ``seed`` and the
    label alone, and the first ``shots`` are taken: the draw for one workflow
    does not depend on which others are present, and for one seed a smaller
    sample is part of every larger one (1 shot within 5 within 10), so shot
    counts differ only by the examples added. A label with fewer rows keeps all
    of them. Null-labelled (out-of-scope) rows are no workflow's examples and
    are all kept.
    """
    if shots < 0:
        raise ValueError("shots must be >= 0")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(rows):
        if q.label is not None:
            by_label[q.label].append(i)
    keep: set[int] = set()
    for label in sorted(by_label):
        idx = list(by_label[label])
        random.Random(f"shots:{seed}:{label}").shuffle(idx)
        keep.update(idx[:shots])
    return [q for i, q in enumerate(rows) if q.label is None or i in keep]


def split_halves(rows: Sequence[Q], seed: int = 0) -> tuple[list[Q], list[Q]]:
    """Split ``rows`` into (tune, test) halves, stratified by label (null included).

    Each label's rows are shuffled by a generator seeded with ``seed`` and the
    label alone, then dealt alternately to test and tune, so a label with an
    odd count gives its extra row to test and every label with two or more
    rows lands in both halves. Shuffling within a label keeps the halves alike
    when a file was written in rounds (a first question per label, then a
    second). Input order is kept within each half.
    """
    by_label: dict[str | None, list[int]] = defaultdict(list)
    for i, q in enumerate(rows):
        by_label[q.label].append(i)
    test_idx: set[int] = set()
    for label, idx in by_label.items():
        dealt = list(idx)
        random.Random(f"halves:{seed}:{label}").shuffle(dealt)
        test_idx.update(dealt[0::2])
    tune = [q for i, q in enumerate(rows) if i not in test_idx]
    test = [q for i, q in enumerate(rows) if i in test_idx]
    return tune, test
