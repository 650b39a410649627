"""Choose retrieval defaults on a BANKING77 validation split carved from train.

The test split is never read here. The index holds train-minus-val as
examples; every configuration is scored on the same encoded val queries.

    python benchmarks/tune_retrieval.py --datasets ../shared/datasets
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from frontdesk import ContextEncoder, Settings, Suggester, WorkflowIndex, build_index
from frontdesk.datasets import import_banking77
from frontdesk.eval import carve_validation, evaluate_ranks, rank_of
from frontdesk.loaders import load_catalog, load_queries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "frontdesk-tune")
    args = ap.parse_args()

    data = args.work / "banking77"
    import_banking77(args.datasets / "banking77", data)
    train, val = carve_validation(load_queries(data / "train.jsonl"), fraction=0.1, seed=0)
    encoder = ContextEncoder()
    t0 = time.perf_counter()
    build_index(
        load_catalog(data / "workflows.jsonl"), args.work / "index", examples=train, encoder=encoder
    )
    print(
        f"built index on {len(train)} train rows in {time.perf_counter() - t0:.0f}s; "
        f"{len(val)} val rows"
    )
    index = WorkflowIndex.load(args.work / "index")
    encoded = encoder.encode_contexts([q.text for q in val])

    grid: list[dict[str, object]] = []
    for agg in ("max", "top3", "top5"):
        grid.append({"mode": "dense", "dense_aggregate": agg})
        for w in (0.6, 0.7, 0.8, 0.85, 0.9, 0.95):
            grid.append(
                {"mode": "hybrid", "fusion": "weighted", "dense_weight": w, "dense_aggregate": agg}
            )
        for k in (10, 60):
            grid.append({"mode": "hybrid", "fusion": "rrf", "rrf_k": k, "dense_aggregate": agg})
    grid.append({"mode": "sparse"})

    rows = []
    for cfg in grid:
        cfg = dict(cfg)
        mode = cfg.pop("mode")
        s = Suggester(index, encoder=encoder, settings=Settings(**cfg), mode=mode)  # type: ignore[arg-type]
        results = s.suggest_many(val, k=10, encoded=None if mode == "sparse" else encoded)
        ranks = [
            rank_of(q.label or "", [x.workflow_id for x in r])
            for q, r in zip(val, results, strict=True)
        ]
        m = evaluate_ranks(ranks)
        rows.append({"mode": mode, **cfg, **{k: round(v, 4) for k, v in m.items()}})
        print(json.dumps(rows[-1]))
    best = max((r for r in rows if r["mode"] == "hybrid"), key=lambda r: (r["top1"], r["mrr@10"]))
    print("best hybrid on val:", json.dumps(best))


if __name__ == "__main__":
    main()
