"""Helpers every command module shares: consoles, options, errors as one line, progress."""

from __future__ import annotations

import json
import re
import sys
import time
import warnings
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

RankerOpt = Annotated[
    Path | None, typer.Option("--ranker", help="Rerank with a model from `train ranker`.")
]


out = Console(soft_wrap=True)


err = Console(stderr=True, soft_wrap=True)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


ModeOpt = Annotated[str, typer.Option("--mode", help="hybrid, dense or sparse (BM25 alone).")]


@contextmanager
def errors_and_warnings():  # type: ignore[no-untyped-def]
    """Warnings go to stderr as one line each. Errors propagate: the app's wrapper
    (``_app.FrontdeskGroup``) makes each one line and an exit code."""

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        err.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, emoji=False)

    old = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = old


class StageProgress(Progress):
    """Rich bars on a terminal; elsewhere (a pipe, a log file), unless quiet, one plain
    stderr line per stage and at most every ``LOG_EVERY_S`` seconds within one, once the
    job has run ``QUIET_FIRST_S``: a long job run in the background shows that it moves,
    a short one's output stays its result."""

    LOG_EVERY_S = 30.0
    QUIET_FIRST_S = 10.0

    def __init__(self, quiet: bool) -> None:
        super().__init__(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=quiet or not err.is_terminal,  # no bar (nor its blank line) off a terminal
        )
        self.log_lines = not quiet and not err.is_terminal
        self.started = time.monotonic()
        self.logged: tuple[str, float] = ("", -self.LOG_EVERY_S)

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)

    def _log(self, task_id: TaskID) -> None:
        now = time.monotonic()
        if not self.log_lines or now - self.started < self.QUIET_FIRST_S:
            return
        task = next(t for t in self.tasks if t.id == task_id)
        # "fine-tuning (loss 0.41)", "simulating rule, day 3": one stage each, whatever the numbers
        stage = re.sub(r"\d+", "#", task.description.split(" (")[0])
        if stage != self.logged[0] or now - self.logged[1] >= self.LOG_EVERY_S:
            self.logged = (stage, now)
            done = f" {task.completed:.0f}/{task.total:.0f}" if task.total else ""
            line = f"[{now - self.started:5.0f}s] {task.description}{done}"
            err.print(line, markup=False, highlight=False)


def progress(quiet: bool = False) -> StageProgress:
    return StageProgress(quiet)


def stage_ticker(bar: Progress, description: str) -> Any:
    """A ``progress(stage, done, total)`` callback that drives one bar of ``bar``."""
    task = bar.add_task(description, total=None)

    def tick(stage: str, done: int, total: int) -> None:
        bar.update(task, description=stage, completed=done, total=total)

    return tick


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def check_mode(mode: str) -> str:
    if mode not in {"hybrid", "dense", "sparse"}:
        raise typer.BadParameter("must be hybrid, dense or sparse", param_hint="--mode")
    return mode


def build(
    catalog: Path,
    out_dir: Path,
    examples: Path | None,
    model: Path | None,
    sparse_only: bool,
    quiet: bool,
    dense_index: str | None = None,
    gate: bool | None = None,
) -> dict[str, Any]:
    from ..catalog_index import build_index
    from ..config import Settings

    settings = Settings.from_env(model=str(model) if model else None, dense_index=dense_index)
    with progress(quiet) as bar:
        tick = stage_ticker(bar, "encoding")

        return build_index(
            catalog,
            out_dir,
            examples=examples,
            settings=settings,
            dense=not sparse_only,
            progress=tick,
            gate=gate,
        )


def conversation(text: str, turns: list[str], profile: str | None, text_name: str = "text"):  # type: ignore[no-untyped-def]
    """The conversation the command line describes: TEXT, ``--turn``s and ``--profile``,
    each held to the limits (a DataError names the argument at fault)."""
    from ..limits import check_count, check_text, current
    from ..loaders import check_conversation, parse_profile
    from ..schema import Conversation

    lim = current()
    check_text(text, text_name, None, limits=lim)
    check_count(len(turns), lim.turns, "--turn", None, "turns", limit="turns")
    parsed = []
    for i, t in enumerate(turns, start=1):
        role, sep, said = t.partition(":")
        if not sep or role.strip() not in {"user", "agent"}:
            raise typer.BadParameter("use 'user: text' or 'agent: text'", param_hint="--turn")
        check_text(said, f"--turn {i}", None, limits=lim)
        parsed.append({"role": role.strip(), "text": said.strip()})
    user = parse_profile(profile, "--profile", limits=lim) if profile is not None else {}
    conv = Conversation(text=text, context={"turns": parsed, "user": user})
    return check_conversation(conv, text_name, limits=lim)


def bundled(name: str) -> Path:
    return Path(str(resources.files("frontdesk") / "data" / name))


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
    list[str] | None,
    typer.Option("--segment", help="Log column to segment by (repeatable; default: segment)."),
]


MetricsOpt = Annotated[
    str,
    typer.Option(
        "--metrics",
        help="Comma list of resolution,handle_time,csat,cost,utility (resolved is taken for "
        "resolution; the output says resolution).",
    ),
]
