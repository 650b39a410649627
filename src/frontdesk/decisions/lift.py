"""Canary lift: each served model version against the default, from a joined log folder.

``lift_report(LOGS)`` reads the rows ``logs join`` wrote (``contacts-*`` and
``suggestions-*``, each carrying ``model``, ``model_version`` and ``role``),
and for every arm -- a (role, version) of a model other than the baseline,
such as ``canary 4`` -- against the baseline (role ``default`` unless told
otherwise), per metric, overall and per segment, gives each arm's rows and
mean, the difference of means with a normal interval on the unequal-variance
(Welch) standard error, the relative lift, and a verdict.

**What the interval assumes.** That the version was assigned at random, as
the server's canary draw does: ``ModelRepository.pick`` draws once per
request, so every contact of one V2 request shares its arm. Rows are
therefore clustered by request -- the rows a server logged together carry the
same ``time``, model, version and role -- and each arm's variance is the
cluster-robust one (with one contact per request, as ``/v1/route`` sends,
it is exactly Welch's ``s^2 / n``). Rows of the role ``explicit`` chose their
version themselves: they are compared too, with a warning, but nothing is
randomised there. Shadow answers are never acted on and ``logs join`` leaves
them out; any row with role ``shadow`` is dropped here, with a warning. A
contact a router tells to wait asks again and is drawn again: the arm compared
is the one that routed it, so versions that differ in when they make contacts
wait serve slightly different contacts.

**Interference.** The arms share the agents' capacity (and, for a router,
the queue): a canary that holds agents longer makes the default's contacts
wait. The difference is the effect of serving the canary *to that share* of
traffic beside the default, not of switching everything to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from ..artifacts import LOGS, MANIFEST, read_manifest
from ..errors import DataError, FrontdeskError, IndexIntegrityError
from ..logs import LEGACY_DESCRIPTION
from .records import ROLES
from .store import read_verified

# Per metric: which direction is better (+1 higher, -1 lower) and which rows hold it.
CONTACT_METRICS: dict[str, int] = {
    "utility": 1, "resolved": 1, "csat": 1, "handle_time": -1, "cost": -1,
}  # fmt: skip
SUGGESTION_METRICS: dict[str, int] = {"accepted": 1, "accepted_at_1": 1}
METRICS: dict[str, int] = {**CONTACT_METRICS, **SUGGESTION_METRICS}
MIN_ROWS = 30  # an arm with fewer rows gets a warning: the normal interval is rough
MAX_SEGMENT_VALUES = 50
# Decided by the arm itself: a segment of these compares different contacts.
POST_TREATMENT = ("channel", "agent_id", "propensity", "workflow_used", "policy")
ARM_COLUMNS = ("model", "model_version", "role", "time")
ASSUMPTIONS = (
    "versions are assigned at random per request (the server's canary draw); contacts of "
    "one request share their arm, so rows are clustered by request (same logged time, "
    "model, version and role)",
    "the interval is normal, on the unequal-variance (Welch) standard error; rough below "
    f"{MIN_ROWS} rows an arm",
    "the arms share the agents' capacity: the difference is the effect of serving that "
    "share of traffic beside the default, not of switching all traffic",
)


@dataclass(frozen=True)
class Interval:
    """A difference of two arms' means, its standard error and its interval."""

    difference: float
    se: float
    low: float
    high: float


@dataclass(frozen=True)
class ArmStats:
    """One arm's rows, requests (clusters), mean and the variance of that mean."""

    n: int
    clusters: int
    mean: float
    var_mean: float


def arm_stats(values: Any, clusters: Any = None) -> ArmStats:
    """Mean and its cluster-robust variance; without clusters, ``s^2 / n`` (Welch's).

    With clusters ``g = 1..G`` of sums ``S_g`` and sizes ``n_g``, the variance of
    the mean is ``G / (G - 1) * sum_g (S_g - n_g * mean)^2 / n^2``: exactly
    ``s^2 / n`` when every cluster holds one row.
    """
    y = np.asarray(values, dtype=float)
    n = len(y)
    if n == 0:
        return ArmStats(0, 0, math.nan, math.nan)
    mean = float(y.mean())
    if clusters is None:
        g = n
        var = float(y.var(ddof=1)) / n if n > 1 else math.nan
    else:
        _, inv = np.unique(np.asarray(clusters), return_inverse=True)
        g = int(inv.max()) + 1
        resid = np.bincount(inv, weights=y - mean, minlength=g)
        var = g / (g - 1) * float((resid**2).sum()) / n**2 if g > 1 else math.nan
    return ArmStats(n, g, mean, var)


def welch_interval(arm: ArmStats, base: ArmStats, level: float = 0.95) -> Interval:
    """``arm.mean - base.mean`` with a normal interval on the unequal-variance standard error."""
    z = NormalDist().inv_cdf(0.5 + level / 2)
    diff = arm.mean - base.mean
    se = math.sqrt(arm.var_mean + base.var_mean)
    return Interval(diff, se, diff - z * se, diff + z * se)


def relative_lift(
    arm: ArmStats, base: ArmStats, level: float = 0.95
) -> tuple[float | None, list[float] | None]:
    """``arm.mean / base.mean - 1`` and a delta-method interval (None at a zero baseline)."""
    if base.n == 0 or arm.n == 0 or base.mean == 0 or not math.isfinite(base.mean):
        return None, None
    z = NormalDist().inv_cdf(0.5 + level / 2)
    rel = arm.mean / base.mean - 1
    se = math.sqrt(arm.var_mean / base.mean**2 + arm.mean**2 * base.var_mean / base.mean**4)
    if not math.isfinite(se):
        return rel, None
    return rel, [rel - z * se, rel + z * se]


def lift_report(
    path: str | Path,
    metrics: Sequence[str] | None = None,
    segments: Sequence[str] = (),
    baseline: str = "default",
    level: float = 0.95,
) -> dict[str, Any]:
    """Every arm against ``baseline`` (a role, or a version), per metric and segment.

    ``metrics`` defaults to every metric the folder has rows for (routing rows:
    utility, resolved, csat, handle_time, cost; suggestion lists with
    ``workflow_used``: accepted, accepted_at_1). Raises ``DataError`` naming
    the folder, file or field when there is nothing to compare.
    """
    root = Path(path)
    if not 0 < level < 1:
        raise FrontdeskError(f"level {level}: must be between 0 and 1")
    files = _log_files(root)
    wanted = _metrics(root, files, metrics)
    segments = list(dict.fromkeys(segments))
    warnings: list[str] = []
    for f in segments:
        if f in POST_TREATMENT:
            warnings.append(
                f"--segment {f}: the arm itself decides a contact's {f}, so its segments "
                "hold different contacts in each arm; read them as descriptive, not causal"
            )
    comparisons: list[dict[str, Any]] = []
    arms_seen: list[str] = []
    for kind, kind_metrics in (("contacts", CONTACT_METRICS), ("suggestions", SUGGESTION_METRICS)):
        names = [m for m in wanted if m in kind_metrics]
        if not names:
            continue
        df = _read_rows(root, files[kind], kind, names, segments)
        shadow = df["role"] == "shadow"
        if shadow.any():
            warnings.append(
                f"{int(shadow.sum())} {kind} rows with role shadow left out: a shadow's "
                "answer is never acted on (`logs join` does not write them)"
            )
            df = df[~shadow]
        for model in sorted(df["model"].dropna().unique()):
            rows = df[df["model"] == model]
            found, seen = _compare_model(
                str(model), rows, names, segments, baseline, level, warnings
            )
            comparisons += found
            arms_seen += seen
    if not comparisons:
        raise DataError(
            str(root), None, None,
            f"nothing to compare: no model has rows both in the baseline {baseline!r} and in "
            f"another arm (rows by model, role and version: {', '.join(arms_seen) or 'none'}); "
            "serve a canary (routing.json) or choose --baseline",
        )  # fmt: skip
    many_models = len({c["model"] for c in comparisons}) > 1
    verdicts = [
        verdict_line(c, with_model=many_models) for c in comparisons if c["segment"] is None
    ]
    return {
        "path": str(root),
        "baseline": baseline,
        "level": level,
        "metrics": wanted,
        "segments": segments,
        "comparisons": comparisons,
        "verdicts": verdicts,
        "assumptions": list(ASSUMPTIONS),
        "warnings": list(dict.fromkeys(warnings)),
    }


def verdict_line(c: dict[str, Any], with_model: bool = False) -> str:
    """``canary 4 is better than default 3 on utility: +0.031 [+0.004, +0.058] (+10.2 %)``."""
    who = f"{c['model']} {c['arm']}" if with_model else c["arm"]
    where = f" ({c['segment_field']} {c['segment']})" if c["segment"] is not None else ""
    if c["difference"] is None:
        return f"{who}{where} on {c['metric']}: no rows in one arm"
    if c["ci"] is None:
        return (
            f"{who}{where} on {c['metric']}: {fmt(c['difference'])}, too few rows for an interval"
        )
    word = {"better": "is better than", "worse": "is worse than"}.get(
        c["verdict"], "is not distinguishable from"
    )
    rel = f" ({c['relative'] * 100:+.1f} %)" if c["relative"] is not None else ""
    return f"{who}{where} {word} {c['baseline_arm']} on {c['metric']}: {difference_text(c)}{rel}"


def difference_text(c: dict[str, Any]) -> str:
    """``+0.031 [+0.004, +0.058]``: decimals enough for two digits of the interval's half-width."""
    if c["difference"] is None:
        return "-"
    if c["ci"] is None:
        return fmt(c["difference"])
    lo, hi = c["ci"]
    half = (hi - lo) / 2
    d = max(0, 1 - math.floor(math.log10(half))) if half > 0 else 4
    return f"{c['difference']:+.{d}f} [{lo:+.{d}f}, {hi:+.{d}f}]"


def fmt(x: float) -> str:
    """A signed number with four significant digits (``+0.031``, ``-1.25``)."""
    return f"{x:+.4g}"


# -- reading ----------------------------------------------------------------------------------


def _log_files(root: Path) -> dict[str, list[Path]]:
    """The folder's verified manifest, then its contacts and suggestions files."""
    if not root.is_dir():
        raise DataError(str(root), None, None, "folder not found")
    if not (root / MANIFEST).is_file():
        what = (
            "simulator logs (no served versions)" if (root / LEGACY_DESCRIPTION).is_file() else ""
        )
        raise DataError(
            str(root / MANIFEST), None, None,
            "missing: not a log folder from `frontdesk logs join`" + (f"; {what}" if what else ""),
        )  # fmt: skip
    try:
        read_manifest(root, verify=True, kind=LOGS)
    except IndexIntegrityError as exc:
        raise DataError(str(root / MANIFEST), None, None, str(exc)) from None

    def by_name(pattern: str) -> list[Path]:
        return sorted(root.glob(pattern), key=lambda f: (len(f.name), f.name))

    return {
        "contacts": by_name("contacts-*.parquet"),
        "suggestions": by_name("suggestions-*.parquet"),
    }


def _metrics(root: Path, files: dict[str, list[Path]], metrics: Sequence[str] | None) -> list[str]:
    if metrics is None or not len(metrics):
        found = [*(CONTACT_METRICS if files["contacts"] else ()),
                 *(SUGGESTION_METRICS if files["suggestions"] else ())]  # fmt: skip
        if not found:
            raise DataError(
                str(root), None, None, "no contacts-*.parquet or suggestions-*.parquet files"
            )
        return found
    # simulate policy calls the outcome `resolved` the metric `resolution`: either is taken
    metrics = ["resolved" if m == "resolution" else m for m in metrics]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise FrontdeskError(f"--metric {unknown[0]!r}: unknown; use {', '.join(METRICS)}")
    for m in metrics:
        kind = "contacts" if m in CONTACT_METRICS else "suggestions"
        if not files[kind]:
            raise DataError(
                str(root), None, m,
                f"no {kind}-*.parquet files, so no rows with {m}"
                + (" (suggestion lists with an outcome)" if kind == "suggestions" else ""),
            )  # fmt: skip
    return list(dict.fromkeys(metrics))


def _read_rows(
    root: Path, files: list[Path], kind: str, metrics: list[str], segments: list[str]
) -> Any:
    """One frame: the arm columns, each metric as a float, the segment columns, ``_request``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = ["workflow_used", "accepted_rank"] if kind == "suggestions" else metrics
    needed = list(dict.fromkeys([*ARM_COLUMNS, *source, *segments]))
    parts = []
    for f in files:
        schema = pq.read_schema(f)
        for col in needed:
            if col not in schema.names:
                hint = (
                    "lift compares the versions a server logged: join its decision log with "
                    "`frontdesk logs join`"
                    if col in ARM_COLUMNS
                    else f"not a column of {kind} rows"
                )
                raise DataError(str(f), None, col, f"missing column; {hint}")
        for col in segments:
            t = schema.field(col).type
            if pa.types.is_nested(t) or pa.types.is_floating(t):
                raise DataError(
                    str(f), None, col,
                    f"holds a {t} per row; segment by a column with a few values "
                    "(segment, country, plan, language, topic)",
                )  # fmt: skip
        parts.append(read_verified(f, needed).to_pandas())
    df = pd.concat(parts, ignore_index=True)
    if kind == "suggestions":
        df = df[df["workflow_used"].notna()]  # acceptance is known only where it came back
        rank = df["accepted_rank"]
        df = df.assign(accepted=rank.notna().astype(float), accepted_at_1=(rank == 1).astype(float))
    else:
        for m in metrics:
            bad = df[m].isna()
            if bad.any():
                raise DataError(str(root), None, m, f"{int(bad.sum())} {kind} rows have no value")
            df[m] = df[m].astype(float)
    for col in segments:
        n = df[col].nunique(dropna=False)
        if n > MAX_SEGMENT_VALUES:
            raise DataError(
                str(root), None, col,
                f"more than {MAX_SEGMENT_VALUES} distinct values ({n}): segments of a few rows "
                "each; segment by a column with a few values",
            )  # fmt: skip
    df["_request"] = df.groupby(list(ARM_COLUMNS), sort=False, dropna=False).ngroup()
    return df.reset_index(drop=True)


# -- comparing --------------------------------------------------------------------------------


def _compare_model(
    model: str,
    rows: Any,
    metrics: list[str],
    segments: list[str],
    baseline: str,
    level: float,
    warnings: list[str],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The comparisons of one model's arms with its baseline; also the arms seen."""
    is_role = baseline in ROLES
    base_mask = (rows["role"] == baseline) if is_role else (rows["model_version"] == baseline)
    groups = rows[~base_mask].groupby(["role", "model_version"], sort=True)
    seen = [f"{model} {r} {v} ({len(g)})" for (r, v), g in groups]
    base = rows[base_mask]
    if not len(base):
        if len(groups):
            warnings.append(
                f"model {model}: no rows in the baseline {baseline!r} to compare "
                f"{', '.join(f'{r} {v}' for (r, v), _ in groups)} with"
            )
        return [], seen
    seen.append(f"{model} baseline {baseline} ({len(base)})")
    base_versions = sorted(base["model_version"].astype(str).unique())
    base_label = f"{baseline} {'/'.join(base_versions)}" if is_role else f"version {baseline}"
    if is_role and len(base_versions) > 1:
        warnings.append(
            f"model {model}: the baseline {baseline!r} spans versions {', '.join(base_versions)} "
            "(routing changed within these logs?)"
        )
    out = []
    for (role, version), arm in groups:
        label = f"{role} {version}"
        if role == "explicit":
            warnings.append(
                f"model {model} {label}: clients chose this version (role explicit), so its "
                "contacts are not a random share of traffic; the difference mixes the "
                "version's effect with who asked for it"
            )
        for metric in metrics:
            a = _stats(arm, metric)
            b = _stats(base, metric)
            c = _comparison(model, label, base_label, metric, None, None, a, b, level)
            c["share"] = len(arm) / len(rows)
            out.append(c)
            for who, s in ((label, a), (base_label, b)):
                if s.n < MIN_ROWS:
                    warnings.append(
                        f"model {model} {who}: {s.n} rows (fewer than {MIN_ROWS}): its "
                        "interval is rough; wait for more traffic"
                    )
            for field in segments:
                values = sorted(
                    set(arm[field].astype(str)) | set(base[field].astype(str)),
                )
                for v in values:
                    sa = _stats(arm[arm[field].astype(str) == v], metric)
                    sb = _stats(base[base[field].astype(str) == v], metric)
                    out.append(
                        _comparison(model, label, base_label, metric, field, v, sa, sb, level)
                    )
    return out, seen


def _stats(rows: Any, metric: str) -> ArmStats:
    return arm_stats(rows[metric].to_numpy(dtype=float), rows["_request"].to_numpy())


def _comparison(
    model: str,
    label: str,
    base_label: str,
    metric: str,
    field: str | None,
    value: str | None,
    a: ArmStats,
    b: ArmStats,
    level: float,
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "model": model, "arm": label, "baseline_arm": base_label, "metric": metric,
        "segment_field": field, "segment": value,
        "n": a.n, "n_baseline": b.n, "requests": a.clusters, "requests_baseline": b.clusters,
        "mean": _num(a.mean), "mean_baseline": _num(b.mean),
        "difference": None, "se": None, "ci": None, "relative": None, "relative_ci": None,
        "verdict": "no rows", "few_rows": min(a.n, b.n) < MIN_ROWS,
    }  # fmt: skip
    if a.n == 0 or b.n == 0:
        return c
    iv = welch_interval(a, b, level)
    rel, rel_ci = relative_lift(a, b, level)
    c.update(difference=iv.difference, se=_num(iv.se), relative=rel, relative_ci=rel_ci)
    if math.isfinite(iv.se) and iv.se > 0:  # no variance in either arm: no interval
        c["ci"] = [iv.low, iv.high]
        sign = METRICS[metric]
        if iv.low > 0 or iv.high < 0:
            c["verdict"] = "better" if (iv.low > 0) == (sign > 0) else "worse"
        else:
            c["verdict"] = "not distinguishable"
    else:
        c["verdict"] = "too few rows"
    return c


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


__all__ = [
    "CONTACT_METRICS", "METRICS", "MIN_ROWS", "SUGGESTION_METRICS", "ArmStats", "Interval",
    "arm_stats", "difference_text", "lift_report", "relative_lift", "verdict_line", "welch_interval",
]  # fmt: skip
