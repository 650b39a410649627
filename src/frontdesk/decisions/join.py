"""Join served decisions with their outcomes into a log folder the rest of frontdesk reads.

``join_logs(DIR, OUT)`` writes, under OUT, the neutral log-folder schema
(``frontdesk.logs``): ``contacts-DAY.parquet`` (one row per routing decision
acted on, with its complete outcome), ``suggestions-DAY.parquet`` (one row per
suggestion list shown, with ``workflow_used`` where it came back),
``agents.json`` (the served routers' roster) and ``manifest.json`` (channels,
topics, days, organisation, the join's counts, every file's sha256).

**Which outcome wins.** Outcomes are keyed by ``decision_id``; several for one
decision merge field by field, and for each field the most recently received
non-null value wins (received time, then arrival order). So a ticketing
export may send ``resolved`` and a survey ``csat`` later. Outcomes that
arrived before their decision was logged count the same (``early`` says how
many); ids with no decision anywhere in the log are kept and counted
(``unknown``), never dropped from the log itself.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..artifacts import LOGS, MANIFEST, atomic_folder, write_manifest
from ..errors import DataError, FrontdeskError
from ..logs import LEGACY_DESCRIPTION, LOGS_FORMAT_VERSION, PROFILE_FIELDS, log_schema
from ..utility import UtilityWeights
from .store import DECISIONS, OUTCOMES, DecisionLogDir

OUTCOME_VALUES = ("resolved", "csat", "handle_time", "cost", "workflow_used", "topic")
NEEDED = ("resolved", "csat", "handle_time", "cost")  # a routing row needs all four
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def merged_outcomes(store: DecisionLogDir) -> tuple[Any, dict[str, int]]:
    """One row per decision id (the rule above) and the outcome counts."""
    import pandas as pd

    parts = []
    for order, (_, t) in enumerate(store.tables(OUTCOMES)):
        df = t.to_pandas()
        df["file_order"] = order
        parts.append(df)
    if not parts:
        empty = pd.DataFrame(columns=["decision_id", "received", *OUTCOME_VALUES])
        return empty.set_index("decision_id"), {"rows": 0, "decisions": 0, "duplicates": 0}
    df = pd.concat(parts, ignore_index=True)
    df = df.sort_values(["received", "file_order", "seq"], kind="stable")
    merged = df.groupby("decision_id", sort=False)[list(OUTCOME_VALUES)].last()
    merged["received"] = df.groupby("decision_id", sort=False)["received"].min()
    counts = {
        "rows": len(df),
        "decisions": len(merged),
        "duplicates": int(len(df) - len(merged)),
    }
    return merged, counts


def join_logs(
    log_dir: str | Path,
    out: str | Path,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    weights: UtilityWeights | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write the joined log folder at ``out``; returns the counts (also in its manifest)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = DecisionLogDir.open(log_dir)
    target = Path(out)
    if target.resolve() == store.root.resolve() or store.root.resolve() in target.resolve().parents:
        raise FrontdeskError(f"{out}: inside the decision log; write the joined logs elsewhere")
    if not overwrite and target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FrontdeskError(f"{out}: already exists; choose another --out, or pass --overwrite")
    if since and until and since >= until:
        raise FrontdeskError(
            f"--since {since.isoformat()} is not before --until {until.isoformat()}"
        )
    weights = weights or UtilityWeights()
    if progress:
        progress("reading decisions")
    decisions = store.read(DECISIONS).to_pandas()
    every_id = set(decisions["decision_id"])
    if since is not None:
        decisions = decisions[decisions["time"] >= pd.Timestamp(since)]
    if until is not None:
        decisions = decisions[decisions["time"] < pd.Timestamp(until)]
    if progress:
        progress("reading outcomes")
    outcomes, o_counts = merged_outcomes(store)
    o_counts["unknown"] = int((~outcomes.index.isin(list(every_id))).sum())
    shadow = decisions["role"] == "shadow"
    acted = decisions[~shadow]
    joined = acted.join(outcomes, on="decision_id", how="left", rsuffix="_outcome")
    if "topic_outcome" not in joined:
        joined = joined.rename(columns={"topic": "topic_outcome"})
    o_counts["early"] = int((joined["received"] < joined["time"]).sum())
    route = joined[joined["task"] == "route"]
    waiting = route["waiting"].eq(True)
    routed = route[~waiting]
    complete = routed[list(NEEDED)].notna().all(axis=1)
    suggest = joined[joined["task"] == "suggest"]
    counts: dict[str, Any] = {
        "decisions": int(len(decisions)),
        "shadow": int(shadow.sum()),
        "route": {
            "decisions": int(len(route)),
            "waiting": int(waiting.sum()),
            "joined": int(complete.sum()),
            "unjoined": int((~complete).sum()),
            "no_outcome": int(routed["received"].isna().sum()),
        },
        "suggest": {
            "decisions": int(len(suggest)),
            "joined": int(suggest["received"].notna().sum()),
            "with_workflow_used": int(suggest["workflow_used"].notna().sum()),
        },
        "outcomes": o_counts,
    }
    rows = routed[complete]
    if not len(rows) and not counts["suggest"]["joined"]:
        raise FrontdeskError(
            f"{store.root}: no decision in the window has its outcome yet "
            f"({counts['route']['decisions']} routing and {counts['suggest']['decisions']} "
            "suggestion decisions); post outcomes to /v1/outcomes or `frontdesk logs ingest`"
        )
    models = store.models()
    routers = [d for d in models.values() if d.get("task") == "route"]
    roster: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    topics: list[str] = []
    for d in routers:
        roster.update({a["agent_id"]: a for a in d.get("agents", [])})
        channels = channels or dict(d.get("channels") or {})
        topics += [t for t in d.get("topics", []) if t not in topics]
    contacts = _contact_rows(rows, weights)
    suggestions = _suggestion_rows(suggest[suggest["received"].notna()])
    days: dict[int, list[str]] = {}
    with atomic_folder(target, (MANIFEST, LEGACY_DESCRIPTION), "log folder", LOGS) as tmp:
        for name, table, schema in (
            ("contacts", contacts, log_schema(served=True)),
            ("suggestions", suggestions, None),
        ):
            if table is None or not len(table):
                continue
            for day, part in table.groupby("day", sort=True):
                arrow = pa.Table.from_pandas(part, schema=schema, preserve_index=False)
                f = f"{name}-{int(day):05d}.parquet"
                pq.write_table(arrow, tmp / f, write_page_checksum=True)
                days.setdefault(int(day), []).append(f)
        (tmp / "agents.json").write_text(json.dumps(list(roster.values()), indent=1) + "\n")
        write_manifest(
            tmp,
            {
                "kind": LOGS,
                "format_version": LOGS_FORMAT_VERSION,
                "frontdesk_version": __version__,
                "organisation": store.organisation,
                "channels": channels,
                "topics": topics,
                "days": sorted(days),
                "source": {
                    "decision_log": str(store.root.resolve()),
                    "since": since.isoformat() if since else None,
                    "until": until.isoformat() if until else None,
                },
                "models": sorted(f"{m}/{v}" for m, v in models),
                "utility_weights": weights.__dict__,
                "join": counts,
            },
        )
    return counts


def _day(times: Any) -> np.ndarray:
    """Days since 1970-01-01 (UTC) of a timestamp column."""
    return ((times - EPOCH).dt.total_seconds() // 86_400).astype("int64").to_numpy()


def _contact_rows(rows: Any, weights: UtilityWeights) -> Any:
    import pandas as pd

    if not len(rows):
        return None
    t = rows["time"]
    minute = (t - t.dt.floor("D")).dt.total_seconds().to_numpy() / 60.0
    wait = rows["wait_min"].fillna(0.0).to_numpy(dtype=float)
    resolved = rows["resolved"].astype(bool)
    csat = rows["csat"].astype("int64")
    handle = rows["handle_time"].astype(float)
    cost = rows["cost"].astype(float)
    topic = rows["topic_outcome"].where(rows["topic_outcome"].notna(), rows["predicted_topic"])
    ids = rows["contact_id"].where(rows["contact_id"].notna(), rows["decision_id"])
    dup = ids.duplicated(keep="first")
    ids = ids.where(~dup, ids + "~" + rows["decision_id"])  # one row per contact id
    out = pd.DataFrame(
        {
            "contact_id": ids.to_numpy(), "day": _day(t), "arrival_min": minute - wait,
            "decided_min": minute, "wait_min": wait, "user_id": None,
            **{k: rows[k].to_numpy() for k in PROFILE_FIELDS},
            "text": rows["text"].to_numpy(), "turns": rows["turns"].to_numpy(),
            "workflow_id": rows["workflow_used"].to_numpy(),
            "topic": topic.fillna("unknown").to_numpy(),
            "channel": rows["channel"].to_numpy(), "agent_id": rows["agent_id"].to_numpy(),
            "propensity": rows["propensity"].to_numpy(dtype=float),
            "eligible_channels": rows["eligible_channels"].to_numpy(),
            "eligible_agents": rows["eligible_agents"].to_numpy(),
            "eligible_propensities": rows["eligible_propensities"].to_numpy(),
            "policy": (rows["model"] + "/" + rows["model_version"]).to_numpy(),
            "resolved": resolved.to_numpy(), "handle_time": handle.to_numpy(),
            "csat": csat.to_numpy(), "cost": cost.to_numpy(),
            "utility": weights.utility(resolved.astype(float), csat, handle, cost).to_numpy(),
            "decision_id": rows["decision_id"].to_numpy(), "time": t.to_numpy(),
            "model": rows["model"].to_numpy(), "model_version": rows["model_version"].to_numpy(),
            "role": rows["role"].to_numpy(), "workflow_used": rows["workflow_used"].to_numpy(),
        }
    )  # fmt: skip
    missing = out["eligible_propensities"].map(lambda v: v is None or len(v) == 0)
    if missing.any():
        i = int(np.flatnonzero(missing.to_numpy())[0])
        raise DataError(
            str(out["decision_id"].iat[i]), None, "eligible_propensities",
            "missing on a logged routing decision (logged by another frontdesk?)",
        )  # fmt: skip
    return out


SUGGESTION_COLUMNS = (
    "decision_id", "time", "contact_id", "model", "model_version", "role", "text", "turns",
    *PROFILE_FIELDS, "workflow_ids", "scores", "ranked_ids", "shown_propensity",
    "explore_top_k", "explore_rate", "abstained", "confidence", "workflow_used",
)  # fmt: skip


def _suggestion_rows(rows: Any) -> Any:
    if not len(rows):
        return None
    out = rows[list(SUGGESTION_COLUMNS)].copy()
    out.insert(1, "day", _day(rows["time"]))
    shown = out["workflow_ids"].tolist()
    used = out["workflow_used"].tolist()
    out["accepted_rank"] = [
        (list(s).index(u) + 1) if u is not None and s is not None and u in list(s) else None
        for s, u in zip(shown, used, strict=True)
    ]
    return out.reset_index(drop=True)
