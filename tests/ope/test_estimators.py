"""Estimators: hand-checked values, associative sums, and parity with Open Bandit Pipeline 0.5.7."""

from __future__ import annotations

import numpy as np
import pytest

from frontdesk.ope.estimators import (
    ESTIMATORS,
    Moments,
    estimate,
    estimate_arrays,
    poisson_weights,
    row_terms,
)


def random_bandit(n: int = 400, k: int = 5, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    behaviour = rng.dirichlet(np.ones(k), size=n)
    action = np.array([rng.choice(k, p=p) for p in behaviour])
    pscore = behaviour[np.arange(n), action]
    target = rng.dirichlet(np.ones(k) * 0.5, size=n)
    q_hat = rng.random((n, k))
    reward = rng.binomial(1, 0.3 + 0.4 * q_hat[np.arange(n), action]).astype(float)
    return reward, action, pscore, target, q_hat


def test_hand_computed_three_rows() -> None:
    # w = pi/mu = (0.5/0.5, 1/0.25, 0/0.5) = (1, 4, 0)
    z = row_terms(
        reward=np.array([1.0, 0.0, 1.0]),
        pscore=np.array([0.5, 0.25, 0.5]),
        pi_factual=np.array([0.5, 1.0, 0.0]),
        dm=np.array([0.6, 0.2, 0.4]),
        q_factual=np.array([0.5, 0.5, 0.5]),
        switch_tau=2.0,
    )
    est = estimate(Moments.of(z))
    assert est["ipw"]["value"] == pytest.approx((1 * 1 + 4 * 0 + 0) / 3)
    assert est["snipw"]["value"] == pytest.approx(1 / 5)
    assert est["dm"]["value"] == pytest.approx(1.2 / 3)
    # u = w (r - q) = (0.5, -2, 0); switch keeps w <= 2 only: (0.5, 0, 0)
    assert est["dr"]["value"] == pytest.approx((1.2 - 1.5) / 3)
    assert est["switch-dr"]["value"] == pytest.approx((1.2 + 0.5) / 3)
    assert est["sndr"]["value"] == pytest.approx(1.2 / 3 + (-1.5) / 5)
    assert est["ess"] == pytest.approx(25 / 17)  # (sum w)^2 / sum w^2
    assert est["logged"] == pytest.approx(2 / 3)
    lo, hi = est["ipw"]["ci"]
    assert lo < est["ipw"]["value"] < hi


def test_sums_merge_in_any_order() -> None:
    reward, action, pscore, target, q_hat = random_bandit()
    n = len(reward)
    rows = np.arange(n)
    z = row_terms(
        reward, pscore, target[rows, action], (target * q_hat).sum(1), q_hat[rows, action]
    )
    whole = estimate(Moments.of(z))
    parts = [Moments.of(z[i : i + 37]) for i in range(0, n, 37)]
    merged = parts[0]
    for p in reversed(parts[1:]):
        merged = merged.merge(p)
    flat = Moments.from_flat(Moments.flat_rows(z).sum(axis=0))
    for m in (merged, flat):
        got = estimate(m)
        for e in ESTIMATORS:
            assert got[e]["value"] == pytest.approx(whole[e]["value"], rel=1e-12)
            assert got[e]["ci"] == pytest.approx(whole[e]["ci"], rel=1e-12)


def test_normal_interval_matches_the_plain_formula_for_ipw() -> None:
    reward, action, pscore, target, q_hat = random_bandit(seed=3)
    terms = target[np.arange(len(reward)), action] / pscore * reward
    se = terms.std(ddof=1) / np.sqrt(len(terms))
    est = estimate_arrays(reward, action, pscore, target, q_hat, ["ipw"])
    assert est["ipw"]["ci"] == pytest.approx(
        [terms.mean() - 1.96 * se, terms.mean() + 1.96 * se], rel=1e-3
    )


def test_poisson_weights_are_deterministic_and_mean_one() -> None:
    ids = [f"c{i}" for i in range(4000)]
    a, b = poisson_weights(ids, 50, seed=1), poisson_weights(ids, 50, seed=1)
    assert (a == b).all() and a.shape == (4000, 50)
    assert a.mean() == pytest.approx(1.0, abs=0.02) and a.var() == pytest.approx(1.0, abs=0.05)
    assert not (poisson_weights(ids, 50, seed=2) == a).all()


def test_bootstrap_interval_is_close_to_the_normal_one() -> None:
    reward, action, pscore, target, q_hat = random_bandit(n=3000, seed=5)
    rows = np.arange(len(reward))
    z = row_terms(
        reward, pscore, target[rows, action], (target * q_hat).sum(1), q_hat[rows, action]
    )
    w = poisson_weights([f"r{i}" for i in rows], 300)
    est = estimate(Moments.of(z, w), ["dr"])["dr"]
    width_normal = est["ci"][1] - est["ci"][0]
    width_boot = est["bootstrap_ci"][1] - est["bootstrap_ci"][0]
    assert 0.7 < width_boot / width_normal < 1.3


def test_same_numbers_as_open_bandit_pipeline() -> None:
    obp = pytest.importorskip(
        "obp.ope",
        reason="obp 0.5.7 not installed (pip install --no-deps --ignore-requires-python obp==0.5.7 pyyaml seaborn)",
    )
    reward, action, pscore, target, q_hat = random_bandit(n=500, k=6, seed=11)
    dist = target[:, :, None]
    q3 = q_hat[:, :, None]
    tau = 3.0
    ours = estimate_arrays(reward, action, pscore, target, q_hat, switch_tau=tau)
    theirs = {
        "ipw": obp.InverseProbabilityWeighting().estimate_policy_value(
            reward=reward, action=action, pscore=pscore, action_dist=dist
        ),
        "snipw": obp.SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(
            reward=reward, action=action, pscore=pscore, action_dist=dist
        ),
        "dm": obp.DirectMethod().estimate_policy_value(
            action_dist=dist, estimated_rewards_by_reg_model=q3
        ),
        "dr": obp.DoublyRobust().estimate_policy_value(
            reward=reward, action=action, pscore=pscore, action_dist=dist,
            estimated_rewards_by_reg_model=q3,
        ),
        "sndr": obp.SelfNormalizedDoublyRobust().estimate_policy_value(
            reward=reward, action=action, pscore=pscore, action_dist=dist,
            estimated_rewards_by_reg_model=q3,
        ),
        "switch-dr": obp.SwitchDoublyRobust(lambda_=tau).estimate_policy_value(
            reward=reward, action=action, pscore=pscore, action_dist=dist,
            estimated_rewards_by_reg_model=q3,
        ),
    }  # fmt: skip
    for name, value in theirs.items():
        assert ours[name]["value"] == pytest.approx(value, rel=1e-9, abs=1e-12), name
