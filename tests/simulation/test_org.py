"""The organisation simulator: determinism, the logs' contract, capacity, exact expectations."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from frontdesk.simulation import World, run_day, simulate_org
from frontdesk.simulation.dispatch import BatchDispatcher, SequentialDispatcher, oracle_values
from frontdesk.simulation.world import CHANNELS, SEGMENTS

from .conftest import SMALL


def test_same_seed_same_logs_other_seed_other_logs(tmp_path: Path, demo_pool) -> None:
    simulate_org(SMALL, demo_pool, tmp_path / "a")
    simulate_org(SMALL, demo_pool, tmp_path / "b")
    simulate_org(replace(SMALL, seed=6), demo_pool, tmp_path / "c")
    a = pq.read_table(tmp_path / "a" / "contacts-001.parquet")
    assert a.equals(pq.read_table(tmp_path / "b" / "contacts-001.parquet"))
    assert not a.equals(pq.read_table(tmp_path / "c" / "contacts-001.parquet"))
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == [
        "agents.json", "contacts-000.parquet", "contacts-001.parquet", "pool.parquet", "world.json",
    ]  # fmt: skip


def test_logged_propensities_and_eligible_sets(tmp_path: Path, demo_pool, small_world) -> None:
    simulate_org(SMALL, demo_pool, tmp_path / "logs")
    t = pq.read_table(tmp_path / "logs" / "contacts-000.parquet").to_pylist()
    assert len(t) == SMALL.contacts_per_day
    langs = {a: set(small_world.agents.languages[i]) for i, a in enumerate(small_world.agents.ids)}
    for row in t:
        pairs = list(zip(row["eligible_channels"], row["eligible_agents"], strict=True))
        probs = row["eligible_propensities"]
        assert abs(sum(probs) - 1.0) < 1e-9
        chosen = pairs.index((row["channel"], row["agent_id"]))
        assert row["propensity"] == pytest.approx(probs[chosen])
        assert 0 < row["propensity"] <= 1
        assert all(row["language"] in langs[a] for _, a in pairs)  # language is a hard constraint
        assert row["wait_min"] >= 0 and 1 <= row["csat"] <= 5
        assert row["segment"] in SEGMENTS and row["channel"] in CHANNELS
    # The logging policy explores: not every choice is the greedy one.
    assert min(r["propensity"] for r in t) < 0.5


def test_capacity_holds_for_every_policy(small_world: World) -> None:
    contacts = small_world.contacts(3)
    for disp in (
        SequentialDispatcher("random", None),
        SequentialDispatcher("rule", 0.0),
        BatchDispatcher("oracle", oracle_values),
    ):
        run = run_day(small_world, contacts, disp, 3)
        assert run.capacity_violations == 0
        assert run.max_load_ratio <= 1.0
        assert all(d is not None for d in run.decisions)  # every contact is eventually served
        assert (run.wait >= 0).all()


def test_oracle_beats_rule_beats_random(small_world: World) -> None:
    contacts = small_world.contacts(4)
    u = {
        name: float(run_day(small_world, contacts, d, 4).expected["utility"].mean())
        for name, d in {
            "random": SequentialDispatcher("random", None),
            "rule": SequentialDispatcher("rule", 0.0),
            "oracle": BatchDispatcher("oracle", oracle_values),
        }.items()
    }
    assert u["oracle"] > u["rule"] > u["random"]


def test_expected_outcomes_are_the_mean_of_realised_ones(small_world: World) -> None:
    # One contact on one (channel, agent), many independent draws of its random numbers.
    c = small_world.contacts(0, n=1)
    rng = np.random.default_rng(0)
    n = 40_000
    rows = np.zeros(n, dtype=int)
    ch, ag = np.full(n, 1), np.full(n, 2)
    exp = small_world.expected(c, rows, ch, ag, np.full(n, 4.0))
    c.noise = rng.random((n, 6))
    real = small_world.realise(c, np.arange(n), exp, ch)
    real["resolution"] = real.pop("resolved").astype(float)
    for key in ("resolution", "csat", "handle_time", "cost", "utility"):
        se = real[key].std() / np.sqrt(n)
        assert abs(real[key].mean() - exp[key][0]) < 4 * se, key  # unbiased, within 4 SE


def test_conversations_carry_profile_and_follow_ups(small_world: World) -> None:
    c = small_world.contacts(0)
    convs = [small_world.conversation(c, i) for i in range(len(c))]
    follow = [x for x in convs if x["context"]["turns"]]
    assert 0.1 < len(follow) / len(convs) < 0.3  # about 20 % send a vague follow-up
    assert all(x["context"]["turns"][0]["role"] == "user" for x in follow)
    assert set(convs[0]["context"]["user"]) == {
        "segment", "country", "plan", "tenure_days", "language", "prior_contacts",
    }  # fmt: skip


def test_world_needs_agents(demo_pool) -> None:
    with pytest.raises(ValueError, match="at least 4 agents"):
        World(replace(SMALL, agents=2), demo_pool)
