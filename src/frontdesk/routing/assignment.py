"""Capacity-aware assignment of a batch of waiting contacts to (channel, agent) pairs.

``assign_batch`` solves one joint assignment; a contact's ``priority`` is added
to each of its pairs' values, so with ``aging`` (priority per minute waited)
a contact that has waited longer wins a scarce slot over a newer one of
similar value, and no group of contacts with low values waits for ever.
``assign_guarded`` takes contacts in order of waiting: those a router defers on
get their rule's pick, exactly as the rule decides them one by one, and the
others are assigned jointly in runs between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_INELIGIBLE = 1e9
DEFAULT_AGING = 0.05
"""Priority a waiting contact gains per minute, in utility (a minute is worth 0.05)."""


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
    priority: np.ndarray | None = None,
) -> list[tuple[int, int, int] | None]:
    """Best joint assignment of a batch, one slot per contact, within the agents' free slots.

    Each agent with ``f`` free slots offers ``f`` columns; taking an agent's
    ``j``-th busiest slot costs ``congestion_price * load_after / capacity``,
    so the optimum spreads work across agents instead of piling onto the
    single best one. It never holds a contact back while an eligible slot is
    free (there is no reservation for later arrivals). Solved exactly with the Hungarian
    method (``scipy.optimize.linear_sum_assignment``) over value minus price
    plus the contact's ``priority`` (which only decides who gets scarce slots).
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
    bonus = np.zeros(len(batch)) if priority is None else np.asarray(priority, dtype=float)
    for i, pv in enumerate(batch):
        best = np.full(m, -np.inf)
        for p, (a, v) in enumerate(zip(pv.agents, pv.values, strict=True)):
            if free[a] > 0 and v > best[a]:
                best[a], best_pair[i, a] = v, p
        ok = np.isfinite(best[slot_agent_arr])
        cost[i, ok] = -(best[slot_agent_arr[ok]] - np.array(slot_price)[ok] + bonus[i])
    rows, cols = linear_sum_assignment(cost)
    out: list[tuple[int, int, int] | None] = [None] * len(batch)
    for r, c in zip(rows, cols, strict=True):
        if cost[r, c] >= _INELIGIBLE / 2:
            continue
        a = slot_agent[c]
        p = int(best_pair[r, a])
        out[r] = (int(batch[r].channels[p]), a, p)
    return out


def assign_guarded(
    batch: Sequence[PairValues],
    deferred: np.ndarray,
    waits: np.ndarray,
    free: np.ndarray,
    capacity: np.ndarray,
    congestion_price: float = 0.1,
    aging: float = DEFAULT_AGING,
) -> list[tuple[int, int, int] | None]:
    """Contacts in order of waiting, the longest first: a deferred contact (its values are
    the rule's scores) takes its best pair with a free slot, as the rule does one by one;
    each run of the others between two deferred contacts is assigned jointly
    (:func:`assign_batch`, priority ``aging * wait``) on the slots left. With nothing
    deferred that is one joint assignment; deferring never moves a contact behind
    contacts that came after it. Returns, per contact, ``(channel, agent, pair index)`` or
    ``None`` (it waits)."""
    free = np.asarray(free, dtype=int).copy()
    waits = np.asarray(waits, dtype=float)
    deferred = np.asarray(deferred, dtype=bool)
    out: list[tuple[int, int, int] | None] = [None] * len(batch)
    order = sorted(range(len(batch)), key=lambda r: -waits[r])  # stable: ties keep their order
    run: list[int] = []

    def flush() -> None:
        if run:
            got = assign_batch(
                [batch[i] for i in run], free, capacity, congestion_price, aging * waits[run]
            )
            for i, pick in zip(run, got, strict=True):
                out[i] = pick
                if pick is not None:
                    free[pick[1]] -= 1
            run.clear()

    for i in order:
        if not deferred[i]:
            run.append(i)
            continue
        flush()
        pv = batch[i]
        if not len(pv.agents):
            continue
        open_ = free[pv.agents] > 0
        if not open_.any():
            continue
        p = int(np.argmax(np.where(open_, pv.values, -np.inf)))
        out[i] = (int(pv.channels[p]), int(pv.agents[p]), p)
        free[pv.agents[p]] -= 1
    flush()
    return out
