"""The ``frontdesk`` command line: datasets, index, suggest, eval, demo."""

from __future__ import annotations

import json
import sys
import time
import warnings
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from .errors import FrontdeskError

app = typer.Typer(
    help="frontdesk: workflow suggestion for a payments company's support organisation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="Build and inspect workflow indexes.", no_args_is_help=True)
datasets_app = typer.Typer(
    help="Import public datasets into frontdesk's formats.", no_args_is_help=True
)
app.add_typer(index_app, name="index")
app.add_typer(datasets_app, name="datasets")
train_app = typer.Typer(help="Train models over an index.", no_args_is_help=True)
app.add_typer(train_app, name="train")
RankerOpt = Annotated[
    Path | None, typer.Option("--ranker", help="Rerank with a model from `train ranker`.")
]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
ModeOpt = Annotated[str, typer.Option("--mode", help="hybrid, dense or sparse (BM25 alone).")]


@contextmanager
def _errors_and_warnings():  # type: ignore[no-untyped-def]
    """Frontdesk errors become one red line and exit code 2; warnings go to stderr."""

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        err.print(f"[yellow]warning:[/] {message}")

    old = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    except (FrontdeskError, FileExistsError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    finally:
        warnings.showwarning = old


def _progress(quiet: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet
        or not err.is_terminal,  # a pipe or a log file gets no bar (nor its blank line)
    )


def _stage_ticker(bar: Progress, description: str) -> Any:
    """A ``progress(stage, done, total)`` callback that drives one bar of ``bar``."""
    task = bar.add_task(description, total=None)

    def tick(stage: str, done: int, total: int) -> None:
        bar.update(task, description=stage, completed=done, total=total)

    return tick


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _check_mode(mode: str) -> str:
    if mode not in {"hybrid", "dense", "sparse"}:
        raise typer.BadParameter("must be hybrid, dense or sparse", param_hint="--mode")
    return mode


def _build(
    catalog: Path,
    out_dir: Path,
    examples: Path | None,
    model: Path | None,
    sparse_only: bool,
    quiet: bool,
    dense_index: str | None = None,
) -> dict[str, Any]:
    from .config import Settings
    from .index import build_index

    settings = Settings.from_env(model=str(model) if model else None, dense_index=dense_index)
    with _progress(quiet) as bar:
        tick = _stage_ticker(bar, "encoding")

        return build_index(
            catalog,
            out_dir,
            examples=examples,
            settings=settings,
            dense=not sparse_only,
            progress=tick,
        )


@index_app.command("build")
def index_build(
    catalog: Annotated[Path, typer.Argument(help="Workflow catalog (.jsonl, .yaml).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Index folder to (re)place.")],
    examples: Annotated[
        Path | None, typer.Option("--examples", help="Labelled queries to index as examples.")
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="sentence-transformers folder to encode with.")
    ] = None,
    sparse_only: Annotated[
        bool, typer.Option("--sparse-only", help="BM25 only, no encoder.")
    ] = False,
    dense_index: Annotated[
        str | None,
        typer.Option(
            "--dense-index",
            help="auto (flat up to FRONTDESK_EXACT_MAX vectors, IVF-SQ8 above), flat, hnsw or ivf.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a FAISS + BM25 index of a catalog (written atomically)."""
    from .index.dense import DENSE_KINDS

    if dense_index is not None and dense_index not in DENSE_KINDS:
        raise typer.BadParameter(
            f"must be one of {', '.join(DENSE_KINDS)}", param_hint="--dense-index"
        )
    with _errors_and_warnings():
        t0 = time.perf_counter()
        manifest = _build(
            catalog, out_dir, examples, model, sparse_only, quiet=as_json, dense_index=dense_index
        )
        seconds = time.perf_counter() - t0
    counts = manifest["counts"]
    if as_json:
        _print_json({"index": str(out_dir), "seconds": round(seconds, 3), **manifest})
        return
    from .index.dense import describe

    dense = manifest["dense"]
    kind = (
        f"{describe(dense['index'])}, {dense['dim']}-d, {dense['model']['name']}"
        if dense
        else "none"
    )
    out.print(
        f"[green]built[/] {out_dir}: {counts['workflows']} workflows, {counts['documents']} "
        f"documents ({counts['catalog_examples'] + counts['labelled_examples']} examples); "
        f"dense: {kind}; {seconds:.1f}s"
    )


@index_app.command("info")
def index_info(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    as_json: JsonOpt = False,
) -> None:
    """Verify an index and show its manifest."""
    from .index import WorkflowIndex

    with _errors_and_warnings():
        idx = WorkflowIndex.load(index_dir)
    m = idx.manifest
    if as_json:
        _print_json(m)
        return
    table = Table(title=str(index_dir), show_header=False)
    table.add_row("created", m["created_at"])
    table.add_row("versions", ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    table.add_row("counts", ", ".join(f"{k} {v}" for k, v in m["counts"].items()))
    d = m["dense"]
    if d:
        from .index.dense import describe

        table.add_row("dense", f"{describe(d['index'])}; {d['dim']}-d {d['model']['name']}")
    else:
        table.add_row("dense", "absent")
    if m.get("updates"):
        last = m["updates"][-1]
        table.add_row(
            "updates",
            f"{len(m['updates'])}; last {last['at']}: +{last['added']} ~{last['replaced']} "
            f"-{last['removed']}",
        )
    table.add_row("files", f"{len(m['files'])} verified (sha256)")
    out.print(table)


def _update(index_dir: Path, as_json: bool, **change: Any) -> None:
    from .index import update_index

    with _errors_and_warnings(), _progress(as_json) as bar:
        t0 = time.perf_counter()
        summary = update_index(index_dir, progress=_stage_ticker(bar, "updating"), **change)
        summary["seconds"] = round(time.perf_counter() - t0, 3)
    if as_json:
        _print_json(summary)
        return
    out.print(
        f"[green]updated[/] {index_dir}: +{summary['added']} added, {summary['replaced']} "
        f"replaced, -{summary['removed']} removed, {summary['unchanged']} unchanged; "
        f"{summary['encoded_texts']} texts encoded; {summary['workflows']} workflows; "
        f"dense: {summary['dense'] or 'none'}; {summary['seconds']:.1f}s"
    )


@index_app.command("add")
def index_add(
    index_dir: Annotated[Path, typer.Argument(help="Index folder to update in place.")],
    catalog: Annotated[
        Path, typer.Argument(help="Workflows to add (.jsonl, .yaml); a known id replaces it.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Add or replace workflows, encoding only what changed (written atomically)."""
    _update(index_dir, as_json, add=catalog)


@index_app.command("remove")
def index_remove(
    index_dir: Annotated[Path, typer.Argument(help="Index folder to update in place.")],
    ids: Annotated[list[str] | None, typer.Argument(help="Workflow ids to remove.")] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="More ids, one per line.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove workflows by id (written atomically)."""
    from .index.update import read_ids

    wanted = list(ids or []) + (read_ids(from_file) if from_file else [])
    if not wanted:
        raise typer.BadParameter("name at least one workflow id", param_hint="IDS")
    _update(index_dir, as_json, remove=wanted)


def _conversation(text: str, turns: list[str], profile: str | None):  # type: ignore[no-untyped-def]
    from .schema import Conversation

    parsed = []
    for t in turns:
        role, sep, said = t.partition(":")
        if not sep or role.strip() not in {"user", "agent"}:
            raise typer.BadParameter("use 'user: text' or 'agent: text'", param_hint="--turn")
        parsed.append({"role": role.strip(), "text": said.strip()})
    try:
        user = json.loads(profile) if profile else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc.msg}", param_hint="--profile") from None
    return Conversation(text=text, context={"turns": parsed, "user": user})


@app.command("suggest")
def suggest(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    text: Annotated[str, typer.Argument(help="The user's latest message.")],
    k: Annotated[int, typer.Option("--k", min=1, help="How many workflows.")] = 5,
    turn: Annotated[
        list[str] | None, typer.Option("--turn", help="Earlier turn, 'user: …' or 'agent: …'.")
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="User profile as JSON.")] = None,
    mode: ModeOpt = "hybrid",
    ranker: RankerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suggest workflows for one message (with optional earlier turns and profile)."""
    from .suggester import Suggester

    with _errors_and_warnings():
        conv = _conversation(text, turn or [], profile)
        suggester = Suggester.load(index_dir, mode=_check_mode(mode), ranker=ranker)  # type: ignore[arg-type]
        results = suggester.suggest(conv, k=k)
    if as_json:
        _print_json({"mode": suggester.mode, **results.to_json()})
        return
    _suggestion_table(text, results, suggester.mode)
    if results.confidence is not None:
        verdict = "[yellow]abstained: no workflow fits[/]" if results.abstained else "answered"
        out.print(
            f"confidence {results.confidence:.2f} (threshold "
            f"{suggester.ranker.threshold:.2f}): {verdict}"
        )


def _suggestion_table(title: str, results: list[Any], mode: str) -> None:
    table = Table(title=f"{title}  [dim]({mode})[/]", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("workflow")
    table.add_column("title")
    table.add_column("score", justify="right")
    for s in results:
        table.add_row(str(s.rank), s.workflow_id, s.title, f"{s.score:.3f}")
    out.print(table)


class _DefaultSubcommandGroup(TyperGroup):
    """``frontdesk eval INDEX QUERIES`` keeps working beside ``frontdesk eval router ...``."""

    default = "suggestions"

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and args[0] not in {"--help", "-h"}:
            args = [self.default, *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    cls=_DefaultSubcommandGroup,
    help="Offline evaluation: `eval INDEX QUERIES` (suggestions), `eval thresholds RANKER` "
    "(abstention trade-off on validation) or `eval router MODEL LOGS`.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")


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
        typer.Option("--slice", help="Slice metrics by a profile field or 'tag' (repeatable)."),
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
    from .eval import evaluate_suggester
    from .eval.report import SUMMARY_KEYS, write_report
    from .loaders import load_queries
    from .suggester import Suggester

    details: list[Any] = []
    with _errors_and_warnings():
        suggester = Suggester.load(index_dir, mode=_check_mode(mode), ranker=ranker)  # type: ignore[arg-type]
        rows = load_queries(queries, workflow_ids=set(suggester.index.workflow_ids))
        n = len(rows) if ranker else sum(q.label is not None for q in rows)
        with _progress(quiet=as_json) as bar:
            task = bar.add_task("evaluating", total=n)
            report = evaluate_suggester(
                suggester, rows, progress=lambda m: bar.advance(task, m), details=details
            )
    report["index"] = str(index_dir)
    report["queries"] = str(queries)
    if ranker is not None:
        report["ranker"] = str(ranker)
    if report_dir is not None:
        files = write_report(report, details, suggester.index.workflows, report_dir, slices or [])
        report["report_files"] = [str(f) for f in files]
    if as_json:
        _print_json(report)
        return
    table = Table(title=f"{queries} on {index_dir} ({report['mode']})", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SUMMARY_KEYS:
        if key in report:
            table.add_row(key, f"{report[key]:.4f}")
    table.add_row("n", str(report["n"]))
    out.print(table)
    if report_dir is not None:
        out.print(f"report: {report_dir}/report.md, report.html")


def _compare(paths: tuple[Path, Path], as_json: bool) -> None:
    from .eval.report import compare_reports

    try:
        a, b = (json.loads(p.read_text()) for p in paths)
    except (OSError, json.JSONDecodeError) as exc:
        err.print(f"[red]error:[/] cannot read a run to compare: {exc}")
        raise typer.Exit(2) from None
    diff = compare_reports(a, b)
    if as_json:
        _print_json({"a": str(paths[0]), "b": str(paths[1]), "metrics": diff})
        return
    table = Table(title=f"A = {paths[0]}   B = {paths[1]}", title_justify="left")
    for col in ("metric", "A", "B", "B - A"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, v in diff.items():
        sign = "green" if v["delta"] > 0 else "red" if v["delta"] < 0 else "dim"
        table.add_row(key, f"{v['a']:.4f}", f"{v['b']:.4f}", f"[{sign}]{v['delta']:+.4f}[/]")
    out.print(table)


MinInScopeOpt = Annotated[
    float | None,
    typer.Option(
        "--min-in-scope-accuracy",
        min=0.0,
        max=1.0,
        help="Abstention goal: abstain on the most out-of-scope validation rows while "
        "in-scope accuracy there stays at least this (default: maximise decision "
        "accuracy).",
    ),
]
MinOosRecallOpt = Annotated[
    float | None,
    typer.Option(
        "--min-oos-recall",
        min=0.0,
        max=1.0,
        help="Abstention goal: abstain on at least this share of validation's "
        "out-of-scope rows; with --min-in-scope-accuracy, the middle of the "
        "thresholds that meet both.",
    ),
]


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
    from .eval.thresholds import ranker_tradeoff

    with _errors_and_warnings():
        result = ranker_tradeoff(ranker_dir, step=step)
    if as_json:
        _print_json(result)
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


@train_app.command("ranker")
def train_ranker_cmd(
    index_dir: Annotated[Path, typer.Argument(help="Index folder (hybrid).")],
    labelled: Annotated[Path, typer.Argument(help="Labelled training queries (.jsonl).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    val: Annotated[
        Path | None,
        typer.Option(
            "--val",
            help="Validation queries (null labels = out of scope); "
            "default: 10 % carved from the training rows.",
        ),
    ] = None,
    folds: Annotated[int, typer.Option("--folds", min=2, help="Out-of-fold splits.")] = 5,
    top_n: Annotated[int, typer.Option("--top-n", min=2, help="Candidates reranked.")] = 30,
    context_candidates: Annotated[
        int,
        typer.Option(
            "--context-candidates",
            min=0,
            help="Also rerank the dense top-N of a conversation's earlier turns alone.",
        ),
    ] = 10,
    cold_start: Annotated[
        float,
        typer.Option(
            "--cold-start",
            min=0.0,
            max=0.9,
            help="Share of workflows each fold's classifier leaves out, so the ranker "
            "learns to rank workflows added after training.",
        ),
    ] = 0.1,
    min_in_scope_accuracy: MinInScopeOpt = None,
    min_oos_recall: MinOosRecallOpt = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Train a LambdaRank reranker with calibrated abstention for an index."""
    from .index import WorkflowIndex
    from .loaders import load_queries
    from .ranking.training import train_ranker

    with _errors_and_warnings():
        ids = set(WorkflowIndex.load(index_dir).workflow_ids)
        rows = load_queries(labelled, workflow_ids=ids)
        val_rows = load_queries(val, workflow_ids=ids) if val else None
        t0 = time.perf_counter()
        with _progress(quiet=as_json) as bar:
            tick = _stage_ticker(bar, "training")

            config = train_ranker(
                index_dir,
                rows,
                out_dir,
                val_rows=val_rows,
                folds=folds,
                top_n=top_n,
                context_candidates=context_candidates,
                cold_start=cold_start,
                min_in_scope_accuracy=min_in_scope_accuracy,
                min_oos_recall=min_oos_recall,
                seed=seed,
                progress=tick,
            )
    config["seconds"] = round(time.perf_counter() - t0, 1)
    if as_json:
        _print_json({"ranker": str(out_dir), **config})
        return
    t = config["training"]

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4f}"

    out.print(
        f"[green]trained[/] {out_dir} in {config['seconds']}s: {t['train_groups']} groups, "
        f"{config['best_iteration']} trees; validation ({t['val_rows']} rows, "
        f"{t['val_source']}): top-1 {pct(t['val_top1_retrieval'])} retrieval -> "
        f"{pct(t['val_top1_reranked'])} reranked; abstain below confidence "
        f"{config['threshold']:.3f} ({config['confidence']})"
    )


@train_app.command("threshold")
def train_threshold_cmd(
    ranker_dir: Annotated[Path, typer.Argument(help="Ranker folder (from `train ranker`).")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Ranker folder to write (may be RANKER_DIR itself).")
    ],
    min_in_scope_accuracy: MinInScopeOpt = None,
    min_oos_recall: MinOosRecallOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-choose a trained ranker's abstention threshold for another goal, without
    retraining (from the validation outcomes saved with it)."""
    from .ranking import change_abstention_goal

    with _errors_and_warnings():
        result = change_abstention_goal(
            ranker_dir,
            out_dir,
            min_in_scope_accuracy=min_in_scope_accuracy,
            min_oos_recall=min_oos_recall,
        )
    if as_json:
        _print_json(result)
        return
    table = Table(title=f"{out_dir}: {result['after']['abstention_goal']}", title_justify="left")
    for col in ("on validation", "before", "after"):
        table.add_column(col, justify="left" if col == "on validation" else "right")
    for key in ("threshold", "val_in_scope_accuracy", "val_oos_recall", "val_decision_accuracy"):
        a, b = result["before"][key], result["after"][key]
        table.add_row(key, *("n/a" if v is None else f"{v:.4f}" for v in (a, b)))
    out.print(table)


@train_app.command("encoder")
def train_encoder_cmd(
    labelled: Annotated[Path, typer.Argument(help="Labelled questions (.jsonl).")],
    catalog: Annotated[
        Path, typer.Option("--catalog", help="The workflows they are labelled with.")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="sentence-transformers folder to write.")],
    base: Annotated[
        Path | None, typer.Option("--base", help="Model to start from (default: bundled MiniLM).")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2)] = 32,
    learning_rate: Annotated[float, typer.Option("--lr")] = 2e-5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    oos_negatives: Annotated[
        int,
        typer.Option(
            "--oos-negatives",
            min=0,
            help="Out-of-scope rows (label null) added to each batch as extra negatives, "
            "when the file has any (0: such rows are skipped).",
        ),
    ] = 32,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune the encoder contrastively on labelled questions (CPU); use it with --model."""
    from .encoding.finetune import finetune_encoder
    from .loaders import load_catalog, load_queries

    with _errors_and_warnings():
        workflows = load_catalog(catalog)
        rows = load_queries(labelled, workflow_ids={w.id for w in workflows})
        with _progress(quiet=as_json) as bar:
            task = bar.add_task("fine-tuning", total=None)

            def tick(done: int, total: int, loss: float) -> None:
                bar.update(
                    task, completed=done, total=total, description=f"fine-tuning (loss {loss:.3f})"
                )

            info = finetune_encoder(
                rows,
                workflows,
                out_dir,
                base=base,
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                seed=seed,
                oos_negatives=oos_negatives,
                progress=tick,
            )
    if as_json:
        _print_json({"model": str(out_dir), **info})
        return
    out.print(
        f"[green]fine-tuned[/] {out_dir}: {info['rows']} rows, {info['batches']} batches in "
        f"{info['seconds']}s; loss {info['loss_first']} -> {info['loss_last']}. "
        f"Use it: frontdesk index build ... --model {out_dir}"
    )


@train_app.command("distill")
def train_distill_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Fast-encoder folder to write.")],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="onnx-int8 (int8 weights), onnx (fp32, same vectors) or static (model2vec).",
        ),
    ] = "onnx-int8",
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="sentence-transformers folder to build from (default: bundled MiniLM)."
        ),
    ] = None,
    pca_dims: Annotated[
        int | None,
        typer.Option("--pca-dims", min=2, help="Vector size of a static encoder (default: 256)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a faster CPU encoder from a sentence-transformers model; use it with --model."""
    from .encoding.fast import KINDS, build_fast_encoder

    if kind not in KINDS:
        raise typer.BadParameter(f"must be one of {', '.join(KINDS)}", param_hint="--kind")
    if pca_dims is not None and kind != "static":
        raise typer.BadParameter("only applies to --kind static", param_hint="--pca-dims")
    with _errors_and_warnings():
        t0 = time.perf_counter()
        with _progress(quiet=as_json) as bar:
            tick = _stage_ticker(bar, f"building {kind}")
            manifest = build_fast_encoder(
                model, out_dir, kind, pca_dims=pca_dims or 256, progress=tick
            )
    seconds = round(time.perf_counter() - t0, 1)
    if as_json:
        _print_json({"encoder": str(out_dir), **manifest, "seconds": seconds})
        return
    out.print(
        f"[green]built[/] {out_dir}: {manifest['kind']}, {manifest['dim']} dimensions, "
        f"from {manifest['source']['name']} in {seconds}s. "
        f"Use it: frontdesk index build ... --model {out_dir}"
    )


@datasets_app.command("import")
def datasets_import(
    name: Annotated[str, typer.Argument(help="banking77, clinc150 or abcd.")],
    src: Annotated[Path, typer.Argument(help="The dataset's folder.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the .jsonl files.")],
    as_json: JsonOpt = False,
) -> None:
    """Write workflows.jsonl and train/val/test.jsonl from a public dataset."""
    from .datasets import IMPORTERS

    if name not in IMPORTERS:
        raise typer.BadParameter(f"must be one of {', '.join(IMPORTERS)}", param_hint="NAME")
    with _errors_and_warnings():
        counts = IMPORTERS[name](src, out_dir)
    if as_json:
        _print_json({"dataset": name, "out": str(out_dir), "counts": counts})
        return
    out.print(
        f"[green]imported[/] {name} -> {out_dir}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


@datasets_app.command("multiturn")
def datasets_multiturn(
    queries: Annotated[Path, typer.Argument(help="Single-turn labelled queries (.jsonl).")],
    kind: Annotated[str, typer.Option("--kind", help="distractor_first or vague_follow_up.")],
    out_file: Annotated[Path, typer.Option("--out", help="Two-turn queries to write.")],
    distractors: Annotated[
        Path | None,
        typer.Option(
            "--distractors",
            help="Queries whose null-labelled texts serve as "
            "out-of-scope first turns (beside built-in small talk).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Two-turn benchmark rows from single-turn ones (deterministic for a seed)."""
    from .datasets.multiturn import KINDS, make_multiturn
    from .loaders import load_queries, write_jsonl

    if kind not in KINDS:
        raise typer.BadParameter(f"must be one of {', '.join(KINDS)}", param_hint="--kind")
    with _errors_and_warnings():
        rows = load_queries(queries)
        lines = (
            [q.text for q in load_queries(distractors) if q.label is None] if distractors else []
        )
        n = write_jsonl(out_file, make_multiturn(rows, kind, seed=seed, distractors=lines))
    if as_json:
        _print_json({"out": str(out_file), "kind": kind, "seed": seed, "rows": n})
        return
    out.print(f"[green]wrote[/] {n} {kind} rows to {out_file}")


def _bundled(name: str) -> Path:
    return Path(str(resources.files("frontdesk") / "data" / name))


@app.command("demo")
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to build the demo index.")] = Path(
        "demo-index"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Build the bundled demo catalog's index and suggest for example conversations."""
    from .eval import evaluate_suggester
    from .loaders import load_conversations, load_queries
    from .suggester import Suggester

    with _errors_and_warnings():
        t0 = time.perf_counter()
        manifest = _build(_bundled("demo_catalog.jsonl"), out_dir, None, None, False, as_json)
        build_s = time.perf_counter() - t0
        suggester = Suggester.load(out_dir)
        convs = load_conversations(_bundled("demo_conversations.jsonl"))
        results = suggester.suggest_many(convs, k=3)
        queries = load_queries(
            _bundled("demo_queries.jsonl"), workflow_ids=set(suggester.index.workflow_ids)
        )
        report = evaluate_suggester(suggester, queries)
    if as_json:
        _print_json(
            {
                "index": str(out_dir),
                "build_seconds": round(build_s, 2),
                "counts": manifest["counts"],
                "conversations": [
                    {"id": c.id, "text": c.text, "suggestions": [s.model_dump() for s in r]}
                    for c, r in zip(convs, results, strict=True)
                ],
                "demo_queries": report,
            }
        )
        return
    c = manifest["counts"]
    out.print(
        f"[bold]frontdesk demo[/]: indexed {c['workflows']} workflows, {c['documents']} documents "
        f"into {out_dir} in {build_s:.1f}s ({suggester.mode} retrieval)\n"
    )
    table = Table(show_lines=True, title="Suggestions for example conversations")
    table.add_column("conversation", ratio=3)
    table.add_column("profile", ratio=1)
    table.add_column("top suggestions", ratio=3)
    for conv, res in zip(convs, results, strict=True):
        history = "\n".join(f"[dim]{t.role}: {t.text}[/]" for t in conv.turns)
        said = (
            f"{history}\n[bold]user: {conv.text}[/]" if history else f"[bold]user: {conv.text}[/]"
        )
        prof = ", ".join(f"{k}={v}" for k, v in conv.user.fields().items() if v is not None)
        sugg = "\n".join(
            f"{s.rank}. {s.title} [dim]({s.workflow_id}, {s.score:.2f})[/]" for s in res
        )
        table.add_row(said, prof, sugg)
    out.print(table)
    out.print(
        f"\nBundled demo queries ({report['n']} labelled): top-1 {report['top1']:.1%}, "
        f"recall@3 {report['recall@3']:.1%}, MRR@10 {report['mrr@10']:.3f}"
    )
    out.print(f'Try: frontdesk suggest {out_dir} "my payout never showed up" --k 3')


from . import cli_routing  # noqa: E402,F401  (registers route, simulate, train/eval router)


def main() -> None:
    app()
