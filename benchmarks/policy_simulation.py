"""Off-policy simulation: interval coverage against the truth, and engine speed.

Coverage: 50 seeded organisations (seeds 1000-1049; 2,000 contacts, 10
agents, 2 days, demo catalog examples), target policy "30 % of decisions by
the greedy skills rule, 70 % as logged", metric utility; each estimator's
95 % interval is checked against the exact value from the hidden outcome
model (the same loop as tests/simulation/test_offpolicy.py, with every
estimator counted). Parity: the largest relative difference between the
local and Spark results on the 6,000-contact log. Speed: `frontdesk simulate policy` (rule "enterprise to
phone", segments by segment, all metrics and estimators, --bootstrap 50) on a
20,000-contact log with the local engine, and on a 6,000-contact log with
both engines (Spark `local[*]`, session start included).

    python benchmarks/policy_simulation.py [--runs 50] [--no-spark]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path

from cli_runner import run_cli  # benchmarks/ sibling (scripts run from there)
from frontdesk.loaders import load_catalog
from frontdesk.ope.estimators import ESTIMATORS
from frontdesk.ope.offpolicy import simulate_policy
from frontdesk.orgsim import OrgConfig, simulate_org
from frontdesk.orgsim.truth import true_values
from frontdesk.orgsim.world import pool_from_catalog

MILD = {"mixture": [{"weight": 0.7, "policy": "logging"}, {"weight": 0.3, "policy": "rule"}]}
ENTERPRISE_PHONE = {
    "rules": [{"when": {"segment": "enterprise"}, "channel": "phone", "unavailable": "skip"}],
    "default": "logging",
}


def max_rel_diff(a: object, b: object) -> float:
    """Largest relative difference over every number of two results (near-zero values skipped)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return max((max_rel_diff(a[k], b[k]) for k in a if k != "meta"), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        return max((max_rel_diff(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if isinstance(a, float) and isinstance(b, float) and max(abs(a), abs(b)) > 1e-12:
        return abs(a - b) / max(abs(a), abs(b))
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--no-spark", action="store_true")
    args = ap.parse_args()
    catalog = Path(str(resources.files("frontdesk") / "data" / "demo_catalog.jsonl"))
    pool = pool_from_catalog(load_catalog(catalog))
    covered = dict.fromkeys(ESTIMATORS, 0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        for seed in range(1000, 1000 + args.runs):
            logs = work / f"logs-{seed}"
            simulate_org(OrgConfig(seed=seed, contacts=2000, agents=10, days=2), pool, logs)
            est = simulate_policy(logs, MILD, segments=[], metrics=["utility"])["utility"][
                "overall"
            ]
            truth = true_values(logs, MILD, metrics=["utility"], segments=[])["utility"][
                "__overall__"
            ]
            for e in ESTIMATORS:
                covered[e] += est[e]["ci"][0] <= truth <= est[e]["ci"][1]
            shutil.rmtree(logs)
        print(f"coverage over {args.runs} runs ({time.perf_counter() - t0:.0f} s): "
              + ", ".join(f"{e} {n}/{args.runs}" for e, n in covered.items()))  # fmt: skip
        spec = work / "policy.json"
        spec.write_text(json.dumps(ENTERPRISE_PHONE))
        common = ["--policy", str(spec), "--segment", "segment", "--bootstrap", "50"]
        for contacts, engines in ((20_000, ["local"]), (6_000, ["local", "spark"])):
            logs = work / f"logs-{contacts}"
            run_cli("simulate", "org", "--contacts", str(contacts), "--agents", "40", "--days", "10",
                    "--seed", "0", "--out", str(logs))  # fmt: skip
            results = {}
            for engine in engines if not args.no_spark else ["local"]:
                results[engine], took = run_cli(
                    "simulate", "policy", str(logs), *common, "--engine", engine
                )
                print(f"simulate policy, {contacts} rows, {engine}: {took:.1f} s")
            if len(results) == 2:
                print(
                    f"local vs spark, largest relative difference: {max_rel_diff(results['local'], results['spark']):.2e}"
                )


if __name__ == "__main__":
    main()
