"""The ``frontdesk`` command line: one Typer app, one module per command group."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import FrontdeskGroup
from .datasets import datasets_app
from .demo import demo
from .eval import eval_app
from .index import index_app
from .logs import logs_app
from .route import route_cmd
from .serve import models_app, serve_cmd
from .simulate import simulate_app
from .suggest import suggest
from .train import train_app

app = typer.Typer(
    cls=FrontdeskGroup,  # every command ends with one line and an exit code (see _app.py)
    rich_markup_mode=None,
    help="frontdesk: workflow suggestion for a payments company's support organisation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"max_content_width": 100, "help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"frontdesk {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show the traceback of an error (also FRONTDESK_DEBUG=1)."),
    ] = False,
) -> None:
    """frontdesk: workflow suggestion, routing and off-policy simulation for support."""


app.add_typer(datasets_app, name="datasets")
app.add_typer(index_app, name="index")
app.command("suggest")(suggest)
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
app.add_typer(simulate_app, name="simulate")
app.add_typer(logs_app, name="logs")
app.command("route")(route_cmd)
app.add_typer(models_app, name="models")
app.command("serve")(serve_cmd)
app.command("demo")(demo)


def main() -> None:
    """The console script: errors are one line on stderr, exit 2 (bad input) or 1 (a bug)."""
    app(prog_name="frontdesk")


__all__ = ["app", "main"]
