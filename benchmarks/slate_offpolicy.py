"""Judging a suggestion list off-policy: bias, interval coverage and width of SIPS, IIPS, RIPS.

The world: the bundled demo catalog and its 140 labelled questions (both
halves, ``data/demo_queries_{tune,test}.jsonl``, 10 of them out of scope). The
served model is a BM25 index of the catalog, showing 5 workflows with list exploration
(``--explore-top-k 3 --explore-rate 0.3``, drawn as the server draws). The
agent is position-based: it examines position j with probability theta_j =
(0.95, 0.7, 0.5, 0.35, 0.25) and uses the right workflow when it is shown at
an examined position; otherwise it uses another one. So the true acceptance
of any list is known exactly: mean over contacts of sum_{j<k} theta_j
1{list_j = label}. Each run draws ``--contacts`` contacts (questions at
random), writes them as a joined log folder (``suggestions-*.parquet`` and a
manifest, as ``logs join`` does), estimates a target's acceptance@1 and @3
with ``ope.slate.simulate_suggestions`` (local engine) and compares it with
the target's exact acceptance on the same contacts. Targets:

- ``rerank``: the hybrid index (MiniLM + BM25) reordering the served top 3, as
  a ranker over the same candidates would: supported by the logs everywhere.
- ``hybrid``: the hybrid index's own top 3: where it shows a workflow BM25 did
  not rank in its top 3, the logs cannot support it (the command warns, and
  the estimates are biased low by up to that share).

The targets' lists are computed once per question (the Suggester), then looked
up per run; run 0 also runs the hybrid index through the Suggester on every
logged context (``simulate suggestions``' own path) and checks it gives the
same numbers as the lookup.

    python benchmarks/slate_offpolicy.py [--runs 100] [--contacts 3000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from frontdesk import Suggester, build_index  # noqa: E402
from frontdesk.artifacts import LOGS, write_manifest  # noqa: E402
from frontdesk.loaders import load_queries  # noqa: E402
from frontdesk.ope.slate import SLATE_ESTIMATORS, simulate_suggestions  # noqa: E402

THETA = np.array([0.95, 0.7, 0.5, 0.35, 0.25])
SHOWN, TOP_K, RATE, K = 5, 3, 0.3, 3


def data(name: str) -> Path:
    return Path(str(resources.files("frontdesk") / "data" / name))


def served_lists(rng: random.Random, ranked: list[str]) -> tuple[list[str], float]:
    """The server's draw (``DecisionLogger.explore_lists``): the shown order and its propensity."""
    top = min(TOP_K, len(ranked))
    order = list(range(top))
    if rng.random() < RATE:
        rng.shuffle(order)
    stays = order == list(range(top))
    prop = RATE / math.factorial(top) + ((1 - RATE) if stays else 0.0)
    return [ranked[j] for j in order] + ranked[top:], prop


def write_logs(folder: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "suggestions-20000.parquet")
    (folder / "agents.json").write_text("[]\n")
    write_manifest(folder, {"kind": LOGS, "channels": {}, "topics": [], "days": [20000]})


def exact(lists: list[list[str]], labels: list[str | None], k: int) -> float:
    return float(
        np.mean(
            [
                sum(THETA[j] for j, w in enumerate(t[:k]) if w == lab)
                for t, lab in zip(lists, labels, strict=True)
            ]
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--contacts", type=int, default=3000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    queries = sorted(  # both halves, in writing order (dq1..dqN)
        load_queries(data("demo_queries_tune.jsonl"))
        + load_queries(data("demo_queries_test.jsonl")),
        key=lambda q: int(str(q.id).removeprefix("dq")),
    )
    texts = [q.text for q in queries]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_index(data("demo_catalog.jsonl"), root / "bm25", dense=False)
        build_index(data("demo_catalog.jsonl"), root / "hybrid")
        bm25 = [[s.workflow_id for s in x] for x in
                Suggester.load(root / "bm25").suggest_many(texts, k=SHOWN)]  # fmt: skip
        hyb_sugg = Suggester.load(root / "hybrid")
        hybrid_deep = [[s.workflow_id for s in x] for x in hyb_sugg.suggest_many(texts, k=66)]
        targets = {
            "rerank": [
                sorted(b[:TOP_K], key=lambda w, h=h: h.index(w) if w in h else len(h))[:K]
                for b, h in zip(bm25, hybrid_deep, strict=True)
            ],
            "hybrid": [h[:K] for h in hybrid_deep],
        }
        setup_s = time.perf_counter() - t0
        print(f"setup (two indexes, 140 questions through both): {setup_s:.1f} s")
        results: dict[str, dict[str, dict[str, list[float]]]] = {
            t: {m: {e: [] for e in ("truth", "logged", *SLATE_ESTIMATORS)} for m in ("@1", "@3")}
            for t in targets
        }
        cover: dict[tuple[str, str, str], int] = {}
        widths: dict[tuple[str, str, str], list[float]] = {}
        unsupported: dict[str, list[float]] = {t: [] for t in targets}
        t_runs = time.perf_counter()
        for run in range(args.runs):
            rng = random.Random(run)
            picks = [rng.randrange(len(queries)) for _ in range(args.contacts)]
            rows = []
            for i, qi in enumerate(picks):
                ranked = bm25[qi]
                shown, prop = served_lists(rng, ranked)
                label = queries[qi].label
                j = shown.index(label) if label in shown else None
                used = label if j is not None and rng.random() < THETA[j] else "another-workflow"
                rows.append({
                    "decision_id": f"r{run}-{i}", "day": 20000,
                    "time": dt.datetime(2024, 10, 4, tzinfo=dt.UTC), "contact_id": f"c{i}",
                    "model": "suggest", "model_version": "bm25", "role": "default",
                    "text": texts[qi], "turns": [], "segment": rng.choice(["smb", "platform"]),
                    "workflow_ids": shown, "ranked_ids": ranked, "shown_propensity": prop,
                    "explore_top_k": TOP_K, "explore_rate": RATE, "workflow_used": used,
                })  # fmt: skip
            logs = root / f"logs-{run}"
            write_logs(logs, rows)
            qidx = {r["decision_id"]: qi for r, qi in zip(rows, picks, strict=True)}
            labels = [queries[qi].label for qi in picks]
            for name, lists in targets.items():
                est = simulate_suggestions(
                    logs, None, k=K, segments=[],
                    target=lambda df, lists=lists, q=qidx: [lists[q[d]] for d in df["decision_id"]],
                )  # fmt: skip
                if run == 0 and name == "hybrid":  # the command's own path: the same numbers
                    own = simulate_suggestions(logs, root / "hybrid", k=K, segments=["segment"])
                    for m in ("acceptance@1", "acceptance@3"):
                        for e in SLATE_ESTIMATORS:
                            a, b = est[m]["overall"][e]["value"], own[m]["overall"][e]["value"]
                            assert abs(a - b) <= 1e-12, (m, e, a, b)
                    print("run 0: the Suggester path gives the lookup's numbers; its warnings:")
                    for w in own["meta"]["warnings"]:
                        print(f"  - {w}")
                unsupported[name].append(est["meta"]["outside_window_share"])
                for k, m in ((1, "@1"), (3, "@3")):
                    truth = exact([lists[qi] for qi in picks], labels, k)
                    e_all = est[f"acceptance{m}"]["overall"]
                    results[name][m]["truth"].append(truth)
                    results[name][m]["logged"].append(e_all["logged"])
                    for e in SLATE_ESTIMATORS:
                        v = e_all[e]
                        results[name][m][e].append(v["value"])
                        lo, hi = v["ci"]
                        cover[(name, m, e)] = cover.get((name, m, e), 0) + (lo <= truth <= hi)
                        widths.setdefault((name, m, e), []).append(hi - lo)
            for f in logs.iterdir():
                f.unlink()
            logs.rmdir()
        run_s = time.perf_counter() - t_runs
    runs = args.runs
    print(
        f"\n{runs} runs x {args.contacts} contacts; served: BM25 top {SHOWN}, explore top "
        f"{TOP_K} at rate {RATE}; position-based agent theta={THETA.tolist()}"
    )
    print(f"{'target':8} {'metric':7} {'truth':>7} {'logged':>7} {'estimator':9} {'mean':>7} "
          f"{'bias':>8} {'rmse':>7} {'cover95':>8} {'width':>7}")  # fmt: skip
    summary = {}
    for name in targets:
        for m in ("@1", "@3"):
            r = results[name][m]
            truth = np.array(r["truth"])
            for e in SLATE_ESTIMATORS:
                v = np.array(r[e])
                bias, rmse = float(np.mean(v - truth)), float(np.sqrt(np.mean((v - truth) ** 2)))
                cov = cover[(name, m, e)] / runs
                width = float(np.mean(widths[(name, m, e)]))
                summary[f"{name} acceptance{m} {e}"] = {
                    "truth": float(truth.mean()), "bias": bias, "rmse": rmse,
                    "coverage": cov, "width": width,
                }  # fmt: skip
                print(f"{name:8} {m:7} {truth.mean():7.4f} {np.mean(r['logged']):7.4f} {e:9} "
                      f"{v.mean():7.4f} {bias:+8.4f} {rmse:7.4f} {cov:8.2f} {width:7.4f}")  # fmt: skip
        print(
            f"{name}: rows where the target puts an unshown workflow in the explored window: "
            f"{np.mean(unsupported[name]):.1%}"
        )
    print(f"\nsetup {setup_s:.1f} s; {runs} runs {run_s:.1f} s ({run_s / runs:.2f} s a run, "
          f"both targets); total {time.perf_counter() - t0:.1f} s")  # fmt: skip
    print(json.dumps({"runs": runs, "contacts": args.contacts, "summary": summary}))


if __name__ == "__main__":
    main()
