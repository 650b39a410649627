"""Off-policy coverage for trained routers: judged on held-out days, and on their training logs.

For each seed (default 30 organisations, seeds 2000-2029; 2,000 contacts
over 4 days, 12 agents, demo catalog examples): `simulate org`, `train
router` on those logs, `simulate org --continue --days 3` for held-out days,
then `simulate policy` with the router (argmax) as the target policy and
every estimator, against the exact value from `simulate truth`: on the
held-out days, and on the training logs with the overlap check waived.
Prints, per setting and estimator, how often the 95 % interval covered the
truth, the mean absolute error, the mean bias and the mean interval width.

    python benchmarks/offpolicy_coverage.py [--runs 30] [--first-seed 2000] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from importlib import resources
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from frontdesk.eval.offpolicy_coverage import coverage_study, summarise  # noqa: E402
from frontdesk.loaders import load_catalog  # noqa: E402
from frontdesk.ope.estimators import ESTIMATORS  # noqa: E402
from frontdesk.orgsim.world import pool_from_catalog  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--first-seed", type=int, default=2000)
    ap.add_argument("--json", type=Path, help="Also write every run and the summary here.")
    args = ap.parse_args()
    catalog = Path(str(resources.files("frontdesk") / "data" / "demo_catalog.jsonl"))
    pool = pool_from_catalog(load_catalog(catalog))
    seeds = range(args.first_seed, args.first_seed + args.runs)
    t0 = time.perf_counter()

    def show(run: dict) -> None:  # type: ignore[type-arg]
        f, t = run["fresh"], run["training"]
        print(
            f"seed {run['seed']}: held-out truth {f['truth']:.4f} DR {f['dr']['value']:.4f} "
            f"[{f['dr']['ci'][0]:.4f}, {f['dr']['ci'][1]:.4f}] ESS {f['ess']:.0f}; training truth "
            f"{t['truth']:.4f} DR {t['dr']['value']:.4f} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )

    with tempfile.TemporaryDirectory() as tmp:
        runs = coverage_study(seeds, pool, Path(tmp), progress=show)
    summary = summarise(runs)
    print(f"\n{args.runs} organisations in {time.perf_counter() - t0:.0f} s")
    print("| judged on | estimator | covered | coverage | MAE | bias | mean width |")
    print("|---|---|---|---|---|---|---|")
    for setting, label in (("fresh", "held-out days"), ("training", "its training logs")):
        for e in ESTIMATORS:
            s = summary[setting][e]
            print(
                f"| {label} | {e} | {s['covered']}/{s['runs']} | {s['coverage']:.0%} | "
                f"{s['mae']:.4f} | {s['bias']:+.4f} | {s['mean_width']:.4f} |"
            )
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
