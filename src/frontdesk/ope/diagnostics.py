"""Warnings a careful analyst wants beside off-policy estimates (after obp's diagnostics).

Each check reads what the estimators already summed, so it costs nothing
extra and is the same on every engine:

- **Estimators disagree.** DR's and DM's 95 % intervals do not overlap, or
  IPW lies more than ``IPW_DM_INTERVALS`` of its own interval half-widths
  from DM. Both are computed whether or not they were asked for. On
  unbiased logs DR and IPW agree with each other within noise, and DM with
  them when the reward model is right: a disagreement says the reward
  model, the propensities or the overlap between the policies is off there.
- **Few effective rows.** ESS below ``min_ess``, and the largest importance
  weight: when one contact carries more than ``MAX_WEIGHT_SHARE`` of a
  segment's total weight, the estimate is that contact's outcome. Where the
  total weight is 0 the policy takes none of the logged actions, and only
  DM (the reward model alone) says anything.
- **A poor reward model.** Per metric, the reward model's cross-fitted RMSE
  (each row predicted by the model that did not see its fold) next to a
  constant's (each fold predicted by the other folds' mean). When it is no
  better than the constant (R² at most ``MIN_R2``) it fits noise on these
  logs: DM, which rests on it alone, is the estimate to trust least.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .estimators import Moments, estimate
from .reward_model import fold_of, metric_column, predict

IPW_DM_INTERVALS = 2.0
MAX_WEIGHT_SHARE = 0.05
MIN_R2 = 0.0


def reward_model_quality(
    df: Any, features: Any, models: Mapping[str, Sequence[str]], folds: int
) -> dict[str, dict[str, float]]:
    """Per metric: cross-fitted RMSE of the reward model and of a constant, and R²."""
    x = features.factual(df)
    fold = fold_of(df["contact_id"].tolist(), folds)
    out: dict[str, dict[str, float]] = {}
    for m, ms in models.items():
        y = np.asarray(df[metric_column(m)].to_numpy(), dtype=float)
        q = predict(ms, x, fold)
        const = np.empty(len(y))
        for k in range(folds):
            sel = fold == k
            rest = y[~sel]
            const[sel] = rest.mean() if len(rest) else y.mean()
        mse, mse_c = float(np.mean((y - q) ** 2)), float(np.mean((y - const) ** 2))
        out[m] = {
            "rmse": mse**0.5,
            "constant_rmse": mse_c**0.5,
            "r2": 1.0 - mse / mse_c if mse_c > 0 else 0.0,
        }
    return out


def diagnose(
    result: dict[str, Any], moments: Mapping[tuple[str, str], Moments], min_ess: float
) -> list[str]:
    """The warnings for one result; also sets each entry's ``max_weight_share``.

    ``moments`` is keyed by (metric, segment) with the result's names ("overall" included).
    """
    warnings: list[str] = []
    metrics = [m for m in result if m != "meta"]
    low: list[str] = []
    unsupported: list[str] = []
    heavy: dict[str, float] = {}
    for m in metrics:
        dr_dm, ipw_dm = [], []
        for seg, entry in _entries(result[m]):
            mom = moments[(m, seg)]
            total_w = float(mom.s1[0])
            share = entry["max_weight"] / total_w if total_w > 0 else 0.0
            entry["max_weight_share"] = share
            if entry["low_ess"] and seg not in low:
                low.append(seg)
            if total_w <= 0:  # the policy takes none of the logged actions here
                if seg not in unsupported:
                    unsupported.append(seg)
                continue
            if share > MAX_WEIGHT_SHARE:
                heavy[seg] = max(heavy.get(seg, 0.0), share)
            e = estimate(mom, ("dm", "ipw", "dr"))
            if "dm" not in e:
                continue
            dm, ipw, dr = e["dm"], e["ipw"], e["dr"]
            if dr["ci"][1] < dm["ci"][0] or dm["ci"][1] < dr["ci"][0]:
                dr_dm.append(f"{seg} (DR {dr['value']:.4g}, DM {dm['value']:.4g})")
            half = (ipw["ci"][1] - ipw["ci"][0]) / 2
            if abs(ipw["value"] - dm["value"]) > IPW_DM_INTERVALS * half:
                ipw_dm.append(f"{seg} (IPW {ipw['value']:.4g}, DM {dm['value']:.4g})")
        if dr_dm:
            warnings.append(
                f"{m}: DR's and DM's 95 % intervals do not overlap in " + ", ".join(dr_dm)
                + ": the reward model or the propensities are off there"
            )  # fmt: skip
        if ipw_dm:
            warnings.append(
                f"{m}: IPW is more than {IPW_DM_INTERVALS:g} of its interval half-widths from "
                "DM in " + ", ".join(ipw_dm) + ": the reward model or the propensities are off"
            )
    if unsupported:
        warnings.append(
            "the policy would take none of the logged decisions in " + ", ".join(unsupported)
            + ": no logged outcome speaks for it there, and every estimate but DM is void"
        )  # fmt: skip
    if low:
        warnings.append(
            f"low effective sample size (< {min_ess:g}), do not trust: " + ", ".join(low)
        )
    if heavy:
        warnings.append(
            f"one contact carries more than {MAX_WEIGHT_SHARE:.0%} of the importance weight in "
            + ", ".join(f"{s} ({v:.1%})" for s, v in heavy.items())
            + ": the estimate there rests on a few contacts"
        )
    quality = result.get("meta", {}).get("reward_model_quality", {})
    for m, q in quality.items():
        if q["r2"] <= MIN_R2:
            warnings.append(
                f"{m}: the reward model's cross-fitted RMSE {q['rmse']:.4g} is no better than "
                f"a constant's {q['constant_rmse']:.4g} (R² {q['r2']:.3f}): it fits noise on "
                "these logs, so trust DM, which rests on it alone, least"
            )
    return warnings


def _entries(per_metric: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("overall", per_metric["overall"]), *sorted(per_metric["segments"].items())]
