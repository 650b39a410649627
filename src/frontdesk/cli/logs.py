"""``frontdesk logs``: served decisions and their outcomes, joined into log folders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import FrontdeskError
from ._common import JsonOpt, WeightsOpt, err, errors_and_warnings, out, print_json

logs_app = typer.Typer(
    rich_markup_mode=None,
    help="Decision logs: outcomes in, decisions and outcomes joined, what a folder holds.",
    no_args_is_help=True,
)


def _when(value: str | None, flag: str) -> dt.datetime | None:
    """An ISO date or time; naive values are UTC."""
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise FrontdeskError(
            f"{flag} {value!r}: not an ISO date or time (2026-12-01, 2026-12-01T09:30)"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@logs_app.command("ingest")
def ingest_cmd(
    log_dir: Annotated[Path, typer.Argument(help="The decision log (serve --decision-log).")],
    outcomes: Annotated[Path, typer.Argument(help="Outcomes as .csv, .jsonl or .parquet.")],
    as_json: JsonOpt = False,
) -> None:
    """Append outcomes from a ticketing system's export (all or nothing)."""
    from ..decisions.ingest import ingest_outcomes

    with errors_and_warnings():
        got = ingest_outcomes(log_dir, outcomes)
    if as_json:
        print_json(got)
        return
    out.print(f"[green]ingested[/] {got['outcomes']} outcomes from {outcomes}", highlight=False)


@logs_app.command("join")
def join_cmd(
    log_dir: Annotated[Path, typer.Argument(help="The decision log (serve --decision-log).")],
    out_dir: Annotated[Path, typer.Option("--out", help="The log folder to write.")],
    since: Annotated[
        str | None, typer.Option("--since", help="Decisions from this UTC time (ISO).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Decisions before this UTC time (ISO).")
    ] = None,
    weights: WeightsOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Join decisions with their outcomes into a log folder for training and simulation."""
    from ..decisions.join import join_logs
    from ..utility import UtilityWeights

    with errors_and_warnings():
        counts = join_logs(
            log_dir, out_dir, since=_when(since, "--since"), until=_when(until, "--until"),
            weights=UtilityWeights.parse(weights), overwrite=overwrite,
            progress=None if as_json else (lambda s: err.print(f"{s}…", highlight=False)),
        )  # fmt: skip
    if as_json:
        print_json({"out": str(out_dir), **counts})
        return
    r, s, o = counts["route"], counts["suggest"], counts["outcomes"]
    out.print(
        f"[green]wrote[/] {out_dir}: {r['joined']} routing rows joined ({r['unjoined']} without "
        f"a complete outcome, {r['waiting']} waiting), {s['joined']} suggestion lists with an "
        f"outcome ({s['with_workflow_used']} with workflow_used); {counts['shadow']} shadow "
        f"decisions left out; outcomes: {o['rows']} rows, {o['duplicates']} merged into "
        f"earlier ones, {o['unknown']} for unknown decisions, {o.get('early', 0)} before their "
        "decision",
        highlight=False,
    )


@logs_app.command("info")
def info_cmd(
    path: Annotated[Path, typer.Argument(help="A log folder, or a decision log.")],
    as_json: JsonOpt = False,
) -> None:
    """Rows, days, joined and unjoined counts; every file's checksum verified."""
    from ..decisions.info import logs_info

    with errors_and_warnings():
        info = logs_info(path)
    if as_json:
        print_json(info)
        return
    table = Table(title=f"{info['kind']}: {path}", show_header=False)
    for key, value in info.items():
        if key not in ("path", "kind", "join"):
            table.add_row(key, _plain(value))
    out.print(table)


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if len(value) <= 8 else f"{len(value)} values"
    return "-" if value is None else str(value)


@logs_app.command("lift")
def lift_cmd(
    path: Annotated[Path, typer.Argument(help="A log folder from `logs join`.")],
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            help="utility, resolved, csat, handle_time, cost; accepted, accepted_at_1 "
            "(suggestions). Repeat for several; default: every one the folder has. "
            "resolution is taken for resolved (the output says resolved).",
        ),
    ] = None,
    segments: Annotated[
        list[str] | None,
        typer.Option("--segment", help="Also per value of this column (repeatable)."),
    ] = None,
    baseline: Annotated[
        str,
        typer.Option("--baseline", help="The arm to compare with: a role or a version."),
    ] = "default",
    as_json: JsonOpt = False,
) -> None:
    """Each canary (or explicit) version against the default: difference, 95 % interval."""
    from rich.markup import escape

    from ..decisions.lift import difference_text, lift_report, verdict_line

    with errors_and_warnings():
        report = lift_report(path, metrics=metrics, segments=segments or (), baseline=baseline)
    for w in report["warnings"]:
        err.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
    if as_json:
        print_json(report)
        return
    many = len({c["model"] for c in report["comparisons"]}) > 1
    table = Table(title=f"lift against {baseline}: {path}")
    for col in ("arm", "metric", "segment", "n (baseline)", "mean (baseline)",
                "difference [95 % interval]", "relative", "verdict"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("arm", "metric", "segment") else "right")
    for c in report["comparisons"]:
        table.add_row(
            f"{c['model']} {c['arm']}" if many else c["arm"], c["metric"],
            escape(f"{c['segment_field']}={c['segment']}") if c["segment"] is not None else "all",
            f"{c['n']} ({c['n_baseline']})",
            f"{_mean(c['mean'])} ({_mean(c['mean_baseline'])})",
            escape(difference_text(c)),
            f"{c['relative'] * 100:+.1f} %" if c["relative"] is not None else "-",
            c["verdict"] + (" (few rows)" if c["few_rows"] and c["n"] else ""),
        )  # fmt: skip
    out.print(table)
    for c in report["comparisons"]:
        if c["segment"] is None:
            colour = {"better": "green", "worse": "red"}.get(c["verdict"], "yellow")
            out.print(f"[{colour}]{escape(verdict_line(c, with_model=many))}[/]", highlight=False)
    for a in report["assumptions"]:
        out.print(f"[dim]assumes: {escape(a)}[/]", highlight=False)
    tests = len(report["comparisons"])
    if tests > 1:
        out.print(
            f"[dim]{tests} comparisons: each 95 % interval misses about 1 time in 20, so about "
            f"{tests / 20:.1f} of these verdicts may call a difference that is not there; trust "
            "the metric you chose before looking, and a verdict that holds on more data.[/]",
            highlight=False,
        )


def _mean(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"
