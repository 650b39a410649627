"""``frontdesk route``: the channel and agent for one contact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import FrontdeskError
from ..limits import loads_json
from ._common import (
    JsonOpt,
    RankerOpt,
    WeightsOpt,
    conversation,
    errors_and_warnings,
    out,
    print_json,
)


def _agents(specs: list[str]) -> list[Any]:
    """``agent-001`` or ``agent-001:2`` (current load) or a JSON object per --agent."""
    agents: list[Any] = []
    for spec in specs:
        if spec.lstrip().startswith("{"):
            agents.append(loads_json(spec, "--agent"))
            continue
        aid, _, load = spec.partition(":")
        try:
            agents.append({"agent_id": aid, "load": int(load or 0)})
        except ValueError:
            raise FrontdeskError(
                f"--agent {spec!r}: the load after ':' must be an integer"
            ) from None
    return agents


def route_cmd(
    model_dir: Annotated[Path, typer.Argument(help="Router folder from `train router`.")],
    text: Annotated[str, typer.Option("--text", help="The user's latest message.")],
    turn: Annotated[
        list[str] | None, typer.Option("--turn", help="Earlier turn, 'user: …' or 'agent: …'.")
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="User profile as JSON.")] = None,
    agent: Annotated[
        list[str] | None,
        typer.Option(
            "--agent",
            help="Available agent: id, id:load, or a JSON record (repeatable; default: roster).",
        ),
    ] = None,
    wait: Annotated[float, typer.Option("--wait", min=0.0, help="Minutes waited so far.")] = 0.0,
    weights: WeightsOpt = None,
    index: Annotated[
        Path | None,
        typer.Option("--index", help="Also suggest workflows from this index, same encoding."),
    ] = None,
    ranker: RankerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Route one contact to a channel and agent (and suggest workflows with --index)."""
    from ..routing import Router, RoutingWeights

    with errors_and_warnings():
        conv = conversation(text, turn or [], profile)
        router = Router.load(model_dir, weights=RoutingWeights.parse(weights) if weights else None)
        available = _agents(agent) if agent else list(router.roster)
        result: dict[str, Any] = {}
        if index is not None:
            from ..desk import FrontDesk
            from ..suggester import Suggester

            desk = FrontDesk(Suggester.load(index, ranker=ranker, encoder=router.encoder), router)
            decided = desk.handle([conv], available, waits=[wait])[0]
            if decided.route is None:
                raise FrontdeskError("no eligible agent has a free slot for this contact")
            result["suggestions"] = decided.suggestions.to_json()
            result["route"] = decided.route.to_json()
        else:
            result["route"] = router.route(conv, available, wait_min=wait).to_json()
        # Which decided this contact: the router, or the rule it defers to for the segment.
        result["policy"] = result["route"]["policy"]
        result["router_policy"] = router.policy
        result["encoder_calls"] = router.encoder.calls
    if as_json:
        print_json(result)
        return
    r = result["route"]
    out.print(
        f"[bold]{r['channel']}[/] with [bold]{r['agent_id']}[/]: expected utility "
        f"{r['expected_utility']:.3f} (P(resolved) {r['expected']['resolution']:.2f}, "
        f"handle time {r['expected']['handle_time']:.1f} min, CSAT {r['expected']['csat']:.2f}, "
        f"cost {r['expected']['cost']:.2f})"
    )
    if result["policy"] != "router":
        which = (
            "for any contact"
            if result["router_policy"].get("overall") != "router"
            else f"for segment {conv.user.segment or 'missing'!r}"
        )
        out.print(
            f"decided by the rule ({result['policy']}): training's held-out check did not show "
            f"the router better than the rule {which}"
        )
    table = Table(
        title="Utility by channel for an average agent (the channel model)", title_justify="left"
    )
    table.add_column("channel")
    table.add_column("utility", justify="right")
    for h, u in r["scores_by_channel"].items():
        table.add_row(h, f"{u:.3f}")
    out.print(table)
    if "suggestions" in result:
        for s in result["suggestions"]["suggestions"]:
            out.print(f"  {s['rank']}. {s['title']} [dim]({s['workflow_id']}, {s['score']:.2f})[/]")
    out.print(f"[dim]encoder calls: {result['encoder_calls']}[/]")
