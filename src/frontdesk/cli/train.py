"""``frontdesk train``: the ranker, its threshold, the context gate, the encoder, fast
encoders, the router."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import FrontdeskError
from ._common import (
    JsonOpt,
    WeightsOpt,
    errors_and_warnings,
    out,
    print_json,
    progress,
    stage_ticker,
)

train_app = typer.Typer(
    rich_markup_mode=None, help="Train models over an index.", no_args_is_help=True
)


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


@train_app.command("ranker")
def train_ranker_cmd(
    index_dir: Annotated[Path, typer.Argument(help="Index folder (hybrid).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    labelled: Annotated[
        Path | None,
        typer.Argument(help="Labelled training queries (.jsonl); optional with --feedback."),
    ] = None,
    feedback: Annotated[
        Path | None,
        typer.Option(
            "--feedback",
            help="A joined log folder (`frontdesk logs join --out`): its suggestion rows' "
            "workflow_used become labelled rows (with LABELLED: both).",
        ),
    ] = None,
    position_correction: Annotated[
        bool,
        typer.Option(
            "--position-correction/--no-position-correction",
            help="Weight feedback labels by 1/θ of the position they were taken from, θ "
            "estimated from the lists the server showed in a random order.",
        ),
    ] = True,
    max_position_weight: Annotated[
        float,
        typer.Option("--max-position-weight", min=1.0, help="Clip position weights at this."),
    ] = 10.0,
    val: Annotated[
        Path | None,
        typer.Option(
            "--val",
            help="Validation queries (null labels = out of scope); "
            "default: 10 % carved from the training rows (from the feedback rows alone "
            "with --feedback).",
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
    """Train a LambdaRank reranker with calibrated abstention for an index, from labelled
    queries, agents' logged choices (--feedback), or both."""
    from ..index import WorkflowIndex
    from ..loaders import load_queries
    from ..ranking.training import feedback_rows, train_ranker

    if labelled is None and feedback is None:
        raise typer.BadParameter(
            "give LABELLED queries, --feedback LOGS, or both", param_hint="LABELLED"
        )
    with errors_and_warnings():
        ids = set(WorkflowIndex.load(index_dir).workflow_ids)
        rows = load_queries(labelled, workflow_ids=ids) if labelled else []
        val_rows = load_queries(val, workflow_ids=ids) if val else None
        fb = None
        if feedback is not None:
            fb = feedback_rows(
                feedback, ids, correct=position_correction, max_weight=max_position_weight
            )
            if not fb.rows and not rows:
                s = fb.feedback.skipped
                raise FrontdeskError(
                    f"{feedback}: no usable feedback row ({len(fb.feedback.lists)} rows: "
                    f"{s['no_workflow_used']} without workflow_used, {s['unknown_workflow']} "
                    f"with a workflow not in {index_dir}, {s['no_text']} without text)"
                )
        t0 = time.perf_counter()
        with progress(quiet=as_json) as bar:
            tick = stage_ticker(bar, "training")

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
                feedback=fb,
            )
    config["seconds"] = round(time.perf_counter() - t0, 1)
    if as_json:
        print_json({"ranker": str(out_dir), **config})
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
    if "feedback" in t:
        out.print(_feedback_line(t["feedback"]))


def _feedback_line(f: dict[str, Any]) -> str:
    """The feedback a ranker learned from, in one line."""
    s, bias = f["skipped"], f["position_bias"]
    theta = ", ".join(f"{x:.2f}" for x in bias["theta"])
    correction = (
        f"position bias: θ = [{theta}] ({bias['source']}, {bias['used_lists']} lists, "
        f"{bias['reordered_lists']} of them reordered), "
        f"weights clipped at {bias['max_weight']:g}"
        if bias["theta"]
        else f"position bias: {bias['source']}"
    )
    return (
        f"feedback {f['path']}: {f['used']} of {f['rows']} rows used; skipped "
        f"{s['no_workflow_used']} without workflow_used, {s['unknown_workflow']} with a "
        f"workflow not in the index, {s['no_text']} without text; {correction}"
    )


@train_app.command("gate")
def train_gate_cmd(
    index_dir: Annotated[Path, typer.Argument(help="Index folder (hybrid).")],
    labelled: Annotated[
        Path, typer.Argument(help="Labelled questions of its workflows (.jsonl), e.g. train.")
    ],
    out_file: Annotated[Path, typer.Option("--out", help="Gate file to write (.jsonl).")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a gate already at --out.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Fit the context gate (which turns make a conversation's query) for one index, from
    its labelled questions; serve it with FRONTDESK_CONTEXT_MODEL=OUT (before training a
    ranker: a ranker keeps the gate it learned with)."""
    import os

    from ..encoding.context_gate import ContextGate
    from ..encoding.gate_training import train_gate
    from ..errors import DataError
    from ..loaders import load_queries
    from ..suggester import Suggester

    with errors_and_warnings():
        if out_file.is_dir():
            raise DataError(str(out_file), None, None, "a folder: --out names the gate file")
        if out_file.exists():
            if not overwrite:
                raise DataError(str(out_file), None, None, "exists: give --overwrite to replace it")
            try:
                ContextGate.load(out_file)
            except (OSError, ValueError):
                raise DataError(
                    str(out_file), None, None, "exists and is not a gate: not replaced"
                ) from None
        suggester = Suggester.load(index_dir)
        rows = load_queries(labelled, workflow_ids=set(suggester.index.workflow_ids))
        t0 = time.perf_counter()
        with progress(quiet=as_json) as bar:
            gate, report = train_gate(
                suggester, rows, seed=seed, source=str(labelled),
                progress=stage_ticker(bar, "fitting the gate"),
            )  # fmt: skip
        out_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_file.with_name(f".{out_file.name}.tmp")
        try:
            gate.save(tmp)
            os.replace(tmp, out_file)  # never a half-written gate
        finally:
            tmp.unlink(missing_ok=True)
    report = {"gate": str(out_file), "seconds": round(time.perf_counter() - t0, 1), **report}
    if as_json:
        print_json(report)
        return
    table = Table(
        title=f"{out_file}: top-1 on {report['held_out']} held-out questions per kind",
        title_justify="left",
    )
    for col in ("conversation kind", "n", "latest alone", "bundled gate", "this gate"):
        table.add_column(col, justify="left" if col == "conversation kind" else "right")
    for kind, r in report["validation"].items():
        table.add_row(
            kind, str(r["n"]),
            *(f"{100 * r[k]:.1f} %" for k in ("latest", "bundled_gate", "this_gate")),
        )  # fmt: skip
    out.print(table)
    t = report["thresholds"]
    uses = [
        f"the earlier turns alone when it is more than {t['earlier']:.1%} sure the latest "
        "message is a follow-up" if t["earlier"] < 1 else "never the earlier turns alone",
        f"the latest message mixed with them when more than {t['mixed']:.1%} sure"
        if t["mixed"] < 1 else "never the mix",
    ]  # fmt: skip
    out.print(
        f"The gate keeps the latest message as the query; it uses {uses[0]}, and {uses[1]}. "
        "The questions above were held out of a copy of the index and the thresholds chosen "
        "on them, so these numbers flatter the gate a little. In distractor_first and "
        "topic_shift the request is the latest message: there the best a gate can do is "
        "keep it, so its column should equal the first. "
        f"Fitted in {report['seconds']} s.\n"
        f"Serve it: FRONTDESK_CONTEXT_MODEL={out_file} for every process that uses the index "
        "(suggest, eval, serve, train ranker). Judge it on test conversations:\n"
        f"  frontdesk datasets multiturn TEST.jsonl --kind vague_follow_up --out conv.jsonl\n"
        f"  FRONTDESK_CONTEXT_MODEL={out_file} frontdesk eval {index_dir} conv.jsonl"
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
    from ..ranking import change_abstention_goal

    with errors_and_warnings():
        result = change_abstention_goal(
            ranker_dir,
            out_dir,
            min_in_scope_accuracy=min_in_scope_accuracy,
            min_oos_recall=min_oos_recall,
        )
    if as_json:
        print_json(result)
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
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            min=1,
            help="Passes over the questions (default: enough for about 200 batches, at most "
            "8: one for thousands of questions, more for a few per workflow).",
            show_default=False,
        ),
    ] = None,
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
    from ..encoding.finetune import finetune_encoder
    from ..loaders import load_catalog, load_queries

    with errors_and_warnings():
        workflows = load_catalog(catalog)
        rows = load_queries(labelled, workflow_ids={w.id for w in workflows})
        with progress(quiet=as_json) as bar:
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
        print_json({"model": str(out_dir), **info})
        return
    out.print(
        f"[green]fine-tuned[/] {out_dir}: {info['rows']} rows, {info['epochs']} epoch(s), "
        f"{info['batches']} batches in "
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
    from ..encoding.fast import KINDS, build_fast_encoder

    if kind not in KINDS:
        raise typer.BadParameter(f"must be one of {', '.join(KINDS)}", param_hint="--kind")
    if pca_dims is not None and kind != "static":
        raise typer.BadParameter("only applies to --kind static", param_hint="--pca-dims")
    with errors_and_warnings():
        t0 = time.perf_counter()
        with progress(quiet=as_json) as bar:
            tick = stage_ticker(bar, f"building {kind}")
            manifest = build_fast_encoder(
                model, out_dir, kind, pca_dims=pca_dims or 256, progress=tick
            )
    seconds = round(time.perf_counter() - t0, 1)
    if as_json:
        print_json({"encoder": str(out_dir), **manifest, "seconds": seconds})
        return
    out.print(
        f"[green]built[/] {out_dir}: {manifest['backend']}, {manifest['dim']} dimensions, "
        f"from {manifest['source']['name']} in {seconds}s. "
        f"Use it: frontdesk index build ... --model {out_dir}"
    )


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
    holdout_days: Annotated[
        int | None,
        typer.Option(
            "--holdout-days",
            min=0,
            help="Latest logged days held out of a fit to judge the router against the rule "
            "(default: 30 % of the days, at least one; 0: no check, the router decides "
            "everywhere).",
        ),
    ] = None,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit/--no-refit",
            help="Save a router fitted again on every day (the lift reported is the judged "
            "fit's), or the judged fit itself.",
        ),
    ] = True,
    require_lift: Annotated[
        bool,
        typer.Option(
            "--require-lift",
            help="Refuse (exit 2, nothing written) a router the held-out check does not show "
            "better than the rule, instead of saving one that defers to the rule.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the channel model and agent matcher from logged decisions, judged against the
    skills rule on held-out days: where the router is not shown better, it defers to the rule."""
    from ..encoding import ContextEncoder
    from ..routing import RoutingWeights, train_router

    with errors_and_warnings():
        enc = ContextEncoder(encoder) if encoder else ContextEncoder()
        with progress(quiet=as_json) as bar:
            tick = stage_ticker(bar, "training")

            summary = train_router(
                logs_dir,
                out_dir,
                encoder=enc,
                weights=RoutingWeights.parse(weights),
                congestion_price=congestion_price,
                progress=tick,
                holdout_days=holdout_days,
                refit=refit,
                require_lift=require_lift,
            )
    summary = {"out": str(out_dir), **summary}
    if as_json:
        print_json(summary)
        return
    out.print(
        f"[green]wrote[/] router to {out_dir}: {summary['rows']} logged decisions, "
        f"{summary['agents']} agents, {len(summary['topics'])} topics"
    )
    for line in _guard_lines(summary["guard"]):
        out.print(line, highlight=False)


def _guard_lines(guard: dict[str, Any] | None) -> list[str]:
    """What the held-out check found, and what the saved router does about it."""
    from ..routing.training import lift_text

    if guard is None:
        return ["no held-out check (--holdout-days 0): the router decides for every contact"]
    days = ", ".join(str(d) for d in guard["held_out_days"])
    lines = [
        f"held-out check: a router {guard['judged_model']}, judged against the rule on "
        f"{guard['held_out_rows']} later contacts of day(s) {days} (not in its fit): "
        f"{lift_text(guard)}"
    ]
    if guard["policy"] != "router":
        lines.append(
            "[yellow]not shown better than the rule:[/] the saved router defers to the rule for every "
            f"contact (policy rule-fallback); saved model: {guard['saved_model']}"
        )
        return lines
    kept = [s for s, v in guard["segments"].items() if v["policy"] == "router"]
    deferred = [
        f"{s} ({v['lift']:+.4f} [{v['ci'][0]:+.4f}, {v['ci'][1]:+.4f}])"
        for s, v in guard["segments"].items()
        if v["policy"] != "router"
    ]
    lines.append(
        f"router kept for {', '.join(kept) or 'no segment'}"
        + (f"; the rule routes {', '.join(deferred)}" if deferred else "")
        + f"; saved model: {guard['saved_model']}"
    )
    return lines
