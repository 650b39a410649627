"""Capacity-aware assignment of a batch of waiting contacts to (channel, agent) pairs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_INELIGIBLE = 1e9


@dataclass(frozen=True)
class PairValues:
    """One waiting contact's eligible (channel, agent) pairs and the value of each."""

    channels: np.ndarray  # (p,) channel index
    agents: np.ndarray  # (p,) agent index
    values: np.ndarray  # (p,) higher is better


def assign_batch(
    batch: Sequence[PairValues],
    free: np.ndarray,
    capacity: np.ndarray,
    congestion_price: float = 0.1,
) -> list[tuple[int, int, int] | None]:
    """Best joint assignment of a batch, one slot per contact, within the agents' free slots.

    Each agent with ``f`` free slots offers ``f`` columns; taking an agent's
    ``j``-th busiest slot costs ``congestion_price * load_after / capacity``,
    so the optimum spreads work across agents instead of piling onto the
    single best one. It never holds a contact back while an eligible slot is
    free (there is no reservation for later arrivals). Solved exactly with the Hungarian
    method (``scipy.optimize.linear_sum_assignment``) over value minus price.
    Returns, per contact, ``(channel, agent, pair index)`` or ``None`` when it
    must wait (more contacts than eligible free slots).
    """
    from scipy.optimize import linear_sum_assignment

    if not batch:
        return []
    free = np.asarray(free, dtype=int)
    slot_agent: list[int] = []
    slot_price: list[float] = []
    for a in np.flatnonzero(free > 0):
        load = int(capacity[a]) - int(free[a])
        for j in range(int(free[a])):
            slot_agent.append(int(a))
            slot_price.append(congestion_price * (load + j + 1) / max(1, int(capacity[a])))
    if not slot_agent:
        return [None] * len(batch)
    slot_agent_arr = np.array(slot_agent)
    m = len(capacity)
    cost = np.full((len(batch), len(slot_agent)), _INELIGIBLE)
    best_pair = np.full((len(batch), m), -1)
    for i, pv in enumerate(batch):
        best = np.full(m, -np.inf)
        for p, (a, v) in enumerate(zip(pv.agents, pv.values, strict=True)):
            if free[a] > 0 and v > best[a]:
                best[a], best_pair[i, a] = v, p
        ok = np.isfinite(best[slot_agent_arr])
        cost[i, ok] = -(best[slot_agent_arr[ok]] - np.array(slot_price)[ok])
    rows, cols = linear_sum_assignment(cost)
    out: list[tuple[int, int, int] | None] = [None] * len(batch)
    for r, c in zip(rows, cols, strict=True):
        if cost[r, c] >= _INELIGIBLE / 2:
            continue
        a = slot_agent[c]
        p = int(best_pair[r, a])
        out[r] = (int(batch[r].channels[p]), a, p)
    return out
