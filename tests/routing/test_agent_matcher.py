"""AgentMatcher: listed skills as the prior, an agent's own record only as far as evidence goes."""

from __future__ import annotations

import numpy as np
import pytest

from frontdesk.routing.agent_matcher import (
    AgentMatcher,
    listed_matrix,
    listed_mix,
    logging_means,
)
from frontdesk.routing.outcomes import TARGETS


def test_listed_mix_leaves_out_unlisted_topics() -> None:
    skills = np.array([[0.8, np.nan, 0.2], [np.nan, np.nan, np.nan]])
    probs = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    mix = listed_mix(skills[[0, 1]], probs)
    assert mix[0] == pytest.approx(0.8)  # the unlisted topic's half is renormalised away
    assert mix[1] == 0.5  # nothing listed at all: the middle
    full = listed_matrix(skills, probs)  # every agent on every contact
    assert full[0, 0] == pytest.approx(0.8)
    assert full[1, 0] == pytest.approx((0.2 * 0.8 + 0.5 * 0.2) / 0.7)
    assert full[1, 1] == 0.5
    assert full[[0, 1], [0, 0]] == pytest.approx(listed_mix(skills[[0, 0]], probs))


def test_logging_means_weigh_the_logged_channel_only() -> None:
    vals = [np.array([1.0, 0.0, 5.0]), np.array([1.0])]
    probs = [np.array([0.2, 0.6, 0.2]), np.array([1.0])]
    on = [np.array([True, True, False]), np.array([False])]
    got = logging_means(vals, probs, on)
    assert got[0] == pytest.approx(0.25) and np.isnan(got[1])


def _fit(rng: np.random.Generator, n: int, boost: float) -> tuple[AgentMatcher, np.ndarray]:
    """Three agents on two topics and one channel; agent 0 is ``boost`` better on topic 0
    than its listed skill says, everything else is noise around the listed-skill slope."""
    agents = rng.integers(0, 3, n)
    agents[agents == 2] = rng.integers(0, 2, (agents == 2).sum())  # agent 2 is never logged
    topics = rng.integers(0, 2, n)
    listed = rng.uniform(0, 1, n)
    effect = 0.3 * listed + boost * ((agents == 0) & (topics == 0))
    res = {t: effect + rng.normal(0, 0.5, n) for t in TARGETS}
    fold = np.arange(n) % 5
    zeros = np.zeros(n)
    m = AgentMatcher.fit(
        ["a0", "a1", "a2"], 1, agents, zeros.astype(int), topics, listed, zeros, zeros, zeros,
        res, fold, 2,
    )  # fmt: skip
    return m, agents


def test_evidence_moves_a_known_pair_and_leaves_the_unknown_at_the_prior() -> None:
    rng = np.random.default_rng(0)
    m, _ = _fit(rng, 6000, boost=0.4)
    base = {"resolution": np.full(4, 0.5), "handle_time": np.full(4, 10.0), "csat": np.full(4, 3.0)}
    probs = np.array([[1.0, 0.0]] * 4)
    listed = np.full(4, 0.5)
    out = m.adjust(base, np.zeros(4, int), np.array([0, 1, 2, -1]), probs, listed, np.zeros(4))
    res = out["csat"]
    assert res[0] - res[1] == pytest.approx(0.4, abs=0.1)  # agent 0 on topic 0: its record
    # Agent 2, never logged, and an agent the logs never had: exactly the listed-skill prior.
    assert res[2] == pytest.approx(res[3])
    assert m.evidence_for(np.array([0, 2, -1]), probs[:3]).tolist()[1:] == [0.0, 0.0]
    assert m.coef[TARGETS.index("csat"), 1] == pytest.approx(0.3, abs=0.08)  # the slope


def test_pure_noise_is_shrunk_away() -> None:
    rng = np.random.default_rng(1)
    m, _ = _fit(rng, 3000, boost=0.0)
    for t in TARGETS:
        j = TARGETS.index(t)
        assert np.abs(m.effects[j]).max() < 0.05, t  # no agent effect worth a decision
        assert min(m.strengths[t]) >= 16  # strong priors chosen on held-out folds


def test_round_trip(tmp_path) -> None:
    m, _ = _fit(np.random.default_rng(2), 500, boost=0.2)
    m.save(tmp_path)
    back = AgentMatcher.load(tmp_path)
    assert back.strengths == m.strengths and back.agent_ids == m.agent_ids
    for name in ("coef", "effects", "evidence", "centre"):
        assert np.array_equal(getattr(back, name), getattr(m, name))
    assert not list(tmp_path.glob("*.pkl"))
