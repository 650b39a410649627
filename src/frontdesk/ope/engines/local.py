"""The local engine: stream the Parquet logs in batches (pyarrow); never the whole log in memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...logs import DecisionLogs
from ..kernel import add_frame, check_rows, partial_sums


def run_local(
    logs: DecisionLogs,
    plan: dict[str, Any],
    batch_size: int = 8192,
    progress: Callable[[int], None] | None = None,
) -> dict[tuple[str, str, int], np.ndarray]:
    """Sums per (segment, metric, replicate) over every row of every file."""
    acc: dict[tuple[str, str, int], np.ndarray] = {}
    offsets: dict[str, int] = {}
    for path, batch in logs.batches(columns=plan["columns"], batch_size=batch_size):
        df = batch.to_pandas()
        start = offsets.get(str(path), 0)
        check_rows(df, str(path), first_row=start + 1)
        offsets[str(path)] = start + len(df)
        add_frame(acc, partial_sums(df, plan))
        if progress is not None:
            progress(len(df))
    return acc
