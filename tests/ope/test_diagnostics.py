"""Diagnostics: each warning fires on the case it is for, and stays quiet on a sound estimate."""

from __future__ import annotations

import numpy as np

from frontdesk.ope.diagnostics import MAX_WEIGHT_SHARE, diagnose
from frontdesk.ope.estimators import Moments, row_terms

RNG = np.random.default_rng(0)
N = 2000


def entry(z: np.ndarray, low_ess: bool = False) -> tuple[dict, Moments]:
    return {"max_weight": float(z[:, 0].max()), "low_ess": low_ess}, Moments.of(z)


def result_of(z: np.ndarray, quality: dict | None = None, **kw) -> tuple[dict, dict]:  # type: ignore[type-arg]
    e, m = entry(z, **kw)
    result = {
        "utility": {"overall": e, "segments": {}},
        "meta": {"reward_model_quality": quality or {}},
    }
    return result, {("utility", "overall"): m}


def terms(reward_bias: float = 0.0, heavy: float | None = None) -> np.ndarray:
    """Rows logged and judged by the same policy (w = 1), a reward model off by ``reward_bias``."""
    r = RNG.binomial(1, 0.4, N).astype(float)
    mu = np.full(N, 0.5)
    pi = np.full(N, 0.5)
    if heavy is not None:
        mu[0] = 0.5 / heavy  # one row with weight `heavy`
    q = np.full(N, 0.4 + reward_bias)
    return row_terms(r, mu, pi, q, q)


def test_a_sound_estimate_has_no_warnings() -> None:
    result, moments = result_of(
        terms(), {"utility": {"rmse": 0.4, "constant_rmse": 0.5, "r2": 0.36}}
    )
    assert diagnose(result, moments, min_ess=50) == []
    assert result["utility"]["overall"]["max_weight_share"] == 1 / N


def test_estimators_that_disagree_are_named() -> None:
    result, moments = result_of(terms(reward_bias=0.3))  # DM is 0.3 too high; DR and IPW are not
    warnings = diagnose(result, moments, min_ess=50)
    assert any(
        w.startswith("utility: DR's and DM's 95 % intervals do not overlap in overall")
        for w in warnings
    )
    assert any(
        w.startswith("utility: IPW is more than 2 of its interval half-widths") for w in warnings
    )


def test_one_heavy_contact_and_low_ess_are_flagged() -> None:
    result, moments = result_of(terms(heavy=300.0), low_ess=True)
    warnings = diagnose(result, moments, min_ess=50)
    share = result["utility"]["overall"]["max_weight_share"]
    assert share > MAX_WEIGHT_SHARE
    assert f"overall ({share:.1%})" in next(w for w in warnings if w.startswith("one contact"))
    assert "low effective sample size (< 50), do not trust: overall" in warnings


def test_a_reward_model_no_better_than_a_constant_is_flagged() -> None:
    quality = {"utility": {"rmse": 0.51, "constant_rmse": 0.50, "r2": -0.04}}
    result, moments = result_of(terms(), quality)
    (warning,) = diagnose(result, moments, min_ess=50)
    assert warning.startswith("utility: the reward model's cross-fitted RMSE 0.51 is no better")


def test_a_segment_the_policy_never_enters_is_void_not_infinite() -> None:
    r = RNG.binomial(1, 0.4, N).astype(float)
    q = np.full(N, 0.4)
    z = row_terms(r, np.full(N, 0.5), np.zeros(N), q, q)  # pi of every logged action is 0
    result, moments = result_of(z, low_ess=True)
    warnings = diagnose(result, moments, min_ess=50)
    assert result["utility"]["overall"]["max_weight_share"] == 0.0
    assert any(
        w.startswith("the policy would take none of the logged decisions in overall")
        for w in warnings
    )
    assert not any("half-widths" in w or "one contact" in w for w in warnings)
