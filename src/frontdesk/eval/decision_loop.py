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

Replicates are disjoint blocks of days of one organisation, each with its own
contacts and exploration draws.
"""

from __future__ import annotations

import contextlib
import datetime as dt
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
    encoder: Any = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train, serve, play, join and judge; per replicate the served policy's estimates."""
    import httpx

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
    from ..logs import DecisionLogs

    world = rebuild_world(DecisionLogs.open(sim))
    settings = DecisionLogSettings(folder=str(dlog), flush_seconds=0.5)
    app = create_app(models, decision_log=settings, seed=seed)
    runs: list[dict[str, Any]] = []
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

        blocks = replicates + retrain_blocks
        for b in range(blocks):
            first = train_days + b * days_per_replicate
            since = dt.datetime.now(dt.UTC)
            n = play_days(world, list(range(first, first + days_per_replicate)),
                          contacts_per_day, route, report)  # fmt: skip
            app.state.service.decision_log.decisions.flush()
            until = dt.datetime.now(dt.UTC) + dt.timedelta(microseconds=1)
            windows.append((since, until))
            say(f"block {b + 1}/{blocks}: {n} contacts served")
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
    result: dict[str, Any] = {"runs": runs, "summary": summarise(runs)}
    if retrain_blocks:
        result["retrained"] = judge_retrained(work, dlog, windows, retrain_blocks, sim, encoder)
    for folder in (sim, router, models):
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
