"""The held-out check: a time-ordered split, DR lift against the rule, verdicts, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from frontdesk.cli import app
from frontdesk.logs import DecisionLogs
from frontdesk.ope.policies import Batch, SkillsRulePolicy
from frontdesk.routing import POLICY_ROUTER, POLICY_RULE
from frontdesk.routing.guard import MIN_HELD_OUT, judge, pool_segments, split_by_time

runner = CliRunner()


def test_split_holds_out_the_latest_days_or_the_latest_contacts_of_one_day() -> None:
    days = np.repeat(np.arange(10), 5)
    fit, info = split_by_time(days, np.arange(50.0))
    assert info["held_out_days"] == [7, 8, 9] and info["fit_days"] == list(range(7))
    assert fit.sum() == 35 and not fit[days >= 7].any()
    fit, info = split_by_time(np.repeat(np.arange(4), 5), np.arange(20.0))
    assert info["held_out_days"] == [3]
    _, info = split_by_time(days, np.arange(50.0), holdout_days=12)  # at least one day to fit
    assert info["fit_days"] == [0]
    fit, info = split_by_time(np.zeros(10, int), np.arange(10.0))
    assert info["split"] == "arrival time" and fit.tolist() == [True] * 7 + [False] * 3


def _rows(org_logs: Path):  # type: ignore[no-untyped-def]
    logs = DecisionLogs.open(org_logs)
    table = logs.read(columns=None).to_pandas()
    fit = table[table["day"] < 2].reset_index(drop=True)
    held = table[table["day"] == 2].reset_index(drop=True)
    return logs, fit, held


def test_a_router_that_is_the_rule_has_no_lift_and_defers(org_logs: Path) -> None:
    logs, fit, held = _rows(org_logs)
    roster = logs.roster()
    rule = SkillsRulePolicy().probabilities(
        Batch(held, {a.agent_id: a for a in roster}, logs.channels)
    )
    got = judge([int(np.argmax(p)) for p in rule], held, fit, roster, logs.channels)
    assert got["lift"] == 0.0 and got["ci"] == [0.0, 0.0]
    assert got["same_choice_as_rule"] == 1.0
    assert got["policy"] == POLICY_RULE
    assert {s["policy"] for s in got["segments"].values()} == {POLICY_RULE}
    assert sum(s["n"] for s in got["segments"].values()) == len(held)
    # Too few held-out contacts: no verdict but the rule's.
    few = judge([0] * 5, held.iloc[:5], fit, roster, logs.channels)
    assert few["policy"] == POLICY_RULE and str(MIN_HELD_OUT) in few["reason"]


def test_the_lift_is_the_difference_of_the_two_dr_estimates(org_logs: Path) -> None:
    """Any other choice: lift = DR(router) - DR(rule), inside its interval."""
    logs, fit, held = _rows(org_logs)
    first = [0] * len(held)  # always the first eligible pair
    got = judge(first, held, fit, logs.roster(), logs.channels)
    assert got["lift"] == pytest.approx(got["router"]["value"] - got["rule"]["value"])
    lo, hi = got["ci"]
    assert lo < got["lower_bound"] < got["lift"] < hi  # one-sided 95 %: inside the two-sided
    assert got["policy"] == (POLICY_ROUTER if got["lower_bound"] > 0 else POLICY_RULE)


def test_segments_alike_share_evidence_and_a_different_one_keeps_its_own() -> None:
    ci = lambda v, se: (v, [v - 1.96 * se, v + 1.96 * se])  # noqa: E731
    alike = pool_segments({"a": ci(0.05, 0.02), "b": ci(0.04, 0.05), "c": ci(-0.01, 0.08)})
    # No spread beyond noise: the small, noisy segment c is pulled to the others' lift.
    assert alike["c"][0] > 0.03 and alike["c"][1][1] - alike["c"][1][0] < 2 * 1.96 * 0.08
    apart = pool_segments({"a": ci(0.05, 0.01), "b": ci(0.06, 0.01), "c": ci(-0.20, 0.02)})
    assert apart["c"][0] < -0.1  # a segment clearly unlike the others stays below zero
    assert pool_segments({"a": ci(0.05, 0.01)})["a"][0] == 0.05  # alone: its own


@pytest.mark.slow
def test_cli_says_so_in_one_line_and_require_lift_refuses(tmp_path: Path) -> None:
    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), catch_exceptions=False)

    logs = tmp_path / "logs"
    res = run("simulate", "org", "--contacts", "200", "--agents", "6", "--days", "10",
              "--seed", "3", "--out", str(logs), "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    # One held-out day of 20 contacts: too few to show any lift, so the rule's policy.
    res = run("train", "router", str(logs), "--out", str(tmp_path / "r"), "--holdout-days", "1")
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stdout.splitlines() if "not shown better than the rule" in ln]
    assert len(lines) == 1 and "defers to the rule for every contact" in lines[0]
    config = json.loads((tmp_path / "r" / "router.json").read_text())
    assert config["policy"] == {"overall": POLICY_RULE, "segments": {}}
    routed = run("route", str(tmp_path / "r"), "--text", "where is my payout", "--json")
    assert json.loads(routed.stdout)["policy"] == POLICY_RULE
    refused = run("train", "router", str(logs), "--out", str(tmp_path / "r2"),
                  "--holdout-days", "1", "--require-lift")  # fmt: skip
    assert refused.exit_code == 2 and "not shown better than the rule" in refused.stderr
    assert not (tmp_path / "r2").exists()
