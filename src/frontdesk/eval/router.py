"""Judge a router on fresh simulated days against the simulator's true outcome model.

The simulator's ``world.json`` in the log folder names the seed and configuration; the world
(users, agents, hidden skills and outcome model) is rebuilt from them, and
new days after the logged ones are simulated once per policy with the same
arrivals and the same per-contact random numbers. Every policy faces the
same capacity and queueing; outcomes are the true expected values of each
decision (not noisy draws), so differences are the policies', not luck's.

Contacts of a segment the router defers on (``rule-fallback``, chosen by
training's held-out check) are decided by the organisation's rule, as a
deployment that defers to its rule would. Waits are reported as a mean and a
95th percentile, overall and per segment, beside each policy's utility; the
gap closed is reported overall and per segment.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FrontdeskError
from ..extras import require
from ..logs import DecisionLogs
from ..orgsim.dispatch import BatchDispatcher, Epoch, SequentialDispatcher, oracle_values
from ..orgsim.org import contacts_per_day, logged_days, rebuild_world, run_day
from ..orgsim.world import SEGMENTS, World
from ..routing.guard import POLICY_RULE
from ..routing.router import Router
from ..schema import Conversation
from .markdown import md_table, md_to_html

METRICS = ("resolution", "handle_time", "csat", "cost", "utility", "wait", "wait_p95")
POLICIES = ("random", "rule", "router", "oracle")


def router_values(router: Router, world: World, encoded_by_day: dict[int, Any]):  # type: ignore[no-untyped-def]
    """The value the router ranks each eligible pair by, from the day's one encoding."""
    missing = [a for a in world.agents.ids if a not in router.roster]
    if missing:
        raise FrontdeskError(f"the router's roster lacks agents of these logs: {missing[:5]}")
    records = [router.roster[a] for a in world.agents.ids]

    def values(epoch: Epoch, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        day = int(epoch.contacts.day[0])
        enc = encoded_by_day[day].take(epoch.rows.tolist())
        scored = router.score_pairs(enc, epoch.waits, pairs, records)
        return [s["value"] for s in scored]

    return values


def router_defers(router: Router, world: World):  # type: ignore[no-untyped-def]
    """Which waiting contacts the router leaves to the rule (their segment's policy)."""
    deferred = np.array([router.policy_for(s) == POLICY_RULE for s in SEGMENTS])

    def defer(epoch: Epoch) -> np.ndarray:
        return deferred[world.user_segment[epoch.contacts.user[epoch.rows]]]

    return defer


def evaluate_router(
    router: Router,
    logs_dir: str | Path,
    days: int = 3,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Random, rule, router and oracle on ``days`` fresh days; overall and per segment."""
    logs = DecisionLogs.open(logs_dir)
    training = router.config.get("training", {})
    same_org = (
        training.get("organisation") == logs.organisation
        if training.get("organisation") and logs.organisation
        else training.get("logs_world_sha256") == logs.world_sha256
    )
    if training and not same_org:
        warnings.warn(
            f"{logs_dir}: not the organisation this router was trained on; judging it on "
            "another organisation",
            stacklevel=2,
        )
    world = rebuild_world(logs)
    config = world.config
    # The first day after the logged ones, and after every day the router learned from.
    seen = [*logged_days(logs.meta), *(training.get("days", []) if same_org else [])]
    first = max(seen) + 1
    eval_days = list(range(first, first + days))
    per_day = contacts_per_day(logs.meta)
    contacts = {d: world.contacts(d, per_day) for d in eval_days}
    convs = [
        Conversation.model_validate(world.conversation(contacts[d], i))
        for d in eval_days
        for i in range(len(contacts[d]))
    ]
    calls_before = router.encoder.calls
    encoded = router.encode(convs)  # one encoder pass for every contact of every day
    encoded_by_day, start = {}, 0
    for d in eval_days:
        n = len(contacts[d])
        encoded_by_day[d] = encoded.take(range(start, start + n))
        start += n
    dispatchers = {
        "random": SequentialDispatcher("random", None, config.seed),
        "rule": SequentialDispatcher("rule", 0.0, config.seed),
        "logging": SequentialDispatcher("logging", config.temperature, config.seed),
        "router": BatchDispatcher(
            "router",
            router_values(router, world, encoded_by_day),
            router.congestion_price,
            router.aging,
            defer=router_defers(router, world),
        ),
        "oracle": BatchDispatcher("oracle", oracle_values, router.congestion_price, router.aging),
    }
    per: dict[str, dict[str, list[np.ndarray]]] = {p: {} for p in dispatchers}
    violations = 0
    total = len(dispatchers) * len(eval_days)
    step = 0
    for name, disp in dispatchers.items():
        for d in eval_days:
            if progress:
                progress(f"simulating {name}, day {d}", step, total)
            run = run_day(world, contacts[d], disp, d)
            violations += run.capacity_violations
            cols = per[name]
            for m in METRICS[:5]:
                cols.setdefault(m, []).append(run.expected[m])
            cols.setdefault("wait", []).append(run.wait)
            cols.setdefault("segment", []).append(world.user_segment[run.contacts.user])
            step += 1
    policies: dict[str, Any] = {}
    for name, cols in per.items():
        seg = np.concatenate(cols["segment"])
        vals = {m: np.concatenate(cols[m]) for m in METRICS[:-1]}
        policies[name] = _summary(vals, np.ones(len(seg), dtype=bool))
        policies[name]["segments"] = {
            SEGMENTS[g]: {"n": int((seg == g).sum()), **_summary(vals, seg == g)}
            for g in range(len(SEGMENTS))
            if (seg == g).any()
        }
    segments = sorted(policies["rule"]["segments"])
    return {
        "logs": str(Path(logs_dir)),
        "days": eval_days,
        "contacts": len(convs),
        "policies": policies,
        "gap_closed": _gap(policies, None),
        "segments_gap_closed": {s: _gap(policies, s) for s in segments},
        "router_policy": {
            "overall": router.policy.get("overall"),
            "segments": {s: router.policy_for(s) for s in segments},
            "guard_lift": (router.config.get("guard") or {}).get("lift"),
            "guard_ci": (router.config.get("guard") or {}).get("ci"),
        },
        "capacity_violations": int(violations),
        "encoder_calls": router.encoder.calls - calls_before,
        "weights": router.weights.__dict__,
    }


SEGMENT_COLUMNS = (
    "segment", "n", "policy", "rule utility", "router utility", "oracle utility", "gap closed",
    "rule p95 wait", "router p95 wait",
)  # fmt: skip


def segment_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """Per segment, as text: who routes it, utility per policy, gap closed and the 95th
    percentile of wait (minutes) under the rule and the router (``SEGMENT_COLUMNS``)."""
    pol = result["policies"]
    rows = []
    for s, gap in result["segments_gap_closed"].items():
        seg = {p: pol[p]["segments"][s] for p in ("rule", "router", "oracle")}
        rows.append(
            (
                s,
                str(seg["rule"]["n"]),
                result["router_policy"]["segments"].get(s, ""),
                *(f"{seg[p]['utility']:.4f}" for p in ("rule", "router", "oracle")),
                "n/a" if gap is None else f"{gap:.3f}",
                f"{seg['rule']['wait_p95']:.0f}",
                f"{seg['router']['wait_p95']:.0f}",
            )
        )
    return rows


def _summary(vals: dict[str, np.ndarray], on: np.ndarray) -> dict[str, float]:
    """Mean of each metric over the rows ``on``, and the 95th percentile of their wait."""
    out = {m: float(vals[m][on].mean()) for m in vals}
    out["wait_p95"] = float(np.percentile(vals["wait"][on], 95))
    return out


def _gap(policies: dict[str, Any], segment: str | None) -> float | None:
    """(router - rule) / (oracle - rule) in utility, overall or in one segment."""
    u = {
        p: (v if segment is None else v["segments"][segment])["utility"]
        for p, v in policies.items()
    }
    gap = u["oracle"] - u["rule"]
    return float((u["router"] - u["rule"]) / gap) if gap > 0 else None


def write_router_report(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """report.md, report.html, report.json and PNG plots for one router evaluation."""
    require("matplotlib", "--report (its plots)")  # before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pol = result["policies"]
    names = [p for p in (*POLICIES, "logging") if p in pol]
    plots = _plots(result, names, out)
    gc = result.get("gap_closed")
    md = [
        f"# Router evaluation: {result['logs']}",
        "",
        f"{result['contacts']} contacts on fresh days {result['days']}, true expected outcomes; "
        + (f"gap closed (rule to oracle): {gc:.3f}" if gc is not None else "gap closed: n/a"),
        f"capacity violations: {result['capacity_violations']}; encoder calls: "
        f"{result['encoder_calls']}",
        "",
        "## Overall",
        "",
        *md_table(["policy", *METRICS], [(p, *(pol[p][m] for m in METRICS)) for p in names]),
        "",
        "## By segment",
        "",
        *md_table(list(SEGMENT_COLUMNS), segment_rows(result)),
        "",
    ]
    for m in METRICS:
        segs = sorted({s for p in names for s in pol[p]["segments"]})
        md += [
            f"## {m} by segment",
            "",
            *md_table(
                ["segment", "n", *names],
                [
                    (
                        s,
                        pol[names[0]]["segments"][s]["n"],
                        *(pol[p]["segments"][s][m] for p in names),
                    )
                    for s in segs
                ],
            ),
            "",
        ]
    md += ["## Plots", ""] + [f"![{k}]({v})" for k, v in plots.items()] + [""]
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text(md_to_html(md, "frontdesk router evaluation", base=out))
    (out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    return [
        out / "report.md",
        out / "report.html",
        out / "report.json",
        *(out / v for v in plots.values()),
    ]


def _plots(result: dict[str, Any], names: list[str], out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pol = result["policies"]
    files = {}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(names, [pol[p]["utility"] for p in names], color="#4c72b0")
    ax.set_ylabel("mean true utility per contact")
    ax.set_title("Utility by policy")
    fig.tight_layout()
    fig.savefig(out / "utility.png", dpi=100)
    plt.close(fig)
    files["utility by policy"] = "utility.png"

    segs = sorted({s for p in names for s in pol[p]["segments"]})
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(names)
    for j, p in enumerate(names):
        ax.bar(
            np.arange(len(segs)) + j * width,
            [pol[p]["segments"][s]["utility"] for s in segs],
            width,
            label=p,
        )
    ax.set_xticks(np.arange(len(segs)) + 0.4 - width / 2, segs)
    ax.set_ylabel("mean true utility per contact")
    ax.legend(fontsize=8)
    ax.set_title("Utility by segment")
    fig.tight_layout()
    fig.savefig(out / "utility_by_segment.png", dpi=100)
    plt.close(fig)
    files["utility by segment"] = "utility_by_segment.png"

    fig, ax = plt.subplots(figsize=(5, 4))
    for p in names:
        ax.scatter(pol[p]["cost"], pol[p]["resolution"], label=p, s=50)
    ax.set_xlabel("cost per contact ($)")
    ax.set_ylabel("resolution rate (share resolved)")
    ax.legend(fontsize=8)
    ax.set_title("Resolution against cost")
    fig.tight_layout()
    fig.savefig(out / "resolution_cost.png", dpi=100)
    plt.close(fig)
    files["resolution against cost"] = "resolution_cost.png"
    return files
