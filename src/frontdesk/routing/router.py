"""Router: the best channel and agent for a contact, from the same encoded context.

A decision scores every eligible (channel, agent) pair: the channel model
predicts the contact's outcomes on each channel, the agent matcher moves
them to each agent (by listed skill, and by the agent's own record where the
logs have one), and the predictions become one utility (resolution, CSAT,
handle time and cost, weights configurable). Agents at capacity, or who do
not serve the channel or speak the user's language, are not eligible.

What the router does not know it leaves to the rule it replaces
(:mod:`.rule`): a channel other than the rule's must win by more than
``channel_margin_z`` standard errors of the channel model's estimate of the
difference (the spread of its fold models), and a segment of contacts where
training's held-out check (:mod:`.guard`) found the router no better than
the rule is routed by the rule (``policy`` per segment in ``router.json``).
``route`` decides one contact; ``route_many`` decides a batch jointly under
capacity (:mod:`.assignment`): contacts the rule routes first, in order of
waiting, then the rest by Hungarian assignment with a congestion price and
priority for those who waited longer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ROUTER, read_manifest, recover
from ..encoding import ContextEncoder, EncodedContexts
from ..errors import DataError, FrontdeskError, IndexIntegrityError
from ..limits import check_finite
from ..loaders import check_queries
from ..schema import AgentRecord, Conversation, UserProfile
from ..utility import UtilityWeights
from .agent_matcher import AgentMatcher, listed_mix
from .assignment import DEFAULT_AGING, PairValues, assign_guarded
from .channel_model import ChannelModel
from .features import ContextFeaturizer
from .rule import rule_score

POLICY_ROUTER, POLICY_RULE = "router", "rule-fallback"  # how a segment is routed

CONFIG_FILE = "router.json"
KIND = ROUTER
CHANNEL_MARGIN_Z = 1.0
"""Standard errors by which a channel must beat the rule's channel (the default)."""
MISSING_SEGMENT = "missing"  # a contact without a segment, as the off-policy segments name it
OUTCOMES = ("resolution", "handle_time", "csat", "cost")


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
    eligible_channels: list[str] = field(default_factory=list, repr=False)
    eligible_agents: list[str] = field(default_factory=list, repr=False)
    eligible_propensities: list[float] = field(default_factory=list, repr=False)
    topic: str | None = None
    # Which decided: the router's model, or the rule it defers to for this contact's segment.
    policy: str = POLICY_ROUTER

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


AgentLike = str | Mapping[str, Any] | AgentRecord


class Router:
    """Channel model + agent matcher + the roster they were trained with, and where to defer."""

    def __init__(
        self,
        featurizer: ContextFeaturizer,
        channel_model: ChannelModel,
        matcher: AgentMatcher,
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
        self.roster = {a.agent_id: a for a in roster}
        self.config = config
        self.channels: list[str] = list(config["channels"])
        self.channel_info: dict[str, dict[str, float]] = config["channel_info"]
        self.encoder = encoder or ContextEncoder(config.get("encoder_path"))
        self.weights = weights or RoutingWeights(**config.get("weights", {}))
        self.temperature = temperature
        self.congestion_price = float(config.get("congestion_price", 0.1))
        self.aging = float(config.get("aging", DEFAULT_AGING))
        self.channel_margin_z = float(config.get("channel_margin_z", CHANNEL_MARGIN_Z))
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
        recover(root)  # a write a crash interrupted is finished first
        read_manifest(root, kind=KIND)
        config = json.loads((root / CONFIG_FILE).read_text())
        if "channel_folds" not in config:
            raise IndexIntegrityError(
                f"{root}: a router of an earlier format (no channel_folds in {CONFIG_FILE}); "
                "train it again with `frontdesk train router`"
            )
        featurizer = ContextFeaturizer.load(root)
        names = featurizer.names
        channel_model = ChannelModel.load(
            root, names, config["channels"], int(config["channel_folds"])
        )
        matcher = AgentMatcher.load(root)
        roster = [AgentRecord.from_json(a) for a in json.loads((root / "agents.json").read_text())]
        if encoder is None:
            encoder = ContextEncoder(_encoder_path(config))
        if encoder.fingerprint != config["encoder_sha256"]:
            raise IndexIntegrityError(
                f"{root}: trained with encoder {config['encoder_sha256'][:12]}…, "
                f"given {encoder.fingerprint[:12]}… ({encoder.path}); use the same encoder"
            )
        return cls(
            featurizer, channel_model, matcher, roster, config,
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

    @property
    def policy(self) -> dict[str, Any]:
        """Where this router decides: ``{"overall": ..., "segments": {segment: ...}}``,
        each ``router`` or ``rule-fallback`` (a router without a held-out check: router)."""
        return self.config.get("policy") or {"overall": POLICY_ROUTER, "segments": {}}

    def policy_for(self, segment: str | None) -> str:
        """The policy for a contact of ``segment``: the rule where training's check found the
        router no better, or had no evidence for the segment."""
        pol = self.policy
        if pol.get("overall") == POLICY_RULE:
            return POLICY_RULE
        segments = pol.get("segments") or {}
        if not segments:
            return POLICY_ROUTER
        return segments.get(segment if segment is not None else MISSING_SEGMENT, POLICY_RULE)

    def score_pairs(
        self,
        encoded: EncodedContexts,
        waits: np.ndarray,
        pairs: Sequence[tuple[np.ndarray, np.ndarray]],
        agents: Sequence[AgentRecord],
        context: tuple[np.ndarray, np.ndarray] | None = None,
        segments: Sequence[str | None] | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """Per contact and eligible (channel, agent) pair: predicted outcomes, ``utility``,
        the rule's score ``rule``, the ``evidence`` (logged contacts of that agent on the
        contact's topics) and ``value``, what the router ranks the pairs by: the utility less
        the channel margin, or for a contact of a segment it defers on, the rule's score.
        ``segments`` default to the encoded profiles' own."""
        ctx, topic_p = context if context is not None else self.context(encoded, waits)
        sizes = [len(ch) for ch, _ in pairs]
        if sum(sizes) == 0:
            return [_empty() for _ in pairs]
        if segments is None:
            profiles = encoded.profiles or [UserProfile()] * len(sizes)
            segments = [p.segment for p in profiles]
        n, k = len(sizes), len(self.channels)
        rows = np.repeat(np.arange(n), sizes)
        ch = np.concatenate([c for c, _ in pairs]).astype(int)
        ag = np.concatenate([a for _, a in pairs]).astype(int)
        # The channel model on every channel of every contact, fold by fold (K, n, k).
        folds = self.channel_model.predict_folds(
            np.repeat(ctx, k, axis=0), np.tile(np.arange(k), n)
        )
        folds = {t: v.reshape(len(v), n, k) for t, v in folds.items()}
        base = {t: v.mean(axis=0)[rows, ch] for t, v in folds.items()}
        skills = np.array(
            [[a.skills.get(t, np.nan) for t in self.featurizer.topics] for a in agents],
            dtype=float,
        ).reshape(len(agents), len(self.featurizer.topics))
        tp = topic_p[rows]
        listed = listed_mix(skills[ag], tp)
        cpm = np.array([agents[j].cost_per_minute for j in ag], dtype=float)
        known = np.array([self.matcher.index.get(agents[j].agent_id, -1) for j in ag], dtype=int)
        pred = self.matcher.adjust(base, ch, known, tp, listed, cpm)
        pred["cost"] = self._cost(ch, cpm, pred["handle_time"])
        pred["utility"] = self.weights.utility(
            pred["resolution"], pred["csat"], pred["handle_time"], pred["cost"]
        )
        bounds = np.cumsum(sizes)[:-1]
        rule = np.concatenate(
            [
                rule_score(lst, seg or "", [self.channels[h] for h in c], cp)
                for lst, seg, c, cp in zip(
                    np.split(listed, bounds), segments, np.split(ch, bounds),
                    np.split(cpm, bounds), strict=True,
                )
            ]
        )  # fmt: skip
        rule_channel = np.array(
            [c[int(np.argmax(r))] if len(c) else 0 for c, r in zip(
                np.split(ch, bounds), np.split(rule, bounds), strict=True)]
        )  # fmt: skip
        margin = self._channel_margin(folds, rows, ch, rule_channel)
        value = pred["utility"] - margin
        defer = np.array([self.policy_for(seg) == POLICY_RULE for seg in segments])
        pred["value"] = np.where(defer[rows], rule, value)
        pred["rule"] = rule
        pred["evidence"] = self.matcher.evidence_for(known, tp)
        return [
            {key: part for key, part in zip(pred, parts, strict=True)}
            for parts in zip(*(np.split(v, bounds) for v in pred.values()), strict=True)
        ]

    def _channel_margin(
        self, folds: dict[str, np.ndarray], rows: np.ndarray, ch: np.ndarray, rule_ch: np.ndarray
    ) -> np.ndarray:
        """``channel_margin_z`` grouped-jackknife standard errors of the channel model's
        utility difference between each pair's channel and its contact's rule channel (0 on
        the rule's channel): the evidence a channel needs to displace the rule's."""
        if self.channel_margin_z <= 0:
            return np.zeros(len(ch))
        n_folds = len(folds["resolution"])
        k = len(self.channels)
        cpm = np.array([self._mean_cpm(h) for h in self.channels])
        hk = np.broadcast_to(np.arange(k), folds["handle_time"].shape)
        cost = self._cost(hk.reshape(-1), cpm[hk.reshape(-1)], folds["handle_time"].reshape(-1))
        u = self.weights.utility(
            folds["resolution"], folds["csat"], folds["handle_time"], cost.reshape(hk.shape)
        )  # (K, n, k)
        d = u[:, rows, ch] - u[:, rows, rule_ch[rows]]
        se = np.sqrt((n_folds - 1) / n_folds * ((d - d.mean(axis=0)) ** 2).sum(axis=0))
        return np.where(ch == rule_ch[rows], 0.0, self.channel_margin_z * se)

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
        conv = check_queries([conversation], "conversation")[0]
        check_finite(wait_min, "route", "wait_min")
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
        segment = conv.user.segment
        scored = self.score_pairs(enc, waits, [(ch, ag)], recs, context, [segment])[0]
        probs = self.probabilities(scored["value"])
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
            expected={k: float(scored[k][pick]) for k in OUTCOMES},
            policy=self.policy_for(segment),
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

        Contacts of segments the router defers on take the rule's pick first, the
        longest waiting first; the others are assigned jointly on the slots left
        (:func:`~frontdesk.routing.assignment.assign_guarded`). Without
        exploration that decides (propensity 1). With ``epsilon`` > 0 (or a
        router ``temperature`` > 0) contacts are then taken in order, each among
        the pairs still free after those before it: with probability
        ``epsilon`` a uniformly random pair, else the assignment's (or softmax at
        ``temperature`` over the pairs' values). Each
        decision records the pairs it was drawn from and their exact
        probabilities, which off-policy evaluation needs.
        """
        if not 0.0 <= epsilon <= 1.0:
            raise FrontdeskError(f"epsilon must be in [0, 1], not {epsilon!r}")
        convs = check_queries(conversations, "conversations")
        enc = encoded if encoded is not None else self.encode(convs)
        agents = self.resolve_agents(available_agents)
        recs = [r for r, _ in agents]
        w = np.zeros(len(convs)) if waits is None else np.asarray(waits, dtype=float)
        if w.shape != (len(convs),) or not np.isfinite(w).all():
            raise DataError("route_many", None, "waits", "must be one finite number per contact")
        pairs = [self.eligible(c.user, agents) for c in convs]
        context = self.context(enc, w)
        segments = [c.user.segment for c in convs]
        scored = self.score_pairs(enc, w, pairs, recs, context, segments)
        policies = [self.policy_for(seg) for seg in segments]
        free = np.array([max(0, r.capacity - load) for r, load in agents])
        cap = np.array([r.capacity for r in recs])
        batch = [PairValues(ch, ag, s["value"]) for (ch, ag), s in zip(pairs, scored, strict=True)]
        deferred = np.array([p == POLICY_RULE for p in policies], dtype=bool)
        chosen = assign_guarded(batch, deferred, w, free, cap, self.congestion_price, self.aging)
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
            util, value = scored[i]["utility"], scored[i]["value"]
            if explore:
                avail = np.flatnonzero(left[ag] > 0)
                if not len(avail):  # an earlier contact's exploration took the last slot
                    out.append(None)
                    continue
                if self.temperature > 0:
                    probs = self.probabilities(value[avail])
                else:
                    # the assignment's pick, or the best pair left if exploration took it
                    at = np.flatnonzero(avail == pick[2])
                    best = int(at[0]) if len(at) else int(np.argmax(value[avail]))
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
                    expected={k: float(scored[i][k][p]) for k in OUTCOMES},
                    eligible_channels=[self.channels[int(c)] for c in ch[considered]],
                    eligible_agents=[recs[int(a)].agent_id for a in ag[considered]],
                    eligible_propensities=[float(q) for q in probs],
                    topic=topic_of[i],
                    policy=policies[i],
                )
            )
        return out


def _empty() -> dict[str, np.ndarray]:
    keys = ("resolution", "handle_time", "csat", "cost", "utility", "value", "rule", "evidence")
    return {k: np.zeros(0) for k in keys}


def _encoder_path(config: dict[str, Any]) -> str | None:
    """The encoder recorded at training: None for the bundled model, else its folder."""
    return None if config.get("encoder_bundled", True) else config.get("encoder_path")
