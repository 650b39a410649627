"""AgentMatcher: how a given agent changes a contact's outcomes, shrunk to what the roster says.

The channel model predicts a contact's outcomes on a channel with the agents
the logs usually gave it. For a given agent, each outcome (resolution, log
handle time, CSAT) is moved by

* a **prior** from what the roster lists, learned across all agents: per
  channel, a slope on the agent's listed skill on the contact's topic mix and
  one on its cost per minute (a proxy for seniority), each measured against
  the logged agents' average, so it is the effect of choosing this agent over
  the usual one;
* an **evidence term** per (agent, topic): one skill, which moves the three
  outcomes in the proportions listed skill does (the prior's slopes), read
  from each contact's residuals weighted by their noise (handle time says
  more per contact than a resolved flag does); the agent's mean on that topic
  is shrunk towards its mean over all topics, itself shrunk towards zero.
  What that skill leaves unexplained gets the same treatment per outcome.
  Every prior strength (pseudo-contacts) is learned on held-out folds, so a
  pair the logs say little about keeps the listed skill's prediction, and an
  agent never seen on a topic gets exactly that.

Everything is a handful of arrays saved as ``.npy`` with a JSON header.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .outcomes import TARGETS

STRENGTHS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 1e9)
"""Candidate prior strengths (pseudo-contacts); 1e9 means the level adds nothing."""
RIDGE = 1e-3
CENTRE_STRENGTH = 5.0  # pseudo-rows pulling a (topic, channel) mean towards the channel's


def listed_mix(skills: np.ndarray, topic_probs: np.ndarray) -> np.ndarray:
    """Listed skill on a topic mix: ``skills`` (n, topics) may hold NaN (not listed), which
    is left out and the mix renormalised; an agent with none of the topics listed gets 0.5."""
    known = ~np.isnan(skills)
    w = np.where(known, topic_probs, 0.0)
    total = w.sum(axis=1)
    mix = (np.where(known, skills, 0.0) * w).sum(axis=1)
    return np.where(total > 1e-9, mix / np.maximum(total, 1e-9), 0.5)


def listed_matrix(skills: np.ndarray, topic_probs: np.ndarray) -> np.ndarray:
    """(contacts, agents) listed skill of every agent on each contact's topic mix, as
    :func:`listed_mix` computes it for one pair."""
    known = (~np.isnan(skills)).astype(float)
    num = topic_probs @ np.nan_to_num(skills, nan=0.0).T
    den = topic_probs @ known.T
    return np.where(den > 1e-9, num / np.maximum(den, 1e-9), 0.5)


class AgentMatcher:
    """Prior slopes + shrunk (agent, topic) residuals, per outcome."""

    def __init__(
        self,
        agent_ids: list[str],
        n_channels: int,
        coef: np.ndarray,  # (targets, 3 * n_channels)
        effects: np.ndarray,  # (targets, agents, topics): shrunk residual per (agent, topic)
        evidence: np.ndarray,  # (agents, topics): logged contacts per (agent, topic)
        centre: np.ndarray,  # (2, topics, channels): logged agents' mean listed skill and cpm
        strengths: dict[str, list[float]],
    ) -> None:
        self.agent_ids = agent_ids
        self.index = {a: i for i, a in enumerate(agent_ids)}
        self.n_channels = n_channels
        self.coef = coef
        self.effects = effects
        self.evidence = evidence
        self.centre = centre
        self.strengths = strengths

    # -- fitting ----------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        agent_ids: list[str],
        n_channels: int,
        agents: np.ndarray,  # (n,) roster index of the logged agent
        channels: np.ndarray,  # (n,) logged channel
        topics: np.ndarray,  # (n,) logged topic (disposition) index
        listed: np.ndarray,  # (n,) the logged agent's listed skill on the row's topic mix
        cpm: np.ndarray,  # (n,) the logged agent's cost per minute
        listed_mean: np.ndarray,  # (n,) the logging policy's expected listed skill there
        cpm_mean: np.ndarray,  # (n,) ... and expected cost per minute
        residuals: dict[str, np.ndarray],  # per target: outcome minus the channel model's
        fold: np.ndarray,
        n_topics: int,
    ) -> AgentMatcher:
        """Fit the prior slopes, then choose each level's strength on held-out folds."""
        m = len(agent_ids)
        x = _design(channels, listed - listed_mean, cpm - cpm_mean, n_channels)
        coef = np.zeros((len(TARGETS), x.shape[1]))
        effects = np.zeros((len(TARGETS), m, n_topics))
        strengths: dict[str, list[float]] = {}
        resid = np.zeros((len(agents), len(TARGETS)))
        for j, t in enumerate(TARGETS):
            r = residuals[t]
            coef[j] = np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ r)
            resid[:, j] = r - x @ coef[j]
        # One skill per (agent, topic) moves every outcome the way listed skill does: each
        # contact's residuals, weighted by their noise, measure it along that direction.
        w_h = np.bincount(channels, minlength=n_channels).astype(float)
        direction = coef[:, n_channels : 2 * n_channels] @ (w_h / max(w_h.sum(), 1.0))
        weight = np.linalg.inv(np.cov(resid.T) + 1e-9 * np.eye(len(TARGETS)))
        denom = float(direction @ weight @ direction)
        if denom > 1e-12 and len(agents) > 1:
            score = resid @ weight @ direction / denom
            k_agent, k_topic = _choose_strengths(score, agents, topics, fold, m, n_topics)
            strengths["skill"] = [k_agent, k_topic]
            skill = _shrunk(score, agents, topics, m, n_topics, k_agent, k_topic)
            effects += direction[:, None, None] * skill[None]
            resid = resid - np.outer(skill[agents, topics], direction)
        # What the one skill does not explain, per outcome (usually shrunk to nothing).
        for j, t in enumerate(TARGETS):
            e = resid[:, j]
            k_agent, k_topic = _choose_strengths(e, agents, topics, fold, m, n_topics)
            strengths[t] = [k_agent, k_topic]
            effects[j] += _shrunk(e, agents, topics, m, n_topics, k_agent, k_topic)
        evidence = np.zeros((m, n_topics))
        np.add.at(evidence, (agents, topics), 1.0)
        centre = np.stack(
            [
                _cell_means(listed_mean, topics, channels, n_topics, n_channels),
                _cell_means(cpm_mean, topics, channels, n_topics, n_channels),
            ]
        )
        return cls(list(agent_ids), n_channels, coef, effects, evidence, centre, strengths)

    # -- prediction -------------------------------------------------------------------------------

    def adjust(
        self,
        base: dict[str, np.ndarray],
        channels: np.ndarray,
        agents: np.ndarray,  # (p,) index into agent_ids, -1 for an agent the logs never had
        topic_probs: np.ndarray,  # (p, topics)
        listed: np.ndarray,  # (p,) listed skill on the topic mix
        cpm: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """The channel model's outcomes ``base`` moved to each pair's agent."""
        centre_l = (topic_probs * self.centre[0][:, channels].T).sum(axis=1)
        centre_c = (topic_probs * self.centre[1][:, channels].T).sum(axis=1)
        x = _design(channels, listed - centre_l, cpm - centre_c, self.n_channels)
        known = agents >= 0
        a = np.where(known, agents, 0)
        out = {}
        for j, t in enumerate(TARGETS):
            own = (self.effects[j][a] * topic_probs).sum(axis=1) * known
            shift = x @ self.coef[j] + own
            if t == "handle_time":
                out[t] = np.maximum(base[t] * np.exp(shift), 0.1)
            else:
                out[t] = base[t] + shift
        out["resolution"] = np.clip(out["resolution"], 0.0, 1.0)
        out["csat"] = np.clip(out["csat"], 1.0, 5.0)
        return out

    def evidence_for(self, agents: np.ndarray, topic_probs: np.ndarray) -> np.ndarray:
        """Logged contacts behind each pair's (agent, topic) estimate (0 for unknown agents)."""
        known = agents >= 0
        return (self.evidence[np.where(known, agents, 0)] * topic_probs).sum(axis=1) * known

    # -- persistence ------------------------------------------------------------------------------

    def save(self, root: Path) -> None:
        for name in ("coef", "effects", "evidence", "centre"):
            np.save(root / f"matcher_{name}.npy", getattr(self, name), allow_pickle=False)
        (root / "matcher.json").write_text(
            json.dumps(
                {
                    "agent_ids": self.agent_ids,
                    "n_channels": self.n_channels,
                    "targets": list(TARGETS),
                    "strengths": self.strengths,
                },
                indent=1,
            )
            + "\n"
        )

    @classmethod
    def load(cls, root: Path) -> AgentMatcher:
        meta = json.loads((root / "matcher.json").read_text())
        arrays = {
            n: np.load(root / f"matcher_{n}.npy", allow_pickle=False)
            for n in ("coef", "effects", "evidence", "centre")
        }
        return cls(
            meta["agent_ids"],
            int(meta["n_channels"]),
            arrays["coef"],
            arrays["effects"],
            arrays["evidence"],
            arrays["centre"],
            meta["strengths"],
        )

    def summary(self) -> dict[str, Any]:
        """Prior strengths chosen per outcome, and how much evidence the logs hold."""
        return {
            "strengths": self.strengths,
            "pairs_with_evidence": int((self.evidence > 0).sum()),
            "median_evidence": float(np.median(self.evidence[self.evidence > 0]))
            if (self.evidence > 0).any()
            else 0.0,
        }


def logging_means(
    values: Sequence[np.ndarray],
    propensities: Sequence[np.ndarray],
    on_channel: Sequence[np.ndarray],
) -> np.ndarray:
    """Per logged row, the logging policy's expected value of an agent attribute on the
    logged channel: ``values`` and ``propensities`` over the row's eligible pairs, and
    ``on_channel`` masks those on the channel it took (renormalised there). NaN for a row
    that logged no eligible pair on its channel."""
    out = np.full(len(values), np.nan)
    for i, (v, p, m) in enumerate(zip(values, propensities, on_channel, strict=True)):
        if len(v) != len(p) or not np.any(m):
            continue
        w = np.where(m, p, 0.0)
        out[i] = float((v * w).sum() / w.sum()) if w.sum() > 0 else float(v[m].mean())
    return out


def _design(channels: np.ndarray, d_listed: np.ndarray, d_cpm: np.ndarray, k: int) -> np.ndarray:
    """Per channel: an intercept, a slope on listed skill and one on cost per minute."""
    one = np.eye(k)[channels]
    return np.hstack([one, one * d_listed[:, None], one * d_cpm[:, None]])


def _shrunk(
    e: np.ndarray,
    agents: np.ndarray,
    topics: np.ndarray,
    m: int,
    k: int,
    k_agent: float,
    k_topic: float,
) -> np.ndarray:
    """(agents, topics) residual means, shrunk: topic level to agent level to zero."""
    s_a = np.bincount(agents, e, m)
    n_a = np.bincount(agents, None, m)
    b_a = s_a / (n_a + k_agent)
    key = agents * k + topics
    s_at = np.bincount(key, e, m * k).reshape(m, k)
    n_at = np.bincount(key, None, m * k).reshape(m, k)
    return (s_at + k_topic * b_a[:, None]) / (n_at + k_topic)


def _choose_strengths(
    e: np.ndarray, agents: np.ndarray, topics: np.ndarray, fold: np.ndarray, m: int, k: int
) -> tuple[float, float]:
    """The (agent, topic) strengths whose shrunk means best predict held-out residuals."""
    best = (np.inf, STRENGTHS[-1], STRENGTHS[-1])
    parts = [(fold != f, fold == f) for f in np.unique(fold)]
    for k_agent in STRENGTHS:
        for k_topic in STRENGTHS:
            err = 0.0
            for tr, te in parts:
                b = _shrunk(e[tr], agents[tr], topics[tr], m, k, k_agent, k_topic)
                err += float(((e[te] - b[agents[te], topics[te]]) ** 2).sum())
            if err < best[0] - 1e-12:
                best = (err, k_agent, k_topic)
    return float(best[1]), float(best[2])


def _cell_means(
    v: np.ndarray, topics: np.ndarray, channels: np.ndarray, n_topics: int, n_channels: int
) -> np.ndarray:
    """(topics, channels) means of ``v``, each shrunk towards its channel's mean."""
    out = np.zeros((n_topics, n_channels))
    overall = float(v.mean()) if len(v) else 0.0
    for h in range(n_channels):
        on = channels == h
        ch_mean = float(v[on].mean()) if on.any() else overall
        s = np.bincount(topics[on], v[on], n_topics)
        c = np.bincount(topics[on], None, n_topics)
        out[:, h] = (s + CENTRE_STRENGTH * ch_mean) / (c + CENTRE_STRENGTH)
    return out
