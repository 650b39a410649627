"""Router quality on simulated organisations, every number from the `frontdesk` CLI's JSON.

For each contact pool (the demo catalog's examples; BANKING77 train questions
with the importer's topic tags; CLINC150 in-scope train questions with their
domains), each seed and each log size: `simulate org` (40 agents, 10 days),
`train router` (bundled encoder; its held-out check against the rule
included), `eval router --days 3` on the fresh days 10-12. Per cell it keeps
the gap closed (rule to oracle) overall and per segment, the policy the
router chose per segment, the 95th-percentile wait per segment under the rule
and the router, and capacity violations; the summary takes the worst over
seeds.

    python benchmarks/routing_quality.py --datasets ../shared/datasets \\
        [--pools demo,banking77,clinc150] [--sizes 1000,2000,5000,10000,20000,50000] \\
        [--seeds 0,1,2] [--out results.json]
    python benchmarks/routing_quality.py --out results.json --own-bound-what-if

With ``--out``, each finished cell is written at once and a rerun skips the
cells the file already holds, so a long grid can be resumed; the file says
exactly which cells ran.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from cli_runner import run_cli  # benchmarks/ sibling (scripts run from there)

frontdesk = run_cli
SEGMENTS = ("individual", "small_business", "enterprise", "platform")


def pool_args(pool: str, datasets: Path | None, work: Path) -> list[str]:
    """`simulate org` options for a pool (importing the dataset once into ``work``)."""
    if pool == "demo":
        return []
    if datasets is None:
        raise SystemExit(f"--datasets is needed for the {pool} pool")
    folder = work / pool
    if not (folder / "workflows.jsonl").is_file():
        frontdesk("datasets", "import", pool, str(datasets / pool), "--out", str(folder))
    return [
        "--catalog",
        str(folder / "workflows.jsonl"),
        "--queries",
        str(folder / "train.jsonl"),
    ]


def gap(u_router: float, u_rule: float, u_oracle: float) -> float | None:
    return (u_router - u_rule) / (u_oracle - u_rule) if u_oracle > u_rule else None


def run_cell(pool: str, extra: list[str], contacts: int, seed: int, work: Path) -> dict:
    """One simulate + train + eval; the numbers the summary needs, from the CLI's JSON."""
    tag = f"{pool}-{contacts}-{seed}"
    logs, model = work / f"{tag}-logs", work / f"{tag}-router"
    _, t_sim = frontdesk("simulate", "org", "--contacts", str(contacts), "--agents", "40",
                         "--days", "10", "--seed", str(seed), "--out", str(logs), *extra)  # fmt: skip
    trained, t_train = frontdesk("train", "router", str(logs), "--out", str(model))
    ev, t_eval = frontdesk("eval", "router", str(model), str(logs), "--days", "3")
    shutil.rmtree(logs, ignore_errors=True)
    shutil.rmtree(model, ignore_errors=True)
    p = ev["policies"]
    segments = {}
    for s in SEGMENTS:
        if s not in p["rule"]["segments"]:
            continue
        seg = {k: p[k]["segments"][s] for k in ("rule", "router", "oracle")}
        segments[s] = {
            "n": seg["rule"]["n"],
            "utility": {k: v["utility"] for k, v in seg.items()},
            "gap_closed": gap(*(seg[k]["utility"] for k in ("router", "rule", "oracle"))),
            "wait_p95": {k: v.get("wait_p95") for k, v in seg.items()},
            "policy": ev.get("router_policy", {}).get("segments", {}).get(s),
        }
    guard = trained.get("guard") or {}
    return {
        "pool": pool,
        "contacts": contacts,
        "seed": seed,
        "gap_closed": ev["gap_closed"],
        "utility": {k: v["utility"] for k, v in p.items()},
        "wait_p95": {k: v.get("wait_p95") for k, v in p.items()},
        "segments": segments,
        "capacity_violations": ev["capacity_violations"],
        "policy": trained.get("policy"),
        "guard": {
            k: guard.get(k) for k in ("lift", "ci", "lower_bound", "held_out_rows", "segments")
        },
        "seconds": {"simulate": t_sim, "train": t_train, "eval": t_eval},
    }


POOL_NAMES = {"demo": "demo", "banking77": "BANKING77", "clinc150": "CLINC150"}
Z95, Z_ONE_SIDED_95 = 1.959963984540054, 1.6448536269514722


def _ordered(cells: list[dict]) -> list[tuple[str, int, list[dict]]]:
    """(pool, size, its cells by seed), pools in POOL_NAMES order, sizes ascending."""
    keys = sorted({(c["pool"], c["contacts"]) for c in cells},
                  key=lambda k: (list(POOL_NAMES).index(k[0]), k[1]))  # fmt: skip
    return [
        (
            pool,
            n,
            sorted(
                (c for c in cells if (c["pool"], c["contacts"]) == (pool, n)),
                key=lambda c: c["seed"],
            ),
        )  # fmt: skip
        for pool, n in keys
    ]


def summary(cells: list[dict]) -> list[str]:
    """Markdown: per pool and size, the worst over seeds of each number ("deferred": the
    segment was left to the rule)."""
    lines = [
        "| pool | logged contacts | seeds | gap closed (worst) | worst segment: gap closed "
        "| segments routed by the rule | capacity violations | worst p95 wait, router − rule "
        "(min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pool, n, run in _ordered(cells):
        overall = min(c["gap_closed"] for c in run if c["gap_closed"] is not None)
        segs = [
            (v["gap_closed"], s, c["seed"], v["policy"])
            for c in run
            for s, v in c["segments"].items()
            if v["gap_closed"] is not None
        ]
        gap, seg, seed, policy = min(segs)
        deferred = policy == "rule-fallback"
        if gap == 0 and deferred:
            worst = "0.000 (deferred)"
        else:
            worst = f"{gap:.3f} ({seg}, seed {seed}{', deferred' if deferred else ''})"
        n_deferred = sum(
            1 for c in run for v in c["segments"].values() if v["policy"] == "rule-fallback"
        )
        total = sum(len(c["segments"]) for c in run)
        waits = [
            v["wait_p95"]["router"] - v["wait_p95"]["rule"]
            for c in run
            for v in c["segments"].values()
            if v["wait_p95"].get("router") is not None
        ]
        lines.append(
            f"| {POOL_NAMES[pool]} | {n} | {','.join(str(c['seed']) for c in run)} "
            f"| {overall:.3f} | {worst} | {n_deferred} of {total} "
            f"| {sum(c['capacity_violations'] for c in run)} "
            f"| {f'{max(waits):+.1f}' if waits else 'n/a'} |"
        )
    return lines


def own_bound_what_if(cells: list[dict]) -> list[str]:
    """Markdown: each kept router under a stricter per-segment rule (keep a segment only
    where its own one-sided 95 % lower bound, from the held-out check, is above 0), its
    fresh-day segment utilities recombined (the rule's where it would defer; capacity
    interactions ignored)."""
    lines = [
        "| pool | logged contacts | seed | gap closed | with the stricter rule | "
        "segments it would also defer |",
        "|---|---|---|---|---|---|",
    ]
    for pool, n, run in _ordered(cells):
        for c in run:
            if (c.get("policy") or {}).get("overall") != "router":
                continue
            own = c["guard"]["segments"]
            router = rule = oracle = 0.0
            more = []
            for s, v in c["segments"].items():
                lift, ci = own[s]["lift"], own[s]["ci"]
                bound = lift - Z_ONE_SIDED_95 * (ci[1] - ci[0]) / (2 * Z95)
                keep = v["policy"] == "router" and bound > 0
                if v["policy"] == "router" and not keep:
                    more.append(s)
                u = v["utility"]
                router += v["n"] * (u["router"] if keep else u["rule"])
                rule += v["n"] * u["rule"]
                oracle += v["n"] * u["oracle"]
            lines.append(
                f"| {POOL_NAMES[pool]} | {n} | {c['seed']} | {c['gap_closed']:.3f} "
                f"| {(router - rule) / (oracle - rule):.3f} | {', '.join(more) or '–'} |"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=Path, default=None)
    ap.add_argument("--pools", default="demo,banking77,clinc150")
    ap.add_argument("--sizes", default="1000,2000,5000,10000,20000,50000")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (resumed if present)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp one)")
    ap.add_argument(
        "--own-bound-what-if",
        action="store_true",
        help="run nothing: print, from --out, each kept router under the stricter rule "
        "(a segment kept only where its own lower bound is above 0)",
    )
    args = ap.parse_args()
    if args.own_bound_what_if:
        if args.out is None or not args.out.is_file():
            raise SystemExit("--own-bound-what-if reads the results JSON given as --out")
        print("\n".join(own_bound_what_if(json.loads(args.out.read_text())["cells"])))
        return
    pools = args.pools.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    cells: list[dict] = []
    if args.out is not None and args.out.is_file():
        cells = json.loads(args.out.read_text())["cells"]
    done = {(c["pool"], c["contacts"], c["seed"]) for c in cells}
    tmp = tempfile.TemporaryDirectory() if args.work is None else None
    work = Path(tmp.name) if tmp else args.work
    work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        extra = {pool: pool_args(pool, args.datasets, work) for pool in pools}
        for seed in seeds:  # seed by seed, so a grid cut short has every pool and size once
            for pool in pools:
                for n in sizes:
                    if (pool, n, seed) in done:
                        continue
                    cells.append(run_cell(pool, extra[pool], n, seed, work))
                    if args.out is not None:
                        part = args.out.with_suffix(".part")
                        part.write_text(
                            json.dumps({"started": started, "cells": cells}, indent=1) + "\n"
                        )
                        part.replace(args.out)
    finally:
        if tmp:
            tmp.cleanup()
    print("\n".join(summary(cells)))


if __name__ == "__main__":
    main()
