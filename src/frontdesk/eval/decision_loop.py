"""The whole decision loop on loopback, judged against the simulator's exact values.

A simulated organisation's first days train a router; the router is served
(``frontdesk serve`` with a decision log, exploring with ``epsilon``) on
127.0.0.1; later days are played through ``/v1/route`` (``orgsim.served``),
the hidden outcome model's outcomes posted to ``/v1/outcomes``; each block of
days is joined (``logs join --since --until``) and judged:

* the served policy (``logging``: the propensities the server logged) by
  ``simulate policy``, against ``simulate truth`` on the same contacts;
* a router retrained on the joined logs of the earlier blocks, judged
  off-policy on the last block's logs, against its exact value there.

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
    retrain_blocks: int = 0,
    canary_percent: float = 0.0,
    canary_parameters: dict[str, Any] | None = None,
    canary_congestion_price: float | None = None,
    encoder: Any = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train, serve, play, join and judge; per replicate the served policy's estimates.

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
    package_model(router, "route", models, parameters={"epsilon": epsilon, "seed": seed})
    canary: dict[str, Any] | None = None
    canary_src = router
    if canary_percent > 0:
        if canary_congestion_price is not None:
            canary_src = work / "router-canary"
            say(f"training the canary's router (congestion price {canary_congestion_price})")
            train_router(sim, canary_src, encoder=encoder, congestion_price=canary_congestion_price)
        params = dict(canary_parameters) if canary_parameters is not None else {"epsilon": epsilon}
        package_model(canary_src, "route", models, version="2",
                      parameters={**params, "seed": seed + 1})  # fmt: skip
        routing = {"default": "1", "canary": {"2": canary_percent}}
        (models / "route" / "routing.json").write_text(json.dumps(routing) + "\n")
        canary = {"percent": canary_percent, "parameters": params,
                  "congestion_price": canary_congestion_price, "default_epsilon": epsilon}  # fmt: skip
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
            say(f"  canary: {lift['n_canary']} of {lift['rows']} rows; utility lift "
                f"{u['difference']:+.4f} [{u['ci'][0]:+.4f}, {u['ci'][1]:+.4f}], true "
                f"{u['true_difference']:+.4f}")  # fmt: skip
    result: dict[str, Any] = {"runs": runs, "summary": summarise(runs)}
    if canary is not None:
        whole = work / "joined-canary"
        counts = join_logs(dlog, whole, since=windows[retrain_blocks][0], until=windows[-1][1])
        canary.update(runs=lifts, summary=summarise_canary(lifts),
                      pooled=judge_canary(whole, counts, sim))  # fmt: skip
        result["canary"] = canary
    if retrain_blocks:
        result["retrained"] = judge_retrained(work, dlog, windows, retrain_blocks, sim, encoder)
    for folder in (sim, router, models, canary_src):
        shutil.rmtree(folder, ignore_errors=True)
    return result


def judge_retrained(
    work: Path,
    dlog: Path,
    windows: list[tuple[dt.datetime, dt.datetime]],
    retrain_blocks: int,
    sim: Path,
    encoder: Any,
) -> dict[str, Any]:
    """A router trained on the first blocks' joined logs, judged on the next block's."""
    from ..routing import train_router

    train, later, router = work / "joined-train", work / "joined-later", work / "router-served"
    join_logs(dlog, train, since=windows[0][0], until=windows[retrain_blocks - 1][1])
    join_logs(dlog, later, since=windows[retrain_blocks][0], until=windows[retrain_blocks][1])
    train_router(train, router, encoder=encoder)
    est = simulate_policy(later, router, segments=[], metrics=["utility"])["utility"]["overall"]
    truth = true_values(later, router, metrics=["utility"], segments=[], world_logs=sim)
    logged = true_values(later, "logging", metrics=["utility"], segments=[], world_logs=sim)
    return {
        "truth": truth["utility"]["__overall__"],
        "served_truth": logged["utility"]["__overall__"],
        **{e: {"value": est[e]["value"], "ci": est[e]["ci"]} for e in ESTIMATORS_SHOWN},
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per estimator: how many intervals cover the truth, mean bias, mean width."""
    out = {}
    for e in ESTIMATORS_SHOWN:
        covered = sum(r[e]["ci"][0] <= r["truth"] <= r[e]["ci"][1] for r in runs)
        bias = sum(r[e]["value"] - r["truth"] for r in runs) / max(len(runs), 1)
        width = sum(r[e]["ci"][1] - r[e]["ci"][0] for r in runs) / max(len(runs), 1)
        out[e] = {"covered": covered, "of": len(runs), "mean_bias": bias, "mean_width": width}
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
