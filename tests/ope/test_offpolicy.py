"""simulate policy: the result's shape, broken logs, engines agree, DR covers the truth."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from frontdesk.cli import app
from frontdesk.errors import DataError, FrontdeskError
from frontdesk.ope.offpolicy import simulate_policy
from frontdesk.ope.policies import PolicyError, TargetPolicy
from frontdesk.orgsim import OrgConfig, simulate_org
from frontdesk.orgsim.truth import true_values

from ..conftest import edit_json, own_export
from .compare import worst_gap

ENTERPRISE_PHONE = {
    "rules": [{"when": {"segment": "enterprise"}, "channel": "phone", "unavailable": "skip"}],
    "default": "logging",
}


def test_logging_policy_estimates_itself(org_logs: Path) -> None:
    res = simulate_policy(
        org_logs, "logging", metrics=["resolution"], estimators=["ipw", "snipw", "dr"]
    )
    o = res["resolution"]["overall"]
    assert o["n"] == 1200 and o["ess"] == pytest.approx(1200)  # every weight is 1
    assert o["ipw"]["value"] == pytest.approx(o["logged"], rel=1e-12)
    assert o["snipw"]["value"] == pytest.approx(o["logged"], rel=1e-12)
    assert o["ipw"]["difference"] == pytest.approx(0.0, abs=1e-12)


def test_result_shape_segments_and_low_ess(org_logs: Path) -> None:
    res = simulate_policy(
        org_logs, ENTERPRISE_PHONE, segments=["segment"], estimators=["ipw", "snipw", "dr"],
        min_ess=400,
    )  # fmt: skip
    assert set(res) == {"resolution", "handle_time", "csat", "cost", "utility", "meta"}
    seg = res["utility"]["segments"]
    assert set(seg) <= {"individual", "small_business", "enterprise", "platform"}
    for entry in [res["utility"]["overall"], *seg.values()]:
        assert {"ipw", "snipw", "dr", "logged", "n", "ess", "low_ess"} <= set(entry)
        for e in ("ipw", "snipw", "dr"):
            v = entry[e]
            assert set(v) >= {"value", "ci", "ess"} and v["ci"][0] <= v["value"] <= v["ci"][1]
    # Only enterprise contacts change policy; the other segments keep weight 1 everywhere.
    assert seg["individual"]["ess"] == pytest.approx(seg["individual"]["n"])
    assert seg["enterprise"]["ess"] < seg["enterprise"]["n"]
    assert res["meta"]["low_ess_segments"] == sorted(k for k, v in seg.items() if v["ess"] < 400)
    assert "enterprise" in res["meta"]["low_ess_segments"]
    both = simulate_policy(org_logs, "uniform", segments=["segment", "language"], metrics=["csat"])
    assert any(k.startswith("language=") for k in both["csat"]["segments"])


def _broken(org_logs: Path, tmp: Path, change) -> Path:  # type: ignore[no-untyped-def]
    out = tmp / "broken"
    shutil.copytree(org_logs, out)
    f = out / "contacts-001.parquet"
    pq.write_table(change(pq.read_table(f)), f)
    # as an export without checksums would be: the rows are checked instead
    edit_json(out / "manifest.json", lambda m: [m.pop("files"), m.pop("bytes")])
    return out


def test_broken_logs_give_clear_errors(org_logs: Path, tmp_path: Path) -> None:
    no_col = _broken(org_logs, tmp_path / "a", lambda t: t.drop(["propensity"]))
    with pytest.raises(DataError, match=r"contacts-001\.parquet: propensity: missing column"):
        simulate_policy(no_col, "uniform", metrics=["csat"])

    def set_propensity(value: float):  # type: ignore[no-untyped-def]
        def change(t: pa.Table) -> pa.Table:
            p = t.column("propensity").to_numpy().copy()
            p[6] = value
            return t.set_column(t.schema.get_field_index("propensity"), "propensity", pa.array(p))

        return change

    zero = _broken(org_logs, tmp_path / "b", set_propensity(0.0))
    with pytest.raises(DataError, match=r"contacts-001\.parquet:7: propensity: 0\.0 for contact"):
        simulate_policy(zero, "uniform", metrics=["csat"])
    above = _broken(org_logs, tmp_path / "c", set_propensity(1.5))
    with pytest.raises(
        DataError, match=r"contacts-001\.parquet:7: propensity: 1\.5 .* in \(0, 1\]"
    ):
        simulate_policy(above, "uniform", metrics=["csat"])


def test_mass_outside_the_eligible_set_is_refused(org_logs: Path) -> None:
    forced = {
        "rules": [{"when": {"segment": "enterprise"}, "channel": "phone"}],
        "default": "logging",
    }
    with pytest.raises(
        PolicyError, match=r"contact c\d{3}-\d{5}: rules\[0\] puts probability on channel 'phone'"
    ):
        simulate_policy(org_logs, forced, metrics=["csat"])

    class Leaky(TargetPolicy):
        name = "leaky"

        def probabilities(self, batch):  # type: ignore[no-untyped-def]
            return [np.full(len(c), 0.5 / len(c)) for c in batch.column("eligible_channels")]

    from frontdesk.ope import kernel

    plan_policy = kernel.plan_policy
    kernel.plan_policy = lambda _spec: Leaky()  # type: ignore[assignment]
    try:
        with pytest.raises(
            PolicyError, match="puts 0.5 of its probability outside the eligible set"
        ):
            simulate_policy(org_logs, "uniform", metrics=["csat"])
    finally:
        kernel.plan_policy = plan_policy


def test_cli_simulate_policy_json_and_report(org_logs: Path, tmp_path: Path) -> None:
    spec = tmp_path / "policy.json"
    spec.write_text(json.dumps(ENTERPRISE_PHONE))
    res = CliRunner().invoke(
        app,
        ["simulate", "policy", str(org_logs), "--policy", str(spec), "--segment", "segment",
         "--estimators", "ipw,snipw,dr", "--metrics", "resolution,utility",
         "--report", str(tmp_path / "rep"), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["resolution"]["overall"]["dr"]["ci"][0] < out["resolution"]["overall"]["dr"]["value"]
    assert "enterprise" in out["utility"]["segments"]
    assert (tmp_path / "rep" / "forest_utility.png").stat().st_size > 0
    assert "## Utility" in (tmp_path / "rep" / "report.md").read_text()
    bad = CliRunner().invoke(app, ["simulate", "policy", str(org_logs), "--policy", "greedy"])
    assert bad.exit_code == 2 and "unknown policy 'greedy'" in bad.stderr


@pytest.mark.slow
def test_local_and_spark_engines_agree(org_logs: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="PySpark not installed (pip install 'frontdesk[spark]')")
    kw = dict(segments=["segment", "country"], metrics=["resolution", "utility"], bootstrap=20)
    local = simulate_policy(org_logs, ENTERPRISE_PHONE, engine="local", **kw)
    spark = simulate_policy(org_logs, ENTERPRISE_PHONE, engine="spark", **kw)
    worst, where = worst_gap(local, spark)
    assert worst <= 1e-9, where
    zero = _broken(org_logs, tmp_path, lambda t: t.set_column(
        t.schema.get_field_index("propensity"), "propensity",
        pa.array(np.where(np.arange(t.num_rows) == 3, 0.0, t.column("propensity").to_numpy())),
    ))  # fmt: skip
    with pytest.raises(DataError, match=r"contacts-001\.parquet: propensity: 0\.0 for contact"):
        simulate_policy(zero, "uniform", engine="spark", metrics=["csat"])


@pytest.mark.slow
def test_dr_interval_covers_the_truth(demo_pool) -> None:
    """50 seeded organisations; a mild change (30 % of decisions by the greedy rule)."""
    mild = {"mixture": [{"weight": 0.7, "policy": "logging"}, {"weight": 0.3, "policy": "rule"}]}
    covered = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(50):
            logs = Path(tmp) / f"logs-{seed}"
            simulate_org(
                OrgConfig(seed=1000 + seed, contacts=2000, agents=10, days=2), demo_pool, logs
            )
            est = simulate_policy(logs, mild, segments=[], metrics=["utility"], estimators=["dr"])
            truth = true_values(logs, mild, metrics=["utility"], segments=[])["utility"][
                "__overall__"
            ]
            lo, hi = est["utility"]["overall"]["dr"]["ci"]
            covered += lo <= truth <= hi
            shutil.rmtree(logs)
    assert covered >= 45, f"DR's 95 % interval covered the truth in {covered} of 50 runs"


@pytest.fixture(scope="module")
def fresh_logs(org_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Held-out days of the router's organisation: the logs a trained router is judged on."""
    from frontdesk.orgsim import continue_org

    out = tmp_path_factory.mktemp("fresh") / "logs"
    continue_org(org_logs, out, days=3)
    return out


@pytest.mark.slow
def test_router_policies_and_router_scores_in_rules(
    org_logs: Path, fresh_logs: Path, router_dir: Path
) -> None:
    """A trained router as the target policy, and a rule on its confidence (one spec file)."""
    from frontdesk.lineage import TrainingOverlapError

    res = simulate_policy(
        fresh_logs, router_dir, segments=["segment"], metrics=["utility"],
        estimators=["dr", "snipw"],
    )  # fmt: skip
    o = res["utility"]["overall"]
    # The 1,200-contact router fails its held-out check in every segment, so the report says
    # that the rule answers in its place.
    assert res["meta"]["policy"] == "router(router, argmax; rule-fallback for every contact)"
    assert o["ess"] < o["n"]  # a deterministic router differs from the logging policy
    assert o["dr"]["ci"][0] <= o["dr"]["value"] <= o["dr"]["ci"][1]
    spec = {
        "router": str(router_dir),
        "rules": [
            {
                "when": {"segment": "enterprise", "router.confidence": {"lt": 0.6}},
                "channel": "phone",
                "unavailable": "skip",
            },
            {
                "when": {"router.channel": "email"},
                "policy": {"router": str(router_dir), "temperature": 0.05},
            },
        ],
        "default": "logging",
    }
    mixed = simulate_policy(
        fresh_logs, spec, segments=[], metrics=["resolution"], estimators=["dr"]
    )
    assert mixed["resolution"]["overall"]["n"] == 1200
    assert 0 < mixed["resolution"]["overall"]["ess"] <= 1200
    # The router's own training logs are refused, for the router and for a rules file naming it.
    for policy in (
        router_dir,
        spec,
        {"mixture": [{"weight": 1.0, "policy": {"router": str(router_dir)}}]},
    ):
        with pytest.raises(TrainingOverlapError, match=r"learned from 1,200 of the 1,200 rows"):
            simulate_policy(org_logs, policy, segments=[], metrics=["utility"], estimators=["dr"])
    waived = simulate_policy(
        org_logs, router_dir, segments=[], metrics=["utility"], estimators=["dr"],
        allow_training_overlap=True,
    )  # fmt: skip
    assert waived["meta"]["warnings"][0].startswith("training overlap: ")
    assert "days 0-2" in waived["meta"]["warnings"][0]


@pytest.mark.slow
def test_cli_refuses_a_router_on_its_training_logs(
    org_logs: Path, fresh_logs: Path, router_dir: Path, tmp_path: Path
) -> None:
    base = ["simulate", "policy", "--policy", str(router_dir), "--segment", "segment",
            "--metrics", "utility", "--estimators", "dr,dm"]  # fmt: skip
    refused = CliRunner().invoke(app, [*base[:2], str(org_logs), *base[2:]])
    assert refused.exit_code == 2
    line = refused.stderr.strip()
    assert "\n" not in line and line.startswith("error: ") and str(router_dir) in line
    assert str(org_logs) in line and "days 0-2" in line and "--continue" in line
    assert "--allow-training-overlap" in line
    waived = CliRunner().invoke(
        app, [*base[:2], str(org_logs), *base[2:], "--allow-training-overlap", "--json",
              "--report", str(tmp_path / "rep")],
    )  # fmt: skip
    assert waived.exit_code == 0, waived.output
    meta = json.loads(waived.stdout)["meta"]
    assert meta["warnings"][0].startswith("training overlap: ")
    assert "warning: training overlap: " in waived.stderr  # the console hears it with --json too
    assert "training overlap: " in (tmp_path / "rep" / "report.html").read_text()
    console = CliRunner().invoke(
        app, [*base[:2], str(org_logs), *base[2:], "--allow-training-overlap"]
    )
    assert console.exit_code == 0 and "warning: training overlap: " in console.stderr
    # A router whose lineage was tampered with, or is missing: one line, exit 2, nothing written.
    tampered = tmp_path / "tampered"
    shutil.copytree(router_dir, tampered)
    text = (tampered / "lineage.json").read_text()
    (tampered / "lineage.json").write_text(text.replace('"days": [', '"days": [99, '))
    unknown = tmp_path / "unknown"
    shutil.copytree(router_dir, unknown)
    for name in ("lineage.json", "lineage_contacts.npy"):
        (unknown / name).unlink()
    from frontdesk.artifacts import read_manifest, write_manifest

    write_manifest(unknown, {k: v for k, v in read_manifest(router_dir).items() if k != "files"})
    for folder, says in (
        (tampered, "lineage.json: checksum mismatch"),
        (unknown, "no lineage.json"),
    ):
        res = CliRunner().invoke(
            app, ["simulate", "policy", str(fresh_logs), "--policy", str(folder),
                  "--report", str(tmp_path / "never"), "--json"],
        )  # fmt: skip
        assert res.exit_code == 2 and says in res.stderr, res.output
        assert res.stderr.strip().count("\n") == 0 and res.stdout == ""
        assert not (tmp_path / "never").exists()
    # The waiver is offered for an unknown lineage, not for a tampered model (it cannot help).
    waived = CliRunner().invoke(
        app, ["simulate", "policy", str(fresh_logs), "--policy", str(tampered),
              "--allow-training-overlap"],
    )  # fmt: skip
    assert waived.exit_code == 2 and "--allow-training-overlap" not in waived.stderr
    held_out = CliRunner().invoke(app, [*base[:2], str(fresh_logs), *base[2:], "--json"])
    assert held_out.exit_code == 0, held_out.output
    assert not any(
        w.startswith("training overlap") for w in json.loads(held_out.stdout)["meta"]["warnings"]
    )


def test_cross_fitting_needs_two_folds(org_logs: Path) -> None:
    with pytest.raises(FrontdeskError, match="folds must be >= 2"):
        simulate_policy(org_logs, "uniform", metrics=["csat"], folds=1)


def test_diagnostics_and_estimator_spellings(org_logs: Path) -> None:
    res = simulate_policy(
        org_logs, ENTERPRISE_PHONE, segments=["segment"], metrics=["utility", "csat"],
        estimators=["ips", "SNIPS", "dr"],
    )  # fmt: skip
    meta = res["meta"]
    assert meta["estimators"] == ["ipw", "snipw", "dr"]
    assert set(meta["reward_model_quality"]) == {"utility", "csat"}
    for q in meta["reward_model_quality"].values():
        assert q["rmse"] > 0 and q["constant_rmse"] > 0
        assert q["r2"] == pytest.approx(1 - q["rmse"] ** 2 / q["constant_rmse"] ** 2)
    o = res["utility"]["overall"]
    assert o["max_weight"] >= 1.0  # enterprise rows moved to the phone have w = 1/mu > 1
    assert res["utility"]["segments"]["individual"]["max_weight"] == pytest.approx(1.0)
    assert 0 < o["max_weight_share"] < 1
    assert isinstance(meta["warnings"], list)
    with pytest.raises(FrontdeskError, match="unknown estimator 'ipx'.*ips and snips"):
        simulate_policy(org_logs, "uniform", metrics=["csat"], estimators=["ipx"])


def test_cli_simulate_truth_and_continue(org_logs: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    res = CliRunner().invoke(
        app, ["simulate", "org", "--continue", str(org_logs), "--days", "1", "--out", str(fresh),
              "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["logged_days"] == [3] and summary["days"] == 1
    assert summary["contacts"] == 400
    bad = CliRunner().invoke(
        app, ["simulate", "org", "--continue", str(org_logs), "--seed", "3", "--out", str(tmp_path / "x")]
    )  # fmt: skip
    assert bad.exit_code == 2 and "--seed 3 (the logs': 8) would change it" in bad.stderr
    assert not (tmp_path / "x").exists()
    same = CliRunner().invoke(  # the logs' own seed and agents change nothing: accepted
        app, ["simulate", "org", "--continue", str(org_logs), "--seed", "8", "--agents", "10",
              "--days", "1", "--out", str(tmp_path / "same"), "--json"],
    )  # fmt: skip
    assert same.exit_code == 0, same.output
    again = CliRunner().invoke(
        app, ["simulate", "org", "--continue", str(org_logs), "--days", "1", "--out", str(fresh)]
    )
    assert (
        again.exit_code == 2 and "already exists" in again.stderr and "--overwrite" in again.stderr
    )
    truth = CliRunner().invoke(
        app, ["simulate", "truth", str(fresh), "--policy", "rule", "--metrics", "utility,resolution",
              "--json"],
    )  # fmt: skip
    assert truth.exit_code == 0, truth.output
    t = json.loads(truth.stdout)
    assert list(t) == ["utility", "resolution"]
    est = simulate_policy(fresh, "rule", metrics=["utility"], estimators=["dr"])
    # The same keys as `simulate policy`: "overall", then its segment keys.
    assert list(t["utility"])[0] == "overall"
    assert set(t["utility"]) - {"overall"} == set(est["utility"]["segments"])
    exact = true_values(fresh, "rule", metrics=["utility"])["utility"]
    assert t["utility"]["overall"] == exact["__overall__"]
    table = CliRunner().invoke(app, ["simulate", "truth", str(fresh), "--policy", "rule"])
    assert table.exit_code == 0 and "overall" in table.stdout
    export = tmp_path / "export"
    shutil.copytree(fresh, export)
    own_export(export)
    for args in (["simulate", "truth", str(export), "--policy", "rule", "--json"],
                 ["simulate", "org", "--continue", str(export), "--out", str(tmp_path / "y")]):  # fmt: skip
        refused = CliRunner().invoke(app, args)
        assert refused.exit_code == 2, refused.output
        assert (
            refused.stderr.strip().count("\n") == 0
            and "not written by `frontdesk simulate org`" in refused.stderr
        )
        assert refused.stdout == ""
    assert not (tmp_path / "y").exists()


def test_policy_typos_and_list_segments_are_refused_by_name(org_logs: Path) -> None:
    fax = {"rules": [{"when": {"segment": "enterprise"}, "channel": "fax", "unavailable": "skip"}]}
    with pytest.raises(
        PolicyError,
        match=r"policy rules: names channel 'fax', which .* does not have \(phone, chat, email\)",
    ):
        simulate_policy(org_logs, fax, metrics=["csat"])
    typo = {"rules": [{"when": {"segmnt": "enterprise"}, "channel": "phone"}]}
    with pytest.raises(PolicyError, match=r"policy rules: reads 'segmnt', which is not a column"):
        simulate_policy(org_logs, typo, metrics=["csat"])
    with pytest.raises(FrontdeskError, match=r"--segment turns: holds a list<.*> per row"):
        simulate_policy(org_logs, "uniform", metrics=["csat"], segments=["turns"])
    with pytest.raises(FrontdeskError, match="no metric asked for"):
        simulate_policy(org_logs, "uniform", metrics=[])
    with pytest.raises(FrontdeskError, match="no estimator asked for"):
        simulate_policy(org_logs, "uniform", metrics=["csat"], estimators=[])


def test_a_rule_value_no_row_has_is_a_warning(org_logs: Path, tmp_path: Path) -> None:
    spec = tmp_path / "policy.json"
    spec.write_text(json.dumps({
        "rules": [{"when": {"segment": "enterprize"}, "channel": "phone", "unavailable": "skip"}],
    }))  # fmt: skip
    res = simulate_policy(org_logs, str(spec), metrics=["csat"], estimators=["dr"])
    (warning,) = [w for w in res["meta"]["warnings"] if "no logged row" in w]
    assert warning.startswith(f"{spec}.rules[0].when.segment: enterprize is in no logged row")
    assert "enterprise" in warning and "never applies" in warning
    with pytest.raises(FrontdeskError, match="--segment contact_id: more than 500 distinct"):
        simulate_policy(org_logs, "uniform", metrics=["csat"], segments=["contact_id"])
    with pytest.raises(FrontdeskError, match="--segment utility: holds a double per row"):
        simulate_policy(org_logs, "uniform", metrics=["csat"], segments=["utility"])
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"rules": [{"when": {"segmnt": "x"}, "channel": "phone"}]}))
    with pytest.raises(PolicyError, match=rf"policy {typo}: reads 'segmnt'"):
        simulate_policy(org_logs, str(typo), metrics=["csat"])


def test_the_outcome_name_resolved_is_taken_for_the_metric_resolution(org_logs: Path) -> None:
    a = simulate_policy(org_logs, "rule", metrics=["resolved"], estimators=["dm"])
    b = simulate_policy(org_logs, "rule", metrics=["resolution"], estimators=["dm"])
    assert "resolved" not in a and a["resolution"]["overall"] == b["resolution"]["overall"]


def test_truth_counts_a_metric_asked_for_by_both_names_once(org_logs: Path) -> None:
    both = true_values(org_logs, "rule", metrics=["resolution", "resolved"])
    one = true_values(org_logs, "rule", metrics=["resolution"])
    assert both == one


def test_a_segment_column_with_no_values_is_named_in_a_warning(
    org_logs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "no-profiles"
    shutil.copytree(org_logs, out)
    for f in sorted(out.glob("contacts-*.parquet")):
        t = pq.read_table(f)
        i = t.schema.get_field_index("segment")
        pq.write_table(t.set_column(i, "segment", pa.nulls(len(t), pa.string())), f)
    edit_json(out / "manifest.json", lambda m: [m.pop("files"), m.pop("bytes")])
    res = simulate_policy(out, "uniform", metrics=["csat"], estimators=["dm"])
    assert any("--segment segment: every logged row has none" in w for w in res["meta"]["warnings"])
    kept = simulate_policy(org_logs, "uniform", metrics=["csat"], estimators=["dm"])
    assert not any("every logged row has none" in w for w in kept["meta"]["warnings"])
