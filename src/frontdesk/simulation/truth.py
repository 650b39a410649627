"""The true value of a target policy on simulated logs, from the hidden outcome model.

For logs written by ``simulate org`` the world is rebuilt from ``world.json``,
and each logged contact (with the eligible set and wait it had) is scored
exactly: ``sum_a pi(a|x) E[metric | x, a]``. This is the estimand of the
off-policy estimators (the policy's value on the logged contexts), so it is
what their intervals are checked against.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..routing.features import AgentRecord
from ..routing.logs import DecisionLogs
from .offpolicy import OVERALL, segment_keys
from .org import read_pool
from .policies import Batch, load_policy
from .world import CHANNELS, OrgConfig, World


def true_values(
    logs_dir: str | Path,
    policy: Any,
    metrics: Sequence[str] = ("resolution", "handle_time", "csat", "cost", "utility"),
    segments: Sequence[str] = ("segment",),
) -> dict[str, dict[str, float]]:
    """``{metric: {segment or OVERALL: true mean}}`` over every logged row."""
    logs = DecisionLogs.open(logs_dir)
    world = World(OrgConfig.from_json(logs.config), read_pool(Path(logs_dir)))
    target = load_policy(policy)
    roster = {a.agent_id: a for a in logs.roster()}
    agent_pos = {a: i for i, a in enumerate(world.agents.ids)}
    df = logs.read().to_pandas()
    batch = Batch(df, roster, logs.channels)
    probs = target.probabilities(batch)
    # Flatten every row's eligible pairs, then one vectorised call per day.
    ids = df["contact_id"].tolist()
    day = np.array([int(c[1:4]) for c in ids])
    idx = np.array([int(c.split("-")[1]) for c in ids])
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
    for d in np.unique(day):
        sel = day[row_of_arr] == d
        contacts = world.contacts(int(d))
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
