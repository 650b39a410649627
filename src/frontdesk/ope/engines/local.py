"""The local engine: stream the Parquet logs in batches (pyarrow); never the whole log in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ...logs import DecisionLogs
from ..kernel import N_VALUES, check_rows, partial_sums

Sums = dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]]


def run_sums(
    batches: Iterable[tuple[Any, Any]],
    per_batch: Callable[[Any, str, int], Any],
    keys: Sequence[str],
    sums: Sequence[str],
    maxima: Sequence[str],
    progress: Callable[[int], None] | None = None,
) -> Sums:
    """Per key, the added ``sums`` columns and the largest ``maxima`` of a per-batch function.

    ``batches`` yields (file, Arrow batch); ``per_batch(df, file, first_row)``
    returns a pandas frame with the ``keys``, ``sums`` and ``maxima`` columns
    (any number of rows per key). Both off-policy commands run through here.
    """
    acc: Sums = {}
    offsets: dict[str, int] = {}
    for path, batch in batches:
        df = batch.to_pandas()
        start = offsets.get(str(path), 0)
        offsets[str(path)] = start + len(df)
        frame = per_batch(df, str(path), start + 1)
        added = frame[list(sums)].to_numpy(dtype=float)
        largest = frame[list(maxima)].to_numpy(dtype=float)
        names = zip(*(frame[k].tolist() for k in keys), strict=True)
        for key, s, m in zip(names, added, largest, strict=True):
            if key in acc:
                old_s, old_m = acc[key]
                acc[key] = (old_s + s, np.maximum(old_m, m))
            else:
                acc[key] = (s.copy(), m.copy())
        if progress is not None:
            progress(len(df))
    return acc


POLICY_KEYS = ("seg", "metric", "rep")
POLICY_SUMS = tuple(f"v{i}" for i in range(N_VALUES))


def run_local(
    logs: DecisionLogs,
    plan: dict[str, Any],
    batch_size: int = 8192,
    progress: Callable[[int], None] | None = None,
) -> dict[tuple[str, str, int], np.ndarray]:
    """Sums per (segment, metric, replicate) over every row of every file."""

    def per_batch(df: Any, path: str, first_row: int) -> Any:
        check_rows(df, path, first_row=first_row)
        return partial_sums(df, plan)

    acc = run_sums(
        logs.batches(columns=plan["columns"], batch_size=batch_size),
        per_batch, POLICY_KEYS, POLICY_SUMS, ("wmax",), progress,
    )  # fmt: skip
    return {(str(seg), str(m), int(rep)): np.append(s, w) for (seg, m, rep), (s, w) in acc.items()}
