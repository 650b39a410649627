"""Retrieval quality on BANKING77 test and CLINC150 in-scope test: BM25, dense, hybrid.

Every number comes from the project's own CLI (`frontdesk eval --json`) over an
index whose examples are the dataset's train split; test rows are never indexed.

    python benchmarks/retrieval_quality.py --datasets ../shared/datasets [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("sparse", "dense", "hybrid")
DATASETS = ("banking77", "clinc150")


def frontdesk(*args: str) -> dict:
    cmd = [sys.executable, "-m", "frontdesk", *args, "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "frontdesk-quality")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = ap.parse_args()

    results: dict[str, dict[str, dict]] = {}
    for name in DATASETS:
        data, index = args.work / name, args.work / f"{name}-index"
        frontdesk("datasets", "import", name, str(args.datasets / name), "--out", str(data))
        t0 = time.perf_counter()
        built = frontdesk(
            "index",
            "build",
            str(data / "workflows.jsonl"),
            "--examples",
            str(data / "train.jsonl"),
            "--out",
            str(index),
        )
        print(
            f"{name}: indexed {built['counts']['documents']} documents in "
            f"{time.perf_counter() - t0:.0f}s",
            file=sys.stderr,
        )
        results[name] = {}
        for mode in MODES:
            report = frontdesk("eval", str(index), str(data / "test.jsonl"), "--mode", mode)
            results[name][mode] = report
            print(f"{name} {mode}: top1 {report['top1']:.4f} n {report['n']}", file=sys.stderr)

    print("| dataset (test, n) | retrieval | top-1 | recall@5 | MRR@10 |")
    print("|---|---|---|---|---|")
    for name, by_mode in results.items():
        for mode, r in by_mode.items():
            label = {"sparse": "BM25 alone", "dense": "dense alone", "hybrid": "hybrid"}[mode]
            print(
                f"| {name} ({r['n']}) | {label} | {r['top1']:.2%} | {r['recall@5']:.2%} "
                f"| {r['mrr@10']:.4f} |"
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
