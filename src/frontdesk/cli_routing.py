"""CLI commands for routing: ``simulate org``, ``train router``, ``route``, ``eval router``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .cli import (
    JsonOpt,
    RankerOpt,
    _bundled,
    _conversation,
    _errors_and_warnings,
    _print_json,
    _progress,
    _stage_ticker,
    app,
    err,
    eval_app,
    out,
    train_app,
)
from .errors import FrontdeskError

simulate_app = typer.Typer(
    help="Simulate a support organisation and its logged decisions.", no_args_is_help=True
)
app.add_typer(simulate_app, name="simulate")

WeightsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights",
        help="Utility weights, e.g. 'resolution=1,csat=0.5,handle_time=0.5,cost=0.5'.",
    ),
]

PolicyOpt = Annotated[
    str,
    typer.Option("--policy", help="POLICY.yaml|.json, a router folder, or logging|uniform|rule."),
]
SegmentOpt = Annotated[
    list[str] | None, typer.Option("--segment", help="Log column to segment by (repeatable).")
]
MetricsOpt = Annotated[
    str, typer.Option("--metrics", help="Comma list of resolution,handle_time,csat,cost,utility.")
]


@simulate_app.command("org")
def simulate_org_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Log folder to write.")],
    continue_from: Annotated[
        Path | None,
        typer.Option(
            "--continue",
            help="Simulator log folder: write more days of the same organisation "
            "(held-out logs for judging what was trained on it).",
        ),
    ] = None,
    contacts: Annotated[
        int | None,
        typer.Option(
            "--contacts",
            min=1,
            help="Contacts over all days (default: 20000; with --continue, "
            "as many a day as the logs continued).",
        ),
    ] = None,
    agents: Annotated[
        int | None, typer.Option("--agents", min=4, help="Agents on the roster (default: 40).")
    ] = None,
    days: Annotated[
        int | None,
        typer.Option("--days", min=1, help="Simulated days (default: 10; with --continue, 3)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Fixes the world and the logs (default: 0).")
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(
            "--temperature", min=0.01, help="Logging policy's exploration (default: 0.5)."
        ),
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option("--catalog", help="Catalog whose tags give topics.")
    ] = None,
    queries: Annotated[
        Path | None,
        typer.Option("--queries", help="Labelled texts contacts are drawn from (needs --catalog)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace logs already at --out.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Simulate contacts, agents and a logging policy; write Parquet logs with propensities."""
    from .loaders import load_catalog, load_queries
    from .orgsim import OrgConfig, continue_org, simulate_org
    from .orgsim.world import pool_from_catalog

    with _errors_and_warnings():
        if continue_from is not None:
            logged = _logged_config(continue_from)
            fixed = {"--agents": (agents, "agents"), "--seed": (seed, "seed"),
                     "--temperature": (temperature, "temperature")}  # fmt: skip
            changed = [
                f"{flag} {v} (the logs': {logged[key]})"
                for flag, (v, key) in fixed.items()
                if v is not None and key in logged and v != logged[key]
            ]
            changed += [flag for flag, v in (("--catalog", catalog), ("--queries", queries)) if v]
            if changed:
                raise FrontdeskError(
                    f"--continue keeps the organisation of {continue_from}: "
                    f"{', '.join(changed)} would change it (only --days and --contacts can)"
                )
            n_days = days or 3
            with _progress(quiet=as_json) as bar:
                task = bar.add_task("simulating days", total=n_days)
                summary = continue_org(
                    continue_from, out_dir, n_days, contacts,
                    progress=lambda n: bar.advance(task, n), overwrite=overwrite,
                )  # fmt: skip
            summary = {"out": str(out_dir), "continues": str(continue_from), **summary}
        else:
            n_days, n_contacts = days or 10, contacts or 20_000
            if queries is not None and catalog is None:
                raise FrontdeskError("--queries needs --catalog (its tags are the topics)")
            if n_contacts < n_days:
                raise FrontdeskError(
                    f"--contacts {n_contacts} is fewer than one per day over {n_days} days"
                )
            workflows = load_catalog(catalog or _bundled("demo_catalog.jsonl"))
            rows = (
                load_queries(queries, workflow_ids={w.id for w in workflows}) if queries else None
            )
            try:
                pool = pool_from_catalog(workflows, rows)
            except ValueError as exc:
                raise FrontdeskError(f"{queries or catalog}: {exc}") from None
            config = OrgConfig(
                seed=seed or 0, contacts=n_contacts, agents=agents or 40, days=n_days,
                temperature=0.5 if temperature is None else temperature,
            )  # fmt: skip
            with _progress(quiet=as_json) as bar:
                task = bar.add_task("simulating days", total=n_days)
                summary = simulate_org(
                    config, pool, out_dir, progress=lambda n: bar.advance(task, n),
                    overwrite=overwrite,
                )  # fmt: skip
            summary = {"out": str(out_dir), "seed": config.seed, "agents": config.agents,
                       **summary}  # fmt: skip
    if as_json:
        _print_json(summary)
        return
    d = summary["logged_days"]
    span = f"day {d[0]}" if len(d) == 1 else f"days {d[0]}-{d[-1]}"
    whose = (
        f"{continue_from} continued"
        if continue_from is not None
        else f"{summary['agents']} agents, seed {summary['seed']}"
    )
    out.print(
        f"[green]wrote[/] {summary['contacts']} logged decisions over {span} ({whose}) to {out_dir}"
    )


def _logged_config(logs_dir: Path) -> dict[str, Any]:
    """The simulator config of a log folder, or {} (``continue_org`` then says what is wrong)."""
    from .logs import DecisionLogs

    try:
        cfg = DecisionLogs.open(logs_dir, verify=False).meta.get("config")
    except FrontdeskError:
        return {}
    return cfg if isinstance(cfg, dict) else {}


@train_app.command("router")
def train_router_cmd(
    logs_dir: Annotated[Path, typer.Argument(help="Log folder from `simulate org` (or alike).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Router folder to write.")],
    encoder: Annotated[
        Path | None,
        typer.Option("--encoder", help="sentence-transformers folder (default: bundled MiniLM)."),
    ] = None,
    weights: WeightsOpt = None,
    congestion_price: Annotated[
        float, typer.Option("--congestion-price", min=0.0, help="Price of a busier agent's slot.")
    ] = 0.1,
    as_json: JsonOpt = False,
) -> None:
    """Train the channel model and agent matcher from logged decisions."""
    from .encoding import ContextEncoder
    from .routing import RoutingWeights, train_router

    with _errors_and_warnings():
        enc = ContextEncoder(encoder) if encoder else ContextEncoder()
        with _progress(quiet=as_json) as bar:
            tick = _stage_ticker(bar, "training")

            summary = train_router(
                logs_dir,
                out_dir,
                encoder=enc,
                weights=RoutingWeights.parse(weights),
                congestion_price=congestion_price,
                progress=tick,
            )
    summary = {"out": str(out_dir), **summary}
    if as_json:
        _print_json(summary)
        return
    out.print(
        f"[green]wrote[/] router to {out_dir}: {summary['rows']} logged decisions, "
        f"{summary['agents']} agents, {len(summary['topics'])} topics"
    )


def _agents(specs: list[str]) -> list[Any]:
    """``agent-001`` or ``agent-001:2`` (current load) or a JSON object per --agent."""
    agents: list[Any] = []
    for spec in specs:
        if spec.lstrip().startswith("{"):
            try:
                agents.append(json.loads(spec))
            except json.JSONDecodeError as exc:
                raise FrontdeskError(f"--agent: not JSON: {exc.msg}") from None
            continue
        aid, _, load = spec.partition(":")
        try:
            agents.append({"agent_id": aid, "load": int(load or 0)})
        except ValueError:
            raise FrontdeskError(
                f"--agent {spec!r}: the load after ':' must be an integer"
            ) from None
    return agents


@app.command("route")
def route_cmd(
    model_dir: Annotated[Path, typer.Argument(help="Router folder from `train router`.")],
    text: Annotated[str, typer.Option("--text", help="The user's latest message.")],
    turn: Annotated[
        list[str] | None, typer.Option("--turn", help="Earlier turn, 'user: …' or 'agent: …'.")
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="User profile as JSON.")] = None,
    agent: Annotated[
        list[str] | None,
        typer.Option(
            "--agent",
            help="Available agent: id, id:load, or a JSON record (repeatable; default: roster).",
        ),
    ] = None,
    wait: Annotated[float, typer.Option("--wait", min=0.0, help="Minutes waited so far.")] = 0.0,
    weights: WeightsOpt = None,
    index: Annotated[
        Path | None,
        typer.Option("--index", help="Also suggest workflows from this index, same encoding."),
    ] = None,
    ranker: RankerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Route one contact to a channel and agent (and suggest workflows with --index)."""
    from .routing import Router, RoutingWeights

    with _errors_and_warnings():
        conv = _conversation(text, turn or [], profile)
        router = Router.load(model_dir, weights=RoutingWeights.parse(weights) if weights else None)
        available = _agents(agent) if agent else list(router.roster)
        result: dict[str, Any] = {}
        if index is not None:
            from .desk import FrontDesk
            from .suggester import Suggester

            desk = FrontDesk(Suggester.load(index, ranker=ranker, encoder=router.encoder), router)
            decided = desk.handle([conv], available, waits=[wait])[0]
            if decided.route is None:
                raise FrontdeskError("no eligible agent has a free slot for this contact")
            result["suggestions"] = decided.suggestions.to_json()
            result["route"] = decided.route.to_json()
        else:
            result["route"] = router.route(conv, available, wait_min=wait).to_json()
        result["encoder_calls"] = router.encoder.calls
    if as_json:
        _print_json(result)
        return
    r = result["route"]
    out.print(
        f"[bold]{r['channel']}[/] with [bold]{r['agent_id']}[/]: expected utility "
        f"{r['expected_utility']:.3f} (P(resolved) {r['expected']['resolution']:.2f}, "
        f"handle time {r['expected']['handle_time']:.1f} min, CSAT {r['expected']['csat']:.2f}, "
        f"cost {r['expected']['cost']:.2f})"
    )
    table = Table(title="Utility by channel (channel model)", title_justify="left")
    table.add_column("channel")
    table.add_column("utility", justify="right")
    for h, u in r["scores_by_channel"].items():
        table.add_row(h, f"{u:.3f}")
    out.print(table)
    if "suggestions" in result:
        for s in result["suggestions"]["suggestions"]:
            out.print(f"  {s['rank']}. {s['title']} [dim]({s['workflow_id']}, {s['score']:.2f})[/]")
    out.print(f"[dim]encoder calls: {result['encoder_calls']}[/]")


@eval_app.command("router")
def eval_router_cmd(
    model_dir: Annotated[Path, typer.Argument(help="Router folder from `train router`.")],
    logs_dir: Annotated[Path, typer.Argument(help="The log folder the router was trained on.")],
    days: Annotated[int, typer.Option("--days", min=1, help="Fresh days to simulate.")] = 3,
    weights: WeightsOpt = None,
    report_dir: Annotated[
        Path | None, typer.Option("--report", help="Write report.md/.html/.json and plots here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Random, rule, router and oracle on fresh simulated days, judged by the true outcomes."""
    from .eval.router import METRICS, POLICIES, evaluate_router, write_router_report
    from .routing import Router, RoutingWeights

    with _errors_and_warnings():
        router = Router.load(model_dir, weights=RoutingWeights.parse(weights) if weights else None)
        with _progress(quiet=as_json) as bar:
            tick = _stage_ticker(bar, "simulating")

            result = evaluate_router(router, logs_dir, days=days, progress=tick)
        if report_dir is not None:
            files = write_router_report(result, report_dir)
            result["report_files"] = [str(f) for f in files]
    if as_json:
        _print_json(result)
        return
    pol = result["policies"]
    table = Table(
        title=f"{result['contacts']} contacts on fresh days {result['days']}", title_justify="left"
    )
    table.add_column("policy")
    for m in METRICS:
        table.add_column(m, justify="right")
    for p in (*POLICIES, "logging"):
        table.add_row(p, *(f"{pol[p][m]:.3f}" for m in METRICS))
    out.print(table)
    gc = result["gap_closed"]
    closed = f"{gc:.1%}" if gc is not None else "n/a"
    out.print(
        f"gap closed (rule → oracle): {closed}; "
        f"capacity violations: {result['capacity_violations']}"
    )
    if report_dir is not None:
        out.print(f"report: {report_dir}/report.md, report.html")


@simulate_app.command("policy")
def simulate_policy_cmd(
    logs_dir: Annotated[
        Path, typer.Argument(help="Log folder (Parquet decisions with propensities).")
    ],
    policy: PolicyOpt,
    segment: SegmentOpt = None,
    engine: Annotated[str, typer.Option("--engine", help="local or spark.")] = "local",
    spark_master: Annotated[
        str, typer.Option("--spark-master", help="Spark master URL (local[*], yarn, spark://…).")
    ] = "local[*]",
    estimators: Annotated[
        str,
        typer.Option(
            "--estimators",
            help="Comma list of dm,ipw,snipw,dr,sndr,switch-dr (ips, snips: the same as ipw, snipw).",
        ),
    ] = "dm,ipw,snipw,dr,sndr,switch-dr",
    metrics: MetricsOpt = "resolution,handle_time,csat,cost,utility",
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Poisson bootstrap replicates (0: off).")
    ] = 0,
    folds: Annotated[
        int, typer.Option("--folds", min=2, help="Reward-model cross-fitting folds.")
    ] = 2,
    switch_tau: Annotated[
        float,
        typer.Option(
            "--switch-tau",
            min=0.0,
            help="Switch-DR's cut-off: rows with a larger importance weight use the reward model alone.",
        ),
    ] = 10.0,
    min_ess: Annotated[
        float, typer.Option("--min-ess", min=0.0, help="Flag segments with a smaller ESS.")
    ] = 50.0,
    report_dir: Annotated[
        Path | None, typer.Option("--report", help="Write report.md/.html/.json and forest plots.")
    ] = None,
    allow_training_overlap: Annotated[
        bool,
        typer.Option(
            "--allow-training-overlap",
            help="Judge a trained model even on logs it learned from (estimates overstate it; "
            "the report says so).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Estimate, per segment, what a different way of actioning the models would do.

    A policy that acts with a trained router is refused on the logs the router learned from: judge it on held-out days (`simulate org --continue`).
    """
    from .ope.offpolicy import simulate_policy

    seg = segment if segment is not None else ["segment"]
    with _errors_and_warnings():
        with _progress(quiet=as_json) as bar:
            task = bar.add_task("simulating policy", total=None)
            result = simulate_policy(
                logs_dir,
                policy,
                engine=engine,
                spark_master=spark_master,
                min_ess=min_ess,
                progress=lambda n: bar.advance(task, n),
                segments=seg,
                metrics=[m.strip() for m in metrics.split(",") if m.strip()],
                estimators=[e.strip() for e in estimators.split(",") if e.strip()],
                folds=folds,
                switch_tau=switch_tau,
                bootstrap=bootstrap,
                allow_training_overlap=allow_training_overlap,
            )
        if report_dir is not None:
            from .eval.policy_report import write_policy_report

            files = write_policy_report(result, report_dir)
            result["meta"]["report_files"] = [str(f) for f in files]
    for w in result["meta"]["warnings"]:  # on stderr, with --json too
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    if as_json:
        _print_json(result)
        return
    _print_policy_tables(result)
    if report_dir is not None:
        out.print(f"report: {report_dir}/report.md, report.html")


def _num(x: float, sign: bool = False) -> str:
    """Four significant places at most, so tables of minutes and of rates are alike in width."""
    places = 4 if abs(x) < 10 else 3 if abs(x) < 100 else 2
    return f"{x:+.{places}f}" if sign else f"{x:.{places}f}"


def _print_policy_tables(result: dict[str, Any]) -> None:
    """One table per metric, a row per (segment, estimator): fits an 80-column terminal."""
    from rich import box

    meta = result["meta"]
    quality = meta["reward_model_quality"]
    for m in (k for k in result if k != "meta"):
        table = Table(
            title=f"{m} under {meta['policy']}", title_justify="left", box=box.SIMPLE_HEAD,
            collapse_padding=True, pad_edge=False,
        )  # fmt: skip
        for col in ("segment", "n", "ESS", "estimator", "value", "95 % interval", "vs logged"):
            table.add_column(col, justify="left" if col in {"segment", "estimator"} else "right")
        rows = [("overall", result[m]["overall"]), *sorted(result[m]["segments"].items())]
        for name, e in rows:
            ess = f"{e['ess']:.0f}" + (" [yellow]low[/]" if e.get("low_ess") else "")
            table.add_row(name, str(e["n"]), ess, "logged", _num(e["logged"]), "", "")
            for x in meta["estimators"]:
                v = e[x]
                table.add_row(
                    "", "", "", x, _num(v["value"]), f"[{_num(v['ci'][0])}, {_num(v['ci'][1])}]",
                    _num(v["difference"], sign=True),
                )  # fmt: skip
            table.add_section()
        out.print(table)
        q = quality[m]
        out.print(
            f"[dim]reward model R² {q['r2']:.3f} (RMSE {q['rmse']:.4g}, a constant's "
            f"{q['constant_rmse']:.4g}); largest weight {result[m]['overall']['max_weight']:.3g}[/]"
        )
    if "dm" in meta["estimators"]:
        out.print(
            "[dim]DM's interval ignores the reward model's own error: read it as too narrow.[/]"
        )


@simulate_app.command("truth")
def simulate_truth_cmd(
    logs_dir: Annotated[Path, typer.Argument(help="Log folder written by `simulate org`.")],
    policy: PolicyOpt,
    segment: SegmentOpt = None,
    metrics: MetricsOpt = "resolution,handle_time,csat,cost,utility",
    as_json: JsonOpt = False,
) -> None:
    """The policy's exact expected value on the logged contacts, from the simulator's hidden model.

    What `simulate policy` estimates, known exactly because the simulator wrote the logs: the yardstick for its estimates. Segment keys are `simulate policy`'s.
    """
    from .ope.kernel import OVERALL
    from .orgsim.truth import true_values

    seg = segment if segment is not None else ["segment"]
    wanted = [m.strip() for m in metrics.split(",") if m.strip()]
    with _errors_and_warnings(), _progress(quiet=as_json) as bar:
        bar.add_task("scoring every logged contact exactly", total=None)
        values = true_values(logs_dir, policy, metrics=wanted, segments=seg)
    result: dict[str, Any] = {
        m: {("overall" if k == OVERALL else k): v for k, v in sorted(
            per.items(), key=lambda kv: (kv[0] != OVERALL, kv[0]))}
        for m, per in values.items()
    }  # fmt: skip
    if as_json:
        _print_json(result)
        return
    keys = list(next(iter(result.values())))
    table = Table(title=f"exact value of {policy} on {logs_dir}", title_justify="left")
    table.add_column("segment")
    for m in result:
        table.add_column(m, justify="right")
    for k in keys:
        table.add_row(k, *(f"{result[m][k]:.4f}" for m in result))
    out.print(table)


models_app = typer.Typer(help="The scoring service's model repository.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("package")
def models_package_cmd(
    source: Annotated[
        Path, typer.Argument(help="Index, router, LightGBM .txt or ST model folder.")
    ],
    name: Annotated[str, typer.Option("--name", help="Model name in the repository.")],
    into: Annotated[Path, typer.Option("--into", help="MODELS_DIR (the repository root).")],
    ranker: RankerOpt = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="suggester, router, encoder or lightgbm (default: detected)."),
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Default: the next number.")
    ] = None,
    max_batch_size: Annotated[
        int | None, typer.Option("--max-batch-size", min=1, help="Micro-batch size (1: off).")
    ] = None,
    max_batch_time_ms: Annotated[
        float, typer.Option("--max-batch-time-ms", min=0.0, help="Longest wait to fill a batch.")
    ] = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Write a new version folder (artifacts + model-settings.json) into MODELS_DIR."""
    from .scoring.packaging import package_model

    with _errors_and_warnings():
        target = package_model(
            source, name, into, ranker=ranker, kind=kind, version=version,
            max_batch_size=max_batch_size, max_batch_time_ms=max_batch_time_ms,
        )  # fmt: skip
        settings = json.loads((target / "model-settings.json").read_text())
    if as_json:
        _print_json(
            {"name": name, "version": target.name, "path": str(target), "settings": settings}
        )
        return
    out.print(f"[green]wrote[/] {target} ({settings['implementation'].rsplit('.', 1)[-1]})")


@app.command("serve")
def serve_cmd(
    models_dir: Annotated[
        Path, typer.Argument(help="MODELS_DIR: <name>/<version>/model-settings.json.")
    ],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Server processes.")] = 1,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Serve every model in MODELS_DIR over the Open Inference Protocol (KServe V2) REST."""
    import os

    with _errors_and_warnings():
        try:
            import uvicorn
        except ImportError:
            raise FrontdeskError(
                "serving needs the serve extra: pip install 'frontdesk[serve]'"
            ) from None
        if not models_dir.is_dir():
            raise FrontdeskError(f"{models_dir}: models folder not found")
        os.environ["FRONTDESK_MODELS_DIR"] = str(models_dir.resolve())
        uvicorn.run(
            "frontdesk.scoring.server:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
        )
