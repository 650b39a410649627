"""The ``frontdesk`` command line: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from .datasets import datasets_app
from .demo import demo
from .eval import eval_app
from .index import index_app
from .route import route_cmd
from .serve import models_app, serve_cmd
from .simulate import simulate_app
from .suggest import suggest
from .train import train_app

app = typer.Typer(
    help="frontdesk: workflow suggestion for a payments company's support organisation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(datasets_app, name="datasets")
app.add_typer(index_app, name="index")
app.command("suggest")(suggest)
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
app.add_typer(simulate_app, name="simulate")
app.command("route")(route_cmd)
app.add_typer(models_app, name="models")
app.command("serve")(serve_cmd)
app.command("demo")(demo)


def main() -> None:
    app()


__all__ = ["app", "main"]
