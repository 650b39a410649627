"""The held-out check of a trained router against the rule it replaces.

Training splits its logs by time (:func:`split_by_time`): a router is fitted
on the earlier days only and judged on the later ones, never on rows it
learned from. The judgement is off-policy, with the project's estimators
(:mod:`frontdesk.ope.estimators`): for each held-out contact, the doubly
robust terms of the router's choice and of the rule's among the pairs that
were eligible, with a reward model fitted on the earlier days
(:mod:`frontdesk.ope.reward_model`). DR's influence function is linear in
those terms, so the lift (router minus rule) is DR applied to their per-contact
difference, and its 95 % interval accounts for the pairing.

The router is kept only if it is shown better overall: the one-sided 95 %
lower bound of the lift (the lower end of its 90 % interval) is above zero.
Then, per segment, it is kept unless it is estimated worse there. A
segment's own estimate is noisy when the segment is small, so it is pooled
with the other segments' (random effects, the between-segment variance
estimated by DerSimonian and Laird): segments that look alike share their
evidence, and a segment that differs keeps its own; a segment whose pooled
lift is below zero is routed by the rule. Where the router is not kept it
defers to the rule (``rule-fallback``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..schema import AgentRecord
from .router import POLICY_ROUTER, POLICY_RULE

HOLDOUT_SHARE = 0.3  # of the logged days (at least one) held out when not told
MIN_HELD_OUT = 30  # held-out contacts below which no verdict but the rule's is possible
Z95 = 1.959963984540054
Z_ONE_SIDED_95 = 1.6448536269514722


def split_by_time(
    days: np.ndarray, arrival: np.ndarray, holdout_days: int | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Rows to fit on (a boolean mask) and a description of the split.

    The last ``holdout_days`` logged days are held out (by default 30 % of
    them, at least one); logs of a single day hold out its latest 30 % of
    contacts by arrival time instead.
    """
    uniq = sorted({int(d) for d in days})
    if len(uniq) >= 2:
        h = holdout_days if holdout_days is not None else max(1, round(HOLDOUT_SHARE * len(uniq)))
        h = min(max(int(h), 1), len(uniq) - 1)
        held = set(uniq[-h:])
        fit = np.array([int(d) not in held for d in days], dtype=bool)
        return fit, {
            "split": "days",
            "fit_days": uniq[:-h],
            "held_out_days": uniq[-h:],
        }
    cut = float(np.quantile(arrival, 1.0 - HOLDOUT_SHARE)) if len(arrival) else 0.0
    fit = np.asarray(arrival, dtype=float) < cut
    return fit, {
        "split": "arrival time",
        "fit_days": uniq,
        "held_out_days": uniq,
        "held_out_from_minute": cut,
    }


def judge(
    choices: Sequence[int],
    held_out: Any,
    fit_rows: Any,
    roster: Sequence[AgentRecord],
    channels: Sequence[str],
) -> dict[str, Any]:
    """The router's lift over the rule on ``held_out`` (a DataFrame of log rows), overall
    and per segment, with each verdict.

    ``choices`` is the router's pick per held-out row (an index into the row's
    eligible pairs). The reward model is fitted on ``fit_rows`` (log rows the
    router learned from, none of them held out).
    """
    # Imported here: the off-policy package replays the rule of this package.
    from ..ope.estimators import Moments, interval, row_terms
    from ..ope.kernel import segment_value
    from ..ope.policies import Batch, SkillsRulePolicy
    from ..ope.reward_model import RewardFeatures, fit_reward_models, predict

    n = len(held_out)
    if n < MIN_HELD_OUT:
        return {
            "estimator": "dr",
            "held_out_rows": n,
            "policy": POLICY_RULE,
            "reason": f"{n} held-out contacts, too few to judge the router (at least "
            f"{MIN_HELD_OUT})",
            "segments": {},
        }
    by_id = {a.agent_id: a for a in roster}
    roster_json = {a.agent_id: a.to_json() for a in roster}
    rule_pick = np.array(
        [
            int(np.argmax(p))
            for p in SkillsRulePolicy().probabilities(Batch(held_out, by_id, channels))
        ]
    )
    router_pick = np.asarray(choices, dtype=int)
    features = RewardFeatures.fit(fit_rows, roster_json, channels)
    models = fit_reward_models(fit_rows, features, ["utility"], folds=1)["utility"]
    x_all, row_of = features.eligible(held_out)
    q_all = predict(models, x_all, np.zeros(len(x_all), dtype=int))
    starts = np.concatenate([[0], np.cumsum(np.bincount(row_of, minlength=n))[:-1]])
    q_factual = predict(models, features.factual(held_out), np.zeros(n, dtype=int))
    logged = _logged_index(held_out)
    reward = np.asarray(held_out["utility"], dtype=float)
    pscore = np.asarray(held_out["propensity"], dtype=float)

    def terms(pick: np.ndarray) -> np.ndarray:
        return row_terms(
            reward, pscore, (pick == logged).astype(float), q_all[starts + pick], q_factual
        )

    z_router, z_rule = terms(router_pick), terms(rule_pick)
    segs = np.array([segment_value(v) for v in held_out["segment"].tolist()])
    lift, ci = interval(Moments.of(z_router - z_rule), "dr")
    v_router, ci_router = interval(Moments.of(z_router), "dr")
    v_rule, ci_rule = interval(Moments.of(z_rule), "dr")
    lower = lower_bound(lift, ci)
    overall = POLICY_ROUTER if np.isfinite(lower) and lower > 0 else POLICY_RULE
    names = sorted(set(segs.tolist()))
    own = {s: interval(Moments.of(z_router[segs == s] - z_rule[segs == s]), "dr") for s in names}
    pooled = pool_segments(own)
    segments: dict[str, Any] = {}
    for seg in names:
        segments[seg] = {
            "n": int((segs == seg).sum()),
            "lift": own[seg][0],
            "ci": own[seg][1],
            "pooled_lift": pooled[seg][0],
            "pooled_ci": pooled[seg][1],
            "policy": POLICY_ROUTER
            if overall == POLICY_ROUTER and pooled[seg][0] > 0
            else POLICY_RULE,
        }
    return {
        "estimator": "dr",
        "held_out_rows": n,
        "lift": lift,
        "ci": ci,
        "lower_bound": lower,
        "router": {"value": v_router, "ci": ci_router},
        "rule": {"value": v_rule, "ci": ci_rule},
        "same_choice_as_rule": float((router_pick == rule_pick).mean()),
        "segments": segments,
        "policy": overall,
        "reason": (
            "the lift's one-sided 95 % lower bound is above 0"
            if overall == POLICY_ROUTER
            else "the lift's one-sided 95 % lower bound is 0 or below: not shown to beat the rule"
        ),
    }


def pool_segments(
    own: dict[str, tuple[float, Sequence[float]]],
) -> dict[str, tuple[float, list[float]]]:
    """Each segment's lift pooled with the others': its own estimate (value, 95 % interval)
    combined with the random-effects mean of the *other* segments, whose spread around
    it is the between-segment variance (DerSimonian-Laird). Returns value and interval."""
    est = {
        s: (v, ((ci[1] - ci[0]) / (2 * Z95)) ** 2)
        for s, (v, ci) in own.items()
        if np.isfinite(v) and np.isfinite(ci[0]) and ci[1] > ci[0]
    }
    out: dict[str, tuple[float, list[float]]] = {}
    tau2 = _between_variance(list(est.values()))
    for s, (v, ci) in own.items():
        others = [e for t, e in est.items() if t != s]
        if not others:
            out[s] = (float(v), [float(ci[0]), float(ci[1])])
            continue
        w = np.array([1.0 / (var + tau2) for _, var in others])
        prior = float(np.dot(w, [x for x, _ in others]) / w.sum())
        prior_var = tau2 + 1.0 / w.sum()
        if s in est:
            own_var = est[s][1]
            var = 1.0 / (1.0 / own_var + 1.0 / prior_var)
            mean = var * (v / own_var + prior / prior_var)
        elif np.isfinite(v) and ci[1] == ci[0]:  # no spread: the segment's value is exact
            mean, var = float(v), 0.0
        else:
            mean, var = prior, prior_var
        half = Z95 * float(np.sqrt(var))
        out[s] = (float(mean), [float(mean - half), float(mean + half)])
    return out


def _between_variance(est: list[tuple[float, float]]) -> float:
    """DerSimonian-Laird estimate of the variance of the true lifts across segments."""
    if len(est) < 2:
        return 0.0
    v = np.array([x for x, _ in est])
    w = 1.0 / np.array([var for _, var in est])
    mean = float(np.dot(w, v) / w.sum())
    q = float(np.dot(w, (v - mean) ** 2))
    denom = float(w.sum() - (w**2).sum() / w.sum())
    return max(0.0, (q - (len(est) - 1)) / denom) if denom > 0 else 0.0


def lower_bound(value: float, ci: Sequence[float]) -> float:
    """The one-sided 95 % lower bound of an estimate given its two-sided 95 % interval
    (NaN when the interval is: too few rows to measure a spread)."""
    se = (ci[1] - ci[0]) / (2 * Z95)
    return float(value - Z_ONE_SIDED_95 * se)


def _logged_index(rows: Any) -> np.ndarray:
    """Per row, the position of the logged (channel, agent) among its eligible pairs."""
    out = np.zeros(len(rows), dtype=int)
    for i, (h, a, hs, ags) in enumerate(
        zip(
            rows["channel"].tolist(),
            rows["agent_id"].tolist(),
            rows["eligible_channels"].tolist(),
            rows["eligible_agents"].tolist(),
            strict=True,
        )
    ):
        for j, (h2, a2) in enumerate(zip(hs, ags, strict=True)):
            if h2 == h and a2 == a:
                out[i] = j
                break
    return out
