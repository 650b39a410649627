"""The whole decision loop on loopback, judged against the simulator's exact values.

A simulated organisation's first days train a router; the router is served
(``frontdesk serve`` with a decision log, exploring epsilon-greedily with
``epsilon``, or by softmax over its utilities at ``temperature``) on 127.0.0.1; later days are played through ``/v1/route`` (``orgsim.served``),
the hidden outcome model's outcomes posted to ``/v1/outcomes``; each block of
days is joined (``logs join --since --until``) and judged:

* the served policy (``logging``: the propensities the server logged) by
  ``simulate policy``, against ``simulate truth`` on the same contacts;
* a router retrained on the joined logs of the first ``retrain_blocks``
  blocks, judged off-policy on each later block (as its argmax, and as it would
  be served: with the same exploration), against its exact value there, and
  its difference from the served policy against the true difference.

With a canary (``canary_percent``), a second router version answers that
share of requests beside the default (``routing.json``), and each block's
``logs lift`` report (``decisions.lift``) is judged against the arms' exact
values on the contacts each served.

Replicates are disjoint blocks of days of one organisation, each with its own
contacts and exploration draws.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..decisions.join import join_logs
from ..ope.offpolicy import simulate_policy
from ..orgsim import OrgConfig, simulate_org
from ..orgsim.org import rebuild_world
from ..orgsim.served import play_days
from ..orgsim.truth import true_values
from ..orgsim.world import QueryPool

ESTIMATORS_SHOWN = ("dr", "ipw", "snipw", "dm")


@contextlib.contextmanager
def loopback_server(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1:<free port>, in a thread; its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def play_blocks(
    app: Any,
    world: Any,
    first_day: int,
    blocks: int,
    days_per_block: int,
    contacts_per_day: int,
    say: Any,
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Serve ``app`` on loopback and play ``blocks`` blocks of days through ``/v1/route``,
    posting each day's outcomes; returns each block's time window (for ``logs join``)."""
    import httpx

    windows: list[tuple[dt.datetime, dt.datetime]] = []
    with loopback_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        deadline = time.time() + 300
        while client.get("/v2/health/ready").status_code != 200:
            if time.time() > deadline:
                raise RuntimeError(f"server not ready: {client.get('/v2/health/ready').text}")
            time.sleep(0.2)

        def route(conv: dict[str, Any], agents_: list[dict[str, Any]], wait: float) -> Any:
            res = client.post("/v1/route", json={**conv, "agents": agents_, "wait_min": wait})
            res.raise_for_status()
            return res.json()

        def report(outcomes: list[dict[str, Any]]) -> None:
            for i in range(0, len(outcomes), 1000):
                res = client.post("/v1/outcomes", json={"outcomes": outcomes[i : i + 1000]})
                res.raise_for_status()

        for b in range(blocks):
            first = first_day + b * days_per_block
            since = dt.datetime.now(dt.UTC)
            n = play_days(world, list(range(first, first + days_per_block)),
                          contacts_per_day, route, report)  # fmt: skip
            app.state.service.decision_log.decisions.flush()
            until = dt.datetime.now(dt.UTC) + dt.timedelta(microseconds=1)
            windows.append((since, until))
            say(f"block {b + 1}/{blocks}: {n} contacts served")
    return windows


def run_loop(
    work: Path,
    pool: QueryPool,
    *,
    seed: int = 11,
    agents: int = 12,
    contacts_per_day: int = 300,
    train_days: int = 4,
    replicates: int = 20,
    days_per_replicate: int = 2,
    epsilon: float = 0.2,
    temperature: float = 0.0,
    retrain_blocks: int = 0,
    retrain_targets: tuple[str, ...] = ("argmax", "as-served"),
    canary_percent: float = 0.0,
    canary_parameters: dict[str, Any] | None = None,
    canary_congestion_price: float | None = None,
    encoder: Any = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train, serve, play, join and judge; per replicate the served policy's estimates.

    The served router explores by softmax over its utilities at ``temperature``
    when that is > 0, else epsilon-greedily with ``epsilon``. With
    ``retrain_blocks`` > 0, ``result["retrained"]`` holds a router trained on
    the first ``retrain_blocks`` blocks' joined logs, judged on each replicate's
    block as each of ``retrain_targets`` (``judge_retrained``).

    With ``canary_percent`` > 0 a second version of the router serves that
    share of requests as a canary (``routing.json``): the same router with
    ``canary_parameters`` (its runtime parameters, e.g. ``{"epsilon": 1.0}``;
    the default's when None, an A/A test), or a router trained with
    ``canary_congestion_price``. Each replicate's block then also gets the lift
    report (``judge_canary``), and ``result["canary"]`` holds it per block,
    summarised, and pooled over the replicates' blocks. The served policy
    judged off-policy is then the mixture the server logged, row by row.
    """
    from ..routing import train_router
    from ..scoring.decision_logging import DecisionLogSettings
    from ..scoring.packaging import package_model
    from ..scoring.server import create_app

    say = log or (lambda _msg: None)
    sim, router, models, dlog = work / "sim", work / "router", work / "models", work / "dlog"
    cfg = OrgConfig(seed=seed, contacts=contacts_per_day * train_days, agents=agents,
                    days=train_days)  # fmt: skip
    simulate_org(cfg, pool, sim)
    say(f"simulated {train_days} days; training the router")
    train_router(sim, router, encoder=encoder)
    exploration = {"temperature": temperature} if temperature > 0 else {"epsilon": epsilon}
    package_model(router, "route", models, parameters={**exploration, "seed": seed})
    canary: dict[str, Any] | None = None
    canary_src = router
    if canary_percent > 0:
        if canary_congestion_price is not None:
            canary_src = work / "router-canary"
            say(f"training the canary's router (congestion price {canary_congestion_price})")
            train_router(sim, canary_src, encoder=encoder, congestion_price=canary_congestion_price)
        params = dict(canary_parameters) if canary_parameters is not None else dict(exploration)
        package_model(canary_src, "route", models, version="2",
                      parameters={**params, "seed": seed + 1})  # fmt: skip
        routing = {"default": "1", "canary": {"2": canary_percent}}
        (models / "route" / "routing.json").write_text(json.dumps(routing) + "\n")
        canary = {"percent": canary_percent, "parameters": params,
                  "congestion_price": canary_congestion_price, "default": exploration}  # fmt: skip
    from ..logs import DecisionLogs

    world = rebuild_world(DecisionLogs.open(sim))
    settings = DecisionLogSettings(folder=str(dlog), flush_seconds=0.5)
    app = create_app(models, decision_log=settings, seed=seed)
    runs: list[dict[str, Any]] = []
    lifts: list[dict[str, Any]] = []
    windows = play_blocks(app, world, train_days, replicates + retrain_blocks, days_per_replicate,
                          contacts_per_day, say)  # fmt: skip
    for r in range(replicates):
        since, until = windows[retrain_blocks + r]
        joined = work / f"joined-{r}"
        counts = join_logs(dlog, joined, since=since, until=until)
        est = simulate_policy(joined, "logging", segments=[], metrics=["utility"])["utility"]
        overall = est["overall"]
        truth = true_values(joined, "logging", metrics=["utility"], segments=[], world_logs=sim)
        run = {
            "replicate": r,
            "rows": counts["route"]["joined"],
            "unjoined": counts["route"]["unjoined"],
            "truth": truth["utility"]["__overall__"],
            **{e: {"value": overall[e]["value"], "ci": overall[e]["ci"]} for e in ESTIMATORS_SHOWN},
        }
        runs.append(run)
        say(f"replicate {r}: truth {run['truth']:.4f}, DR {run['dr']['value']:.4f} "
            f"[{run['dr']['ci'][0]:.4f}, {run['dr']['ci'][1]:.4f}]")  # fmt: skip
        if canary is not None:
            lift = {"replicate": r, **judge_canary(joined, counts, sim)}
            lifts.append(lift)
            u = lift["metrics"]["utility"]
            ci = f"[{u['ci'][0]:+.4f}, {u['ci'][1]:+.4f}]" if u.get("ci") else "(no interval)"
            diff = f"{u['difference']:+.4f}" if u.get("difference") is not None else "n/a"
            say(f"  canary: {lift['n_canary']} of {lift['rows']} rows; utility lift {diff} "
                f"{ci}, true {u['true_difference']:+.4f}")  # fmt: skip
    result: dict[str, Any] = {"runs": runs, "summary": summarise(runs)}
    if canary is not None:
        whole = work / "joined-canary"
        counts = join_logs(dlog, whole, since=windows[retrain_blocks][0], until=windows[-1][1])
        canary.update(runs=lifts, summary=summarise_canary(lifts),
                      pooled=judge_canary(whole, counts, sim))  # fmt: skip
        result["canary"] = canary
    result["served"] = exploration
    if retrain_blocks:
        result["retrained"] = judge_retrained(
            work, dlog, windows, runs, sim, encoder, retrain_blocks=retrain_blocks,
            exploration=exploration, targets=retrain_targets, log=say,
        )  # fmt: skip
    for folder in (sim, router, models, canary_src):
        shutil.rmtree(folder, ignore_errors=True)
    return result


def retrained_policy(router: Path, target: str, exploration: dict[str, float]) -> dict[str, Any]:
    """The policy spec of a retrained router: ``argmax``, or ``as-served`` (with the served
    policy's exploration: softmax at its temperature, or epsilon-greedy as a mixture
    with ``uniform`` over the eligible pairs)."""
    if target == "argmax":
        return {"router": str(router)}
    if target != "as-served":
        raise ValueError(f"unknown retrained target {target!r}; use argmax or as-served")
    if exploration.get("temperature", 0.0) > 0:
        return {"router": str(router), "temperature": exploration["temperature"]}
    eps = float(exploration.get("epsilon", 0.0))
    return {"mixture": [{"weight": 1.0 - eps, "policy": {"router": str(router)}},
                        {"weight": eps, "policy": "uniform"}]}  # fmt: skip


def target_name(target: str, exploration: dict[str, float]) -> str:
    """A readable name of a retrained target: argmax, softmax T=…, or epsilon-greedy …."""
    if target == "argmax":
        return "argmax"
    if exploration.get("temperature", 0.0) > 0:
        return f"softmax T={exploration['temperature']:g}"
    return f"epsilon-greedy {exploration.get('epsilon', 0.0):g}"


def judge_retrained(
    work: Path,
    dlog: Path,
    windows: list[tuple[dt.datetime, dt.datetime]],
    runs: list[dict[str, Any]],
    sim: Path,
    encoder: Any,
    *,
    retrain_blocks: int,
    exploration: dict[str, float],
    targets: tuple[str, ...] = ("argmax", "as-served"),
    log: Any = None,
) -> dict[str, Any]:
    """A router trained on the first blocks' joined logs, judged on each later block.

    The later blocks are the served-policy replicates' (``runs``: their joined
    folders and exact values are reused), disjoint from its training logs. Per
    target (``retrained_policy``) and block: each estimator's value and its
    difference from the served policy, beside the exact values; then summaries
    over the blocks, and the blocks pooled (the mean of their estimates, its
    interval from their standard errors: the blocks are independent, equal-sized).
    Replicates vary the contacts and exploration draws, not the retrained router.
    """
    from ..routing import train_router

    say = log or (lambda _msg: None)
    train, router = work / "joined-train", work / "router-retrained"
    counts = join_logs(dlog, train, since=windows[0][0], until=windows[retrain_blocks - 1][1])
    say(f"training a router on the first {retrain_blocks} blocks "
        f"({counts['route']['joined']} rows)")  # fmt: skip
    train_router(train, router, encoder=encoder)
    out: dict[str, Any] = {"retrain_blocks": retrain_blocks,
                           "train_rows": counts["route"]["joined"], "targets": {}}  # fmt: skip
    for target in targets:
        policy = retrained_policy(router, target, exploration)
        name = target_name(target, exploration)
        tr: list[dict[str, Any]] = []
        for r, served in enumerate(runs):
            later = work / f"joined-{r}"
            est = simulate_policy(later, policy, segments=[], metrics=["utility"])
            overall = est["utility"]["overall"]
            truth = true_values(later, policy, metrics=["utility"], segments=[],
                                world_logs=sim)["utility"]["__overall__"]  # fmt: skip
            run = {
                "replicate": r, "truth": truth, "served_truth": served["truth"],
                "true_difference": truth - served["truth"],
                **{e: {"value": overall[e]["value"], "ci": overall[e]["ci"],
                       "difference": overall[e]["difference"],
                       "difference_ci": overall[e]["difference_ci"], "ess": overall[e]["ess"]}
                   for e in ESTIMATORS_SHOWN},
            }  # fmt: skip
            tr.append(run)
            d = run["dr"]
            say(f"retrained ({name}) on block {r}: truth {truth:.4f} (served "
                f"{served['truth']:.4f}), DR {d['value']:.4f} [{d['ci'][0]:.4f}, "
                f"{d['ci'][1]:.4f}], ESS {d['ess']:.0f}")  # fmt: skip
        out["targets"][name] = {
            "target": target, "policy": policy, "runs": tr, "summary": summarise(tr),
            "differences": summarise_differences(tr), "pooled": pool_blocks(tr),
        }  # fmt: skip
    shutil.rmtree(router, ignore_errors=True)
    return out


def pool_blocks(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per estimator, the blocks pooled: the mean of the values and of the differences from
    the served policy, 95 % intervals from the blocks' standard errors, beside the truth."""
    n = len(runs)
    out: dict[str, Any] = {
        "blocks": n,
        "truth": sum(r["truth"] for r in runs) / max(n, 1),
        "true_difference": sum(r["true_difference"] for r in runs) / max(n, 1),
    }
    for e in ESTIMATORS_SHOWN:
        entry: dict[str, Any] = {}
        for key, ci_key, truth in (("value", "ci", out["truth"]),
                                   ("difference", "difference_ci", out["true_difference"])):  # fmt: skip
            mean = sum(r[e][key] for r in runs) / max(n, 1)
            se = math.sqrt(sum(((r[e][ci_key][1] - r[e][ci_key][0]) / (2 * 1.96)) ** 2
                               for r in runs)) / max(n, 1)  # fmt: skip
            ci = [mean - 1.96 * se, mean + 1.96 * se]
            entry[key] = mean
            entry[ci_key] = ci
            entry[f"{key}_covered"] = bool(ci[0] <= truth <= ci[1])
        out[e] = entry
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per estimator: how many intervals cover the truth, mean bias, mean width."""
    out = {}
    for e in ESTIMATORS_SHOWN:
        covered = sum(r[e]["ci"][0] <= r["truth"] <= r[e]["ci"][1] for r in runs)
        bias = sum(r[e]["value"] - r["truth"] for r in runs) / max(len(runs), 1)
        width = sum(r[e]["ci"][1] - r[e]["ci"][0] for r in runs) / max(len(runs), 1)
        out[e] = {"covered": covered, "of": len(runs), "mean_bias": bias, "mean_width": width}
    return out


def summarise_differences(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per estimator, the estimated difference from the served policy against the true one:
    intervals covering it, mean error and width, and intervals that exclude 0 on the true
    side (``right``) or on the wrong side (``wrong``)."""
    out: dict[str, dict[str, float]] = {}
    n = max(len(runs), 1)
    for e in ESTIMATORS_SHOWN:
        cis = [(r[e]["difference_ci"], r["true_difference"]) for r in runs]
        out[e] = {
            "covered": sum(lo <= t <= hi for (lo, hi), t in cis), "of": len(runs),
            "mean_error": sum(r[e]["difference"] - r["true_difference"] for r in runs) / n,
            "mean_width": sum(hi - lo for (lo, hi), _ in cis) / n,
            "right": sum((lo > 0 and t > 0) or (hi < 0 and t < 0) for (lo, hi), t in cis),
            "wrong": sum((lo > 0 and t <= 0) or (hi < 0 and t >= 0) for (lo, hi), t in cis),
            "mean_ess": sum(r[e]["ess"] for r in runs) / n,
        }  # fmt: skip
    return out


# -- canary -------------------------------------------------------------------------------------

# lift's metric -> the same expectation in ``true_values``
CANARY_METRICS = {
    "utility": "utility", "resolved": "resolution", "csat": "csat",
    "handle_time": "handle_time", "cost": "cost",
}  # fmt: skip


def judge_canary(out: Path, counts: dict[str, Any], sim: Path) -> dict[str, Any]:
    """The lift report of a joined block (canary 2 against the default), each metric's
    interval beside the true difference of the arms on the contacts each served.

    The truth is each arm's exact expected value, given the contacts it served
    (with their waits and eligible pairs), of the policy it logged: what the
    difference of the arms' means estimates. Welch's variance also counts the
    contact-to-contact spread, so against this target the interval is conservative.
    """
    from ..decisions.lift import lift_report, verdict_line

    report = lift_report(out, metrics=list(CANARY_METRICS))
    truth = true_values(out, "logging", metrics=list(CANARY_METRICS.values()),
                        segments=["model_version"], world_logs=sim)  # fmt: skip
    metrics: dict[str, Any] = {}
    overall = [c for c in report["comparisons"] if c["arm"] == "canary 2" and c["segment"] is None]
    if not overall:
        raise RuntimeError(f"{out}: no canary rows to judge: {report['verdicts']}")
    canary = overall[0]
    for c in overall:
        t = truth[CANARY_METRICS[c["metric"]]]
        true_diff = t["2"] - t["1"]
        lo, hi = c["ci"]
        metrics[c["metric"]] = {
            "difference": c["difference"], "ci": [lo, hi], "verdict": c["verdict"],
            "truth_default": t["1"], "truth_canary": t["2"], "true_difference": true_diff,
            "covered": bool(lo <= true_diff <= hi),
            "true_verdict_agrees": _agrees(c["verdict"], true_diff, c["metric"]),
        }  # fmt: skip
    return {
        "rows": counts["route"]["joined"],
        "unjoined": counts["route"]["unjoined"],
        "n_default": canary["n_baseline"],
        "n_canary": canary["n"],
        "share": canary["share"],
        "metrics": metrics,
        "verdicts": [verdict_line(c) for c in overall],
        "warnings": report["warnings"],
    }


def _agrees(verdict: str, true_diff: float, metric: str) -> bool:
    """A better/worse verdict agrees with the truth's sign; 'not distinguishable' always does."""
    from ..decisions.lift import METRICS

    if verdict not in ("better", "worse"):
        return True
    return (true_diff * METRICS[metric] > 0) == (verdict == "better")


def summarise_canary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric: intervals covering the true difference, mean width and error; verdicts."""
    out: dict[str, Any] = {
        "share": sum(r["share"] for r in runs) / max(len(runs), 1),
        "n_canary": sum(r["n_canary"] for r in runs) / max(len(runs), 1),
    }
    for m in CANARY_METRICS:
        ms = [r["metrics"][m] for r in runs]
        verdicts: dict[str, int] = {}
        for x in ms:
            verdicts[x["verdict"]] = verdicts.get(x["verdict"], 0) + 1
        out[m] = {
            "covered": sum(x["covered"] for x in ms), "of": len(ms),
            "mean_width": sum(x["ci"][1] - x["ci"][0] for x in ms) / max(len(ms), 1),
            "mean_error": sum(x["difference"] - x["true_difference"] for x in ms) / max(len(ms), 1),
            "mean_true_difference": sum(x["true_difference"] for x in ms) / max(len(ms), 1),
            "verdicts": verdicts,
            "wrong_sign": sum(not x["true_verdict_agrees"] for x in ms),
        }  # fmt: skip
    return out
