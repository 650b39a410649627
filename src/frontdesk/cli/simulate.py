"""``frontdesk simulate``: a synthetic organisation's logs, off-policy what-ifs, true values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from ..errors import FrontdeskError
from ._common import (
    JsonOpt,
    MetricsOpt,
    ModeOpt,
    PolicyOpt,
    RankerOpt,
    SegmentOpt,
    bundled,
    check_mode,
    err,
    errors_and_warnings,
    out,
    print_json,
    progress,
)

simulate_app = typer.Typer(
    rich_markup_mode=None,
    help="Simulate a support organisation and its logged decisions.",
    no_args_is_help=True,
)


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
    from ..loaders import load_catalog, load_queries
    from ..orgsim import OrgConfig, continue_org, simulate_org
    from ..orgsim.world import pool_from_catalog

    with errors_and_warnings():
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
            with progress(quiet=as_json) as bar:
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
            workflows = load_catalog(catalog or bundled("demo_catalog.jsonl"))
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
            with progress(quiet=as_json) as bar:
                task = bar.add_task("simulating days", total=n_days)
                summary = simulate_org(
                    config, pool, out_dir, progress=lambda n: bar.advance(task, n),
                    overwrite=overwrite,
                )  # fmt: skip
            summary = {"out": str(out_dir), "seed": config.seed, "agents": config.agents,
                       **summary}  # fmt: skip
    if as_json:
        print_json(summary)
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
    from ..logs import DecisionLogs

    try:
        cfg = DecisionLogs.open(logs_dir, verify=False).meta.get("config")
    except FrontdeskError:
        return {}
    return cfg if isinstance(cfg, dict) else {}


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
    from ..ope.offpolicy import simulate_policy

    seg = segment if segment is not None else ["segment"]
    with errors_and_warnings():
        if report_dir is not None:  # said before the simulation runs, not after
            from ..extras import require

            require("matplotlib", "--report (its plots)")
        with progress(quiet=as_json) as bar:
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
            from ..eval.policy_report import write_policy_report

            files = write_policy_report(result, report_dir)
            result["meta"]["report_files"] = [str(f) for f in files]
    _emit(result, as_json, _print_policy_tables)
    if report_dir is not None and not as_json:
        out.print(f"report: {report_dir}/report.md, report.html")


def _emit(result: dict[str, Any], as_json: bool, tables: Any) -> None:
    """Warnings on stderr (with --json too), then the JSON or the tables."""
    for w in result["meta"]["warnings"]:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    if as_json:
        print_json(result)
    else:
        tables(result)


def _num(x: float, sign: bool = False) -> str:
    """Four significant places at most, so tables of minutes and of rates are alike in width."""
    places = 4 if abs(x) < 10 else 3 if abs(x) < 100 else 2
    return f"{x:+.{places}f}" if sign else f"{x:.{places}f}"


def _print_policy_tables(result: dict[str, Any]) -> None:
    """One table per metric, a row per (segment, estimator): fits an 80-column terminal."""

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


@simulate_app.command("suggestions")
def simulate_suggestions_cmd(
    logs_dir: Annotated[
        Path,
        typer.Argument(help="Log folder from `logs join` (suggestion lists with workflow_used)."),
    ],
    index: Annotated[Path, typer.Option("--index", help="The target's index folder.")],
    ranker: RankerOpt = None,
    k: Annotated[
        int, typer.Option("--k", min=1, help="Judge the top k (at most the lists' length).")
    ] = 3,
    estimators: Annotated[
        str, typer.Option("--estimators", help="Comma list of sips,iips,rips.")
    ] = "sips,iips,rips",
    segment: SegmentOpt = None,
    engine: Annotated[str, typer.Option("--engine", help="local or spark.")] = "local",
    spark_master: Annotated[
        str, typer.Option("--spark-master", help="Spark master URL (local[*], yarn, spark://…).")
    ] = "local[*]",
    mode: ModeOpt = "hybrid",
    min_ess: Annotated[
        float | None,
        typer.Option("--min-ess", min=0.0, help="Flag segments with a smaller ESS (default 50)."),
    ] = None,
    allow_training_overlap: Annotated[
        bool,
        typer.Option(
            "--allow-training-overlap",
            help="Judge a ranker even on logs it learned from (estimates overstate it).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Estimate the acceptance (top 1, in the top k) another index or ranker would have had.

    Reads the logged lists (shown order, ranked order, exploration settings) and the workflow each agent used; runs the target on each logged context; estimates with SIPS, IIPS and RIPS. Needs list exploration (`serve --explore-top-k N --explore-rate p`) to say anything about a target that orders lists differently.
    """
    from ..ope.offpolicy import DEFAULT_MIN_ESS
    from ..ope.slate import simulate_suggestions

    seg = segment if segment is not None else ["segment"]
    with errors_and_warnings():
        check_mode(mode)
        with progress(quiet=as_json) as bar:
            task = bar.add_task("running the target on the logged contexts", total=None)
            result = simulate_suggestions(
                logs_dir, index, ranker, k=k,
                estimators=[e.strip() for e in estimators.split(",") if e.strip()],
                segments=seg, engine=engine, spark_master=spark_master, mode=mode,
                min_ess=DEFAULT_MIN_ESS if min_ess is None else min_ess,
                progress=lambda n: bar.advance(task, n),
                allow_training_overlap=allow_training_overlap,
            )  # fmt: skip
    _emit(result, as_json, _print_suggestion_tables)


READ_WHICH = (
    "Which to read: SIPS assumes nothing beyond support (its interval is the widest); IIPS "
    "judges each position alone (tightest, but off if what is above a workflow changes whether "
    "it is used); RIPS assumes agents read the list top-down."
)


def _pct(x: float, sign: bool = False) -> str:
    """A rate as a percentage with one decimal (``nan`` where there is no value)."""
    return "n/a" if x != x else f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}"


def _pct_rate(x: float) -> tuple[str, bool]:
    """An estimated rate in %, clipped to [0, 100] for display; whether it was clipped
    (an unclipped IPS estimate can leave that range on few rows)."""
    if x != x or 0.0 <= x <= 1.0:
        return _pct(x), False
    return _pct(min(max(x, 0.0), 1.0)) + "*", True


def _pct_interval(ci: list[float]) -> tuple[str, bool]:
    """A rate's interval in %, clipped to [0, 100] for display; whether it was clipped."""
    lo, hi = ci
    if lo != lo or hi != hi:
        return "n/a", False
    clipped = lo < 0 or hi > 1
    return f"[{_pct(max(lo, 0.0))}, {_pct(min(hi, 1.0))}]" + ("*" if clipped else ""), clipped


def _print_suggestion_tables(result: dict[str, Any]) -> None:
    """One table per metric, a row per (segment, estimator); rates in %."""
    meta = result["meta"]
    target = Path(meta["index"]).name + (
        f" + {Path(meta['ranker']).name}" if meta["ranker"] else ""
    )
    clipped = False
    for m in meta["metrics"]:
        table = Table(
            title=f"{m} of {target} (%)", title_justify="left", box=box.SIMPLE_HEAD,
            collapse_padding=True, pad_edge=False,
        )  # fmt: skip
        for col in ("segment", "n", "estimator", "value", "95 % interval", "vs logged (pts)",
                    "ESS", "lists used", "unsupp."):  # fmt: skip
            table.add_column(col, justify="left" if col in {"segment", "estimator"} else "right")
        rows = [("overall", result[m]["overall"]), *sorted(result[m]["segments"].items())]
        for name, e in rows:
            ci, cut = _pct_interval(e["logged_ci"])
            clipped |= cut
            table.add_row(name, str(e["n"]), "logged", _pct(e["logged"]), ci, "", "", "", "")
            for x in meta["estimators"]:
                v = e[x]
                ci, cut = _pct_interval(v["ci"])
                value, cut_value = _pct_rate(v["value"])
                clipped |= cut or cut_value
                lo, hi = v["difference_ci"]  # a normal interval: symmetric
                diff = _pct(v["difference"], sign=True) + (
                    f" ± {_pct((hi - lo) / 2)}" if lo == lo else ""
                )
                ess = f"{v['ess']:.0f}" + (" [yellow]low[/]" if v["ess"] < meta["min_ess"] else "")
                table.add_row(
                    "", "", x, value, ci, diff, ess, f"{v['nonzero_share']:.0%}",
                    f"{v['unsupported_share']:.0%}",
                )  # fmt: skip
            table.add_section()
        out.print(table)
    lo, hi = meta["explore_rate_range"]
    rate = (
        f"rate {lo:.2g}" if lo == hi else f"rate {lo:.2g}–{hi:.2g}, mean {meta['explore_rate']:.2g}"
    )
    notes = [
        f"{meta['rows']} lists judged; exploration on for {meta['explored_share']:.0%} of them"
        + (f" ({rate})" if meta["explored_share"] else "")
        + f"; the target ranks as the logged model did on {meta['target_agrees_share']:.0%}"
        + (
            f" and abstains on {meta['target_abstained_share']:.0%}"
            if meta["target_abstained_share"]
            else ""
        )
        + ".",  # fmt: skip
        "logged: the acceptance of the lists as they were shown, explored (reordered) lists "
        "included, so even the model that served can differ from it; vs logged: the "
        "difference in percentage points ± its 95 % interval (one that excludes 0 is a real "
        "difference); lists used: share of lists with a nonzero weight; unsupp.: share the "
        "logs cannot speak for (counted as not accepted).",
        READ_WHICH,
    ]
    if clipped:
        notes.append(
            "* clipped to 0–100 % for display (an unclipped estimate on few lists can leave "
            "that range); raw values in --json."
        )
    for note in notes:
        out.print(f"[dim]{note}[/]")


@simulate_app.command("truth")
def simulate_truth_cmd(
    logs_dir: Annotated[Path, typer.Argument(help="Log folder written by `simulate org`.")],
    policy: PolicyOpt,
    segment: SegmentOpt = None,
    metrics: MetricsOpt = "resolution,handle_time,csat,cost,utility",
    world: Annotated[
        Path | None,
        typer.Option(
            "--world",
            help="The simulator's log folder, when LOGS_DIR is its contacts served elsewhere "
            "(`logs join`).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The policy's exact expected value on the logged contacts, from the simulator's hidden model.

    What `simulate policy` estimates, known exactly because the simulator wrote the logs: the yardstick for its estimates. Segment keys are `simulate policy`'s.
    """
    from ..ope.kernel import OVERALL
    from ..orgsim.truth import true_values

    seg = segment if segment is not None else ["segment"]
    wanted = [m.strip() for m in metrics.split(",") if m.strip()]
    with errors_and_warnings(), progress(quiet=as_json) as bar:
        bar.add_task("scoring every logged contact exactly", total=None)
        values = true_values(logs_dir, policy, metrics=wanted, segments=seg, world_logs=world)
    result: dict[str, Any] = {
        m: {("overall" if k == OVERALL else k): v for k, v in sorted(
            per.items(), key=lambda kv: (kv[0] != OVERALL, kv[0]))}
        for m, per in values.items()
    }  # fmt: skip
    if as_json:
        print_json(result)
        return
    keys = list(next(iter(result.values())))
    table = Table(title=f"exact value of {policy} on {logs_dir}", title_justify="left")
    table.add_column("segment")
    for m in result:
        table.add_column(m, justify="right")
    for k in keys:
        table.add_row(k, *(f"{result[m][k]:.4f}" for m in result))
    out.print(table)
