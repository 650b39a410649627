"""The per-batch function every off-policy engine runs, and how its sums add up.

``partial_sums`` checks a batch of log rows, asks the plan's target policy for
its probabilities over each row's eligible actions, computes the per-row
terms of :mod:`~frontdesk.ope.estimators` for every metric and sums them per
segment (long format: segment, metric, replicate, values). The local engine
adds those frames up (``engines/local.py``); the Spark engine runs the same
function with ``mapInPandas`` and adds them up with ``groupBy``. The segment
helpers (``segment_keys``, ``check_segment_columns``) serve every off-policy
command (``simulate policy``, ``simulate truth``, ``simulate suggestions``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, FrontdeskError
from .estimators import Moments, poisson_weights, row_terms
from .policies import Batch, checked_probabilities, parse_policy
from .reward_model import RewardFeatures, fold_of, metric_column, predict

N_VALUES = len(Moments.flat_names())  # 28 sums; the engines' sums carry one more value, max w
OVERALL = "__overall__"
MISSING = "missing"  # the segment of rows whose segment column is null
MAX_SEGMENT_VALUES = 500


@lru_cache(maxsize=8)
def plan_policy(spec_json: str) -> Any:
    """The plan's target policy, parsed once per process (Spark workers included)."""
    d = json.loads(spec_json)
    return parse_policy(d["spec"], "policy", base=Path(d["base"]))


def is_null(v: Any) -> bool:
    """A scalar that pandas or Arrow uses for a missing value: None, NaN, pd.NA, NaT."""
    try:
        return v is None or bool(v != v)
    except (TypeError, ValueError):  # pd.NA: its truth value is ambiguous
        return True


def segment_value(v: Any) -> str:
    """A segment column's value as a key: nulls (None, NaN, pd.NA) are ``missing``, and a
    whole float is written as an int (pandas turns an int column with a null into floats,
    batch by batch, so ``1`` must not become ``1.0`` in some batches)."""
    if is_null(v):
        return MISSING
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def segment_keys(df: Any, fields: Sequence[str]) -> list[list[str]]:
    """Per row: the overall key plus one key per segment field (``value``, or ``field=value``)."""
    keys = [[OVERALL] for _ in range(len(df))]
    for f in fields:
        for row, v in zip(keys, df[f].tolist(), strict=True):
            key = segment_value(v)
            row.append(key if len(fields) == 1 else f"{f}={key}")
    return keys


def distinct_values(files: Sequence[Path], column: str, limit: int) -> set[Any]:
    """A column's distinct values over every file, stopping once there are more than ``limit``."""
    import pyarrow.parquet as pq

    seen: set[Any] = set()
    for f in files:
        seen.update(pq.read_table(f, columns=[column]).column(column).unique().to_pylist())
        if len(seen) > limit:
            break
    return seen


def check_segment_columns(
    files: Sequence[Path], segments: Sequence[str], where: str, hint: str
) -> None:
    """Refuse (naming the option) a segment column that is not every file's, holds a list or
    a float per row, or has more than MAX_SEGMENT_VALUES values. ``where`` names the files'
    folder in the message, ``hint`` the columns to try."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(f) for f in files]
    present = set.intersection(*(set(s.names) for s in schemas))
    for col in segments:
        if col not in present:
            raise FrontdeskError(f"--segment {col}: not a column of {where} (try {hint})")
        kind = schemas[0].field(col).type
        if pa.types.is_nested(kind) or pa.types.is_floating(kind):
            raise FrontdeskError(
                f"--segment {col}: holds a {kind} per row; segment by a column with a few "
                f"values ({hint}, …)"
            )
        if len(distinct_values(files, col, MAX_SEGMENT_VALUES + 1)) > MAX_SEGMENT_VALUES:
            raise FrontdeskError(
                f"--segment {col}: more than {MAX_SEGMENT_VALUES} distinct values, so segments of "
                "a few rows each; segment by a column with a few values"
            )


def check_rows(df: Any, where: str, first_row: int = 1) -> None:
    """Propensities in (0, 1] and the logged action among the eligible ones."""
    p = np.asarray(df["propensity"].to_numpy(), dtype=float)
    bad = np.flatnonzero(~((p > 0) & (p <= 1)))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            where, first_row + i, "propensity",
            f"{float(p[i])!r} for contact {df['contact_id'].iat[i]}; propensities must be in (0, 1]",
        )  # fmt: skip
    for i, (h, a, hs, ags) in enumerate(
        zip(
            df["channel"],
            df["agent_id"],
            df["eligible_channels"],
            df["eligible_agents"],
            strict=True,
        )
    ):
        if hs is None or len(hs) == 0 or len(hs) != len(ags):
            raise DataError(
                where,
                first_row + i,
                "eligible_channels",
                "empty or not aligned with eligible_agents",
            )
        if not any(x == h and y == a for x, y in zip(hs, ags, strict=True)):
            raise DataError(
                where, first_row + i, "agent_id",
                f"the logged action ({h}, {a}) is not in the row's eligible set",
            )  # fmt: skip


def row_terms_frame(df: Any, plan: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per metric, the (n, 6) per-row terms for these log rows under the plan's policy."""
    from ..schema import AgentRecord

    roster = {k: AgentRecord.from_json(v) for k, v in plan["roster"].items()}
    batch = Batch(df, roster, plan["channels"])
    policy = plan_policy(json.dumps(plan["policy"], sort_keys=True))
    probs = checked_probabilities(policy, batch)
    n = len(df)
    pi_f = np.empty(n)
    chans, agents = df["eligible_channels"].tolist(), df["eligible_agents"].tolist()
    logged_ch, logged_ag = df["channel"].tolist(), df["agent_id"].tolist()
    pi_flat = []
    for i in range(n):
        p = probs[i]
        k = next(
            j
            for j, (h, a) in enumerate(zip(chans[i], agents[i], strict=True))
            if h == logged_ch[i] and a == logged_ag[i]
        )
        pi_f[i] = p[k]
        pi_flat.append(p)
    pi_flat_arr = np.concatenate(pi_flat)
    features = RewardFeatures(plan["features"]["vocab"], plan["roster"], plan["channels"])
    fold = fold_of(df["contact_id"].tolist(), plan["folds"])
    x_f = features.factual(df)
    x_e, row_of = features.eligible(df)
    mu = np.asarray(df["propensity"].to_numpy(), dtype=float)
    out = {}
    for m in plan["metrics"]:
        models = plan["models"][m]
        q_f = predict(models, x_f, fold)
        q_e = predict(models, x_e, fold[row_of])
        dm = np.bincount(row_of, weights=pi_flat_arr * q_e, minlength=n)
        r = np.asarray(df[metric_column(m)].to_numpy(), dtype=float)
        out[m] = row_terms(r, mu, pi_f, dm, q_f, plan["switch_tau"])
    return out


def partial_sums(df: Any, plan: dict[str, Any]) -> Any:
    """Sums per (segment, metric, replicate) for one batch: the engines' shared function.

    Replicate -1 holds the 28 moment sums and, in ``wmax``, the largest
    importance weight; replicates 0..B-1 hold, in their first 7 values, the
    bootstrap weight sum and weighted sums of z.
    """
    import pandas as pd

    terms = row_terms_frame(df, plan)
    keys = segment_keys(df, plan["segments"])
    boot = (
        poisson_weights(df["contact_id"].tolist(), plan["bootstrap"], plan["seed"])
        if plan["bootstrap"]
        else None
    )
    groups: dict[str, list[int]] = {}
    for i, ks in enumerate(keys):
        for k in ks:
            groups.setdefault(k, []).append(i)
    rows = []
    for seg, idx_list in groups.items():
        idx = np.array(idx_list)
        for m, z in terms.items():
            zs = z[idx]
            rows.append((seg, m, -1, Moments.flat_rows(zs).sum(axis=0), float(zs[:, 0].max())))
            if boot is not None:
                b = boot[idx]
                sums = np.column_stack([b.sum(axis=0), b.T @ zs])
                pad = np.zeros((len(sums), N_VALUES))
                pad[:, :7] = sums
                rows.extend((seg, m, r, pad[r], 0.0) for r in range(len(sums)))
    values = np.array([r[3] for r in rows]) if rows else np.zeros((0, N_VALUES))
    frame = pd.DataFrame(values, columns=[f"v{i}" for i in range(N_VALUES)])
    frame["wmax"] = np.array([r[4] for r in rows], dtype=float)
    frame.insert(0, "rep", np.array([r[2] for r in rows], dtype=np.int64))
    frame.insert(0, "metric", [r[1] for r in rows])
    frame.insert(0, "seg", [r[0] for r in rows])
    return frame
