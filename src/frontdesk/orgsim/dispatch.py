"""Online decision policies for the organisation simulator: who takes each waiting contact.

Sequential policies (random, the skills-based rule with or without softmax
exploration) decide contacts one at a time in arrival order and know the
exact probability of each choice; batch policies (the oracle, frontdesk's
router) score every eligible (channel, agent) pair and solve one assignment
per epoch under capacity, in which a contact gains priority with every minute
it waits (aging), so no group of contacts is left waiting for ever. A batch
policy may defer some contacts to the rule: those take the rule's pick first,
oldest first, exactly as the rule decides them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..routing.assignment import DEFAULT_AGING, PairValues, assign_guarded
from ..routing.rule import rule_score
from .world import CHANNELS, SEGMENTS, Contacts, World


# The skills-based rule's channel preference per segment (phone, chat, email): what a
# support-operations team would write down, not what the hidden outcome model says.
@dataclass
class Epoch:
    """The waiting contacts at one decision time and the agents' free slots."""

    world: World
    contacts: Contacts
    rows: np.ndarray  # waiting contacts, oldest first
    now: float
    free: np.ndarray  # free slots per agent (a copy the policy may use up)

    @property
    def waits(self) -> np.ndarray:
        return self.now - self.contacts.arrival[self.rows]


@dataclass(frozen=True)
class Decision:
    row: int
    channel: int
    agent: int
    propensity: float
    eligible_channels: np.ndarray
    eligible_agents: np.ndarray
    eligible_probs: np.ndarray  # the policy's probability of each eligible pair


def eligible_pairs(world: World, contacts: Contacts, row: int, free: np.ndarray):  # type: ignore[no-untyped-def]
    """(channels, agents) a contact may go to now: channel served, language spoken, a free slot."""
    lang = world.user_language[int(contacts.user[row])]
    ag = world.agents
    ok_agent = (free > 0) & np.array([lang in langs for langs in ag.languages])
    a_idx, c_idx = np.nonzero(ag.channels & ok_agent[:, None])
    return c_idx, a_idx


def rule_scores(
    world: World, contacts: Contacts, row: int, ch: np.ndarray, ag: np.ndarray
) -> np.ndarray:
    """The rule's score of each eligible pair of a simulated contact."""
    topic = world.query_topic[int(contacts.query[row])]
    seg = SEGMENTS[int(world.user_segment[int(contacts.user[row])])]
    return rule_score(
        world.agents.listed_skill[ag, topic],
        seg,
        [CHANNELS[int(h)] for h in ch],
        world.agents.cost_per_minute[ag],
    )


class SequentialDispatcher:
    """Decides waiting contacts one by one; ``temperature`` 0 is greedy, ``None`` uniform."""

    def __init__(self, name: str, temperature: float | None, seed: int = 0) -> None:
        self.name = name
        self.temperature = temperature
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def start_day(self, day: int) -> None:
        self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, 13, day]))

    def decide(self, epoch: Epoch) -> list[Decision]:
        out = []
        for row in epoch.rows:
            ch, ag = eligible_pairs(epoch.world, epoch.contacts, int(row), epoch.free)
            if not len(ch):
                continue
            if self.temperature is None:
                probs = np.full(len(ch), 1.0 / len(ch))
            else:
                s = rule_scores(epoch.world, epoch.contacts, int(row), ch, ag)
                if self.temperature == 0:
                    probs = np.zeros(len(ch))
                    probs[int(np.argmax(s))] = 1.0
                else:
                    z = (s - s.max()) / self.temperature
                    probs = np.exp(z) / np.exp(z).sum()
            pick = (
                int(np.argmax(probs))
                if self.temperature == 0
                else self._rng.choice(len(ch), p=probs)
            )
            epoch.free[ag[pick]] -= 1
            out.append(
                Decision(int(row), int(ch[pick]), int(ag[pick]), float(probs[pick]), ch, ag, probs)
            )
        return out


ValueFn = Callable[[Epoch, list[tuple[np.ndarray, np.ndarray]]], list[np.ndarray]]
DeferFn = Callable[[Epoch], np.ndarray]


class BatchDispatcher:
    """Scores every eligible pair of every waiting contact, then one optimal assignment.

    ``defer`` marks the waiting contacts (``epoch.rows``) the rule decides instead;
    ``aging`` is the priority per minute waited (:mod:`frontdesk.routing.assignment`).
    """

    def __init__(
        self,
        name: str,
        values: ValueFn,
        congestion_price: float = 0.1,
        aging: float = DEFAULT_AGING,
        defer: DeferFn | None = None,
    ) -> None:
        self.name = name
        self.values = values
        self.congestion_price = congestion_price
        self.aging = aging
        self.defer = defer

    def start_day(self, day: int) -> None:
        pass

    def decide(self, epoch: Epoch) -> list[Decision]:
        pairs = [
            eligible_pairs(epoch.world, epoch.contacts, int(r), epoch.free) for r in epoch.rows
        ]
        keep = [i for i, (ch, _) in enumerate(pairs) if len(ch)]
        if not keep:
            return []
        sub = Epoch(epoch.world, epoch.contacts, epoch.rows[keep], epoch.now, epoch.free)
        kept_pairs = [pairs[i] for i in keep]
        deferred = (
            np.asarray(self.defer(sub), dtype=bool)
            if self.defer is not None
            else np.zeros(len(keep), dtype=bool)
        )
        values = self.values(sub, kept_pairs)
        for i in np.flatnonzero(deferred):
            ch, ag = kept_pairs[i]
            values[i] = rule_scores(epoch.world, epoch.contacts, int(sub.rows[i]), ch, ag)
        batch = [PairValues(ch, ag, v) for (ch, ag), v in zip(kept_pairs, values, strict=True)]
        chosen = assign_guarded(
            batch,
            deferred,
            sub.waits,
            epoch.free,
            epoch.world.agents.capacity,
            self.congestion_price,
            self.aging,
        )
        out = []
        for row, (ch, ag), pick in zip(sub.rows, kept_pairs, chosen, strict=True):
            if pick is None:
                continue
            c, a, p = pick
            probs = np.zeros(len(ch))
            probs[p] = 1.0
            epoch.free[a] -= 1
            out.append(Decision(int(row), c, a, 1.0, ch, ag, probs))
        return out


def oracle_values(epoch: Epoch, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """The true expected utility of each pair (only the simulator knows it)."""
    rows = np.concatenate(
        [np.full(len(ch), r) for r, (ch, _) in zip(epoch.rows, pairs, strict=True)]
    )
    waits = epoch.now - epoch.contacts.arrival[rows]
    ch = np.concatenate([c for c, _ in pairs])
    ag = np.concatenate([a for _, a in pairs])
    u = epoch.world.expected(epoch.contacts, rows, ch, ag, waits)["utility"]
    return np.split(u, np.cumsum([len(c) for c, _ in pairs])[:-1])


def baseline_dispatchers(seed: int, temperature: float) -> dict[str, SequentialDispatcher]:
    """Random eligible, the greedy rule, and the logging policy (rule + softmax exploration)."""
    return {
        "random": SequentialDispatcher("random", None, seed),
        "rule": SequentialDispatcher("rule", 0.0, seed),
        "logging": SequentialDispatcher("logging", temperature, seed),
    }


__all__ = [
    "CHANNELS",
    "BatchDispatcher",
    "Decision",
    "DeferFn",
    "Epoch",
    "SequentialDispatcher",
    "baseline_dispatchers",
    "eligible_pairs",
    "oracle_values",
    "rule_scores",
]
