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

from ..errors import DataError
from ..routing.features import AgentRecord
from ..routing.logs import DecisionLogs
from .offpolicy import OVERALL, segment_keys
from .org import check_roster, contacts_per_day, read_pool
from .policies import Batch, load_policy
from .world import CHANNELS, Contacts, OrgConfig, World


def true_values(
    logs_dir: str | Path,
    policy: Any,
    metrics: Sequence[str] = ("resolution", "handle_time", "csat", "cost", "utility"),
    segments: Sequence[str] = ("segment",),
) -> dict[str, dict[str, float]]:
    """``{metric: {segment or OVERALL: true mean}}`` over every logged row.

    Only for logs written by ``simulate org`` (their ``world.json`` has the
    config the hidden outcome model is rebuilt from); every row's text is
    checked against the rebuilt world's contact, so logs of another world, or
    of another version of the simulator, are refused rather than mis-scored.
    """
    logs = DecisionLogs.open(logs_dir)
    config = OrgConfig.from_json(logs.config)
    pool_file = Path(logs_dir) / "pool.parquet"
    if not pool_file.is_file():
        raise DataError(str(pool_file), None, None, "missing: the contact pool")
    world = World(config, read_pool(Path(logs_dir)))
    check_roster(world, logs)
    per_day = contacts_per_day(logs.meta)
    target = load_policy(policy)
    roster = {a.agent_id: a for a in logs.roster()}
    agent_pos = {a: i for i, a in enumerate(world.agents.ids)}
    df = logs.read().to_pandas()
    batch = Batch(df, roster, logs.channels)
    # Flatten every row's eligible pairs, then one vectorised call per day.
    ids = df["contact_id"].tolist()
    day, idx = _parse_ids(ids, logs)
    days = {int(d): world.contacts(int(d), per_day) for d in np.unique(day)}
    _check_texts(world, days, day, idx, df["text"].tolist(), logs)
    probs = target.probabilities(batch)
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


def _parse_ids(ids: list[str], logs: DecisionLogs) -> tuple[np.ndarray, np.ndarray]:
    """Day and position within the day from simulator ids ``cDDD-NNNNN``."""
    day, idx = np.empty(len(ids), dtype=int), np.empty(len(ids), dtype=int)
    for i, c in enumerate(ids):
        head, _, tail = str(c).partition("-")
        if not (head[:1] == "c" and head[1:].isdigit() and tail.isdigit()):
            raise DataError(
                str(logs.root), None, "contact_id",
                f"{c!r} is not a simulator contact id (cDDD-NNNNN)",
            )  # fmt: skip
        day[i], idx[i] = int(head[1:]), int(tail)
    return day, idx


def _check_texts(
    world: World,
    days: dict[int, Contacts],
    day: np.ndarray,
    idx: np.ndarray,
    texts: list[str],
    logs: DecisionLogs,
) -> None:
    for d, j, text in zip(day.tolist(), idx.tolist(), texts, strict=True):
        contacts = days[d]
        if j >= len(contacts) or world.conversation(contacts, j)["text"] != text:
            raise DataError(
                str(logs.root), None, "text",
                f"contact c{d:03d}-{j:05d} is not the one the rebuilt world has: these logs "
                "were not written by this world (or by another version of the simulator)",
            )  # fmt: skip


__all__ = ["OVERALL", "AgentRecord", "true_values"]
