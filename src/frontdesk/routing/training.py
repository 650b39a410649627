"""Train a Router from decision logs (``frontdesk simulate org`` or a real organisation's).

The channel model and the agent history are fitted out of fold (five folds
of contacts), so the agent matcher learns from the same kind of inputs it
will see when serving, not from predictions of models that saw its rows.
The router folder records its lineage (:mod:`frontdesk.lineage`): which
logged rows it learned from, so it is never judged on them unawares.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..artifacts import FORMAT_VERSION, atomic_folder, write_manifest
from ..encoding import ContextEncoder
from ..encoding.model_files import default_model_path
from ..errors import DataError
from ..lineage import Lineage
from ..logs import DecisionLogs
from ..schema import AgentRecord, Conversation
from .agent_matcher import AgentMatcher
from .channel_model import ChannelModel
from .features import AgentHistory, ContextFeaturizer, fit_topic_classifier
from .router import CONFIG_FILE, KIND, Router, RoutingWeights

FOLDS = 5

Progress = Callable[[str, int, int], None]


def train_router(
    logs_dir: str | Path,
    out: str | Path,
    *,
    encoder: ContextEncoder | None = None,
    weights: RoutingWeights | None = None,
    congestion_price: float = 0.1,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fit featurizer, channel model, agent history and matcher; write the router folder."""
    logs = DecisionLogs.open(logs_dir)
    table = logs.read(columns=None)
    encoder = encoder or ContextEncoder()
    weights = weights or RoutingWeights()
    n = table.num_rows
    cols = table.to_pydict()
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
    if progress:
        progress("fitting features", n, n)
    profiles = [c.user.fields() for c in convs]
    featurizer = ContextFeaturizer.fit(encoded.vectors, cols["topic"], profiles)
    channels = logs.channels
    unknown = sorted({h for h in cols["channel"] if h not in channels})
    if unknown:
        raise DataError(
            str(logs.description),
            None,
            "channels",
            f"lacks {unknown[0]!r}, used in the logs",
        )
    ch_idx = np.array([channels.index(h) for h in cols["channel"]])
    waits = np.asarray(cols["wait_min"], dtype=np.float32)
    rng = np.random.default_rng(seed)
    fold = rng.permutation(n) % FOLDS
    # Topic probabilities out of fold: the matcher must learn from topic guesses as
    # uncertain as the ones it will see when serving, not from in-sample fits.
    y_topic = np.array([featurizer.topics.index(t) for t in cols["topic"]])
    topic_p = np.zeros((n, len(featurizer.topics)), dtype=np.float32)
    for f in range(FOLDS):
        if progress:
            progress(f"topic classifier {f + 1}/{FOLDS}", f, FOLDS)
        tr, te = fold != f, fold == f
        coef, b = fit_topic_classifier(encoded.vectors[tr], y_topic[tr], len(featurizer.topics))
        z = encoded.vectors[te] @ coef.T + b
        z -= z.max(axis=1, keepdims=True)
        topic_p[te] = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    ctx = featurizer.transform(
        encoded.vectors,
        profiles,
        waits,
        np.array([len(c.turns) for c in convs]),
        topic_probs=topic_p,
    )
    y = {
        "resolution": np.asarray(cols["resolved"], dtype=float),
        "handle_time": np.asarray(cols["handle_time"], dtype=float),
        "csat": np.asarray(cols["csat"], dtype=float),
    }
    base = np.array([logs.channel_info[h]["base_minutes"] for h in channels])[ch_idx]
    hist_y = np.column_stack([y["resolution"], y["csat"], y["handle_time"] / base])
    clusters = topic_p.argmax(axis=1)
    k = len(featurizer.topics)
    roster = logs.roster()
    ids = [a.agent_id for a in roster]
    pos = {a: i for i, a in enumerate(ids)}
    missing = sorted({a for a in cols["agent_id"] if a not in pos})
    if missing:
        raise DataError(
            str(logs.root / "agents.json"),
            None,
            "agent_id",
            f"lacks {missing[0]!r}, used in the logs",
        )
    ag_idx = np.array([pos[a] for a in cols["agent_id"]])
    names, cat = featurizer.names, featurizer.categorical
    config = {
        "channels": channels,
        "channel_info": logs.channel_info,
        "weights": weights.__dict__,
        "congestion_price": congestion_price,
        "encoder_sha256": encoder.fingerprint,
        "encoder_name": encoder.name,
        "encoder_path": str(encoder.path.resolve()),
        "encoder_bundled": encoder.path.resolve() == default_model_path().resolve(),
        "context_features": names,
    }

    def router_with(cm: ChannelModel, hist: AgentHistory) -> Router:
        return Router(featurizer, cm, None, hist, roster, config, encoder=encoder)  # type: ignore[arg-type]

    x_match = np.zeros((n, len(AgentMatcher.feature_names(names))), dtype=np.float32)
    for f in range(FOLDS):
        if progress:
            progress(f"out-of-fold {f + 1}/{FOLDS}", f, FOLDS)
        tr, te = fold != f, fold == f
        cm = ChannelModel.fit(
            ctx[tr], ch_idx[tr], {t: v[tr] for t, v in y.items()}, names, cat, channels
        )
        hist = AgentHistory.fit(ids, k, [ids[a] for a in ag_idx[tr]], clusters[tr], hist_y[tr])
        rows = np.flatnonzero(te)
        x_match[rows], _ = router_with(cm, hist).pair_matrix(
            ctx, topic_p, clusters, rows, ch_idx[rows], roster, ag_idx[rows]
        )
    if progress:
        progress("fitting final models", FOLDS, FOLDS)
    channel_model = ChannelModel.fit(ctx, ch_idx, y, names, cat, channels)
    history = AgentHistory.fit(ids, k, list(cols["agent_id"]), clusters, hist_y)
    matcher = AgentMatcher.fit(x_match, y, names, cat)
    summary = {
        "rows": n,
        "days": sorted(set(cols["day"])),
        "agents": len(roster),
        "topics": featurizer.topics,
        "encoder_calls": encoder.calls,
    }
    config["training"] = {
        **summary,
        "logs": str(Path(logs_dir).resolve()),
        "logs_world_sha256": logs.world_sha256,
        "organisation": logs.organisation,
        "seed": seed,
    }
    lineage = Lineage.of_logs(logs, cols["contact_id"], cols["day"])
    with atomic_folder(out, CONFIG_FILE, "router") as tmp:
        lineage.save(tmp)
        featurizer.save(tmp)
        channel_model.save(tmp)
        matcher.save(tmp)
        history.save(tmp)
        (tmp / "agents.json").write_text(json.dumps([a.to_json() for a in roster], indent=1) + "\n")
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        write_manifest(
            tmp,
            {
                "format_version": FORMAT_VERSION,
                "kind": KIND,
                "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "versions": {"frontdesk": __version__, "lightgbm": _lgb_version()},
            },
        )
    return summary


def _lgb_version() -> str:
    import lightgbm

    return lightgbm.__version__


__all__ = ["AgentRecord", "train_router"]
