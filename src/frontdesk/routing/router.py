"""Router: the best channel and agent for a contact, from the same encoded context.

A decision scores every eligible (channel, agent) pair: the channel model
predicts the contact's outcomes on each channel, the agent matcher predicts
them for each agent on that channel, and the predictions become one utility
(resolution, CSAT, handle time and cost, weights configurable). Agents at
capacity, or who do not serve the channel or speak the user's language, are
not eligible. ``route`` decides one contact; ``route_many`` decides a batch
jointly under capacity with a congestion price (Hungarian assignment).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ROUTER, read_manifest
from ..encoding import ContextEncoder, EncodedContexts
from ..errors import FrontdeskError, IndexIntegrityError
from ..schema import AgentRecord, Conversation, UserProfile
from ..utility import UtilityWeights
from .agent_matcher import AgentMatcher
from .assignment import PairValues, assign_batch
from .channel_model import ChannelModel
from .features import AgentHistory, ContextFeaturizer

CONFIG_FILE = "router.json"
KIND = ROUTER


class NoEligibleAgentError(FrontdeskError):
    """No available agent serves a channel in the user's language with a free slot."""


# The utility the router maximises (one definition, shared with the simulator and off-policy).
RoutingWeights = UtilityWeights


@dataclass
class RouteDecision:
    """Where one contact goes, why, and how likely this choice was under the router."""

    channel: str
    agent_id: str
    expected_utility: float
    scores_by_channel: dict[str, float]
    propensity: float
    expected: dict[str, float] = field(default_factory=dict)
    # What a decision log needs to judge any other policy on this decision later:
    # every pair considered, each one's probability under the router, its likely topic.
    eligible_channels: list[str] = field(default_factory=list)
    eligible_agents: list[str] = field(default_factory=list)
    eligible_propensities: list[float] = field(default_factory=list)
    topic: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


AgentLike = str | Mapping[str, Any] | AgentRecord


class Router:
    """Channel model + agent matcher + the roster they were trained with."""

    def __init__(
        self,
        featurizer: ContextFeaturizer,
        channel_model: ChannelModel,
        matcher: AgentMatcher,
        history: AgentHistory,
        roster: list[AgentRecord],
        config: dict[str, Any],
        *,
        encoder: ContextEncoder | None = None,
        weights: RoutingWeights | None = None,
        temperature: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        self.featurizer = featurizer
        self.channel_model = channel_model
        self.matcher = matcher
        self.history = history
        self.roster = {a.agent_id: a for a in roster}
        self.config = config
        self.channels: list[str] = list(config["channels"])
        self.channel_info: dict[str, dict[str, float]] = config["channel_info"]
        self.encoder = encoder or ContextEncoder(config.get("encoder_path"))
        self.weights = weights or RoutingWeights(**config.get("weights", {}))
        self.temperature = temperature
        self.congestion_price = float(config.get("congestion_price", 0.1))
        self._rng = np.random.default_rng(seed)

    # -- persistence ------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        encoder: ContextEncoder | None = None,
        weights: RoutingWeights | None = None,
        temperature: float = 0.0,
        seed: int | None = 0,
    ) -> Router:
        """Load and verify a router folder written by ``frontdesk train router``."""
        root = Path(path)
        read_manifest(root, kind=KIND)
        config = json.loads((root / CONFIG_FILE).read_text())
        featurizer = ContextFeaturizer.load(root)
        names = featurizer.names
        channel_model = ChannelModel.load(root, names, config["channels"])
        matcher = AgentMatcher.load(root, names)
        history = AgentHistory.load(root)
        roster = [AgentRecord.from_json(a) for a in json.loads((root / "agents.json").read_text())]
        if encoder is None:
            encoder = ContextEncoder(_encoder_path(config))
        if encoder.fingerprint != config["encoder_sha256"]:
            raise IndexIntegrityError(
                f"{root}: trained with encoder {config['encoder_sha256'][:12]}…, "
                f"given {encoder.fingerprint[:12]}… ({encoder.path}); use the same encoder"
            )
        return cls(
            featurizer, channel_model, matcher, history, roster, config,
            encoder=encoder, weights=weights, temperature=temperature, seed=seed,
        )  # fmt: skip

    # -- scoring ----------------------------------------------------------------------------------

    def encode(self, conversations: Sequence[Conversation | str]) -> EncodedContexts:
        return self.encoder.encode_contexts(conversations)

    def resolve_agents(self, agents: Sequence[AgentLike]) -> list[tuple[AgentRecord, int]]:
        """Agents as (record, current load); ids are looked up in the trained roster."""
        out = []
        seen: set[str] = set()
        for a in agents:
            if isinstance(a, AgentRecord):
                rec, load = a, 0
            else:
                if isinstance(a, str):
                    a = {"agent_id": a}
                if not isinstance(a, Mapping):
                    raise FrontdeskError(f"an available agent is an id or an object, not {a!r}")
                aid = str(a.get("agent_id", ""))
                load_raw = a.get("load", 0)
                if isinstance(load_raw, bool) or not isinstance(load_raw, int) or load_raw < 0:
                    raise FrontdeskError(f"agent {aid!r}: load must be an integer >= 0")
                load = load_raw
                if {"channels", "capacity"} <= set(a):
                    try:
                        rec = AgentRecord.from_json(a)
                    except (KeyError, TypeError, ValueError) as exc:
                        raise FrontdeskError(f"agent {aid!r}: bad record: {exc}") from None
                elif aid in self.roster:
                    rec = self.roster[aid]
                else:
                    raise FrontdeskError(
                        f"agent {aid!r}: not in the router's roster; give its channels, "
                        "languages, capacity, cost_per_minute and skills"
                    )
            if rec.agent_id in seen:  # two entries would double its free slots
                raise FrontdeskError(f"agent {rec.agent_id!r} is listed twice")
            seen.add(rec.agent_id)
            out.append((rec, load))
        return out

    def eligible(
        self, profile: UserProfile, agents: list[tuple[AgentRecord, int]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(channel index, agent index) pairs open to this user now."""
        lang = profile.language
        ch_idx, ag_idx = [], []
        for j, (rec, load) in enumerate(agents):
            if load >= rec.capacity or (lang and lang not in rec.languages):
                continue
            for h in rec.channels:
                if h in self.channels:
                    ch_idx.append(self.channels.index(h))
                    ag_idx.append(j)
        return np.array(ch_idx, dtype=int), np.array(ag_idx, dtype=int)

    def context(self, encoded: EncodedContexts, waits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Context features and topic probabilities of a batch (computed once, reused)."""
        topic_p = self.featurizer.topic_probs(encoded.vectors)
        ctx = self.featurizer.transform(
            encoded.vectors,
            encoded.profiles or [UserProfile()] * len(encoded),
            np.asarray(waits, dtype=np.float32),
            np.array([len(t) for t in encoded.turn_vectors]),
            topic_probs=topic_p,
        )
        return ctx, topic_p

    def score_pairs(
        self,
        encoded: EncodedContexts,
        waits: np.ndarray,
        pairs: Sequence[tuple[np.ndarray, np.ndarray]],
        agents: Sequence[AgentRecord],
        context: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """Predicted outcomes and utility of each (channel, agent) pair of each contact."""
        ctx, topic_p = context if context is not None else self.context(encoded, waits)
        clusters = topic_p.argmax(axis=1)
        sizes = [len(ch) for ch, _ in pairs]
        if sum(sizes) == 0:
            return [_empty() for _ in pairs]
        rows = np.repeat(np.arange(len(pairs)), sizes)
        ch = np.concatenate([c for c, _ in pairs]).astype(int)
        ag = np.concatenate([a for _, a in pairs]).astype(int)
        x, _ = self.pair_matrix(ctx, topic_p, clusters, rows, ch, agents, ag)
        pred = self.matcher.predict(x)
        cpm = np.array([agents[j].cost_per_minute for j in ag])
        pred["cost"] = self._cost(ch, cpm, pred["handle_time"])
        pred["utility"] = self.weights.utility(
            pred["resolution"], pred["csat"], pred["handle_time"], pred["cost"]
        )
        bounds = np.cumsum(sizes)[:-1]
        return [
            {k: part for k, part in zip(pred, parts, strict=True)}
            for parts in zip(*(np.split(v, bounds) for v in pred.values()), strict=True)
        ]

    def pair_matrix(
        self,
        ctx: np.ndarray,
        topic_p: np.ndarray,
        clusters: np.ndarray,
        rows: np.ndarray,
        ch: np.ndarray,
        agents: Sequence[AgentRecord],
        ag: np.ndarray,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The agent matcher's feature matrix (also used in training, so both agree)."""
        ch_pred = self.channel_model.predict(ctx[rows], ch)
        topics = self.featurizer.topics
        skills = np.array(
            [[a.skills.get(t, np.nan) for t in topics] for a in agents], dtype=np.float32
        ).reshape(len(agents), len(topics))
        s = skills[ag]
        tp = topic_p[rows]
        mix = np.nansum(s * tp, axis=1) / np.maximum(np.sum(np.where(np.isnan(s), 0, tp), 1), 1e-9)
        top = s[np.arange(len(ag)), tp.argmax(axis=1)]
        agent_cols = np.column_stack(
            [
                mix,
                top,
                [agents[j].cost_per_minute for j in ag],
                [agents[j].capacity for j in ag],
                [len(agents[j].channels) for j in ag],
            ]
        ).astype(np.float32)
        hist_idx = np.array([self.history.index.get(agents[j].agent_id, -1) for j in ag], dtype=int)
        hist = self.history.features(hist_idx, clusters[rows])
        x = np.hstack(
            [
                ctx[rows],
                ch[:, None].astype(np.float32),
                np.column_stack([ch_pred[t] for t in ("resolution", "handle_time", "csat")]),
                agent_cols,
                hist,
            ]
        ).astype(np.float32)
        return x, ch_pred

    def channel_scores(
        self,
        encoded: EncodedContexts,
        waits: np.ndarray,
        context: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[dict[str, float]]:
        """The channel model's utility per channel (at the roster's mean agent cost)."""
        ctx, _ = context if context is not None else self.context(encoded, waits)
        n, k = len(ctx), len(self.channels)
        ch = np.tile(np.arange(k), n)
        pred = self.channel_model.predict(np.repeat(ctx, k, axis=0), ch)
        cpm = np.array([self._mean_cpm(h) for h in self.channels])[ch]
        cost = self._cost(ch, cpm, pred["handle_time"])
        u = self.weights.utility(pred["resolution"], pred["csat"], pred["handle_time"], cost)
        return [
            {h: round(float(u[i * k + j]), 6) for j, h in enumerate(self.channels)}
            for i in range(n)
        ]

    def _mean_cpm(self, channel: str) -> float:
        vals = [a.cost_per_minute for a in self.roster.values() if channel in a.channels]
        return float(np.mean(vals)) if vals else 1.0

    def _cost(self, ch: np.ndarray, cpm: np.ndarray, handle: np.ndarray) -> np.ndarray:
        fixed = np.array([self.channel_info[h]["cost"] for h in self.channels])[ch]
        share = np.array([self.channel_info[h]["agent_share"] for h in self.channels])[ch]
        return fixed + cpm * share * handle

    def probabilities(self, utilities: np.ndarray) -> np.ndarray:
        """The router's policy over a contact's eligible pairs: argmax, or softmax at temperature."""
        if len(utilities) == 0:
            return utilities
        if self.temperature <= 0:
            p = np.zeros(len(utilities))
            p[int(np.argmax(utilities))] = 1.0
            return p
        z = (utilities - utilities.max()) / self.temperature
        return np.exp(z) / np.exp(z).sum()

    # -- decisions --------------------------------------------------------------------------------

    def route(
        self,
        conversation: Conversation | str,
        available_agents: Sequence[AgentLike],
        *,
        encoded: EncodedContexts | None = None,
        wait_min: float = 0.0,
    ) -> RouteDecision:
        """The best eligible (channel, agent) for one contact; raises if none is eligible."""
        conv = (
            conversation
            if isinstance(conversation, Conversation)
            else Conversation(text=conversation)
        )
        enc = encoded if encoded is not None else self.encode([conv])
        agents = self.resolve_agents(available_agents)
        ch, ag = self.eligible(conv.user, agents)
        if not len(ch):
            raise NoEligibleAgentError(
                f"no eligible agent for this contact (language {conv.user.language!r}): every "
                "available agent is at capacity, or serves no channel in that language"
            )
        recs = [r for r, _ in agents]
        waits = np.array([wait_min])
        context = self.context(enc, waits)
        scored = self.score_pairs(enc, waits, [(ch, ag)], recs, context)[0]
        probs = self.probabilities(scored["utility"])
        pick = (
            int(np.argmax(probs))
            if self.temperature <= 0
            else int(self._rng.choice(len(probs), p=probs))
        )
        return RouteDecision(
            channel=self.channels[int(ch[pick])],
            agent_id=recs[int(ag[pick])].agent_id,
            expected_utility=float(scored["utility"][pick]),
            scores_by_channel=self.channel_scores(enc, waits, context)[0],
            propensity=float(probs[pick]),
            expected={k: float(v[pick]) for k, v in scored.items() if k != "utility"},
        )

    def route_many(
        self,
        conversations: Sequence[Conversation | str],
        available_agents: Sequence[AgentLike],
        *,
        encoded: EncodedContexts | None = None,
        waits: Sequence[float] | None = None,
        epsilon: float = 0.0,
    ) -> list[RouteDecision | None]:
        """Decide a batch jointly within capacity; ``None`` for contacts that must wait.

        Without exploration the joint assignment decides (propensity 1). With
        ``epsilon`` > 0 (or a router ``temperature`` > 0) contacts are then
        taken in order, each among the pairs still free after those before it:
        with probability ``epsilon`` a uniformly random pair, else the
        assignment's (or softmax at ``temperature`` over utilities). Each
        decision records the pairs it was drawn from and their exact
        probabilities, which off-policy evaluation needs.
        """
        if not 0.0 <= epsilon <= 1.0:
            raise FrontdeskError(f"epsilon must be in [0, 1], not {epsilon!r}")
        convs = [c if isinstance(c, Conversation) else Conversation(text=c) for c in conversations]
        enc = encoded if encoded is not None else self.encode(convs)
        agents = self.resolve_agents(available_agents)
        recs = [r for r, _ in agents]
        w = np.zeros(len(convs)) if waits is None else np.asarray(waits, dtype=float)
        pairs = [self.eligible(c.user, agents) for c in convs]
        context = self.context(enc, w)
        scored = self.score_pairs(enc, w, pairs, recs, context)
        free = np.array([max(0, r.capacity - load) for r, load in agents])
        cap = np.array([r.capacity for r in recs])
        batch = [
            PairValues(ch, ag, s["utility"]) for (ch, ag), s in zip(pairs, scored, strict=True)
        ]
        chosen = assign_batch(batch, free, cap, self.congestion_price)
        by_channel = self.channel_scores(enc, w, context)
        topics = self.featurizer.topics
        topic_of = [topics[int(t)] if topics else None for t in context[1].argmax(axis=1)]
        explore = epsilon > 0 or self.temperature > 0
        left = free.copy()
        out: list[RouteDecision | None] = []
        for i, pick in enumerate(chosen):
            if pick is None:
                out.append(None)
                continue
            ch, ag = pairs[i]
            util = scored[i]["utility"]
            if explore:
                avail = np.flatnonzero(left[ag] > 0)
                if not len(avail):  # an earlier contact's exploration took the last slot
                    out.append(None)
                    continue
                if self.temperature > 0:
                    probs = self.probabilities(util[avail])
                else:
                    # the assignment's pick, or the best pair left if exploration took it
                    at = np.flatnonzero(avail == pick[2])
                    best = int(at[0]) if len(at) else int(np.argmax(util[avail]))
                    probs = np.full(len(avail), epsilon / len(avail))
                    probs[best] += 1.0 - epsilon
                j = int(self._rng.choice(len(avail), p=probs))
                p, considered = int(avail[j]), avail
            else:
                probs = (np.arange(len(ch)) == pick[2]).astype(float)
                p, j, considered = pick[2], pick[2], np.arange(len(ch))
            left[ag[p]] -= 1
            out.append(
                RouteDecision(
                    channel=self.channels[int(ch[p])],
                    agent_id=recs[int(ag[p])].agent_id,
                    expected_utility=float(util[p]),
                    scores_by_channel=by_channel[i],
                    propensity=float(probs[j]),
                    expected={k: float(v[p]) for k, v in scored[i].items() if k != "utility"},
                    eligible_channels=[self.channels[int(c)] for c in ch[considered]],
                    eligible_agents=[recs[int(a)].agent_id for a in ag[considered]],
                    eligible_propensities=[float(q) for q in probs],
                    topic=topic_of[i],
                )
            )
        return out


def _empty() -> dict[str, np.ndarray]:
    return {k: np.zeros(0) for k in ("resolution", "handle_time", "csat", "cost", "utility")}


def _encoder_path(config: dict[str, Any]) -> str | None:
    """The encoder recorded at training: None for the bundled model, else its folder."""
    return None if config.get("encoder_bundled", True) else config.get("encoder_path")
