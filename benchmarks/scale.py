"""Scale benchmarks (issue 7): ``bm25`` (bm25s vs rank-bm25) and ``catalog`` (10k-1M workflows).

The ``catalog`` part lives in ``scale_catalog.py``; this file is the entry point:

    python benchmarks/scale.py bm25 --datasets ../shared/datasets [--sizes 10000,100000]
    python benchmarks/scale.py catalog --datasets ../shared/datasets [--sizes 10000,100000,1000000]

BM25 part:

Corpus: synthetic documents composed from real question texts (each document
joins 2-4 random BANKING77 and CLINC150 training questions, seeded), so both
libraries see realistic tokens and document lengths; 10k and 100k documents.
Queries: BANKING77 test questions. Both libraries get the same tokens
(frontdesk's Tokenizer: lower-case, stop words out, Snowball stems; each query
token once) and the same parameters (k1 1.5, b 0.75, Robertson's idf, which
is rank-bm25's BM25Okapi; bm25s `method="robertson"`). Reported: build time,
median and p99 single-query time for the top-10, the speed ratio, and how many
queries get the same top-10 (as a set; a difference only inside tied scores
counts as the same).

    python benchmarks/scale.py bm25 --datasets ../shared/datasets [--sizes 10000,100000] [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from frontdesk.index.tokenize import Tokenizer


def corpus(datasets: Path, n: int, seed: int = 0) -> list[str]:
    import csv

    with open(datasets / "banking77" / "train.csv", encoding="utf-8") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)]
    clinc = json.loads((datasets / "clinc150" / "data_full.json").read_text())
    texts += [t for t, _ in clinc["train"]]
    rng = random.Random(seed)
    return [" ".join(rng.sample(texts, rng.randint(2, 4))) for _ in range(n)]


def bm25_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="scale.py bm25")
    ap.add_argument("--datasets", type=Path, required=True)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args(argv)
    import csv

    import bm25s
    from rank_bm25 import BM25Okapi

    tok = Tokenizer()
    with open(args.datasets / "banking77" / "test.csv", encoding="utf-8") as fh:
        test = [r["text"] for r in csv.DictReader(fh)]
    queries = [list(dict.fromkeys(tok(q))) for q in random.Random(1).sample(test, args.queries)]
    queries = [q for q in queries if q]
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        docs = corpus(args.datasets, n)
        tokens = [tok(d) for d in docs]
        t0 = time.perf_counter()
        ours = bm25s.BM25(k1=1.5, b=0.75, method="robertson")
        vocab: dict[str, int] = {}
        ids = [[vocab.setdefault(t, len(vocab)) for t in d] for d in tokens]
        ours.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
        build_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        peer = BM25Okapi(tokens, k1=1.5, b=0.75)
        build_peer = time.perf_counter() - t0
        t_ours, t_peer, same = [], [], 0
        for q in queries:
            qids = [vocab[t] for t in q if t in vocab]
            t0 = time.perf_counter()
            s_ours = ours.get_scores(qids) if qids else np.zeros(n)
            top_ours = np.argpartition(-s_ours, 10)[:10]
            t_ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            s_peer = peer.get_scores(q)
            top_peer = np.argpartition(-s_peer, 10)[:10]
            t_peer.append(time.perf_counter() - t0)
            if set(top_ours) == set(top_peer):
                same += 1
            else:  # same if the difference lies within a tie at the 10th score
                tenth = np.sort(s_peer)[-10]
                if all(
                    abs(s_peer[i] - tenth) < 1e-9 * max(1.0, abs(tenth))
                    for i in set(top_ours) ^ set(top_peer)
                ):
                    same += 1
        r = {
            "docs": n,
            "build_bm25s_s": build_ours,
            "build_rank_bm25_s": build_peer,
            "bm25s_p50_ms": float(np.median(t_ours) * 1000),
            "bm25s_p99_ms": float(np.percentile(t_ours, 99) * 1000),
            "rank_bm25_p50_ms": float(np.median(t_peer) * 1000),
            "rank_bm25_p99_ms": float(np.percentile(t_peer, 99) * 1000),
            "same_top10": same,
            "queries": len(queries),
        }
        r["speed_ratio"] = r["rank_bm25_p50_ms"] / r["bm25s_p50_ms"]
        rows.append(r)
        print(f"  {n} docs: {r}", file=sys.stderr)
    print(
        "| documents | bm25s build s | rank-bm25 build s | bm25s p50 / p99 ms | rank-bm25 p50 / p99 ms | speed ratio (p50) | same top-10 |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['docs']:,} | {r['build_bm25s_s']:.1f} | {r['build_rank_bm25_s']:.1f} | "
            f"{r['bm25s_p50_ms']:.2f} / {r['bm25s_p99_ms']:.2f} | {r['rank_bm25_p50_ms']:.1f} / {r['rank_bm25_p99_ms']:.1f} | "
            f"{r['speed_ratio']:.0f}x | {r['same_top10']}/{r['queries']} |"
        )


def main() -> None:
    parts = {"bm25": bm25_main}
    from scale_catalog import catalog_main, serve_main  # noqa: PLC0415 - sibling script

    parts.update(catalog=catalog_main, serve=serve_main)
    if len(sys.argv) < 2 or sys.argv[1] not in parts:
        sys.exit(f"usage: python benchmarks/scale.py {{{'|'.join(parts)}}} ...")
    parts[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
