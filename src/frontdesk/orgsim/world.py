"""The simulated support organisation: users, agents, channels and a hidden outcome model.

Generative model (every draw comes from ``numpy`` generators seeded by
``OrgConfig.seed``, so one seed gives one world):

*Workflows.* Each workflow of the catalog has a **topic** (its last tag, or
"general") and a hidden **complexity** ``k_w ~ Beta(2, 3)``. Contacts are
real question texts drawn from a pool of labelled queries (BANKING77, CLINC150
or the demo catalog's examples); 20 % of contacts open with the real question
and then send a vague follow-up ("any update on this?"), so the latest text
alone does not say what the contact is about.

*Users.* Segment (individual 55 %, small_business 25 %, enterprise 12 %,
platform 8 %), country (which fixes the language), plan (by segment),
tenure in days (exponential, longer for business segments) and prior
contacts (Poisson). Each segment leans towards some topics.

*Agents.* A channel set (phone, chat, email or a mix), languages (English
plus, for some, the language of a market), a capacity (concurrent contacts,
1 to 3), a cost per minute, and a **true skill** per topic in [0, 1]. The
organisation only knows a **listed skill**: the true skill plus noise,
rounded to a tenth (certification levels are coarse and out of date).

*Channels.* Cost per contact and a base handle time (phone 2.5 / 8 min,
chat 0.8 / 12 min with half the agent's attention, email 0.4 / 16 min
with half the agent's attention).

*Hidden outcome model*, for contact ``c`` (workflow ``w``, topic ``t``,
segment ``g``) on channel ``h`` with agent ``a``, after waiting ``m`` minutes::

    logit P(resolved) = 0.3 + 2.4 (s_at - 0.5) - 2.2 k_w x_h + S[g, h] + T[t, h]
                        + 0.25 log1p(tenure_years) - 0.08 prior_contacts
    E[handle_time]    = base_h (0.6 + 0.9 k_w) (1.35 - 0.7 s_at) G[g]
    q_res / q_unres   = sigmoid(1.2 + P[g, h] - 0.02 m) / sigmoid(-0.9 + P[g, h] - 0.02 m)
    CSAT              = 1 + Binomial(4, q_res if resolved else q_unres)
    cost              = cost_h + cpm_a * share_h * handle_time

where ``s_at`` is the agent's true skill on the topic, ``x_h`` how badly the
channel copes with complexity (phone 0.55, chat 1.0, email 1.35), ``S`` the
segment/channel fit (enterprise users resolve better on the phone, platform
developers by email), ``T`` a random topic/channel fit, ``G`` a segment's
handle-time factor and ``P`` the segment's channel preference for CSAT. The
realised handle time is the expectation times a per-contact log-normal noise
of mean 1. Utility is ``w_res resolved + w_csat (csat - 1) / 4 - w_time
handle_time / 60 - w_cost cost / 10``, weights from :class:`UtilityWeights`.
Expectations are exact (CSAT's binomial keeps them linear), so the true
value of any decision can be computed, not only sampled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..utility import UtilityWeights

CHANNELS: tuple[str, ...] = ("phone", "chat", "email")
SEGMENTS: tuple[str, ...] = ("individual", "small_business", "enterprise", "platform")
SEGMENT_SHARE = (0.55, 0.25, 0.12, 0.08)
COUNTRIES: dict[str, tuple[str, float]] = {
    "US": ("en", 0.30),
    "GB": ("en", 0.20),
    "IE": ("en", 0.05),
    "DE": ("de", 0.15),
    "FR": ("fr", 0.12),
    "ES": ("es", 0.10),
    "BR": ("pt", 0.08),
}
PLANS = {
    "individual": (("free", 0.6), ("standard", 0.4)),
    "small_business": (("standard", 0.5), ("plus", 0.5)),
    "enterprise": (("enterprise", 1.0),),
    "platform": (("platform", 1.0),),
}
CHANNEL_COST = {"phone": 2.5, "chat": 0.8, "email": 0.4}
CHANNEL_BASE_MINUTES = {"phone": 8.0, "chat": 12.0, "email": 16.0}
CHANNEL_AGENT_SHARE = {"phone": 1.0, "chat": 0.5, "email": 0.5}
CHANNEL_COMPLEXITY = {"phone": 0.55, "chat": 1.0, "email": 1.35}
SEGMENT_CHANNEL_FIT = {  # S[g, h], logit points
    "individual": (-0.15, 0.20, -0.05),
    "small_business": (0.10, 0.10, -0.10),
    "enterprise": (0.55, 0.00, -0.30),
    "platform": (0.15, -0.10, 0.35),
}
SEGMENT_CSAT_PREF = {  # P[g, h]
    "individual": (-0.20, 0.25, 0.00),
    "small_business": (0.10, 0.15, -0.10),
    "enterprise": (0.45, 0.00, -0.40),
    "platform": (-0.10, 0.05, 0.30),
}
SEGMENT_HANDLE_FACTOR = {
    "individual": 0.9,
    "small_business": 1.0,
    "enterprise": 1.3,
    "platform": 1.2,
}
FOLLOW_UPS = (
    "any update on this?",
    "it's been two weeks now",
    "yes please, can you check?",
    "still waiting on this one",
    "is there anything you can do?",
    "hello? I asked about this yesterday",
)
FOLLOW_UP_SHARE = 0.2
WORK_START_MIN, WORK_END_MIN = 8 * 60, 20 * 60


@dataclass(frozen=True)
class OrgConfig:
    """Everything that fixes a simulated organisation (and so its logs)."""

    seed: int = 0
    contacts: int = 20_000  # over all logged days
    agents: int = 40
    days: int = 10
    users: int | None = None  # default: contacts // 3
    temperature: float = 0.5  # the logging policy's softmax temperature
    epoch_minutes: int = 5  # waiting contacts are decided in batches this often
    weights: UtilityWeights = field(default_factory=UtilityWeights)

    @property
    def contacts_per_day(self) -> int:
        return max(1, round(self.contacts / self.days))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrgConfig:
        data = dict(data)
        data["weights"] = UtilityWeights(**data.get("weights", {}))
        return cls(**data)


@dataclass(frozen=True)
class QueryPool:
    """Real question texts with their workflow, from which contacts are drawn."""

    texts: list[str]
    workflow_ids: list[str]
    topics: dict[str, str]  # workflow id -> topic

    def __post_init__(self) -> None:
        if not self.texts:
            raise ValueError("the query pool is empty")
        if len(self.texts) != len(self.workflow_ids):
            raise ValueError("texts and workflow_ids differ in length")


@dataclass
class Agents:
    """The roster, as columns (one row per agent)."""

    ids: list[str]
    channels: np.ndarray  # (m, 3) bool
    languages: list[frozenset[str]]
    capacity: np.ndarray  # (m,) int
    cost_per_minute: np.ndarray  # (m,)
    listed_skill: np.ndarray  # (m, n_topics), what the organisation knows
    true_skill: np.ndarray  # (m, n_topics), hidden

    def __len__(self) -> int:
        return len(self.ids)

    def public_rows(self, topics: Sequence[str]) -> list[dict[str, Any]]:
        """The roster as the organisation knows it (no true skills)."""
        return [
            {
                "agent_id": aid,
                "channels": [h for j, h in enumerate(CHANNELS) if self.channels[i, j]],
                "languages": sorted(self.languages[i]),
                "capacity": int(self.capacity[i]),
                "cost_per_minute": float(self.cost_per_minute[i]),
                "skills": {t: float(self.listed_skill[i, k]) for k, t in enumerate(topics)},
            }
            for i, aid in enumerate(self.ids)
        ]


@dataclass
class Contacts:
    """A stream of contacts (columns), sorted by arrival time."""

    ids: list[str]
    arrival: np.ndarray  # minutes since the start of day 0
    day: np.ndarray
    user: np.ndarray  # user index
    query: np.ndarray  # pool index
    follow_up: list[str | None]  # vague latest text; the real question is then the earlier turn
    noise: np.ndarray  # (n, 6) uniforms: resolved, 4 CSAT trials, handle-time noise

    def __len__(self) -> int:
        return len(self.ids)


class World:
    """A seeded organisation and its hidden outcome model."""

    def __init__(self, config: OrgConfig, pool: QueryPool) -> None:
        self.config = config
        self.pool = pool
        root = np.random.SeedSequence([config.seed, 7])
        rng = np.random.default_rng(root.spawn(1)[0])
        self.topics = sorted(set(pool.topics.get(w, "general") for w in pool.workflow_ids))
        topic_idx = {t: i for i, t in enumerate(self.topics)}
        self.workflow_ids = sorted(set(pool.workflow_ids))
        wf_idx = {w: i for i, w in enumerate(self.workflow_ids)}
        self.query_workflow = np.array([wf_idx[w] for w in pool.workflow_ids])
        self.workflow_topic = np.array(
            [topic_idx[pool.topics.get(w, "general")] for w in self.workflow_ids]
        )
        self.query_topic = self.workflow_topic[self.query_workflow]
        self.complexity = rng.beta(2.0, 3.0, size=len(self.workflow_ids))
        self.workflow_popularity = rng.lognormal(0.0, 0.8, size=len(self.workflow_ids))
        self.topic_channel_fit = rng.normal(0.0, 0.3, size=(len(self.topics), len(CHANNELS)))
        self.segment_topic_lean = rng.lognormal(0.0, 0.6, size=(len(SEGMENTS), len(self.topics)))
        self._make_users(rng, config.users or max(10, config.contacts // 3))
        self.agents = self._make_agents(rng, config.agents)

    # -- population -------------------------------------------------------------------------------

    def _make_users(self, rng: np.random.Generator, n: int) -> None:
        self.user_segment = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_SHARE)
        countries = list(COUNTRIES)
        shares = np.array([COUNTRIES[c][1] for c in countries])
        self.user_country = [countries[i] for i in rng.choice(len(countries), n, p=shares)]
        self.user_language = [COUNTRIES[c][0] for c in self.user_country]
        self.user_plan = []
        for g in self.user_segment:
            names, probs = zip(*PLANS[SEGMENTS[g]], strict=True)
            self.user_plan.append(names[rng.choice(len(names), p=probs)])
        scale = np.where(self.user_segment >= 2, 900.0, 500.0)
        self.user_tenure_days = rng.exponential(scale).astype(int)
        self.user_prior_contacts = rng.poisson(1.2, size=n)
        self.user_activity = rng.lognormal(0.0, 0.7, size=n)

    def _make_agents(self, rng: np.random.Generator, m: int) -> Agents:
        if m < 4:
            raise ValueError("the organisation needs at least 4 agents")
        patterns = [
            ((1, 0, 0), 0.25),
            ((0, 1, 0), 0.15),
            ((0, 0, 1), 0.10),
            ((0, 1, 1), 0.20),
            ((1, 1, 0), 0.15),
            ((1, 1, 1), 0.15),
        ]
        chans = np.array([p for p, _ in patterns])
        picks = rng.choice(len(patterns), size=m, p=[w for _, w in patterns])
        picks[:4] = [0, 1, 2, 5]  # every channel is served, and one agent does all three
        channels = chans[picks].astype(bool)
        # Every market language is spoken by enough agents, one of them on all channels.
        languages: list[set[str]] = [{"en"} for _ in range(m)]
        others = sorted({lang for lang, _ in COUNTRIES.values()} - {"en"})
        for lang in others:
            share = sum(s for lang2, s in COUNTRIES.values() if lang2 == lang)
            want = max(2, math.ceil(m * share * 1.6))
            full = [i for i in range(m) if channels[i].all()]
            chosen = set(rng.choice(m, size=min(m, want), replace=False).tolist())
            if full and not any(i in chosen for i in full):
                chosen.add(int(rng.choice(full)))
            for i in chosen:
                languages[i].add(lang)
        capacity = np.where(channels[:, 1] | channels[:, 2], rng.integers(2, 4, size=m), 1)
        seniority = rng.beta(2.0, 2.0, size=m)
        base = 0.25 + 0.5 * seniority
        true_skill = np.clip(base[:, None] + rng.normal(0, 0.18, (m, len(self.topics))), 0, 1)
        listed = np.clip(true_skill + rng.normal(0, 0.2, true_skill.shape), 0, 1)
        listed = np.round(listed, 1)
        return Agents(
            ids=[f"agent-{i:03d}" for i in range(m)],
            channels=channels,
            languages=[frozenset(s) for s in languages],
            capacity=capacity.astype(int),
            cost_per_minute=np.round(0.5 + 0.8 * seniority, 2),
            listed_skill=listed,
            true_skill=true_skill,
        )

    # -- contacts ---------------------------------------------------------------------------------

    def contacts(self, day: int, n: int | None = None) -> Contacts:
        """Day ``day``'s contacts; the same (seed, day) always gives the same contacts."""
        n = self.config.contacts_per_day if n is None else n
        rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, 11, day]))
        user_p = self.user_activity / self.user_activity.sum()
        users = rng.choice(len(user_p), size=n, p=user_p)
        # The query: a workflow by popularity and the user's segment's lean, then one of its texts.
        queries = np.empty(n, dtype=int)
        by_wf: dict[int, np.ndarray] = {}
        for w in range(len(self.workflow_ids)):
            by_wf[w] = np.flatnonzero(self.query_workflow == w)
        for g in range(len(SEGMENTS)):
            rows = np.flatnonzero(self.user_segment[users] == g)
            if not len(rows):
                continue
            p = self.workflow_popularity * self.segment_topic_lean[g, self.workflow_topic]
            wfs = rng.choice(len(p), size=len(rows), p=p / p.sum())
            for r, w in zip(rows, wfs, strict=True):
                queries[r] = by_wf[w][rng.integers(len(by_wf[w]))]
        # Arrivals: working hours with a midday peak.
        minute = np.clip(rng.normal(13.5 * 60, 2.6 * 60, size=n), WORK_START_MIN, WORK_END_MIN - 1)
        arrival = day * 1440 + minute
        follow = rng.random(n) < FOLLOW_UP_SHARE
        follow_text = [FOLLOW_UPS[i] for i in rng.integers(len(FOLLOW_UPS), size=n)]
        noise = rng.random((n, 6))
        order = np.argsort(arrival, kind="stable")
        return Contacts(
            ids=[f"c{day:03d}-{i:05d}" for i in range(n)],
            arrival=arrival[order],
            day=np.full(n, day),
            user=users[order],
            query=queries[order],
            follow_up=[follow_text[i] if follow[i] else None for i in order],
            noise=noise[order],
        )

    def conversation(self, contacts: Contacts, i: int) -> dict[str, Any]:
        """Contact ``i`` as a frontdesk Conversation (JSON form)."""
        u = int(contacts.user[i])
        question = self.pool.texts[int(contacts.query[i])]
        follow = contacts.follow_up[i]
        turns = [{"role": "user", "text": question}] if follow else []
        return {
            "id": contacts.ids[i],
            "text": follow or question,
            "context": {"turns": turns, "user": self.profile(u)},
        }

    def profile(self, u: int) -> dict[str, Any]:
        return {
            "segment": SEGMENTS[int(self.user_segment[u])],
            "country": self.user_country[u],
            "plan": self.user_plan[u],
            "tenure_days": int(self.user_tenure_days[u]),
            "language": self.user_language[u],
            "prior_contacts": int(self.user_prior_contacts[u]),
        }

    # -- the hidden outcome model -----------------------------------------------------------------

    def expected(
        self,
        contacts: Contacts,
        rows: np.ndarray,
        channel: np.ndarray,
        agent: np.ndarray,
        wait: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Exact expected outcomes of putting contacts ``rows`` on (channel, agent), vectorised."""
        rows, channel, agent = np.asarray(rows), np.asarray(channel), np.asarray(agent)
        wait = np.broadcast_to(np.asarray(wait, dtype=float), rows.shape)
        u = contacts.user[rows]
        g = self.user_segment[u]
        wf = self.query_workflow[contacts.query[rows]]
        t = self.workflow_topic[wf]
        k = self.complexity[wf]
        skill = self.agents.true_skill[agent, t]
        x = np.array([CHANNEL_COMPLEXITY[h] for h in CHANNELS])[channel]
        seg_fit = np.array([SEGMENT_CHANNEL_FIT[s] for s in SEGMENTS])[g, channel]
        logit = (
            0.3
            + 2.4 * (skill - 0.5)
            - 2.2 * k * x
            + seg_fit
            + self.topic_channel_fit[t, channel]
            + 0.25 * np.log1p(self.user_tenure_days[u] / 365.0)
            - 0.08 * self.user_prior_contacts[u]
        )
        p_res = _sigmoid(logit)
        base = np.array([CHANNEL_BASE_MINUTES[h] for h in CHANNELS])[channel]
        g_factor = np.array([SEGMENT_HANDLE_FACTOR[s] for s in SEGMENTS])[g]
        handle = base * (0.6 + 0.9 * k) * (1.35 - 0.7 * skill) * g_factor
        pref = np.array([SEGMENT_CSAT_PREF[s] for s in SEGMENTS])[g, channel] - 0.02 * wait
        q_res, q_unres = _sigmoid(1.2 + pref), _sigmoid(-0.9 + pref)
        csat = 1.0 + 4.0 * (p_res * q_res + (1 - p_res) * q_unres)
        share = np.array([CHANNEL_AGENT_SHARE[h] for h in CHANNELS])[channel]
        cost = np.array([CHANNEL_COST[h] for h in CHANNELS])[channel] + (
            self.agents.cost_per_minute[agent] * share * handle
        )
        w = self.config.weights
        return {
            "resolution": p_res,
            "handle_time": handle,
            "csat": csat,
            "cost": cost,
            "utility": w.utility(p_res, csat, handle, cost),
            "_q_res": q_res,
            "_q_unres": q_unres,
        }

    def realise(
        self, contacts: Contacts, rows: np.ndarray, expected: dict[str, np.ndarray], channel: Any
    ) -> dict[str, np.ndarray]:
        """Observed outcomes from the contacts' own random numbers (common across policies)."""
        noise = contacts.noise[np.asarray(rows)]
        resolved = noise[:, 0] < expected["resolution"]
        q = np.where(resolved, expected["_q_res"], expected["_q_unres"])
        csat = 1 + (noise[:, 1:5] < q[:, None]).sum(axis=1)
        # log-normal with mean 1 (sigma 0.35), from the sixth uniform
        z = _norm_ppf(np.clip(noise[:, 5], 1e-9, 1 - 1e-9))
        handle = expected["handle_time"] * np.exp(0.35 * z - 0.35**2 / 2)
        fixed = _channel_cost(channel)
        cost = fixed + (expected["cost"] - fixed) * handle / expected["handle_time"]
        w = self.config.weights
        return {
            "resolved": resolved,
            "csat": csat.astype(int),
            "handle_time": handle,
            "cost": cost,
            "utility": w.utility(resolved.astype(float), csat, handle, cost),
        }

    def public_json(self) -> dict[str, Any]:
        """What the organisation publishes with its logs: config, channels, topics (no hidden truth)."""
        return {
            "config": self.config.to_json(),
            "topics": self.topics,
            "channels": {
                h: {
                    "cost": CHANNEL_COST[h],
                    "base_minutes": CHANNEL_BASE_MINUTES[h],
                    "agent_share": CHANNEL_AGENT_SHARE[h],
                }
                for h in CHANNELS
            },
        }


def _channel_cost(channel: Any) -> np.ndarray:
    return np.array([CHANNEL_COST[h] for h in CHANNELS])[np.asarray(channel)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _norm_ppf(p: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    return ndtri(p)


def topic_of(tags: Sequence[str]) -> str:
    """A workflow's topic (queue): its most specific, last tag."""
    return tags[-1] if tags else "general"


def pool_from_catalog(workflows: Sequence[Any], queries: Sequence[Any] | None = None) -> QueryPool:
    """Contacts' texts: labelled queries when given (null labels skipped), else the examples."""
    topics = {w.id: topic_of(w.tags) for w in workflows}
    if queries is not None:
        rows = [(q.text, q.label) for q in queries if q.label is not None]
    else:
        rows = [(e, w.id) for w in workflows for e in w.examples]
    if not rows:
        raise ValueError("no labelled texts to draw contacts from")
    texts, ids = zip(*rows, strict=True)
    return QueryPool(list(texts), list(ids), topics)
