"""The decision loop on loopback: serve, log, take outcomes back, join, judge.

One simulated organisation (demo catalog examples, 12 agents, 300 contacts a
day): its first 4 days (the simulator's rule-softmax logging) train a router,
served by `frontdesk serve`'s app on 127.0.0.1 with a decision log and
exploration (`--serve epsilon=E`: epsilon-greedy, the default 0.2;
`--serve temperature=T`: softmax over the router's utilities; `--epsilon E` and
`--temperature T` are the same). Then blocks of 2 days are played through
/v1/route, the hidden outcome model's outcomes posted to /v1/outcomes, and
each block joined (`logs join --since --until`). Per block (a replicate):
`simulate policy` of the served policy (`logging`, the logged propensities)
against `simulate truth --world` on the same contacts.

Retrained router (`--retrain-blocks K`, 0 for none): a router trained on the
joined logs of the first K blocks is judged off-policy on every later block
(the replicates' blocks), against its exact value and its true difference from
the served policy there, as each of `--retrain-targets` (default both):
`argmax`, and `as-served` (the retrained router with the served exploration:
softmax at the same T, or epsilon-greedy as a mixture with `uniform`). Per
target: coverage, bias, width and ESS over the blocks, the difference intervals
that exclude 0 on the right / wrong side, and the blocks pooled. Repeat
`--serve` to compare settings in one run (each its own organisation run).

Canary stage (`--canary-percent 10`): a second version of the router answers
that share of requests (routing.json) beside the default: the same router
with `--canary-epsilon E` or `--canary-temperature T` (the default's
exploration when neither: an A/A test), or a router trained with
`--canary-congestion-price P`. Per block, `logs lift` (canary 2 against the
default) is judged against each arm's exact value on the contacts it served;
then once pooled over all the replicates' blocks.

    python benchmarks/decision_loop.py [--replicates 20] [--retrain-blocks 4]
        [--contacts-per-day 300] [--serve epsilon=0.2] [--serve temperature=0.1]
        [--retrain-targets argmax,as-served] [--json OUT]
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

DEFAULT_SERVE = "epsilon=0.2"


def serving(spec: str) -> dict[str, float]:
    """``epsilon=E`` or ``temperature=T`` (a served router's exploration)."""
    key, _, value = spec.partition("=")
    if key not in ("epsilon", "temperature") or not value:
        raise argparse.ArgumentTypeError(f"{spec!r}: use epsilon=E or temperature=T")
    return {key: float(value)}


def describe(exploration: dict[str, float]) -> str:
    """``epsilon 0.2`` or ``softmax T=0.1``."""
    if exploration.get("temperature", 0.0) > 0:
        return f"softmax T={exploration['temperature']:g}"
    return f"epsilon {exploration.get('epsilon', 0.0):g}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=20)
    ap.add_argument("--retrain-blocks", type=int, default=4)
    ap.add_argument("--contacts-per-day", type=int, default=300)
    ap.add_argument("--days-per-replicate", type=int, default=2)
    ap.add_argument("--serve", type=serving, action="append",
                    help=f"epsilon=E or temperature=T; repeat to compare (default {DEFAULT_SERVE})")  # fmt: skip
    ap.add_argument("--epsilon", type=float, help="Same as --serve epsilon=E.")
    ap.add_argument("--temperature", type=float, help="Same as --serve temperature=T.")
    ap.add_argument("--retrain-targets", default="argmax,as-served")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--canary-percent", type=float, default=0.0)
    ap.add_argument("--canary-epsilon", type=float)
    ap.add_argument("--canary-temperature", type=float)
    ap.add_argument("--canary-congestion-price", type=float)
    ap.add_argument("--json", type=Path, help="Also write every run and the summary here.")
    args = ap.parse_args()
    setups = list(args.serve or [])
    if args.epsilon is not None:
        setups.append({"epsilon": args.epsilon})
    if args.temperature is not None:
        setups.append({"temperature": args.temperature})
    setups = setups or [serving(DEFAULT_SERVE)]
    canary_parameters = (
        {"epsilon": args.canary_epsilon} if args.canary_epsilon is not None
        else {"temperature": args.canary_temperature} if args.canary_temperature is not None
        else None
    )  # fmt: skip
    targets = tuple(t.strip() for t in args.retrain_targets.split(",") if t.strip())
    catalog = Path(str(resources.files("frontdesk") / "data" / "demo_catalog.jsonl"))
    pool = pool_from_catalog(load_catalog(catalog))
    t0 = time.perf_counter()
    results = []
    for setup in setups:
        print(f"-- serving with {describe(setup)}", flush=True)
        with tempfile.TemporaryDirectory() as work:
            result = run_loop(
                Path(work), pool, seed=args.seed, contacts_per_day=args.contacts_per_day,
                replicates=args.replicates, days_per_replicate=args.days_per_replicate,
                epsilon=setup.get("epsilon", 0.0), temperature=setup.get("temperature", 0.0),
                retrain_blocks=args.retrain_blocks, retrain_targets=targets,
                canary_percent=args.canary_percent, canary_parameters=canary_parameters,
                canary_congestion_price=args.canary_congestion_price,
                log=lambda m: print(f"[{time.perf_counter() - t0:6.0f}s] {m}", flush=True),
            )  # fmt: skip
        results.append(result)
    for result in results:
        print_result(result, args)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if args.json:
        out = results[0] if len(results) == 1 else {"setups": results}
        args.json.write_text(json.dumps(out, indent=1, default=str) + "\n")


def print_result(result: dict, args: argparse.Namespace) -> None:  # type: ignore[type-arg]
    """The served policy's table, the retrained router's, the canary's."""
    served = describe(result["served"])
    mean_truth = sum(r["truth"] for r in result["runs"]) / max(len(result["runs"]), 1)
    print(f"\nserved policy ({served}), {args.replicates} blocks of "
          f"{args.days_per_replicate} days x {args.contacts_per_day} contacts; "
          f"mean true utility {mean_truth:.4f}")  # fmt: skip
    print(f"{'estimator':10} {'covered':>9} {'mean bias':>10} {'mean width':>11}")
    for e in ESTIMATORS_SHOWN:
        s = result["summary"][e]
        print(f"{e:10} {s['covered']:>4}/{s['of']:<4} {s['mean_bias']:>+10.4f} "
              f"{s['mean_width']:>11.4f}")  # fmt: skip
    if "retrained" in result:
        print_retrained(result["retrained"], served)
    if "canary" in result:
        print_canary(result["canary"], args)


def print_retrained(r: dict, served: str) -> None:  # type: ignore[type-arg]
    """Per target: value and difference from the served policy, per block and pooled."""
    print(f"\nrouter retrained on the first {r['retrain_blocks']} served blocks "
          f"({r['train_rows']} rows), judged on each later block (served: {served})")  # fmt: skip
    for name, t in r["targets"].items():
        runs, p = t["runs"], t["pooled"]
        print(f"  target {name}: mean true utility {p['truth']:.4f}, true difference from "
              f"the served policy {p['true_difference']:+.4f}")  # fmt: skip
        print(f"  {'estimator':9} {'covered':>9} {'bias':>8} {'width':>7} {'ESS':>6} | "
              f"{'diff covered':>12} {'error':>8} {'width':>7} {'right/wrong':>11} | "
              f"pooled value [95 %], difference [95 %]")  # fmt: skip
        for e in ESTIMATORS_SHOWN:
            s, d, q = t["summary"][e], t["differences"][e], p[e]
            print(f"  {e:9} {s['covered']:>4}/{s['of']:<4} {s['mean_bias']:>+8.4f} "
                  f"{s['mean_width']:>7.4f} {d['mean_ess']:>6.0f} | "
                  f"{d['covered']:>7}/{d['of']:<4} {d['mean_error']:>+8.4f} "
                  f"{d['mean_width']:>7.4f} {d['right']:>5}/{d['wrong']:<5} | "
                  f"{q['value']:.4f} [{q['ci'][0]:.4f}, {q['ci'][1]:.4f}]"
                  f"{'' if q['value_covered'] else ' NOT covered'}, "
                  f"{q['difference']:+.4f} [{q['difference_ci'][0]:+.4f}, "
                  f"{q['difference_ci'][1]:+.4f}]"
                  f"{'' if q['difference_covered'] else ' NOT covered'}")  # fmt: skip
        print(f"  ({len(runs)} blocks; 'right/wrong': difference intervals excluding 0 on "
              f"the true side / the other side)")  # fmt: skip


def print_canary(c: dict, args: argparse.Namespace) -> None:  # type: ignore[type-arg]
    """Per metric: intervals covering the true difference on the arms' contacts, verdicts."""
    parts = [f"{k} {v}" for k, v in c["parameters"].items()]
    if c["congestion_price"] is not None:
        parts.insert(0, f"trained with congestion price {c['congestion_price']}")
    what = ", ".join(parts)
    s = c["summary"]
    print(
        f"\ncanary: version 2 ({what}) at {c['percent']:g} % beside version 1 "
        f"({describe(c['default'])}); {args.replicates} blocks of {args.days_per_replicate} days x "
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
