"""logs lift on a tiny decision log written by hand, joined: arms, intervals, segments, errors."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest

from frontdesk.decisions.join import join_logs
from frontdesk.decisions.lift import arm_stats, lift_report, relative_lift, welch_interval
from frontdesk.decisions.records import decision_schema, outcome_schema
from frontdesk.decisions.store import DECISIONS, OUTCOMES, DecisionLogDir
from frontdesk.decisions.writer import write_rows
from frontdesk.errors import DataError, FrontdeskError

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
AGENTS = [{"agent_id": "a1", "channels": ["chat", "phone"], "capacity": 2}]
CHANNELS = {h: {"cost": 1.0, "base_minutes": 8.0, "agent_share": 1.0} for h in ("phone", "chat")}


def did(i: int) -> str:
    return f"{i:032x}"


def decision(i: int, version: str, role: str, segment: str, **kw) -> dict:  # type: ignore[no-untyped-def]
    return {
        "decision_id": did(i), "time": T0 + dt.timedelta(seconds=i), "endpoint": "v1",
        "task": "route", "model": "route", "model_version": version, "role": role,
        "contact_id": f"c{i}", "text": f"text {i}", "turns": [], "segment": segment,
        "language": "en", "wait_min": 0.0, "channel": "chat", "agent_id": "a1",
        "propensity": 1.0, "predicted_topic": "cards", "eligible_channels": ["chat"],
        "eligible_agents": ["a1"], "eligible_propensities": [1.0], "waiting": False,
        "latency_ms": 5.0, **kw,
    }  # fmt: skip


def outcome(i: int, csat: int, handle: float) -> dict:  # type: ignore[no-untyped-def]
    return {"decision_id": did(i), "received": T0 + dt.timedelta(hours=1), "seq": i,
            "source": "api", "resolved": True, "csat": csat, "handle_time": handle,
            "cost": 2.0}  # fmt: skip


# 40 default rows (v1; consumer and smb alternate), 32 canary rows (v2; consumers only, so
# the smb segment has no canary row), 5 explicit rows (v3: too few, and not randomised),
# 3 shadow answers (v3: never joined). CSAT and handle times are made up per row.
DEFAULT = [(i, 3 + i % 3, 10.0 + i % 5, "consumer" if i % 2 else "smb") for i in range(40)]
CANARY = [(100 + i, 4 + i % 2, 6.0 + i % 3, "consumer") for i in range(32)]
EXPLICIT = [(200 + i, 2, 12.0, "smb") for i in range(5)]


@pytest.fixture
def joined(tmp_path: Path) -> Path:
    store = DecisionLogDir.create(tmp_path / "dlog", organisation="acme")
    for v in ("1", "2", "3"):
        store.describe_model("route", v, {"task": "route", "channels": CHANNELS,
                                          "topics": ["cards"], "agents": AGENTS})  # fmt: skip
    rows = [decision(i, "1", "default", s) for i, _, _, s in DEFAULT]
    rows += [decision(i, "2", "canary", s) for i, _, _, s in CANARY]
    rows += [decision(i, "3", "explicit", s) for i, _, _, s in EXPLICIT]
    rows += [decision(300 + i, "3", "shadow", "smb", shadow_of=did(i)) for i in range(3)]
    write_rows(store.root / DECISIONS, DECISIONS, decision_schema(), rows, 1)
    outs = [outcome(i, c, h) for i, c, h, _ in DEFAULT + CANARY + EXPLICIT]
    outs += [outcome(300 + i, 1, 30.0) for i in range(3)]  # a shadow's outcome never joins
    write_rows(store.root / OUTCOMES, OUTCOMES, outcome_schema(), outs, 2)
    counts = join_logs(store.root, tmp_path / "logs")
    assert counts["shadow"] == 3 and counts["route"]["joined"] == 77
    return tmp_path / "logs"


def test_welch_interval_matches_scipy_and_the_hand_formula() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.normal(1.0, 2.0, 25), rng.normal(0.2, 0.5, 60)
    a, b = arm_stats(x), arm_stats(y)
    iv = welch_interval(a, b)
    se = math.sqrt(x.var(ddof=1) / 25 + y.var(ddof=1) / 60)
    assert iv.se == pytest.approx(se)
    assert iv.difference == pytest.approx(x.mean() - y.mean())
    welch = stats.ttest_ind(x, y, equal_var=False)
    assert iv.difference / iv.se == pytest.approx(welch.statistic)
    z = stats.norm.ppf(0.975)
    assert (iv.low, iv.high) == pytest.approx((iv.difference - z * se, iv.difference + z * se))
    # one row per cluster is exactly Welch's variance
    assert arm_stats(x, np.arange(25)).var_mean == pytest.approx(a.var_mean)


def test_clusters_give_the_cluster_robust_variance() -> None:
    # mean 3; cluster sums of residuals: a = (1-3)+(3-3) = -2, b = -1, c = +3;
    # G/(G-1) * (4 + 1 + 9) / n^2 = 1.5 * 14 / 16
    s = arm_stats([1.0, 3.0, 2.0, 6.0], ["a", "a", "b", "c"])
    assert (s.n, s.clusters, s.mean) == (4, 3, 3.0)
    assert s.var_mean == pytest.approx(1.5 * 14 / 16)
    rel, ci = relative_lift(arm_stats([2.0, 4.0]), arm_stats([1.0, 3.0]))
    assert rel == pytest.approx(0.5) and ci is not None and ci[0] < 0.5 < ci[1]
    assert relative_lift(arm_stats([1.0]), arm_stats([0.0, 0.0])) == (None, None)


def test_the_canary_against_the_default_per_metric(joined: Path) -> None:
    rep = lift_report(joined, metrics=["csat", "handle_time"])
    overall = {(c["arm"], c["metric"]): c for c in rep["comparisons"] if c["segment"] is None}
    assert set(overall) == {("canary 2", "csat"), ("canary 2", "handle_time"),
                            ("explicit 3", "csat"), ("explicit 3", "handle_time")}  # fmt: skip
    c = overall[("canary 2", "csat")]
    canary = np.array([x[1] for x in CANARY], float)
    default = np.array([x[1] for x in DEFAULT], float)
    assert (c["n"], c["n_baseline"], c["requests"]) == (32, 40, 32)
    assert c["difference"] == pytest.approx(canary.mean() - default.mean())
    se = math.sqrt(canary.var(ddof=1) / 32 + default.var(ddof=1) / 40)
    assert c["ci"] == pytest.approx([c["difference"] - 1.959964 * se,
                                     c["difference"] + 1.959964 * se])  # fmt: skip
    assert c["relative"] == pytest.approx(canary.mean() / default.mean() - 1)
    assert c["share"] == pytest.approx(32 / 77)
    assert c["verdict"] == "better" and c["baseline_arm"] == "default 1"
    # a shorter handle time is better too: the direction follows the metric
    assert overall[("canary 2", "handle_time")]["difference"] < 0
    assert overall[("canary 2", "handle_time")]["verdict"] == "better"
    assert overall[("explicit 3", "csat")]["verdict"] == "worse"
    assert rep["verdicts"][0].startswith("canary 2 is better than default 1 on csat: +")
    # explicit rows are not randomised, and 5 rows are too few: both are said
    assert any("role explicit" in w for w in rep["warnings"])
    assert any("explicit 3: 5 rows" in w and "fewer than 30" in w for w in rep["warnings"])
    assert not any("canary 2: " in w and "fewer than" in w for w in rep["warnings"])
    assert any("interference" in a or "share the agents" in a for a in rep["assumptions"])


def test_segments_and_a_segment_one_arm_lacks(joined: Path) -> None:
    rep = lift_report(joined, metrics=["csat"], segments=["segment"])
    seg = {c["segment"]: c for c in rep["comparisons"]
           if c["arm"] == "canary 2" and c["segment_field"] == "segment"}  # fmt: skip
    assert set(seg) == {"consumer", "smb"}
    assert seg["smb"]["n"] == 0 and seg["smb"]["verdict"] == "no rows"
    assert seg["smb"]["difference"] is None and seg["smb"]["n_baseline"] == 20
    consumers = np.array([x[1] for x in DEFAULT if x[3] == "consumer"], float)
    canary = np.array([x[1] for x in CANARY], float)
    assert seg["consumer"]["difference"] == pytest.approx(canary.mean() - consumers.mean())
    assert seg["consumer"]["few_rows"] is True  # 20 default consumers
    with pytest.raises(DataError, match="segment_bogus: missing column"):
        lift_report(joined, segments=["segment_bogus"])
    warned = lift_report(joined, metrics=["csat"], segments=["channel"])["warnings"]
    assert any("--segment channel" in w for w in warned)


def test_a_version_as_baseline_and_the_refusals(joined: Path, tmp_path: Path) -> None:
    rep = lift_report(joined, metrics=["csat"], baseline="2")
    arms = {c["arm"] for c in rep["comparisons"]}
    assert arms == {"default 1", "explicit 3"}
    assert rep["comparisons"][0]["baseline_arm"] == "version 2"
    with pytest.raises(DataError, match="nothing to compare"):
        lift_report(joined, baseline="9")
    with pytest.raises(FrontdeskError, match="--metric 'speed'"):
        lift_report(joined, metrics=["speed"])
    with pytest.raises(DataError, match="no suggestions"):
        lift_report(joined, metrics=["accepted"])
    with pytest.raises(DataError, match="folder not found"):
        lift_report(tmp_path / "nowhere")
    # only default rows: nothing to compare, said in one line
    store = DecisionLogDir.create(tmp_path / "only", organisation="acme")
    store.describe_model("route", "1", {"task": "route", "channels": CHANNELS,
                                        "topics": ["cards"], "agents": AGENTS})  # fmt: skip
    write_rows(store.root / DECISIONS, DECISIONS, decision_schema(),
               [decision(i, "1", "default", s) for i, _, _, s in DEFAULT], 1)  # fmt: skip
    write_rows(store.root / OUTCOMES, OUTCOMES, outcome_schema(),
               [outcome(i, c, h) for i, c, h, _ in DEFAULT], 2)  # fmt: skip
    join_logs(store.root, tmp_path / "only-logs")
    with pytest.raises(DataError, match=r"nothing to compare.*route baseline default \(40\)"):
        lift_report(tmp_path / "only-logs")
    # a modified file is refused by its checksum
    f = next((tmp_path / "only-logs").glob("contacts-*.parquet"))
    f.write_bytes(f.read_bytes() + b"x")
    with pytest.raises(DataError, match="manifest.json"):
        lift_report(tmp_path / "only-logs")


def test_requests_of_several_contacts_share_one_draw(tmp_path: Path) -> None:
    """Contacts of one V2 request share its time and arm: one cluster, not two rows."""
    store = DecisionLogDir.create(tmp_path / "dlog", organisation="acme")
    for v in ("1", "2"):
        store.describe_model("route", v, {"task": "route", "channels": CHANNELS,
                                          "topics": ["cards"], "agents": AGENTS})  # fmt: skip
    rows = [decision(i, "1", "default", "smb") for i in range(40)]
    same = T0 + dt.timedelta(hours=2)
    rows += [decision(100 + i, "2", "canary", "smb", time=same + dt.timedelta(seconds=i // 2))
             for i in range(40)]  # 20 requests of two contacts  # fmt: skip
    write_rows(store.root / DECISIONS, DECISIONS, decision_schema(), rows, 1)
    outs = [outcome(i, 3 + i % 2, 10.0) for i in range(40)]
    outs += [outcome(100 + i, 3 + (i // 2) % 3, 10.0) for i in range(40)]
    write_rows(store.root / OUTCOMES, OUTCOMES, outcome_schema(), outs, 2)
    join_logs(store.root, tmp_path / "logs")
    c = lift_report(tmp_path / "logs", metrics=["csat"])["comparisons"][0]
    assert (c["n"], c["requests"], c["n_baseline"], c["requests_baseline"]) == (40, 20, 40, 40)
    y = np.array([3 + (i // 2) % 3 for i in range(40)], float)
    x = np.array([3 + i % 2 for i in range(40)], float)
    clustered = arm_stats(y, np.arange(40) // 2)
    assert c["se"] == pytest.approx(math.sqrt(clustered.var_mean + x.var(ddof=1) / 40))
    assert clustered.var_mean > y.var(ddof=1) / 40  # identical pairs: wider than Welch


def test_suggestion_acceptance(tmp_path: Path) -> None:
    store = DecisionLogDir.create(tmp_path / "dlog", organisation="acme")
    for v in ("1", "2"):
        store.describe_model("suggest", v, {"task": "suggest"})
    shown = ["a", "b", "c"]
    rows = [{**decision(i, "1" if i < 40 else "2", "default" if i < 40 else "canary", "smb"),
             "task": "suggest", "model": "suggest", "workflow_ids": shown,
             "ranked_ids": shown, "shown_propensity": 1.0} for i in range(80)]  # fmt: skip
    write_rows(store.root / DECISIONS, DECISIONS, decision_schema(), rows, 1)
    # default: used "a" (rank 1) in 10 of 40, "b" in 10, "z" (not shown) in 20;
    # canary: "a" in 30 of 40, "z" in 10; one canary list's outcome lacks workflow_used
    used = ["a"] * 10 + ["b"] * 10 + ["z"] * 20 + ["a"] * 30 + ["z"] * 9 + [None]
    outs = [{"decision_id": did(i), "received": T0 + dt.timedelta(hours=1), "seq": i,
             "source": "api", "workflow_used": u} for i, u in enumerate(used)]  # fmt: skip
    write_rows(store.root / OUTCOMES, OUTCOMES, outcome_schema(), outs, 2)
    join_logs(store.root, tmp_path / "logs")
    rep = lift_report(tmp_path / "logs")
    assert rep["metrics"] == ["accepted", "accepted_at_1"]
    got = {c["metric"]: c for c in rep["comparisons"]}
    assert got["accepted"]["n"] == 39 and got["accepted"]["mean"] == pytest.approx(30 / 39)
    assert got["accepted"]["mean_baseline"] == pytest.approx(20 / 40)
    assert got["accepted_at_1"]["mean_baseline"] == pytest.approx(10 / 40)
    assert got["accepted_at_1"]["verdict"] == "better"


def test_the_cli_prints_a_table_verdicts_and_json(joined: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from frontdesk.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["logs", "lift", str(joined), "--metric", "csat",
                              "--segment", "segment", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["verdicts"][0].startswith("canary 2 is better than default 1 on csat")
    assert "fewer than 30" in res.stderr
    res = runner.invoke(app, ["logs", "lift", str(joined), "--metric", "utility"])
    assert res.exit_code == 0, res.output
    assert "canary 2 is better than default 1 on utility: +" in res.stdout
    res = runner.invoke(app, ["logs", "lift", str(joined), "--baseline", "9"])
    assert res.exit_code == 2 and "nothing to compare" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_the_metric_name_resolution_is_taken_for_the_outcome_resolved(joined: Path) -> None:
    assert lift_report(joined, metrics=["resolution"])["metrics"] == ["resolved"]
