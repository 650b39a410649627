"""A cold first call: ``frontdesk suggest INDEX TEXT`` in a fresh process, onnx vs torch runtime.

The default encoder runtime answers from the cached ONNX copy of the
sentence-transformers model; ``FRONTDESK_ENCODER_RUNTIME=torch`` loads torch
and sentence-transformers as before. Both run side by side, alternating, and
each is reported as the median of ``--runs`` cold processes (the ONNX copy is
built once before timing). Then the answers: the same index queried with both
runtimes over a labelled queries file, comparing each query's top-5.

    python benchmarks/cold_start.py --index demo-index [--queries Q.jsonl] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from importlib import resources
from pathlib import Path

TEXT = "my payout is late"


def cold(index: Path, runtime: str) -> float:
    env = {**os.environ, "FRONTDESK_ENCODER_RUNTIME": runtime, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    subprocess.run(
        ["frontdesk", "suggest", str(index), TEXT, "--json"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def agreement(index: Path, queries: list[Path]) -> dict[str, float]:
    from frontdesk import ContextEncoder, Suggester, load_queries

    texts = [q.text for path in queries for q in load_queries(path)]
    model = Suggester.load(index).encoder
    assert model is not None, f"{index}: has no dense part"
    tops = {}
    for runtime in ("onnx", "torch"):
        s = Suggester.load(index, encoder=ContextEncoder(model.path, runtime=runtime))
        tops[runtime] = [[x.workflow_id for x in r] for r in s.suggest_many(texts, k=5)]
    same1 = sum(a[0] == b[0] for a, b in zip(tops["onnx"], tops["torch"], strict=True))
    same5 = sum(a == b for a, b in zip(tops["onnx"], tops["torch"], strict=True))
    return {"queries": len(texts), "same_top1": same1 / len(texts), "same_top5": same5 / len(texts)}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--queries", type=Path, help="labelled queries (default: every demo question)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    data = Path(str(resources.files("frontdesk") / "data"))
    queries = [args.queries] if args.queries else [
        data / "demo_queries_tune.jsonl", data / "demo_queries_test.jsonl"
    ]  # fmt: skip
    cold(args.index, "onnx")  # builds the ONNX copy if missing; not timed
    times: dict[str, list[float]] = {"onnx": [], "torch": []}
    for _ in range(args.runs):
        for runtime in times:
            times[runtime].append(cold(args.index, runtime))
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cpus",
        "runs": args.runs,
        "median_s": {k: round(v, 2) for k, v in med.items()},
        "all_s": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "torch_over_onnx": round(med["torch"] / med["onnx"], 1),
        "answers": agreement(args.index, queries),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
