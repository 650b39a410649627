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
