"""Train a Router from decision logs (``frontdesk simulate org`` or a real organisation's).

A fit learns, in order: the context featurizer (PCA, topic classifier), the
channel model (K fold models, :mod:`.outcomes`) and the agent matcher from the
channel model's out-of-fold residuals (:mod:`.agent_matcher`), so each stage
learns from predictions of models that did not see its rows.

Before anything is saved the router is judged against the rule it replaces
(:mod:`.guard`): a router fitted on the earlier days only is compared with the
rule, off-policy, on the later, held-out days. Where it is not shown better
(overall, or in a segment) the saved router defers to the rule. The saved
router is then fitted again on every day (``refit``, the default), so the
lift it reports was measured on a model fitted without the held-out days, and
``router.json`` says so. The router folder records its lineage
(:mod:`frontdesk.lineage`): which logged rows it learned from.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..artifacts import FORMAT_VERSION, atomic_folder, write_manifest
from ..encoding import ContextEncoder, EncodedContexts
from ..encoding.model_files import default_model_path
from ..errors import DataError, FrontdeskError
from ..lineage import Lineage
from ..logs import DecisionLogs
from ..schema import AgentRecord, Conversation
from .agent_matcher import AgentMatcher, listed_matrix, logging_means
from .assignment import DEFAULT_AGING
from .channel_model import ChannelModel
from .features import ContextFeaturizer, fit_topic_classifier
from .guard import HOLDOUT_SHARE, POLICY_ROUTER, POLICY_RULE, judge, split_by_time
from .outcomes import TARGETS
from .router import CHANNEL_MARGIN_Z, CONFIG_FILE, KIND, Router, RoutingWeights

FOLDS = 5
MIN_ROWS = 50  # logged contacts a fit needs at the least

Progress = Callable[[str, int, int], None]


class NoLiftError(FrontdeskError):
    """The held-out check did not show the router better than the rule, and a lift was required."""


@dataclass
class _Logged:
    """Every logged row, encoded once, as arrays the fits index into."""

    cols: dict[str, list[Any]]
    encoded: EncodedContexts
    profiles: list[dict[str, Any]]
    channel: np.ndarray
    agent: np.ndarray
    waits: np.ndarray
    n_turns: np.ndarray
    y: dict[str, np.ndarray]
    eligible_agents: list[np.ndarray]
    eligible_channels: list[np.ndarray]
    eligible_propensities: list[np.ndarray]


def train_router(
    logs_dir: str | Path,
    out: str | Path,
    *,
    encoder: ContextEncoder | None = None,
    weights: RoutingWeights | None = None,
    congestion_price: float = 0.1,
    seed: int = 0,
    progress: Progress | None = None,
    holdout_days: int | None = None,
    refit: bool = True,
    require_lift: bool = False,
) -> dict[str, Any]:
    """Fit, judge against the rule on held-out days, refit and write the router folder.

    ``holdout_days`` (default 30 % of the logged days, at least one) are held
    out of the judged fit; 0 skips the check (the router then decides
    everywhere, unjudged). With ``require_lift`` a router not shown better than
    the rule is refused (:class:`NoLiftError`) and nothing is written; else it
    is saved deferring to the rule where it was not shown better. Returns the
    training summary, the check included (``guard``).
    """
    logs = DecisionLogs.open(logs_dir)
    encoder = encoder or ContextEncoder()
    weights = weights or RoutingWeights()
    roster = logs.roster()
    channels = logs.channels
    data = _read(logs, roster, channels, encoder, progress)
    n = len(data.channel)
    if n < MIN_ROWS:
        raise FrontdeskError(
            f"{logs.root}: {n} logged contacts; a router needs at least {MIN_ROWS}"
        )
    config: dict[str, Any] = {
        "channels": channels,
        "channel_info": logs.channel_info,
        "weights": weights.__dict__,
        "congestion_price": congestion_price,
        "aging": DEFAULT_AGING,
        "channel_margin_z": CHANNEL_MARGIN_Z,
        "channel_folds": FOLDS,
        "encoder_sha256": encoder.fingerprint,
        "encoder_name": encoder.name,
        "encoder_path": str(encoder.path.resolve()),
        "encoder_bundled": encoder.path.resolve() == default_model_path().resolve(),
    }
    days = np.asarray(data.cols["day"], dtype=int)
    everything = np.arange(n)
    guard: dict[str, Any] | None = None
    judged: Router | None = None
    if holdout_days != 0:
        fit_mask, split = split_by_time(days, np.asarray(data.cols["arrival_min"]), holdout_days)
        fit_rows, held = np.flatnonzero(fit_mask), np.flatnonzero(~fit_mask)
        if len(fit_rows) < MIN_ROWS:
            raise FrontdeskError(
                f"{logs.root}: {len(fit_rows)} contacts before the held-out days; a router needs "
                f"at least {MIN_ROWS} (give fewer --holdout-days, or 0 to skip the check)"
            )
        judged = _fit(
            data, fit_rows, roster, channels, config, encoder, seed, progress, "held-out check: "
        )
        if progress:
            progress("held-out check: judging against the rule", 0, 1)
        guard = {
            **split,
            "fit_rows": len(fit_rows),
            **_judge(judged, data, held, fit_rows, logs, roster, channels),
        }
        if require_lift and guard["policy"] == POLICY_RULE:
            raise NoLiftError(
                f"{logs.root}: the router is not shown better than the rule on held-out days "
                f"{_days(guard['held_out_days'])} ({lift_text(guard)}); nothing written "
                "(without --require-lift it is saved deferring to the rule)"
            )
        guard["judged_model"] = (
            f"fitted on days {_days(guard['fit_days'])} only"
            if guard["split"] == "days"
            else f"fitted on the earliest {1 - HOLDOUT_SHARE:.0%} of the contacts of day "
            f"{_days(guard['fit_days'])} only (a single logged day)"
        )
        guard["saved_model"] = (
            f"fitted again on every logged day ({_days(sorted(set(days.tolist())))})"
            if refit
            else "the judged model"
        )
        config["policy"] = {
            "overall": guard["policy"],
            "segments": {s: v["policy"] for s, v in guard["segments"].items()}
            if guard["policy"] == POLICY_ROUTER
            else {},
        }
    else:
        config["policy"] = {"overall": POLICY_ROUTER, "segments": {}}
    router = (
        judged
        if judged is not None and not refit
        else _fit(data, everything, roster, channels, config, encoder, seed, progress, "")
    )
    config["context_features"] = router.featurizer.names
    config["channel_rounds"] = router.channel_model.models.rounds()
    config["matcher"] = router.matcher.summary()
    config["guard"] = guard
    summary = {
        "rows": n,
        "days": sorted(set(days.tolist())),
        "agents": len(roster),
        "topics": router.featurizer.topics,
        "encoder_calls": encoder.calls,
        "policy": config["policy"],
        "guard": guard,
    }
    config["training"] = {
        "rows": n,
        "days": summary["days"],
        "agents": len(roster),
        "topics": router.featurizer.topics,
        "logs": str(Path(logs_dir).resolve()),
        "logs_world_sha256": logs.world_sha256,
        "organisation": logs.organisation,
        "seed": seed,
    }
    lineage = Lineage.of_logs(logs, data.cols["contact_id"], data.cols["day"])
    if progress:
        progress("writing", 1, 1)
    with atomic_folder(out, CONFIG_FILE, "router") as tmp:
        lineage.save(tmp)
        router.featurizer.save(tmp)
        router.channel_model.save(tmp)
        router.matcher.save(tmp)
        (tmp / "agents.json").write_text(json.dumps([a.to_json() for a in roster], indent=1) + "\n")
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        write_manifest(
            tmp,
            {
                "format_version": FORMAT_VERSION,
                "kind": KIND,
                "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "versions": {"frontdesk": __version__, "lightgbm": _lgb_version()},
                "policy": config["policy"],
            },
        )
    return summary


def lift_text(guard: dict[str, Any]) -> str:
    """``lift +0.0310, 95 % interval [+0.0120, +0.0500], one-sided lower bound +0.0150
    (DR)`` or why there is none."""
    if "lift" not in guard:
        return guard.get("reason", "no lift measured")
    lo, hi = guard["ci"]
    return (
        f"lift {guard['lift']:+.4f} in utility per contact, 95 % interval [{lo:+.4f}, {hi:+.4f}], "
        f"one-sided 95 % lower bound {guard['lower_bound']:+.4f} (DR)"
    )


def _days(days: list[int]) -> str:
    if not days:
        return "none"
    if days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
        return f"{days[0]}-{days[-1]}"
    return ", ".join(str(d) for d in days)


def _read(
    logs: DecisionLogs,
    roster: list[AgentRecord],
    channels: list[str],
    encoder: ContextEncoder,
    progress: Progress | None,
) -> _Logged:
    """Read and check the logs, and encode every contact in one pass."""
    cols = logs.read(columns=None).to_pydict()
    n = len(cols["contact_id"])
    unknown = sorted({h for h in cols["channel"] if h not in channels})
    if unknown:
        raise DataError(
            str(logs.description), None, "channels", f"lacks {unknown[0]!r}, used in the logs"
        )
    pos = {a.agent_id: i for i, a in enumerate(roster)}
    missing = sorted(
        {a for a in cols["agent_id"] if a not in pos}
        | {a for row in cols["eligible_agents"] for a in (row or []) if a not in pos}
    )
    if missing:
        raise DataError(
            str(logs.root / "agents.json"),
            None,
            "agent_id",
            f"lacks {missing[0]!r}, used in the logs",
        )
    convs = [
        Conversation(
            id=cols["contact_id"][i],
            text=cols["text"][i],
            context={"turns": cols["turns"][i] or [], "user": logs.profile(cols, i)},
        )
        for i in range(n)
    ]
    if progress:
        progress("encoding contacts", 0, n)
    encoded = encoder.encode_contexts(convs)
    ch_pos = {h: i for i, h in enumerate(channels)}
    return _Logged(
        cols=cols,
        encoded=encoded,
        profiles=[c.user.fields() for c in convs],
        channel=np.array([ch_pos[h] for h in cols["channel"]], dtype=int),
        agent=np.array([pos[a] for a in cols["agent_id"]], dtype=int),
        waits=np.asarray(cols["wait_min"], dtype=np.float32),
        n_turns=np.array([len(c.turns) for c in convs]),
        y={
            "resolution": np.asarray(cols["resolved"], dtype=float),
            "handle_time": np.asarray(cols["handle_time"], dtype=float),
            "csat": np.asarray(cols["csat"], dtype=float),
        },
        eligible_agents=[
            np.array([pos[a] for a in row or []], dtype=int) for row in cols["eligible_agents"]
        ],
        eligible_channels=[
            np.array([ch_pos.get(h, -1) for h in row or []], dtype=int)
            for row in cols["eligible_channels"]
        ],
        eligible_propensities=[
            np.asarray(p or [], dtype=float) for p in cols["eligible_propensities"]
        ],
    )


def _fit(
    data: _Logged,
    rows: np.ndarray,
    roster: list[AgentRecord],
    channels: list[str],
    config: dict[str, Any],
    encoder: ContextEncoder,
    seed: int,
    progress: Progress | None,
    stage: str,
) -> Router:
    """A router learned from ``rows`` of the logs only."""
    vectors = data.encoded.vectors[rows]
    topic_names = [data.cols["topic"][i] for i in rows]
    profiles = [data.profiles[i] for i in rows]
    if progress:
        progress(f"{stage}fitting features", 0, 1)
    featurizer = ContextFeaturizer.fit(vectors, topic_names, profiles)
    n, k = len(rows), len(featurizer.topics)
    fold = np.random.default_rng(seed).permutation(n) % FOLDS
    # Topic probabilities out of fold: later stages must learn from topic guesses as
    # uncertain as the ones they will see when serving, not from in-sample fits.
    topic_idx = np.array([featurizer.topics.index(t) for t in topic_names])
    topic_p = np.zeros((n, k), dtype=np.float32)
    for f in range(FOLDS):
        if progress:
            progress(f"{stage}topic classifier {f + 1}/{FOLDS}", f, FOLDS)
        tr, te = fold != f, fold == f
        coef, b = fit_topic_classifier(vectors[tr], topic_idx[tr], k)
        z = vectors[te] @ coef.T + b
        z -= z.max(axis=1, keepdims=True)
        topic_p[te] = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    ctx = featurizer.transform(
        vectors, profiles, data.waits[rows], data.n_turns[rows], topic_probs=topic_p
    )
    if progress:
        progress(f"{stage}channel model", 0, 1)
    y = {t: data.y[t][rows] for t in TARGETS}
    ch = data.channel[rows]
    channel_model, oof = ChannelModel.fit(
        ctx, ch, y, featurizer.names, featurizer.categorical, channels, fold
    )
    if progress:
        progress(f"{stage}agent matcher", 0, 1)
    skills = np.array(
        [[a.skills.get(t, np.nan) for t in featurizer.topics] for a in roster], dtype=float
    ).reshape(len(roster), k)
    cpm = np.array([a.cost_per_minute for a in roster], dtype=float)
    listed = listed_matrix(skills, topic_p)  # (n, agents)
    ag = data.agent[rows]
    on = np.arange(n)
    listed_mean = logging_means(
        [listed[i, data.eligible_agents[r]] for i, r in zip(on, rows, strict=True)],
        [data.eligible_propensities[r] for r in rows],
        [data.eligible_channels[r] == data.channel[r] for r in rows],
    )
    cpm_mean = logging_means(
        [cpm[data.eligible_agents[r]] for r in rows],
        [data.eligible_propensities[r] for r in rows],
        [data.eligible_channels[r] == data.channel[r] for r in rows],
    )
    # A row with no logged eligible pair on its channel: its own agent is the average.
    listed_mean = np.where(np.isnan(listed_mean), listed[on, ag], listed_mean)
    cpm_mean = np.where(np.isnan(cpm_mean), cpm[ag], cpm_mean)
    residuals = {
        "resolution": y["resolution"] - oof["resolution"],
        "handle_time": np.log(np.maximum(y["handle_time"], 1e-3)) - np.log(oof["handle_time"]),
        "csat": y["csat"] - oof["csat"],
    }
    matcher = AgentMatcher.fit(
        [a.agent_id for a in roster],
        len(channels),
        ag,
        ch,
        topic_idx,
        listed[on, ag],
        cpm[ag],
        listed_mean,
        cpm_mean,
        residuals,
        fold,
        k,
    )
    cfg = {**config, "context_features": featurizer.names}
    return Router(featurizer, channel_model, matcher, roster, cfg, encoder=encoder)


def _judge(
    router: Router,
    data: _Logged,
    held: np.ndarray,
    fit_rows: np.ndarray,
    logs: DecisionLogs,
    roster: list[AgentRecord],
    channels: list[str],
) -> dict[str, Any]:
    """The judged router's pick on each held-out row, then :func:`guard.judge`."""
    table = logs.read(columns=None).to_pandas()
    held_df = table.iloc[held].reset_index(drop=True)
    fit_df = table.iloc[fit_rows].reset_index(drop=True)
    choices: list[int] = []
    if len(held):
        enc = data.encoded.take(held.tolist())
        waits = data.waits[held].astype(float)
        pairs = [(data.eligible_channels[r], data.eligible_agents[r]) for r in held]
        segments = [data.profiles[r].get("segment") for r in held]
        context = router.context(enc, waits)
        scored = router.score_pairs(enc, waits, pairs, roster, context, segments)
        choices = [int(np.argmax(s["value"])) if len(s["value"]) else 0 for s in scored]
    return judge(choices, held_df, fit_df, roster, channels)


def _lgb_version() -> str:
    import lightgbm

    return lightgbm.__version__


__all__ = ["AgentRecord", "NoLiftError", "lift_text", "train_router"]
