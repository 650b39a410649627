"""Single-query `suggest` latency over a 10k-workflow catalog, and index build speed.

The catalog is synthetic but made of real words: each workflow's title,
description and example are real questions from BANKING77 and CLINC150
(train splits, from --datasets) and its steps come from the bundled demo
catalog. Queries are real test questions. Reports medians over repeated
single queries (p50/p99), split into encoder and retrieval time, and the same
questions after an earlier exchange about something else, in each context mode
(FRONTDESK_CONTEXT: latest, mixed, gated).

    python benchmarks/latency.py --datasets ../shared/datasets [--workflows 10000]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

from frontdesk import (
    ContextEncoder,
    Conversation,
    Settings,
    Suggester,
    Workflow,
    build_index,
    load_catalog,
    load_queries,
)
from frontdesk.datasets import import_banking77, import_clinc150


def synthetic_catalog(texts: list[str], steps: list[str], n: int, seed: int = 0) -> list[Workflow]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        title, desc, example = rng.sample(texts, 3)
        out.append(
            Workflow(
                id=f"wf-{i:06d}",
                title=title,
                description=desc,
                steps=rng.sample(steps, 3),
                examples=[example],
            )
        )
    return out


MODES = ("latest", "mixed", "gated")  # FRONTDESK_CONTEXT
ACK = "Thanks, I've sorted that out for you."
WARM_UP = 20  # queries answered before timing


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--workflows", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "frontdesk-latency")
    args = ap.parse_args()

    import_banking77(args.datasets / "banking77", args.work / "b77")
    import_clinc150(args.datasets / "clinc150", args.work / "clinc")
    texts = [q.text for d in ("b77", "clinc") for q in load_queries(args.work / d / "train.jsonl")]
    train_b77 = [q.text for q in load_queries(args.work / "b77" / "train.jsonl")]
    demo = load_catalog(Path(str(resources.files("frontdesk") / "data" / "demo_catalog.jsonl")))
    steps = [s for w in demo for s in w.steps]
    catalog = synthetic_catalog(texts, steps, args.workflows)

    encoder = ContextEncoder()
    encoder.encode(["warm up"])
    t0 = time.perf_counter()
    manifest = build_index(catalog, args.work / "index", encoder=encoder)
    build_s = time.perf_counter() - t0
    docs = manifest["counts"]["documents"]

    queries = [q.text for q in load_queries(args.work / "b77" / "test.jsonl")]
    queries = random.Random(1).sample(queries, args.queries)
    hybrid = Suggester.load(args.work / "index", encoder=encoder)
    sparse = Suggester.load(args.work / "index", encoder=encoder, mode="sparse")
    for q in queries[:WARM_UP]:  # warm up
        hybrid.suggest(q)

    times: dict[str, list[float]] = {
        "end_to_end": [],
        "encoder": [],
        "hybrid_retrieval": [],
        "bm25_alone": [],
    }
    for q in queries:
        t = time.perf_counter()
        hybrid.suggest(q, k=5)
        times["end_to_end"].append(time.perf_counter() - t)
        t = time.perf_counter()
        enc = encoder.encode_contexts([q])  # not hybrid.encode: its query cache holds q
        times["encoder"].append(time.perf_counter() - t)
        t = time.perf_counter()
        hybrid.suggest_many([q], k=5, encoded=enc)
        times["hybrid_retrieval"].append(time.perf_counter() - t)
        t = time.perf_counter()
        sparse.suggest(q, k=5)
        times["bm25_alone"].append(time.perf_counter() - t)

    # Conversations with one earlier exchange about something else, answered in each context
    # mode: the gate's searches are what `gated` (the default) adds. The earlier request is a
    # train question, so each conversation encodes two new texts (the agent's reply is the
    # same every time: cached after the first). Modes rotate per conversation.
    drawn = random.Random(2).sample(train_b77, len(queries) + 2 * WARM_UP)  # no repeats
    warm_up = drawn[len(queries) + WARM_UP :]  # the warm-up's latest texts, used only there
    convs = [
        Conversation(
            text=q,
            context={"turns": [{"role": "user", "text": e}, {"role": "agent", "text": ACK}]},
        )
        for q, e in zip(warm_up + queries, drawn[: len(queries) + WARM_UP], strict=True)
    ]
    by_mode = {
        m: Suggester.load(
            args.work / "index", encoder=encoder, settings=Settings.from_env(context=m)
        )
        for m in MODES
    }
    for c in convs[:WARM_UP]:  # the same warm-up as the single questions had
        for m in MODES:
            by_mode[m].suggest(c, k=5)
    convs = convs[WARM_UP:]
    conv_times: dict[str, list[float]] = {m: [] for m in MODES}
    for i, c in enumerate(convs):
        for m in MODES[i % 3 :] + MODES[: i % 3]:
            t = time.perf_counter()
            by_mode[m].suggest(c, k=5)
            conv_times[m].append(time.perf_counter() - t)
    times.update({f"conversation_{m}": v for m, v in conv_times.items()})

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{__import__('os').cpu_count()} cores",
        "workflows": args.workflows,
        "documents": docs,
        "build_seconds": round(build_s, 1),
        "build_docs_per_s": round(docs / build_s, 1),
        "queries": len(queries),
        "ms": {
            k: {
                "p50": round(pct(v, 50) * 1e3, 2),
                "p99": round(pct(v, 99) * 1e3, 2),
                "mean": round(statistics.fmean(v) * 1e3, 2),
            }
            for k, v in times.items()
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
