"""``frontdesk serve`` and ``frontdesk models``: the scoring service and its repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import DataError, FrontdeskError
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
    epsilon: Annotated[
        float | None,
        typer.Option("--epsilon", min=0.0, max=1.0, help="Router: share of random pairs."),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option("--temperature", min=0.0, help="Router: softmax over utilities."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a new version folder (artifacts + model-settings.json) into MODELS_DIR.

    A router explores with --epsilon or --temperature (default: it does not, and its
    logged propensities are 1, which off-policy evaluation cannot learn much from).
    """
    from ..scoring.packaging import package_model

    with errors_and_warnings():
        explore = {
            k: v for k, v in (("epsilon", epsilon), ("temperature", temperature)) if v is not None
        }
        if explore and (kind or "") not in ("", "router"):
            raise FrontdeskError("--epsilon/--temperature go with a router")
        if len(explore) > 1:
            raise FrontdeskError("give --epsilon or --temperature, not both")
        target = package_model(
            source, name, into, ranker=ranker, kind=kind, version=version,
            max_batch_size=max_batch_size, max_batch_time_ms=max_batch_time_ms,
            parameters=explore, explore_router_only=bool(explore),
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
    decision_log: Annotated[
        Path | None,
        typer.Option("--decision-log", help="Log every decision here; take outcomes back."),
    ] = None,
    log_text: Annotated[
        str, typer.Option("--log-text", help="Conversation text in the log: keep, hash or drop.")
    ] = "keep",
    explore_top_k: Annotated[
        int, typer.Option("--explore-top-k", help="Suggestions: reorder the top N (2-8).")
    ] = 0,
    explore_rate: Annotated[
        float, typer.Option("--explore-rate", help="Suggestions: share of lists reordered.")
    ] = 0.0,
    log_when_full: Annotated[
        str, typer.Option("--log-when-full", help="Buffer full: drop (and count) or block.")
    ] = "drop",
    log_flush_seconds: Annotated[
        float, typer.Option("--log-flush-seconds", help="Longest a logged row waits for disk.")
    ] = 2.0,
    log_buffer_rows: Annotated[
        int, typer.Option("--log-buffer-rows", min=1, help="Rows held in memory at most.")
    ] = 20_000,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of canary draws and exploration.")
    ] = None,
    request_timeout: Annotated[
        float,
        typer.Option(
            "--request-timeout", help="Seconds before a request is answered 504 (0: never)."
        ),
    ] = 30.0,
    body_timeout: Annotated[
        float, typer.Option("--body-timeout", help="Seconds for a request body to arrive (408).")
    ] = 10.0,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", help="Seconds for request headers to arrive (408).")
    ] = 10.0,
    keep_alive: Annotated[
        int, typer.Option("--keep-alive", help="Seconds an idle connection is kept open.")
    ] = 5,
    chunk: Annotated[
        int,
        typer.Option("--chunk", help="Units of work above which a request runs apart, in parts."),
    ] = 32,
) -> None:
    """Serve every model in MODELS_DIR over the Open Inference Protocol (KServe V2) REST.

    Limits on each request (sizes, counts, timeouts) are in docs/limits.md ("Server").
    """
    import os

    from ..scoring.decision_logging import DecisionLogSettings
    from ..scoring.settings import ServeSettings

    with errors_and_warnings():
        try:
            serving = ServeSettings(
                request_timeout_s=request_timeout, body_timeout_s=body_timeout,
                header_timeout_s=header_timeout, keep_alive_s=keep_alive, chunk=chunk,
            )  # fmt: skip
        except DataError as exc:  # named by its variable: say the flag instead
            flag = "--" + exc.path.removeprefix("FRONTDESK_SERVE_").lower().replace("_", "-")
            raise FrontdeskError(f"{flag}: {exc.reason}") from None
        os.environ.update(serving.to_env())  # read by every worker process
        if decision_log is not None:
            from ..decisions.store import DecisionLogDir

            try:
                settings = DecisionLogSettings(
                    folder=str(decision_log.resolve()), log_text=log_text,
                    explore_top_k=explore_top_k, explore_rate=explore_rate,
                    when_full=log_when_full, flush_seconds=log_flush_seconds,
                    flush_rows=min(1000, log_buffer_rows), buffer_rows=log_buffer_rows,
                )  # fmt: skip
            except ValueError as exc:
                raise FrontdeskError(str(exc)) from None
            DecisionLogDir.create(decision_log)  # refuses a folder that is not one, now
            os.environ.update(settings.to_env())
        elif explore_rate or explore_top_k:
            raise FrontdeskError("--explore-top-k/--explore-rate need --decision-log DIR")
        if seed is not None:
            os.environ["FRONTDESK_SERVE_SEED"] = str(seed)
        try:
            import uvicorn

            from ..scoring.connection import uvicorn_options
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
            f"GET /v2/health/ready says when"
            + (f"; decisions logged to {decision_log}" if decision_log else ""),
            highlight=False,
        )
        uvicorn.run(
            "frontdesk.scoring.server:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            **uvicorn_options(serving),
        )
