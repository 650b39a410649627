"""Fast encoders vs the full MiniLM: speed side by side, and what retrieval quality they cost.

Builds the two fast encoders with the project's CLI (``frontdesk train
distill --kind onnx-int8`` and ``--kind static``), then:

* speed: each encoder alone in its own process (as deployed), the processes
  taking turns for 3 rounds of 3 passes (median of 9): documents/s encoding
  2,000 BANKING77 training texts in batches of 32, and single-text p50/p99
  over 300 calls per process;
* quality, from ``frontdesk eval --json`` (hybrid, no ranker) over an index of
  the dataset's train split built with each encoder: BANKING77 test and
  CLINC150 in-scope test top-1 / recall@3 / MRR@10.

    python benchmarks/fast_encoder.py --datasets ../shared/datasets [--work DIR] [--out r.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cli_runner import run_cli
from frontdesk import ContextEncoder

DATASETS = ("banking77", "clinc150")


def speed_worker(model: str | None, texts_file: Path) -> None:
    """One encoder alone in this process: 3 timed passes over the texts, 300 single texts."""
    texts = json.loads(texts_file.read_text())
    enc = ContextEncoder(model)
    enc.encode(texts[:64])  # load, warm up
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        enc.encode(texts)
        rates.append(len(texts) / (time.perf_counter() - t0))
    single = []
    for t in texts[:300]:
        t0 = time.perf_counter()
        enc.encode([t])
        single.append(time.perf_counter() - t0)
    print(json.dumps({"rates": rates, "single_ms": [s * 1000 for s in single]}))


def speed(models: dict[str, str | None], texts: list[str], work: Path, rounds: int = 3) -> dict:
    """Each encoder in its own process (as deployed: one encoder per process), the
    processes taking turns for ``rounds`` rounds; medians over every pass."""
    texts_file = work / "speed_texts.json"
    texts_file.write_text(json.dumps(texts))
    runs: dict[str, list[dict]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            cmd = [sys.executable, __file__, "--speed-worker", model or "", str(texts_file)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(done.stdout))
    out = {}
    for name, rs in runs.items():
        rates = [r for run in rs for r in run["rates"]]
        ms = np.asarray([m for run in rs for m in run["single_ms"]])
        out[name] = {
            "docs_per_s": round(float(np.median(rates))),
            "docs_per_s_passes": [round(r) for r in rates],
            "single_p50_ms": round(float(np.median(ms)), 2),
            "single_p99_ms": round(float(np.percentile(ms, 99)), 2),
        }
    return out


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--speed-worker":
        speed_worker(sys.argv[2] or None, Path(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "frontdesk-fast")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--speed-only", action="store_true", help="skip the quality evaluation")
    args = ap.parse_args()
    work = args.work
    models: dict[str, str | None] = {"minilm": None}
    for kind in ("onnx-int8", "static"):
        folder = work / f"encoder-{kind}"
        built, took = run_cli("train", "distill", "--kind", kind, "--out", str(folder))
        models[kind] = str(folder)
        print(f"{kind}: built in {took:.0f}s", file=sys.stderr)

    with open(args.datasets / "banking77" / "train.csv", encoding="utf-8") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)][:2000]
    results: dict = {"speed": speed(models, texts, work)}
    print(json.dumps(results["speed"]), file=sys.stderr)

    quality: dict = {}
    for name in () if args.speed_only else DATASETS:
        data = work / name
        run_cli("datasets", "import", name, str(args.datasets / name), "--out", str(data))
        for enc, path in models.items():
            index = work / f"{name}-{enc}"
            build = ["index", "build", str(data / "workflows.jsonl")]
            build += ["--examples", str(data / "train.jsonl"), "--out", str(index)]
            built, build_s = run_cli(*build, *(["--model", path] if path else []))
            report, _ = run_cli("eval", str(index), str(data / "test.jsonl"))
            quality.setdefault(name, {})[enc] = {
                "n": report["n"],
                "top1": report["top1"],
                "recall@3": report["recall@3"],
                "mrr@10": report["mrr@10"],
                "index_build_s": round(build_s, 1),
            }
            print(f"{name} {enc}: {quality[name][enc]}", file=sys.stderr)
    results["quality"] = quality

    print("| encoder | docs/s (batch 32) | single text p50 / p99 ms | speed-up |")
    print("|---|---|---|---|")
    base = results["speed"]["minilm"]["docs_per_s"]
    for name, r in results["speed"].items():
        print(
            f"| {name} | {r['docs_per_s']:,} | {r['single_p50_ms']:.2f} / {r['single_p99_ms']:.2f} "
            f"| {r['docs_per_s'] / base:.1f}x |"
        )
    print()
    print("| dataset (test, n) | encoder | top-1 | recall@3 | MRR@10 | Δ top-1 vs MiniLM |")
    print("|---|---|---|---|---|---|")
    for name, by_enc in quality.items():
        for enc, r in by_enc.items():
            delta = (r["top1"] - by_enc["minilm"]["top1"]) * 100
            print(
                f"| {name} ({r['n']}) | {enc} | {r['top1']:.2%} | {r['recall@3']:.2%} "
                f"| {r['mrr@10']:.4f} | {delta:+.2f} pts |"
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
