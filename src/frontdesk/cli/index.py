"""``frontdesk index``: build, inspect and update workflow indexes."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ._common import (
    JsonOpt,
    build,
    errors_and_warnings,
    out,
    print_json,
    progress,
    stage_ticker,
)

index_app = typer.Typer(
    rich_markup_mode=None, help="Build and inspect workflow indexes.", no_args_is_help=True
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
    gate: Annotated[
        bool | None,
        typer.Option(
            "--gate/--no-gate",
            help="Fit the index's own context gate from its examples (default: from "
            "1,000 examples up; --gate: from about 200).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a FAISS + BM25 index of a catalog (written atomically), with its own context
    gate when its examples are enough."""
    from ..index.dense import DENSE_KINDS

    if dense_index is not None and dense_index not in DENSE_KINDS:
        raise typer.BadParameter(
            f"must be one of {', '.join(DENSE_KINDS)}", param_hint="--dense-index"
        )
    with errors_and_warnings():
        t0 = time.perf_counter()
        manifest = build(
            catalog, out_dir, examples, model, sparse_only, quiet=as_json,
            dense_index=dense_index, gate=gate,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
    counts = manifest["counts"]
    if as_json:
        print_json({"index": str(out_dir), "seconds": round(seconds, 3), **manifest})
        return
    from ..index.dense import describe

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
    out.print(gate_line(manifest))


def gate_line(manifest: dict[str, Any]) -> str:
    """Which context gate the index's conversations get, in one line."""
    gate = manifest.get("context_gate")
    if gate:
        vague = gate.get("validation", {}).get("vague_follow_up", {})
        recovered = (
            f"; top-1 on the validation vague follow-ups its thresholds were chosen on: "
            f"{100 * vague['latest']:.0f} % with the latest message alone, "
            f"{100 * vague['bundled_gate']:.0f} % with the bundled gate, "
            f"{100 * vague['this_gate']:.0f} % with this one"
            if vague
            else ""
        )
        kept = " (kept through index add/remove since)" if gate.get("kept_from_build") else ""
        return (
            f"context gate: fitted from {gate['labelled_examples']} labelled questions in "
            f"{gate['seconds']:.0f}s{kept}{recovered}"
        )
    skipped = manifest.get("context_gate_skipped")
    return "context gate: the bundled one" + (f"; {skipped}" if skipped else "")


@index_app.command("info")
def index_info(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    as_json: JsonOpt = False,
) -> None:
    """Verify an index and show its manifest."""
    from ..index import WorkflowIndex

    with errors_and_warnings():
        idx = WorkflowIndex.load(index_dir)
    m = idx.manifest
    if as_json:
        print_json(m)
        return
    table = Table(title=str(index_dir), show_header=False)
    table.add_row("created", m["created_at"])
    table.add_row("versions", ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    table.add_row("counts", ", ".join(f"{k} {v}" for k, v in m["counts"].items()))
    d = m["dense"]
    if d:
        from ..index.dense import describe

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
    table.add_row("context gate", gate_line(m).removeprefix("context gate: "))
    table.add_row("files", f"{len(m['files'])} verified (sha256)")
    out.print(table)


def _update(
    index_dir: Path, as_json: bool, feedback: Path | None = None, min_count: int = 1, **change: Any
) -> None:
    from ..index import update_index

    found: dict[str, Any] = {}
    with errors_and_warnings(), progress(as_json) as bar:
        t0 = time.perf_counter()
        if feedback is not None:  # read under update_index's lock, for the ids it will hold
            change["examples"] = partial(_feedback_examples, feedback, min_count, found)
        summary = update_index(index_dir, progress=stage_ticker(bar, "updating"), **change)
        summary["seconds"] = round(time.perf_counter() - t0, 3)
    if feedback is not None:
        summary["feedback"] = found
    if as_json:
        print_json(summary)
        return
    out.print(
        f"[green]updated[/] {index_dir}: +{summary['added']} added, {summary['replaced']} "
        f"replaced, -{summary['removed']} removed, {summary['unchanged']} unchanged; "
        f"{summary['encoded_texts']} texts encoded; {summary['workflows']} workflows; "
        f"dense: {summary['dense'] or 'none'}; {summary['seconds']:.1f}s"
    )
    if feedback is not None:
        f, skipped = summary["feedback"], summary["feedback"]["skipped"]
        per = summary["examples_per_workflow"]
        top = ", ".join(f"{w} +{n}" for w, n in list(per.items())[:8])
        more = ", …" if len(per) > 8 else ""
        out.print(
            f"from feedback {feedback}: {summary['examples_added']} examples added to "
            f"{len(per)} workflows" + (f" ({top}{more})" if per else "") + "; "
            f"{summary['example_duplicates']} already examples; of {f['rows']} rows, "
            f"{skipped['unknown_workflow']} with a workflow not in the index, "
            f"{skipped['no_workflow_used']} without workflow_used, {skipped['no_text']} "
            "without text"
            + (
                f"; {f['below_min_count']} texts confirmed in fewer than {min_count} contacts"
                if min_count > 1
                else ""
            )
        )


def _feedback_examples(
    logs: Path, min_count: int, found: dict[str, Any], workflow_ids: list[str]
) -> tuple[list[tuple[str, str]], dict[str, Any], dict[tuple[str, str], list[str]]]:
    """The questions of ``logs`` agents confirmed in at least ``min_count`` contacts, for the
    ``workflow_ids`` the updated index will hold, their source (for the manifest) and the
    decision ids behind each (for the index's lineage, ``feedback_lineage.json``);
    ``found`` gets the source and the counts, for the output."""
    from ..decisions.feedback import read_feedback

    fb = read_feedback(logs, workflow_ids)
    examples = fb.examples(min_count)
    source = {**fb.summary(), "min_count": min_count}
    found.update(
        source,
        distinct_examples=len(examples),
        below_min_count=len(fb.examples(1)) - len(examples),
    )
    return examples, source, fb.example_decisions()


@index_app.command("add")
def index_add(
    index_dir: Annotated[Path, typer.Argument(help="Index folder to update in place.")],
    catalog: Annotated[
        Path | None,
        typer.Argument(
            help="Workflows to add (.jsonl, .yaml); a known id replaces it. Optional with "
            "--from-feedback."
        ),
    ] = None,
    from_feedback: Annotated[
        Path | None,
        typer.Option(
            "--from-feedback",
            help="A joined log folder (`frontdesk logs join --out`): the questions agents "
            "confirmed (workflow_used) become examples of their workflows.",
        ),
    ] = None,
    min_count: Annotated[
        int | None,
        typer.Option(
            "--min-count",
            min=1,
            help="With --from-feedback: attach a question only if agents confirmed it for "
            "its workflow in at least this many contacts [default: 1].",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or replace workflows, or attach agents' confirmed questions as examples, encoding
    only what changed (written atomically)."""
    if catalog is None and from_feedback is None:
        raise typer.BadParameter(
            "give a CATALOG, --from-feedback LOGS, or both", param_hint="CATALOG"
        )
    if from_feedback is None and min_count is not None:
        raise typer.BadParameter("only with --from-feedback LOGS", param_hint="--min-count")
    _update(index_dir, as_json, from_feedback, min_count or 1, add=catalog or ())


def _ids_from(path: Path) -> list[str]:
    """Workflow ids, one per line, from a file the user named (a DataError names it)."""
    from ..errors import DataError
    from ..index.update import read_ids

    if not path.is_file():
        reason = "is a directory, expected a file" if path.is_dir() else "file not found"
        raise DataError(str(path), None, None, reason)
    try:
        return read_ids(path)
    except UnicodeDecodeError as exc:
        raise DataError(str(path), None, None, f"invalid UTF-8 (byte {exc.start + 1})") from None
    except OSError as exc:
        raise DataError(str(path), None, None, f"cannot read: {exc.strerror}") from None


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
    wanted = list(ids or []) + (_ids_from(from_file) if from_file else [])
    if not wanted:
        raise typer.BadParameter("name at least one workflow id", param_hint="IDS")
    _update(index_dir, as_json, remove=wanted)
