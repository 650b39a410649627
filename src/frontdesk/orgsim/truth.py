"""The true value of a target policy on simulated logs, from the hidden outcome model.

For logs written by ``simulate org`` the world is rebuilt from ``world.json``,
and each logged contact (with the eligible set and wait it had) is scored
exactly: ``sum_a pi(a|x) E[metric | x, a]``. This is the estimand of the
off-policy estimators (the policy's value on the logged contexts), so it is
what their intervals are checked against.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FrontdeskError
from ..logs import DecisionLogs
from ..ope.kernel import OVERALL, segment_keys
from ..ope.offpolicy import METRICS, check_request
from ..ope.policies import Batch, checked_probabilities, load_policy
from ..schema import AgentRecord
from .org import check_texts, contacts_per_day, parse_contact_id, rebuild_world
from .world import CHANNELS


def true_values(
    logs_dir: str | Path,
    policy: Any,
    metrics: Sequence[str] = ("resolution", "handle_time", "csat", "cost", "utility"),
    segments: Sequence[str] = ("segment",),
    world_logs: str | Path | None = None,
) -> dict[str, dict[str, float]]:
    """``{metric: {segment or OVERALL: true mean}}`` over every logged row.

    Only for contacts of a simulated organisation: logs written by ``simulate
    org`` (their ``world.json`` has the config the hidden outcome model is
    rebuilt from), or logs of its contacts served elsewhere (``logs join`` of a
    decision log) with ``world_logs`` the simulator's folder. Every row's text
    is checked against the rebuilt world's contact, so logs of another world,
    or of another version of the simulator, are refused rather than mis-scored.
    """
    # the outcome's name `resolved` is taken for `resolution`; each metric once
    metrics = list(dict.fromkeys("resolution" if m == "resolved" else m for m in metrics))
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise FrontdeskError(
            f"unknown metric {unknown[0]!r}; use {', '.join(METRICS)}"
            if unknown
            else f"no metric asked for; use some of {', '.join(METRICS)}"
        )
    logs = DecisionLogs.open(logs_dir)
    source = DecisionLogs.open(world_logs) if world_logs is not None else logs
    world = rebuild_world(source)
    per_day = contacts_per_day(source.meta)
    target = load_policy(policy)
    for w in check_request(logs, target, segments, policy):
        warnings.warn(w, stacklevel=2)
    roster = {a.agent_id: a for a in logs.roster()}
    agent_pos = {a: i for i, a in enumerate(world.agents.ids)}
    df = logs.read().to_pandas()
    batch = Batch(df, roster, logs.channels)
    ids = df["contact_id"].tolist()
    days = check_texts(world, logs, per_day, ids, df["text"].tolist())
    parsed = [parse_contact_id(c, logs) for c in ids]
    day = np.array([d for d, _ in parsed], dtype=int)
    idx = np.array([j for _, j in parsed], dtype=int)
    probs = checked_probabilities(target, batch)
    # Flatten every row's eligible pairs, then one vectorised call per day.
    waits = np.asarray(df["wait_min"].to_numpy(), dtype=float)
    row_of, ch, ag = [], [], []
    for i in range(len(df)):
        chans, ags = batch.eligible(i)
        row_of.extend([i] * len(chans))
        ch.extend(CHANNELS.index(h) for h in chans)
        ag.extend(agent_pos[a] for a in ags)
    row_of_arr, ch_arr, ag_arr = np.array(row_of), np.array(ch), np.array(ag)
    pi = np.concatenate([np.asarray(p, dtype=float) for p in probs])
    values = {m: np.zeros(len(df)) for m in metrics}
    for d, contacts in days.items():
        sel = day[row_of_arr] == d
        r = row_of_arr[sel]
        exp = world.expected(contacts, idx[r], ch_arr[sel], ag_arr[sel], waits[r])
        for m in metrics:
            values[m] += np.bincount(r, weights=pi[sel] * exp[m], minlength=len(df))
    keys = segment_keys(df, segments)
    out: dict[str, dict[str, float]] = {}
    for m in metrics:
        groups: dict[str, list[float]] = {}
        for v, ks in zip(values[m], keys, strict=True):
            for k in ks:
                groups.setdefault(k, []).append(v)
        out[m] = {k: float(np.mean(v)) for k, v in groups.items()}
    return out


__all__ = ["OVERALL", "AgentRecord", "true_values"]
