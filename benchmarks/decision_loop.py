"""The decision loop on loopback: serve, log, take outcomes back, join, judge.

One simulated organisation (demo catalog examples, 12 agents, 300 contacts a
day): its first 4 days (the simulator's rule-softmax logging) train a router,
served by `frontdesk serve`'s app on 127.0.0.1 with a decision log and
epsilon-greedy exploration (0.2). Then blocks of 2 days are played through
/v1/route, the hidden outcome model's outcomes posted to /v1/outcomes, and
each block joined (`logs join --since --until`). Per block (a replicate):
`simulate policy` of the served policy (`logging`, the logged propensities)
against `simulate truth --world` on the same contacts. Then a router trained
on the joined logs of the first blocks is judged off-policy on the next
block, against its exact value there.

Canary stage (`--canary-percent 10`): a second version of the router answers
that share of requests (routing.json) beside the default: the same router
with `--canary-epsilon E` or `--canary-temperature T` (the default's epsilon
when neither: an A/A test), or a router trained with
`--canary-congestion-price P`. Per block, `logs lift` (canary 2 against the
default) is judged against each arm's exact value on the contacts it served;
then once pooled over all the replicates' blocks.

    python benchmarks/decision_loop.py [--replicates 20] [--retrain-blocks 4]
        [--contacts-per-day 300] [--epsilon 0.2] [--json OUT]
    python benchmarks/decision_loop.py --retrain-blocks 0 --canary-percent 10 --canary-epsilon 1
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

from frontdesk.eval.decision_loop import CANARY_METRICS, ESTIMATORS_SHOWN, run_loop  # noqa: E402
from frontdesk.loaders import load_catalog  # noqa: E402
from frontdesk.orgsim.world import pool_from_catalog  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=20)
    ap.add_argument("--retrain-blocks", type=int, default=4)
    ap.add_argument("--contacts-per-day", type=int, default=300)
    ap.add_argument("--days-per-replicate", type=int, default=2)
    ap.add_argument("--epsilon", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--canary-percent", type=float, default=0.0)
    ap.add_argument("--canary-epsilon", type=float)
    ap.add_argument("--canary-temperature", type=float)
    ap.add_argument("--canary-congestion-price", type=float)
    ap.add_argument("--json", type=Path, help="Also write every run and the summary here.")
    args = ap.parse_args()
    canary_parameters = (
        {"epsilon": args.canary_epsilon} if args.canary_epsilon is not None
        else {"temperature": args.canary_temperature} if args.canary_temperature is not None
        else None
    )  # fmt: skip
    catalog = Path(str(resources.files("frontdesk") / "data" / "demo_catalog.jsonl"))
    pool = pool_from_catalog(load_catalog(catalog))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        result = run_loop(
            Path(work), pool, seed=args.seed, contacts_per_day=args.contacts_per_day,
            replicates=args.replicates, days_per_replicate=args.days_per_replicate,
            epsilon=args.epsilon, retrain_blocks=args.retrain_blocks,
            canary_percent=args.canary_percent, canary_parameters=canary_parameters,
            canary_congestion_price=args.canary_congestion_price,
            log=lambda m: print(f"[{time.perf_counter() - t0:6.0f}s] {m}", flush=True),
        )  # fmt: skip
    print(f"\nserved policy (epsilon {args.epsilon}), {args.replicates} blocks of "
          f"{args.days_per_replicate} days x {args.contacts_per_day} contacts")  # fmt: skip
    print(f"{'estimator':10} {'covered':>9} {'mean bias':>10} {'mean width':>11}")
    for e in ESTIMATORS_SHOWN:
        s = result["summary"][e]
        print(f"{e:10} {s['covered']:>4}/{s['of']:<4} {s['mean_bias']:>+10.4f} "
              f"{s['mean_width']:>11.4f}")  # fmt: skip
    if "retrained" in result:
        r = result["retrained"]
        print(
            f"\nrouter retrained on {args.retrain_blocks} served blocks, judged on the next: "
            f"truth {r['truth']:.4f} (served policy's {r['served_truth']:.4f})"
        )
        for e in ESTIMATORS_SHOWN:
            lo, hi = r[e]["ci"]
            print(f"  {e:6} {r[e]['value']:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    if "canary" in result:
        print_canary(result["canary"], args)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")


def print_canary(c: dict, args: argparse.Namespace) -> None:  # type: ignore[type-arg]
    """Per metric: intervals covering the true difference on the arms' contacts, verdicts."""
    parts = [f"{k} {v}" for k, v in c["parameters"].items()]
    if c["congestion_price"] is not None:
        parts.insert(0, f"trained with congestion price {c['congestion_price']}")
    what = ", ".join(parts)
    s = c["summary"]
    print(
        f"\ncanary: version 2 ({what}) at {c['percent']:g} % beside version 1 (epsilon "
        f"{c['default_epsilon']}); {args.replicates} blocks of {args.days_per_replicate} days x "
        f"{args.contacts_per_day} contacts; canary share {s['share'] * 100:.1f} %, "
        f"{s['n_canary']:.1f} canary rows a block"
    )
    print(f"{'metric':12} {'covered':>9} {'true diff':>10} {'mean error':>11} {'mean width':>11}"
          f" {'better/worse/n.d.':>18} {'wrong sign':>11}")  # fmt: skip
    for m in CANARY_METRICS:
        x = s[m]
        v = x["verdicts"]
        bw = f"{v.get('better', 0)}/{v.get('worse', 0)}/{v.get('not distinguishable', 0)}"
        print(f"{m:12} {x['covered']:>4}/{x['of']:<4} {x['mean_true_difference']:>+10.4f} "
              f"{x['mean_error']:>+11.4f} {x['mean_width']:>11.4f} {bw:>18} "
              f"{x['wrong_sign']:>11}")  # fmt: skip
    p = c["pooled"]
    print(f"pooled over the {args.replicates} blocks: {p['n_canary']} canary rows, "
          f"{p['n_default']} default rows (share {p['share'] * 100:.1f} %)")  # fmt: skip
    for line, m in zip(p["verdicts"], CANARY_METRICS, strict=True):
        t = p["metrics"][m]
        print(f"  {line}; true difference {t['true_difference']:+.4f}"
              f" ({'covered' if t['covered'] else 'NOT covered'})")  # fmt: skip


if __name__ == "__main__":
    main()
