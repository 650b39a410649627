"""Choose retrieval defaults on validation data only (test splits are never read here).

BANKING77: a validation split carved from train (10 %, stratified, seed 0);
the index holds the rest of train as examples. CLINC150: its official `val`
split (in-scope rows); the index holds train. Every configuration is scored
on the same encoded validation queries. With --context it also measures how
earlier turns should enter the conversation vector, on two-turn variants of
the validation questions.

    python benchmarks/tune_retrieval.py --dataset banking77 [--context]
    python benchmarks/tune_retrieval.py --dataset clinc150
    python benchmarks/tune_retrieval.py --dataset banking77 --model ENCODER_DIR   # another encoder
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from frontdesk import ContextEncoder, Settings, Suggester, WorkflowIndex, build_index
from frontdesk.datasets import import_banking77, import_clinc150
from frontdesk.datasets.multiturn import make_multiturn
from frontdesk.eval import carve_validation, evaluate_ranks, rank_of
from frontdesk.loaders import load_catalog, load_queries


def grid() -> list[dict[str, object]]:
    out: list[dict[str, object]] = [{"mode": "sparse"}]
    for agg in ("max", "top3", "top5"):
        out.append({"mode": "dense", "dense_aggregate": agg})
        for w in (0.6, 0.7, 0.8, 0.85, 0.9, 0.95):
            out.append(
                {"mode": "hybrid", "fusion": "weighted", "dense_weight": w, "dense_aggregate": agg}
            )
        for k in (10, 60):
            out.append({"mode": "hybrid", "fusion": "rrf", "rrf_k": k, "dense_aggregate": agg})
    return out


def score(index, encoder, cfg, queries, encoded):  # type: ignore[no-untyped-def]
    cfg = dict(cfg)
    mode = cfg.pop("mode")
    s = Suggester(index, encoder=encoder, settings=Settings(**cfg), mode=mode)
    results = s.suggest_many(queries, k=10, encoded=None if mode == "sparse" else encoded)
    ranks = [
        rank_of(q.label or "", [x.workflow_id for x in r])
        for q, r in zip(queries, results, strict=True)
    ]
    return evaluate_ranks(ranks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--dataset", choices=("banking77", "clinc150"), default="banking77")
    ap.add_argument("--context", action="store_true", help="also tune context_weight")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "frontdesk-tune")
    ap.add_argument("--model", default=None, help="encoder folder (default: bundled MiniLM)")
    args = ap.parse_args()

    data = args.work / args.dataset
    if args.dataset == "banking77":
        import_banking77(args.datasets / "banking77", data)
        train, val = carve_validation(load_queries(data / "train.jsonl"), fraction=0.1, seed=0)
    else:
        import_clinc150(args.datasets / "clinc150", data)
        train = load_queries(data / "train.jsonl")
        val = [q for q in load_queries(data / "val.jsonl") if q.label is not None]
    encoder = ContextEncoder(args.model)
    t0 = time.perf_counter()
    build_index(
        load_catalog(data / "workflows.jsonl"),
        args.work / f"{args.dataset}-index",
        examples=train,
        encoder=encoder,
    )
    print(
        f"built index on {len(train)} train rows in {time.perf_counter() - t0:.0f}s; "
        f"{len(val)} val rows"
    )
    index = WorkflowIndex.load(args.work / f"{args.dataset}-index")
    encoded = encoder.encode_contexts(val)

    rows = []
    for cfg in grid():
        m = score(index, encoder, cfg, val, encoded)
        rows.append({**cfg, **{k: round(v, 4) for k, v in m.items()}})
        print(json.dumps(rows[-1]))
    best = max((r for r in rows if r["mode"] == "hybrid"), key=lambda r: (r["top1"], r["mrr@10"]))
    print("best hybrid on val:", json.dumps(best))

    if args.context:
        before = make_multiturn(val, "distractor_first", seed=0)
        after = make_multiturn(val, "vague_follow_up", seed=0)
        defaults = {"mode": "hybrid"}
        for w in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5):
            encoder.context_weight = w
            out = {"context_weight": w}
            for name, convs in (("distractor_first", before), ("vague_follow_up", after)):
                m = score(index, encoder, defaults, convs, encoder.encode_contexts(convs))
                out[name] = round(m["top1"], 4)
            print(json.dumps(out))


if __name__ == "__main__":
    main()
