"""``frontdesk suggest``: workflow suggestions for one text or conversation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ._common import (
    JsonOpt,
    ModeOpt,
    RankerOpt,
    check_mode,
    conversation,
    errors_and_warnings,
    out,
    print_json,
)


def suggest(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    text: Annotated[str, typer.Argument(help="The user's latest message.")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="How many workflows.")] = 5,
    turn: Annotated[
        list[str] | None, typer.Option("--turn", help="Earlier turn, 'user: …' or 'agent: …'.")
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="User profile as JSON.")] = None,
    mode: ModeOpt = "hybrid",
    ranker: RankerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suggest workflows for one message (with optional earlier turns and profile)."""
    from ..suggester import Suggester

    with errors_and_warnings():
        conv = conversation(text, turn or [], profile)
        suggester = Suggester.load(index_dir, mode=check_mode(mode), ranker=ranker)  # type: ignore[arg-type]
        results = suggester.suggest(conv, k=k)
    if as_json:
        print_json({"mode": suggester.mode, **results.to_json()})
        return
    _suggestion_table(text, results, suggester.mode + ("+ranker" if ranker is not None else ""))
    if turn:  # which turns the query was made of is only a question with earlier turns
        out.print(f"query: {QUERY_FROM.get(results.query_from or '', results.query_from)}")
    if results.confidence is not None:
        verdict = "[yellow]abstained: no workflow fits[/]" if results.abstained else "answered"
        out.print(
            f"confidence {results.confidence:.2f} (threshold "
            f"{suggester.ranker.threshold:.2f}): {verdict}"
        )


QUERY_FROM = {
    "latest": "the latest message alone",
    "mixed": "the latest message with the earlier turns",
    "earlier": "the earlier turns (the latest message reads as a follow-up)",
}


def _suggestion_table(title: str, results: list[Any], mode: str) -> None:
    table = Table(title=f"{title}  [dim]({mode})[/]", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("workflow")
    table.add_column("title")
    table.add_column("score", justify="right")
    for s in results:
        table.add_row(str(s.rank), s.workflow_id, s.title, f"{s.score:.3f}")
    out.print(table)
