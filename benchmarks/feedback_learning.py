"""Learning from the agents: the ranker and the index from logged agents' choices, BANKING77.

1. `frontdesk datasets import banking77` (train / test splits, 77 workflows).
2. An index of every workflow's title and description, with a few train
   questions as examples (``--examples-per-workflow``, seeded) for all but
   ``--new-workflows`` workflows, which have no example (new in the catalog).
3. Traffic: ``--traffic`` other train questions (seeded sub-sample), served one
   by one through `frontdesk serve`'s app on 127.0.0.1 (the index packaged as a
   suggester, a decision log with list exploration: the top ``--explore-top-k``
   shown in a random order for ``--explore-rate`` of the lists). A simulated
   agent looks at shown position k with probability θ_k (``--theta``) and takes
   the right workflow when it looks at it; every decision's outcome is posted to
   /v1/outcomes, with ``workflow_used`` when the agent took one. Then
   `frontdesk logs join`.
4. (a) `frontdesk train ranker INDEX --feedback LOGS`, with and without the
   position correction (``--no-position-correction``), and, for reference, a
   ranker from every traffic question with its true label (no agent, no bias:
   what the feedback would give if agents labelled everything); each judged
   with `frontdesk eval INDEX TEST --ranker RK`, beside the index alone.
   (b) `frontdesk index add INDEX --from-feedback LOGS` on a copy of the index:
   the new workflows gain examples from traffic; `frontdesk eval` before and
   after, on the whole test split and on the new workflows' test questions.

Every number is top-1 on BANKING77's test split, which nothing here trains or
tunes on (validation is carved from the feedback). Run on a quiet machine;
the default run sub-samples 3,000 of the ~10,000 train questions as traffic.

    python benchmarks/feedback_learning.py --datasets ../shared/datasets [--traffic 3000]
        [--examples-per-workflow 5] [--new-workflows 10] [--explore-rate 0.3]
        [--theta 1,0.6,0.35,0.2,0.1] [--seed 0] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_runner import run_cli  # noqa: E402  (benchmarks/ sibling)
from frontdesk.loaders import load_queries, write_jsonl  # noqa: E402


def frontdesk(*args: str) -> dict[str, Any]:
    return run_cli(*args)[0]


def top1(report: dict[str, Any]) -> float:
    """top-1 of a `frontdesk eval --json` report."""
    m = report.get("metrics", report)
    return float(m["top1"])


def serve_traffic(
    index: Path,
    traffic: list[Any],
    work: Path,
    theta: list[float],
    explore_top_k: int,
    explore_rate: float,
    seed: int,
) -> dict[str, Any]:
    """Serve each question, let the simulated agent choose, post its outcome; counts."""
    import httpx

    from frontdesk.eval.decision_loop import loopback_server
    from frontdesk.scoring.decision_logging import DecisionLogSettings
    from frontdesk.scoring.packaging import package_model
    from frontdesk.scoring.server import create_app

    models, dlog = work / "models", work / "dlog"
    package_model(index, "suggest", models)
    settings = DecisionLogSettings(
        folder=str(dlog), explore_top_k=explore_top_k, explore_rate=explore_rate,
        flush_seconds=0.5,
    )  # fmt: skip
    app = create_app(models, decision_log=settings, seed=seed)
    rng = random.Random(seed + 1)
    k = len(theta)
    counts = {"served": 0, "accepted": 0, "gold_shown": 0, "accepted_at": [0] * k}
    with loopback_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        deadline = time.time() + 300
        while client.get("/v2/health/ready").status_code != 200:
            if time.time() > deadline:
                raise RuntimeError(client.get("/v2/health/ready").text)
            time.sleep(0.2)
        outcomes: list[dict[str, Any]] = []
        for q in traffic:
            res = client.post(f"/v1/suggest?k={k}", json={"id": q.id, "text": q.text})
            res.raise_for_status()
            body = res.json()
            shown = [s["workflow_id"] for s in body["suggestions"]]
            used = None
            for pos, w in enumerate(shown):
                if w == q.label:
                    counts["gold_shown"] += 1
                    if rng.random() < theta[pos]:  # the agent looks here, and sees it is right
                        used = w
                        counts["accepted_at"][pos] += 1
                    break
            counts["served"] += 1
            counts["accepted"] += used is not None
            outcomes.append(
                {"decision_id": body["decision_id"], "resolved": used is not None,
                 **({"workflow_used": used} if used else {})}
            )  # fmt: skip
            if len(outcomes) == 500:
                client.post("/v1/outcomes", json={"outcomes": outcomes}).raise_for_status()
                outcomes = []
        if outcomes:
            client.post("/v1/outcomes", json={"outcomes": outcomes}).raise_for_status()
        service = app.state.service.decision_log
        service.decisions.flush()
        service.outcomes.flush()
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, required=True, help="Folder holding banking77/.")
    ap.add_argument("--traffic", type=int, default=3000, help="Train questions served.")
    ap.add_argument("--examples-per-workflow", type=int, default=5)
    ap.add_argument("--new-workflows", type=int, default=10)
    ap.add_argument("--explore-top-k", type=int, default=5)
    ap.add_argument("--explore-rate", type=float, default=0.3)
    ap.add_argument("--theta", default="1,0.6,0.35,0.2,0.1", help="The agent's θ per position.")
    ap.add_argument("--test-limit", type=int, default=0, help="Sub-sample the test split (0: all).")
    ap.add_argument("--skip-reference", action="store_true", help="No true-label ranker.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, help="Keep the work folder here (default: temporary).")
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    args = ap.parse_args()
    theta = [float(x) for x in args.theta.split(",")]
    src = args.datasets / "banking77"
    if not src.is_dir():
        sys.exit(f"{src}: not found")
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f}s] {msg}", file=sys.stderr, flush=True)

    work = args.work or Path(tempfile.mkdtemp(prefix="feedback-"))
    work.mkdir(parents=True, exist_ok=True)
    d = work / "b77"
    frontdesk("datasets", "import", "banking77", str(src), "--out", str(d))
    train = load_queries(d / "train.jsonl")
    test = load_queries(d / "test.jsonl")
    rng = random.Random(args.seed)
    labels = sorted({str(q.label) for q in train})
    new = set(rng.sample(labels, args.new_workflows))
    by_label: dict[str, list[Any]] = defaultdict(list)
    for q in train:
        by_label[str(q.label)].append(q)
    examples = []
    for label in labels:
        if label not in new:
            examples += rng.sample(by_label[label], args.examples_per_workflow)
    in_index = {q.id for q in examples}
    rest = [q for q in train if q.id not in in_index]
    traffic = rng.sample(rest, min(args.traffic, len(rest)))
    if args.test_limit:
        test = random.Random(args.seed + 3).sample(test, min(args.test_limit, len(test)))
    new_test = [q for q in test if q.label in new]
    write_jsonl(work / "examples.jsonl", examples)
    write_jsonl(work / "traffic.jsonl", traffic)
    write_jsonl(work / "test.jsonl", test)
    write_jsonl(work / "test-new.jsonl", new_test)
    idx = work / "idx"
    frontdesk("index", "build", str(d / "workflows.jsonl"), "--examples",
              str(work / "examples.jsonl"), "--out", str(idx))  # fmt: skip
    say(f"index: 77 workflows, {len(examples)} examples, {len(new)} workflows without any")

    counts = serve_traffic(idx, traffic, work, theta, args.explore_top_k, args.explore_rate,
                           args.seed)  # fmt: skip
    say(f"served {counts['served']}: the right workflow shown {counts['gold_shown']}, "
        f"taken {counts['accepted']} (by shown position {counts['accepted_at']})")  # fmt: skip
    logs = work / "logs"
    joined = frontdesk("logs", "join", str(work / "dlog"), "--out", str(logs))
    say(f"joined: {joined['suggest']}")

    results: dict[str, Any] = {
        "setup": {
            "traffic": len(traffic), "index_examples": len(examples),
            "new_workflows": sorted(new), "test": len(test), "test_new_workflows": len(new_test),
            "theta": theta, "explore_top_k": args.explore_top_k,
            "explore_rate": args.explore_rate, "seed": args.seed, "served": counts,
        },
    }  # fmt: skip
    test_f, new_f = str(work / "test.jsonl"), str(work / "test-new.jsonl")
    rows: list[tuple[str, str, float, float]] = []
    base = frontdesk("eval", str(idx), test_f)
    base_new = frontdesk("eval", str(idx), new_f)
    rows.append(("(a)", "index alone (no ranker)", top1(base), top1(base_new)))
    runs = [("ranker --feedback, position-corrected", "rk-ips", []),
            ("ranker --feedback --no-position-correction", "rk-plain",
             ["--no-position-correction"])]  # fmt: skip
    for name, folder, extra in runs:
        trained = frontdesk("train", "ranker", str(idx), "--feedback", str(logs), *extra,
                            "--out", str(work / folder))  # fmt: skip
        results[f"train_{folder}"] = trained["training"]
        say(f"{name}: {json.dumps(trained['training']['feedback']['position_bias'])}")
        r = frontdesk("eval", str(idx), test_f, "--ranker", str(work / folder))
        rn = frontdesk("eval", str(idx), new_f, "--ranker", str(work / folder))
        rows.append(("(a)", name, top1(r), top1(rn)))
    if not args.skip_reference:
        trained = frontdesk("train", "ranker", str(idx), str(work / "traffic.jsonl"),
                            "--out", str(work / "rk-true"))  # fmt: skip
        results["train_rk-true"] = trained["training"]
        r = frontdesk("eval", str(idx), test_f, "--ranker", str(work / "rk-true"))
        rn = frontdesk("eval", str(idx), new_f, "--ranker", str(work / "rk-true"))
        rows.append(("(a)", "reference: ranker on every traffic question, true labels",
                     top1(r), top1(rn)))  # fmt: skip

    added_idx = work / "idx-fb"
    shutil.copytree(idx, added_idx)
    added = frontdesk("index", "add", str(added_idx), "--from-feedback", str(logs))
    results["index_add"] = added
    per_new = {w: n for w, n in added["examples_per_workflow"].items() if w in new}
    say(f"index add --from-feedback: {added['examples_added']} examples added "
        f"({sum(per_new.values())} to the new workflows), {added['example_duplicates']} "
        f"duplicates, skipped {added['feedback']['skipped']}")  # fmt: skip
    a = frontdesk("eval", str(added_idx), test_f)
    an = frontdesk("eval", str(added_idx), new_f)
    rows.append(("(b)", "index add --from-feedback (no ranker)", top1(a), top1(an)))

    results["rows"] = [
        {"part": p, "system": s, "top1_test": t, "top1_test_new_workflows": n}
        for p, s, t, n in rows
    ]
    results["seconds"] = round(time.perf_counter() - t0, 1)
    print(
        f"\nBANKING77 test ({len(test)} questions; {len(new_test)} of the {len(new)} new "
        f"workflows); traffic {len(traffic)} served, {counts['accepted']} taken by the agent"
    )
    print(f"{'':4} {'system':60} {'top-1 test':>10} {'top-1 new wf':>12}")
    for p, s, t, n in rows:
        print(f"{p:4} {s:60} {t:>10.2%} {n:>12.2%}")
    print(f"({results['seconds']:.0f}s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
