"""Do the off-policy intervals cover the truth for a *trained* router? Measured over organisations.

For each seed: simulate an organisation's logs (days 0..k-1), train a router
on them, simulate held-out days of the same organisation (``continue_org``),
and judge the router on the held-out days with every estimator against the
exact value there (``true_values``). The same router is also judged on its
own training logs (the training-overlap check waived), so the size of that
leak is measured beside the honest number. The router is trained without its
held-out guard (``holdout_days=0``): a guarded router that defers to the rule
is the logging policy itself, which says nothing about the estimators.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..ope.estimators import ESTIMATORS
from ..ope.kernel import OVERALL
from ..ope.offpolicy import simulate_policy
from ..orgsim import OrgConfig, QueryPool, continue_org, simulate_org
from ..orgsim.truth import true_values

SETTINGS = ("fresh", "training")


def judge_trained_router(
    seed: int,
    pool: QueryPool,
    work: Path,
    *,
    contacts: int = 2000,
    agents: int = 12,
    days: int = 4,
    fresh_days: int = 3,
    metric: str = "utility",
    encoder: Any = None,
) -> dict[str, Any]:
    """One organisation: per setting, the truth and each estimator's value and interval."""
    from ..routing import train_router

    logs, fresh, router = work / f"logs-{seed}", work / f"fresh-{seed}", work / f"router-{seed}"
    simulate_org(OrgConfig(seed=seed, contacts=contacts, agents=agents, days=days), pool, logs)
    train_router(logs, router, encoder=encoder, holdout_days=0)
    continue_org(logs, fresh, fresh_days)
    run: dict[str, Any] = {"seed": seed}
    for setting, folder in (("fresh", fresh), ("training", logs)):
        est = simulate_policy(
            folder, router, segments=[], metrics=[metric],
            allow_training_overlap=setting == "training",
        )[metric]["overall"]  # fmt: skip
        truth = true_values(folder, router, metrics=[metric], segments=[])[metric][OVERALL]
        run[setting] = {
            "truth": truth,
            "ess": est["ess"],
            "n": est["n"],
            **{e: {"value": est[e]["value"], "ci": est[e]["ci"]} for e in ESTIMATORS},
        }
    for folder in (logs, fresh, router):
        shutil.rmtree(folder, ignore_errors=True)
    return run


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per setting and estimator: coverage of the truth, mean absolute error, mean bias."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for setting in SETTINGS:
        rows = [r[setting] for r in runs if setting in r]
        if not rows:
            continue
        truth = np.array([r["truth"] for r in rows])
        per: dict[str, dict[str, float]] = {}
        for e in ESTIMATORS:
            v = np.array([r[e]["value"] for r in rows])
            lo = np.array([r[e]["ci"][0] for r in rows])
            hi = np.array([r[e]["ci"][1] for r in rows])
            per[e] = {
                "covered": int(((lo <= truth) & (truth <= hi)).sum()),
                "runs": len(rows),
                "coverage": float(((lo <= truth) & (truth <= hi)).mean()),
                "mae": float(np.abs(v - truth).mean()),
                "bias": float((v - truth).mean()),
                "mean_width": float((hi - lo).mean()),
            }
        out[setting] = per
    return out


def coverage_study(
    seeds: Sequence[int],
    pool: QueryPool,
    work: Path,
    progress: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """``judge_trained_router`` for every seed (one encoder for all of them)."""
    from ..encoding import ContextEncoder

    options.setdefault("encoder", ContextEncoder())
    runs = []
    for seed in seeds:
        runs.append(judge_trained_router(seed, pool, work, **options))
        if progress:
            progress(runs[-1])
    return runs
