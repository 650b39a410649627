"""Router quality on simulated organisations, every number from `frontdesk eval router --json`.

For each contact pool (the demo catalog's examples; BANKING77 train questions
with the importer's topic tags; CLINC150 in-scope train questions with their
domains) and each log size: `simulate org` (40 agents, 10 days, seed 0),
`train router` (bundled encoder), `eval router --days 3` on the fresh days
10-12. Prints a markdown table (utility per policy, gap closed, capacity
violations, timings) and per-segment utilities for the default size.

    python benchmarks/routing_quality.py --datasets ../shared/datasets [--sizes 5000,20000,50000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from cli_runner import run_cli  # benchmarks/ sibling (scripts run from there)

frontdesk = run_cli


def run(pool: str, pool_args: list[str], contacts: int, work: Path) -> dict:
    logs, model = work / f"{pool}-{contacts}-logs", work / f"{pool}-{contacts}-router"
    _, t_sim = frontdesk("simulate", "org", "--contacts", str(contacts), "--agents", "40",
                         "--days", "10", "--seed", "0", "--out", str(logs), *pool_args)  # fmt: skip
    trained, t_train = frontdesk("train", "router", str(logs), "--out", str(model))
    ev, t_eval = frontdesk("eval", "router", str(model), str(logs), "--days", "3")
    return {
        "pool": pool, "contacts": contacts, "eval": ev, "train": trained,
        "seconds": {"simulate": t_sim, "train": t_train, "eval": t_eval},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=Path, default=None)
    ap.add_argument("--sizes", default="20000", help="log sizes (contacts) for BANKING77")
    ap.add_argument("--out", type=Path, default=None, help="write all results as JSON here")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results.append(run("demo", [], 20_000, work))
        if args.datasets is not None:
            b77 = work / "b77"
            frontdesk("datasets", "import", "banking77", str(args.datasets / "banking77"),
                      "--out", str(b77))  # fmt: skip
            pool = [
                "--catalog",
                str(b77 / "workflows.jsonl"),
                "--queries",
                str(b77 / "train.jsonl"),
            ]
            for n in sizes:
                results.append(run("banking77", pool, n, work))
            clinc = work / "clinc"
            frontdesk("datasets", "import", "clinc150", str(args.datasets / "clinc150"),
                      "--out", str(clinc))  # fmt: skip
            pool = ["--catalog", str(clinc / "workflows.jsonl"),
                    "--queries", str(clinc / "train.jsonl")]  # fmt: skip
            results.append(run("clinc150", pool, 20_000, work))
    print("| pool | logged contacts | random | rule | logging | router | oracle | gap closed "
          "| capacity violations | train s | eval s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        p = r["eval"]["policies"]
        print(
            f"| {r['pool']} | {r['contacts']} | "
            + " | ".join(
                f"{p[k]['utility']:.4f}" for k in ("random", "rule", "logging", "router", "oracle")
            )
            + f" | {r['eval']['gap_closed']:.3f} | {r['eval']['capacity_violations']} "
            f"| {r['seconds']['train']:.0f} | {r['seconds']['eval']:.0f} |"
        )
    for r in results:
        if r["contacts"] != 20_000:
            continue
        p = r["eval"]["policies"]
        print(f"\n{r['pool']} (20k logged contacts), per segment: utility, resolution, cost")
        print(
            "| segment | n | rule | router | oracle | rule res | router res | oracle res | rule cost | router cost |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for s, v in p["router"]["segments"].items():
            print(
                f"| {s} | {v['n']} | {p['rule']['segments'][s]['utility']:.4f} | {v['utility']:.4f} "
                f"| {p['oracle']['segments'][s]['utility']:.4f} "
                f"| {p['rule']['segments'][s]['resolution']:.4f} | {v['resolution']:.4f} "
                f"| {p['oracle']['segments'][s]['resolution']:.4f} "
                f"| {p['rule']['segments'][s]['cost']:.3f} | {v['cost']:.3f} |"
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
