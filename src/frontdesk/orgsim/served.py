"""Simulated days played through a served router: the decision loop without real users.

``play_days`` runs the simulator's epoch loop (``org.run_day``) with a
dispatcher that asks a router service for each waiting contact, oldest
first, giving it the agents with their current load and the contact's wait;
the hidden outcome model then answers, and each realised outcome is handed
to ``report`` keyed by the decision id the service returned. So a served
policy is logged, its outcomes come back, and its value on those contacts
is known exactly (``truth.true_values`` with the simulator's world).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .dispatch import Decision, Epoch
from .org import run_day
from .world import CHANNELS, World

RouteFn = Callable[[dict[str, Any], list[dict[str, Any]], float], dict[str, Any]]
"""(conversation JSON, agents as {agent_id, load}, wait in minutes) -> the /v1/route answer."""


class ServedDispatcher:
    """Decides each waiting contact by calling ``route``; remembers the decision ids."""

    def __init__(self, route: RouteFn) -> None:
        self.route = route
        self.decision_ids: dict[int, str] = {}

    def start_day(self, day: int) -> None:
        self.decision_ids = {}

    def decide(self, epoch: Epoch) -> list[Decision]:
        world, contacts = epoch.world, epoch.contacts
        ag = world.agents
        free = epoch.free
        made = []
        for row, wait in zip(epoch.rows, epoch.waits, strict=True):
            if not (free > 0).any():
                break
            agents = [
                {"agent_id": aid, "load": int(ag.capacity[j] - free[j])}
                for j, aid in enumerate(ag.ids)
            ]
            answer = self.route(world.conversation(contacts, int(row)), agents, float(wait))
            if answer.get("waiting"):
                continue
            a = ag.ids.index(answer["agent_id"])
            free[a] -= 1
            self.decision_ids[int(row)] = answer["decision_id"]
            made.append(
                Decision(
                    int(row),
                    CHANNELS.index(answer["channel"]),
                    a,
                    float(answer["propensity"]),
                    np.zeros(0, int),
                    np.zeros(0, int),
                    np.zeros(0),
                )  # fmt: skip
            )
        return made


def play_days(
    world: World,
    days: list[int],
    per_day: int,
    route: RouteFn,
    report: Callable[[list[dict[str, Any]]], None],
) -> int:
    """Play ``days`` through ``route``; ``report`` gets each day's outcomes. Returns contacts."""
    dispatcher = ServedDispatcher(route)
    n = 0
    for day in days:
        run = run_day(world, world.contacts(day, per_day), dispatcher, day)
        r = run.realised
        report(
            [
                {
                    "decision_id": did,
                    "resolved": bool(r["resolved"][row]),
                    "csat": int(r["csat"][row]),
                    "handle_time": float(r["handle_time"][row]),
                    "cost": float(r["cost"][row]),
                    "topic": world.topics[
                        world.workflow_topic[world.query_workflow[int(run.contacts.query[row])]]
                    ],
                    "workflow_used": world.workflow_ids[
                        world.query_workflow[int(run.contacts.query[row])]
                    ],
                }  # fmt: skip
                for row, did in dispatcher.decision_ids.items()
            ]
        )
        n += len(run.contacts)
    return n
