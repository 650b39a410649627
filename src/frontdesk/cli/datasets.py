"""``frontdesk datasets``: import public datasets, make multi-turn sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    JsonOpt,
    errors_and_warnings,
    out,
    print_json,
)

datasets_app = typer.Typer(
    rich_markup_mode=None,
    help="Import public datasets into frontdesk's formats.",
    no_args_is_help=True,
)


@datasets_app.command("import")
def datasets_import(
    name: Annotated[str, typer.Argument(help="banking77, clinc150 or abcd.")],
    src: Annotated[Path, typer.Argument(help="The dataset's folder.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the .jsonl files.")],
    shots: Annotated[
        int | None,
        typer.Option(
            "--shots",
            min=0,
            help="Keep this many train questions per workflow (seeded; out-of-scope rows "
            "all kept); 0 = workflow texts alone. Val and test stay whole.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Which --shots sample.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Write workflows.jsonl and train/val/test.jsonl from a public dataset."""
    from ..datasets import IMPORTERS, import_dataset

    if name not in IMPORTERS:
        raise typer.BadParameter(f"must be one of {', '.join(IMPORTERS)}", param_hint="NAME")
    with errors_and_warnings():
        counts = import_dataset(name, src, out_dir, shots=shots, seed=seed)
    if as_json:
        record = {"dataset": name, "out": str(out_dir), "counts": counts}
        if shots is not None:
            record.update(shots=shots, seed=seed)
        print_json(record)
        return
    out.print(
        f"[green]imported[/] {name} -> {out_dir}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


@datasets_app.command("multiturn")
def datasets_multiturn(
    queries: Annotated[Path, typer.Argument(help="Single-turn labelled queries (.jsonl).")],
    kind: Annotated[
        str, typer.Option("--kind", help="distractor_first, vague_follow_up or topic_shift.")
    ],
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
    phrases: Annotated[
        str,
        typer.Option(
            "--phrases",
            help="eval (benchmarks), train or val: disjoint pools of small talk, "
            "follow-ups, answers and thanks.",
        ),
    ] = "eval",
    as_json: JsonOpt = False,
) -> None:
    """Multi-turn benchmark rows from single-turn ones (deterministic for a seed)."""
    from ..datasets.multiturn import ALL_KINDS, PHRASES, make_multiturn
    from ..loaders import load_queries, write_jsonl

    if kind not in ALL_KINDS:
        raise typer.BadParameter(f"must be one of {', '.join(ALL_KINDS)}", param_hint="--kind")
    if phrases not in PHRASES:
        raise typer.BadParameter(f"must be one of {', '.join(PHRASES)}", param_hint="--phrases")
    with errors_and_warnings():
        rows = load_queries(queries)
        lines = (
            [q.text for q in load_queries(distractors) if q.label is None] if distractors else []
        )
        n = write_jsonl(
            out_file, make_multiturn(rows, kind, seed=seed, distractors=lines, phrases=phrases)
        )
    if as_json:
        print_json(
            {"out": str(out_file), "kind": kind, "seed": seed, "phrases": phrases, "rows": n}
        )
        return
    out.print(f"[green]wrote[/] {n} {kind} rows to {out_file}")
