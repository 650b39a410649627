"""``frontdesk serve`` and ``frontdesk models``: the scoring service and its repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import FrontdeskError
from ._common import (
    JsonOpt,
    RankerOpt,
    err,
    errors_and_warnings,
    out,
    print_json,
)

models_app = typer.Typer(
    rich_markup_mode=None, help="The scoring service's model repository.", no_args_is_help=True
)


@models_app.command("package")
def models_package_cmd(
    source: Annotated[
        Path, typer.Argument(help="Index, router, LightGBM .txt or ST model folder.")
    ],
    name: Annotated[str, typer.Option("--name", help="Model name in the repository.")],
    into: Annotated[Path, typer.Option("--into", help="MODELS_DIR (the repository root).")],
    ranker: RankerOpt = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="suggester, router, encoder or lightgbm (default: detected)."),
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Default: the next number.")
    ] = None,
    max_batch_size: Annotated[
        int | None, typer.Option("--max-batch-size", min=1, help="Micro-batch size (1: off).")
    ] = None,
    max_batch_time_ms: Annotated[
        float, typer.Option("--max-batch-time-ms", min=0.0, help="Longest wait to fill a batch.")
    ] = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Write a new version folder (artifacts + model-settings.json) into MODELS_DIR."""
    from ..scoring.packaging import package_model

    with errors_and_warnings():
        target = package_model(
            source, name, into, ranker=ranker, kind=kind, version=version,
            max_batch_size=max_batch_size, max_batch_time_ms=max_batch_time_ms,
        )  # fmt: skip
        settings = json.loads((target / "model-settings.json").read_text())
    if as_json:
        print_json(
            {"name": name, "version": target.name, "path": str(target), "settings": settings}
        )
        return
    out.print(f"[green]wrote[/] {target} ({settings['implementation'].rsplit('.', 1)[-1]})")


def serve_cmd(
    models_dir: Annotated[
        Path, typer.Argument(help="MODELS_DIR: <name>/<version>/model-settings.json.")
    ],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Server processes.")] = 1,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Serve every model in MODELS_DIR over the Open Inference Protocol (KServe V2) REST."""
    import os

    with errors_and_warnings():
        try:
            import uvicorn
        except ImportError:
            raise FrontdeskError(
                "serving needs the serve extra: pip install 'frontdesk[serve]'"
            ) from None
        if not models_dir.is_dir():
            raise FrontdeskError(f"{models_dir}: models folder not found")
        os.environ["FRONTDESK_MODELS_DIR"] = str(models_dir.resolve())
        err.print(
            f"frontdesk serve: {models_dir} at http://{host}:{port} ({workers} "
            f"process{'es' if workers > 1 else ''}); models load in the background, "
            f"GET /v2/health/ready says when",
            highlight=False,
        )
        uvicorn.run(
            "frontdesk.scoring.server:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
        )
