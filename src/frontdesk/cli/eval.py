"""``frontdesk eval``: suggestions on labelled queries, a ranker's thresholds, a router."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from typer.core import TyperGroup

from ..errors import DataError
from ._common import (
    JsonOpt,
    ModeOpt,
    RankerOpt,
    WeightsOpt,
    check_mode,
    errors_and_warnings,
    out,
    print_json,
    progress,
    stage_ticker,
)


class _DefaultSubcommandGroup(TyperGroup):
    """``frontdesk eval INDEX QUERIES`` keeps working beside ``frontdesk eval router ...``."""

    default = "suggestions"

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and args[0] not in {"--help", "-h"}:
            args = [self.default, *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    rich_markup_mode=None,
    cls=_DefaultSubcommandGroup,
    help="Offline evaluation: `eval INDEX QUERIES` (suggestions), `eval thresholds RANKER` "
    "(abstention trade-off on validation) or `eval router MODEL LOGS`.",
    no_args_is_help=True,
)


@eval_app.command("suggestions")
def evaluate(
    index_dir: Annotated[Path | None, typer.Argument(help="Index folder.")] = None,
    queries: Annotated[Path | None, typer.Argument(help="Labelled queries (.jsonl).")] = None,
    mode: ModeOpt = "hybrid",
    ranker: RankerOpt = None,
    report_dir: Annotated[
        Path | None, typer.Option("--report", help="Write report.md/.html/.json and plots here.")
    ] = None,
    slices: Annotated[
        list[str] | None,
        typer.Option(
            "--slice",
            help="Slice metrics by a profile field, 'tag', 'query_from' (which turns made the "
            "query) or 'latest' (the latest message's text); repeatable.",
        ),
    ] = None,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option("--compare", help="Two `eval --json` outputs to show side by side."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Accuracy and ranking metrics over a labelled query file (or --compare two runs)."""
    if compare is not None:
        _compare(compare, as_json)
        return
    if index_dir is None or queries is None:
        raise typer.BadParameter("INDEX_DIR and QUERIES are required unless --compare is given")
    from ..eval import evaluate_suggester
    from ..eval.report import SUMMARY_KEYS, gate_words, write_report
    from ..extras import require
    from ..loaders import load_queries
    from ..suggester import Suggester

    details: list[Any] = []
    with errors_and_warnings():
        if report_dir is not None:  # said before the evaluation runs, not after
            require("matplotlib", "--report (its plots)")
        suggester = Suggester.load(index_dir, mode=check_mode(mode), ranker=ranker)  # type: ignore[arg-type]
        rows = load_queries(queries, workflow_ids=set(suggester.index.workflow_ids))
        n = len(rows) if ranker else sum(q.label is not None for q in rows)
        if n == 0:
            raise DataError(
                str(queries),
                None,
                "label",
                "every label is null (out of scope): there is nothing to measure without "
                "a ranker (--ranker judges out-of-scope rows)",
            )
        with progress(quiet=as_json) as bar:
            task = bar.add_task("evaluating", total=n)
            report = evaluate_suggester(
                suggester, rows, progress=lambda m: bar.advance(task, m), details=details
            )
    report["index"] = str(index_dir)
    report["queries"] = str(queries)
    if ranker is not None:
        report["ranker"] = str(ranker)
    if report_dir is not None:
        with errors_and_warnings():
            files = write_report(
                report, details, suggester.index.workflows, report_dir, slices or []
            )
        report["report_files"] = [str(f) for f in files]
    if as_json:
        print_json(report)
        return
    gate = report.get("context_gate")
    context = report["context"] + ("" if gate is None else f", {gate_words(gate)}")
    table = Table(
        title=f"{queries} on {index_dir} ({report['mode']}; context {context})",
        title_justify="left",
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SUMMARY_KEYS:
        if key in report:
            table.add_row(key, f"{report[key]:.4f}")
    table.add_row("n", str(report["n"]))
    out.print(table)
    if report_dir is not None:
        out.print(f"report: {report_dir}/report.md, report.html")


def run_label(run: dict[str, Any], path: Path) -> str:
    """What an `eval --json` run was: its file, retrieval mode, queries, index and ranker."""
    from ..eval.report import gate_words

    parts = [f"{path}:", str(run.get("mode", "?"))]
    if run.get("context"):
        gate = f", {gate_words(run['context_gate'])}" if run.get("context_gate") else ""
        parts.append(f"context {run['context']}{gate}")
    if run.get("queries"):
        parts.append(f"on {run['queries']}")
    if run.get("index"):
        parts.append(f"index {run['index']}")
    if run.get("ranker"):
        parts.append(f"ranker {run['ranker']}")
    return " ".join(parts)


def _run(path: Path) -> dict[str, Any]:
    """One `eval --json` output, as a JSON object (a DataError names the file otherwise)."""
    from ..limits import loads_json

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(
            str(path), None, None, f"cannot read a run to compare: {exc.strerror}"
        ) from None
    run = loads_json(raw, str(path), allow_nan=True)
    if not isinstance(run, dict):
        raise DataError(str(path), None, None, "not an `eval --json` output (a JSON object)")
    return run


def _compare(paths: tuple[Path, Path], as_json: bool) -> None:
    from ..eval.report import compare_reports

    a, b = (_run(p) for p in paths)
    diff = compare_reports(a, b)
    label_a, label_b = run_label(a, paths[0]), run_label(b, paths[1])
    if as_json:
        print_json(
            {
                "a": str(paths[0]),
                "b": str(paths[1]),
                "a_label": label_a,
                "b_label": label_b,
                "metrics": diff,
            }
        )
        return
    table = Table(title=f"A = {label_a}\nB = {label_b}", title_justify="left")
    for col in ("metric", "A", "B", "B - A"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, v in diff.items():
        sign = "green" if v["delta"] > 0 else "red" if v["delta"] < 0 else "dim"
        table.add_row(key, f"{v['a']:.4f}", f"{v['b']:.4f}", f"[{sign}]{v['delta']:+.4f}[/]")
    out.print(table)


@eval_app.command("thresholds")
def eval_thresholds_cmd(
    ranker_dir: Annotated[Path, typer.Argument(help="Ranker folder (from `train ranker`).")],
    step: Annotated[
        float, typer.Option("--step", help="Thresholds from 0 to 1 in this step.")
    ] = 0.05,
    as_json: JsonOpt = False,
) -> None:
    """The abstention trade-off on a ranker's validation rows, threshold by threshold.

    What each threshold would cost and catch, to choose a goal for `train threshold`.
    """
    from ..eval.thresholds import ranker_tradeoff

    with errors_and_warnings():
        result = ranker_tradeoff(ranker_dir, step=step)
    if as_json:
        print_json(result)
        return
    table = Table(
        title=f"{ranker_dir}: abstention trade-off on validation",
        title_justify="left",
        box=box.SIMPLE_HEAD,  # seven columns in 80 characters
    )
    columns = {
        "threshold": "threshold", "abstained_rate": "abstained",
        "in_scope_accuracy": "in-scope acc", "answered_accuracy": "answered acc",
        "oos_recall": "OOS recall", "oos_precision": "OOS prec",
        "decision_accuracy": "decision acc",
    }  # fmt: skip
    for key, header in columns.items():
        width = 10 if key == "threshold" else max(map(len, header.split()))
        table.add_column(header, justify="right", min_width=width)
    for row in result["table"]:
        # the grid's steps are at least 0.001; the stored threshold in full
        t = f"* {row['threshold']:.6f}" if row["stored"] else f"{row['threshold']:.3f}"
        cells = ["n/a" if row[key] is None else f"{row[key]:.2%}" for key in list(columns)[1:]]
        table.add_row(t, *cells)
    out.print(table)
    auroc = "" if result["auroc"] is None else f", AUROC {result['auroc']:.4f}"
    out.print(
        f"{result['val_rows']} validation rows, {result['val_out_of_scope']} out of scope{auroc}"
    )
    out.print(f"* the stored threshold: {result['abstention_goal']}")
    stored = next(row for row in result["table"] if row["stored"])
    for name, key in (("in-scope accuracy", "in_scope_accuracy"), ("OOS recall", "oos_recall")):
        if stored[f"{key}_95ci"] is not None:
            lo, hi = stored[f"{key}_95ci"]
            out.print(
                f"  {name} there {stored[key]:.2%}, 95 % interval {lo:.1%}-{hi:.1%} "
                "(validation's size only)"
            )


@eval_app.command("router")
def eval_router_cmd(
    model_dir: Annotated[Path, typer.Argument(help="Router folder from `train router`.")],
    logs_dir: Annotated[
        Path,
        typer.Argument(
            help="A log folder of the router's organisation (its training logs, or later days "
            "of it); the fresh days are simulated after its last day."
        ),
    ],
    days: Annotated[int, typer.Option("--days", min=1, help="Fresh days to simulate.")] = 3,
    weights: WeightsOpt = None,
    report_dir: Annotated[
        Path | None, typer.Option("--report", help="Write report.md/.html/.json and plots here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Random, rule, router and oracle on fresh simulated days, judged by the true outcomes."""
    from ..eval.router import (
        METRICS,
        POLICIES,
        SEGMENT_COLUMNS,
        evaluate_router,
        segment_rows,
        write_router_report,
    )
    from ..routing import Router, RoutingWeights

    with errors_and_warnings():
        router = Router.load(model_dir, weights=RoutingWeights.parse(weights) if weights else None)
        with progress(quiet=as_json) as bar:
            tick = stage_ticker(bar, "simulating")

            result = evaluate_router(router, logs_dir, days=days, progress=tick)
        if report_dir is not None:
            files = write_router_report(result, report_dir)
            result["report_files"] = [str(f) for f in files]
    if as_json:
        print_json(result)
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
    by_segment = Table(title="By segment (wait: 95th percentile, minutes)", title_justify="left")
    for c in SEGMENT_COLUMNS:
        by_segment.add_column(c, justify="left" if c in {"segment", "policy"} else "right")
    for row in segment_rows(result):
        by_segment.add_row(*row)
    out.print(by_segment)
    gc = result["gap_closed"]
    closed = f"{gc:.1%}" if gc is not None else "n/a"
    out.print(
        f"gap closed (rule → oracle): {closed}; "
        f"capacity violations: {result['capacity_violations']}"
    )
    if report_dir is not None:
        out.print(f"report: {report_dir}/report.md, report.html")
