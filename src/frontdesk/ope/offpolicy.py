"""Segment simulation of a target policy from logged decisions (off-policy evaluation).

``prepare`` fits what the estimators need once (cross-fitted reward models)
and returns a JSON-able plan. An engine (local or Spark) runs the per-batch
function of :mod:`~frontdesk.ope.kernel` over the logs and adds up its sums.
``finalise`` turns the sums into the result, with the diagnostics of
:mod:`~frontdesk.ope.diagnostics`. A policy that acts with a trained
model is refused on logs that model learned from (:mod:`frontdesk.lineage`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FrontdeskError
from ..lineage import training_overlap
from ..logs import DecisionLogs
from .diagnostics import diagnose, reward_model_quality
from .estimators import (
    ESTIMATORS,
    Moments,
    canonical_estimator,
    estimate,
    id_hashes,
)
from .kernel import (
    MAX_SEGMENT_VALUES,  # noqa: F401  (re-exported: the commands' shared limit)
    N_VALUES,
    OVERALL,
    check_segment_columns,
    distinct_values,
)
from .policies import (
    PolicyError,
    load_policy,
    spec_to_json,
)
from .reward_model import (
    READ_COLUMNS,
    RewardFeatures,
    fit_reward_models,
    metric_column,
)

METRICS = ("resolution", "handle_time", "csat", "cost", "utility")
DEFAULT_MIN_ESS = 50.0


def prepare(
    logs: DecisionLogs,
    policy: str | Path | dict[str, Any],
    *,
    segments: Sequence[str] = ("segment",),
    metrics: Sequence[str] = METRICS,
    estimators: Sequence[str] = ESTIMATORS,
    folds: int = 2,
    switch_tau: float = 10.0,
    bootstrap: int = 0,
    seed: int = 0,
    max_fit_rows: int = 500_000,
) -> dict[str, Any]:
    """Check the request, fit the reward models on the logs, and return the engines' plan."""
    estimators = list(dict.fromkeys(canonical_estimator(e) for e in estimators))
    # an outcome's field is `resolved`; its metric here `resolution`: either is taken
    metrics = list(dict.fromkeys("resolution" if m == "resolved" else m for m in metrics))
    for e in estimators:
        if e not in ESTIMATORS:
            raise FrontdeskError(
                f"unknown estimator {e!r}; use {', '.join(ESTIMATORS)} (ips and snips are "
                "accepted for ipw and snipw)"
            )
    if not metrics or not estimators:
        raise FrontdeskError(
            f"no {'metric' if not metrics else 'estimator'} asked for; use some of "
            f"{', '.join(METRICS if not metrics else ESTIMATORS)}"
        )
    for m in metrics:
        if m not in METRICS:
            raise FrontdeskError(f"unknown metric {m!r}; use {', '.join(METRICS)}")
    if folds < 2:
        raise FrontdeskError(
            "folds must be >= 2 (cross-fitting: no row is predicted by a model that saw it)"
        )
    target = load_policy(policy)  # fails early on a bad spec
    request_warnings = check_request(logs, target, segments, policy)
    needed = {*READ_COLUMNS, "propensity", "eligible_propensities", *segments, *target.needs()}
    needed |= {metric_column(m) for m in metrics}
    logs.check_columns(sorted(needed))
    import pyarrow as pa

    fit_cols = sorted({*READ_COLUMNS, *(metric_column(m) for m in metrics)})
    import pyarrow.parquet as pq

    # Above max_fit_rows, a sample spread over the whole log (by a hash of the contact
    # id, so the same rows on every run), not the first files.
    n_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in logs.files)
    keep = min(1.0, max_fit_rows / max(n_rows, 1))
    parts = []
    for _, batch in logs.batches(columns=fit_cols):
        if keep < 1.0:
            h = id_hashes(batch.column("contact_id").to_pylist()) % np.uint64(1_000_000)
            batch = batch.filter(pa.array(h < np.uint64(int(keep * 1_000_000))))
        parts.append(batch)
    df = pa.Table.from_batches(parts).to_pandas()
    if len(df) < 2 * folds:
        raise FrontdeskError(f"{logs.root}: too few logged rows ({len(df)}) to fit reward models")
    roster = {a.agent_id: a.to_json() for a in logs.roster()}
    features = RewardFeatures.fit(df, roster, logs.channels)
    models = fit_reward_models(df, features, metrics, folds)
    quality = reward_model_quality(df, features, models, folds)
    return {
        "policy": spec_to_json(policy),
        "policy_name": target.name,
        "segments": list(segments),
        "metrics": list(metrics),
        "estimators": list(estimators),
        "folds": folds,
        "switch_tau": switch_tau,
        "bootstrap": bootstrap,
        "seed": seed,
        "features": features.to_json(),
        "roster": roster,
        "channels": logs.channels,
        "models": models,
        "columns": sorted(needed),
        "fit_rows": len(df),
        "reward_model_quality": quality,
        "request_warnings": request_warnings,
    }


def check_request(
    logs: DecisionLogs, target: Any, segments: Sequence[str], source: Any = None
) -> list[str]:
    """The policy's columns and channels, and the segment columns, must be the logs' own.

    Errors blame the policy (``source``, its file) or the option, not a log
    file: a typo in a rule's ``when`` field or ``channel`` is the policy's; a
    list, float or near-unique column cannot segment. Returns warnings for rule
    values that no logged row has (a typo there makes a rule that never applies).
    """
    import pyarrow.parquet as pq

    name = f"policy {source}" if isinstance(source, str | Path) else f"policy {target.name}"
    schemas = [pq.read_schema(f) for f in logs.files]
    present = set.intersection(*(set(s.names) for s in schemas))
    missing = sorted(target.needs() - present)
    if missing:
        raise PolicyError(
            f"{name}: reads {missing[0]!r}, which is not a column of {logs.root} "
            "(a rule's `when` fields are log columns or router.channel/confidence/utility)"
        )
    unknown = sorted(target.channels_named() - set(logs.channels))
    if unknown:
        raise PolicyError(
            f"{name}: names channel {unknown[0]!r}, which {logs.root} does not "
            f"have ({', '.join(logs.channels)})"
        )
    check_segment_columns(
        logs.files, segments, str(logs.root), "segment, country, plan, language, topic, channel"
    )
    warnings = []
    for where, cond in target.conditions():
        for field, wanted in cond.wanted_values():
            if field not in present:
                continue
            values = distinct_values(logs.files, field, 50)
            if len(values) <= 50 and not {str(w) for w in wanted} & {str(v) for v in values}:
                shown = ", ".join(sorted(str(v) for v in values)[:8])
                warnings.append(
                    f"{where}.{field}: {wanted[0] if len(wanted) == 1 else wanted}"
                    f" is in no logged row (values: {shown}{', …' if len(values) > 8 else ''}): "
                    "the rule never applies"
                )
    for col in segments:  # e.g. served logs whose requests carried no profile
        if distinct_values(logs.files, col, 1) <= {None}:
            warnings.append(
                f"--segment {col}: every logged row has none, so its one segment ('missing') "
                "repeats the overall rows"
            )
    return warnings


def finalise(
    sums: dict[tuple[str, str, int], np.ndarray],
    plan: dict[str, Any],
    min_ess: float = DEFAULT_MIN_ESS,
) -> dict[str, Any]:
    """The result: per metric, overall and per segment, each estimator with interval and ESS.

    ``sums`` values are the N_VALUES moment sums followed by the largest weight.
    """
    result: dict[str, Any] = {}
    flagged: set[str] = set()
    moments: dict[tuple[str, str], Moments] = {}
    for m in plan["metrics"]:
        per: dict[str, Any] = {}
        segs = sorted({s for s, mm, _ in sums if mm == m})
        for seg in segs:
            flat = sums[(seg, m, -1)]
            mom = Moments.from_flat(flat[:N_VALUES])
            moments[(m, "overall" if seg == OVERALL else seg)] = mom
            if plan["bootstrap"]:
                mom.boot = np.array([sums[(seg, m, r)][:7] for r in range(plan["bootstrap"])])
            est = estimate(mom, plan["estimators"])
            est["max_weight"] = float(flat[N_VALUES])
            est["low_ess"] = bool(est.get("ess", 0.0) < min_ess)
            if est["low_ess"] and seg != OVERALL:
                flagged.add(seg)
            per[seg] = est
        result[m] = {"overall": per.pop(OVERALL), "segments": per}
    result["meta"] = {
        "policy": plan["policy_name"],
        "estimators": plan["estimators"],
        "segments_by": plan["segments"],
        "folds": plan["folds"],
        "switch_tau": plan["switch_tau"],
        "bootstrap": plan["bootstrap"],
        "min_ess": min_ess,
        "low_ess_segments": sorted(flagged),
        "reward_model_rows": plan["fit_rows"],
        "reward_model_quality": plan["reward_model_quality"],
    }
    result["meta"]["warnings"] = plan["request_warnings"] + diagnose(result, moments, min_ess)
    return result


def simulate_policy(
    logs_dir: str | Path,
    policy: str | Path | dict[str, Any],
    *,
    engine: str = "local",
    spark_master: str = "local[*]",
    min_ess: float = DEFAULT_MIN_ESS,
    batch_size: int = 8192,
    progress: Any = None,
    allow_training_overlap: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Estimate the target policy's value per metric and segment from the logs.

    A policy that acts with a trained model (a router) is refused on logs the
    model learned from, unless ``allow_training_overlap`` (then the result's
    ``meta.warnings`` says so first).
    """
    logs = DecisionLogs.open(logs_dir)
    target = load_policy(policy)
    overlap_warnings = training_overlap(logs, target.learned_from(), allow_training_overlap)
    plan = prepare(logs, policy, **options)
    if engine == "local":
        from .engines.local import run_local

        sums = run_local(logs, plan, batch_size=batch_size, progress=progress)
    elif engine == "spark":
        from .engines.spark import run_spark

        sums = run_spark(logs, plan, master=spark_master)
    else:
        raise FrontdeskError(f"unknown engine {engine!r}; use local or spark")
    result = finalise(sums, plan, min_ess)
    result["meta"]["engine"] = engine
    result["meta"]["logs"] = str(logs.root)
    result["meta"]["warnings"] = overlap_warnings + result["meta"]["warnings"]
    return result
