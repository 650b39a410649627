"""eval router: the four policies on fresh days, the JSON contract and the report files;
a router that defers to the rule is the rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from frontdesk.cli import app
from frontdesk.eval.router import evaluate_router, write_router_report

runner = CliRunner()


def test_evaluate_router_contract_and_report(
    router_dir: Path, org_logs: Path, encoder, tmp_path
) -> None:
    from frontdesk.routing import Router

    router = Router.load(router_dir, encoder=encoder)
    result = evaluate_router(router, org_logs, days=1)
    assert result["days"] == [3]  # the first day after the three logged ones
    pol = result["policies"]
    assert {"random", "rule", "router", "oracle"} <= set(pol)
    for p in pol.values():
        assert {"resolution", "handle_time", "csat", "cost", "utility", "wait_p95"} <= set(p)
        assert set(p["segments"]) <= {"individual", "small_business", "enterprise", "platform"}
        assert sum(s["n"] for s in p["segments"].values()) == result["contacts"]
        assert all(s["wait_p95"] >= 0 for s in p["segments"].values())
    assert set(result["segments_gap_closed"]) == set(pol["rule"]["segments"])
    assert set(result["router_policy"]["segments"]) == set(pol["rule"]["segments"])
    assert result["capacity_violations"] == 0
    assert result["encoder_calls"] == 1  # every contact of every day encoded in one pass
    u = {k: v["utility"] for k, v in pol.items()}
    assert u["oracle"] > u["random"] and u["rule"] > u["random"]
    expected_gap = (u["router"] - u["rule"]) / (u["oracle"] - u["rule"])
    assert result["gap_closed"] == pytest.approx(expected_gap)
    files = write_router_report(result, tmp_path / "rep")
    names = {f.name for f in files}
    assert {"report.md", "report.html", "report.json", "utility.png"} <= names
    assert all(f.stat().st_size > 0 for f in files)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## utility by segment" in md and "| oracle |" in md
    assert "## By segment" in md and "router p95 wait" in md


def test_a_router_that_defers_everywhere_is_the_rule(router_dir: Path, org_logs: Path, encoder):
    from frontdesk.routing import POLICY_ROUTER, POLICY_RULE, Router

    router = Router.load(router_dir, encoder=encoder)
    router.config = {**router.config, "policy": {"overall": POLICY_RULE, "segments": {}}}
    result = evaluate_router(router, org_logs, days=1)
    pol = result["policies"]
    assert pol["router"]["utility"] == pol["rule"]["utility"]
    assert pol["router"]["segments"] == pol["rule"]["segments"]  # waits included
    assert result["gap_closed"] == 0.0
    assert set(result["router_policy"]["segments"].values()) == {POLICY_RULE}
    # One segment deferred: said per segment, and capacity still holds.
    router.config = {
        **router.config,
        "policy": {"overall": POLICY_ROUTER, "segments": {"individual": POLICY_RULE,
                   "small_business": POLICY_ROUTER, "enterprise": POLICY_ROUTER,
                   "platform": POLICY_ROUTER}},
    }  # fmt: skip
    mixed = evaluate_router(router, org_logs, days=1)
    assert mixed["router_policy"]["segments"]["individual"] == POLICY_RULE
    assert mixed["capacity_violations"] == 0


@pytest.mark.slow
def test_cli_simulate_train_route_eval(tmp_path: Path) -> None:
    """The whole routing path through the CLI, JSON everywhere."""

    def run(*args: str) -> dict:
        res = runner.invoke(app, list(args), catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    logs, model = tmp_path / "logs", tmp_path / "router"
    sim = run("simulate", "org", "--contacts", "900", "--agents", "8", "--days", "3",
              "--seed", "2", "--out", str(logs), "--json")  # fmt: skip
    assert sim["contacts"] == 900 and sim["capacity_violations"] == 0
    trained = run("train", "router", str(logs), "--out", str(model), "--json")
    assert trained["rows"] == 900 and trained["encoder_calls"] == 1
    guard = trained["guard"]
    assert guard["held_out_days"] == [2] and guard["fit_rows"] == 600
    assert trained["policy"]["overall"] == guard["policy"] in {"router", "rule-fallback"}
    routed = run("route", str(model), "--text", "my payout never arrived",
                 "--profile", '{"segment": "enterprise", "language": "en"}', "--json")  # fmt: skip
    assert routed["route"]["channel"] in {"phone", "chat", "email"}
    assert routed["policy"] == routed["route"]["policy"] in {"router", "rule-fallback"}
    assert routed["router_policy"] == trained["policy"]
    assert routed["encoder_calls"] == 1
    ev = run("eval", "router", str(model), str(logs), "--days", "1",
             "--report", str(tmp_path / "rep"), "--json")  # fmt: skip
    assert set(ev["policies"]) >= {"random", "rule", "router", "oracle"}
    assert ev["capacity_violations"] == 0 and "gap_closed" in ev
    assert "wait_p95" in ev["policies"]["router"] and "segments_gap_closed" in ev
    assert (tmp_path / "rep" / "report.html").is_file()
    bad = runner.invoke(app, ["route", str(model), "--text", "x", "--weights", "speed=1"])
    assert bad.exit_code == 2 and "unknown weight" in bad.stderr


def test_fresh_days_come_after_the_logs_and_the_router_training(
    router_dir: Path, org_logs: Path, encoder, tmp_path
) -> None:
    import warnings

    from frontdesk.orgsim import continue_org
    from frontdesk.routing import Router

    router = Router.load(router_dir, encoder=encoder)  # trained on days 0-2
    continue_org(org_logs, tmp_path / "fresh", days=2)  # days 3-4 of the same organisation
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same organisation: no "another organisation" warning
        result = evaluate_router(router, tmp_path / "fresh", days=1)
    assert result["days"] == [5]
    # A router that learned from later days than the logs given: fresh days follow its training.
    training = {**router.config["training"], "days": [0, 1, 2, 7]}
    router.config = {**router.config, "training": training}
    assert evaluate_router(router, org_logs, days=1)["days"] == [8]
