"""Quality with few or no examples per workflow: 0, 1, 5, 10 or all train questions.

For BANKING77 and CLINC150, each workflow keeps ``N`` of its train questions
(``frontdesk.datasets.sample_shots``: seeded, nested across ``N`` for one
seed; out-of-scope rows all kept), the index is built from the workflows
plus those examples, and the held-out questions are answered by the
project's own path (``build_index``, ``Suggester``, ``evaluate_suggester`` —
what ``frontdesk index build`` and ``frontdesk eval`` run, less the context gate,
which single questions never use):

- **index**: hybrid retrieval alone, top-1 over the labelled rows;
- **fine-tuned** (``--finetune EPOCHS``): the encoder is first fine-tuned on
  the sampled examples alone (``finetune_encoder``, what ``frontdesk train
  encoder`` runs), one model per (dataset, examples, seed), and the index is
  built and searched with it;
- **ranker**: ``train_ranker`` on the few-shot train rows alone (its
  validation carved from them, features out of fold: it is never judged on a
  question it learned from), then top-1, and for CLINC150 in-scope accuracy
  and out-of-scope recall at the threshold the ranker chose on that carved
  validation. Not at 0 shots (nothing to learn from); at 1 and 5 the ranker
  refuses (its carved validation needs 6 rows of a workflow) and the error is
  recorded.

``--split test`` samples from the whole train split and reports test
(report once per change); ``--split val`` samples from train less a
validation part carved from it (``carve_validation``, 10 %, seed 0) and
reports that part: what design choices are tuned on. 0 shots and all
examples do not depend on the seed (the index runs once; the ranker with
``--full-ranker-seeds``).

Every distinct text is encoded once per model: vectors live in
``WORK/vectors-<model sha>.npy`` + ``.json`` and are served through
``encoding.cache.TextVectorCache``, so a rerun encodes nothing new.
Results go to ``WORK/results-<split>-<tag>.json`` as they come; a rerun with
the same tag skips conditions already there (``--fresh`` recomputes).

    python benchmarks/few_shot.py --datasets ../shared/datasets --work runs/few_shot \\
        [--split val|test] [--only banking77] [--shots 0,1,5,10,full] [--seeds 0,1,2] \\
        [--no-ranker] [--full-ranker-seeds 0] [--model FOLDER] [--finetune EPOCHS] \\
        [--finetune-lr LR] [--tag NAME] [--compare OTHER-RESULTS.json]

``--compare`` prints another run's table (e.g. the code before a change, run
with its own ``--tag``) beside this one's, index top-1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from frontdesk.config import Settings
from frontdesk.datasets import IMPORTERS, carve_validation, sample_shots
from frontdesk.encoding import ContextEncoder
from frontdesk.encoding.cache import TextVectorCache
from frontdesk.encoding.finetune import finetune_encoder
from frontdesk.errors import FrontdeskError
from frontdesk.eval import evaluate_suggester
from frontdesk.index import WorkflowIndex
from frontdesk.index.builder import build_index
from frontdesk.loaders import load_catalog, load_queries
from frontdesk.ranking.training.pipeline import train_ranker
from frontdesk.schema import LabelledQuery, Workflow
from frontdesk.suggester import Suggester

DATASETS = ("banking77", "clinc150")
FULL = "full"
VAL_FRACTION = 0.1  # the project's carved validation (ranker training uses the same)


class CachedEncoder(ContextEncoder):
    """A ContextEncoder whose vectors are kept per model in the work folder.

    Lookups go through ``TextVectorCache``; texts it has not seen are encoded in
    one pass and appended to ``vectors-<sha>.npy``/``.json`` (no pickle).
    """

    def __init__(self, work: Path, model: str | None = None) -> None:
        super().__init__(model)
        self.store = work / f"vectors-{self.fingerprint[:12]}"
        self.cache = TextVectorCache(maxsize=10_000_000)
        self.texts: list[str] = []
        self.matrix: np.ndarray | None = None
        self.unsaved: list[np.ndarray] = []
        npy, names = self.store.with_suffix(".npy"), self.store.with_suffix(".json")
        if npy.is_file() and names.is_file():
            texts = json.loads(names.read_text(encoding="utf-8"))
            matrix = np.load(npy, allow_pickle=False)
            if len(texts) == len(matrix):  # else a store from an interrupted save: start anew
                self.texts, self.matrix = texts, matrix
                row = {t: i for i, t in enumerate(texts)}
                self.cache.encode(texts, lambda miss: matrix[[row[t] for t in miss]])

    def encode(self, texts: Sequence[str], progress: Any = None) -> np.ndarray:
        def fresh(missing: list[str]) -> np.ndarray:
            vectors = ContextEncoder.encode(self, missing, progress=progress)
            self.texts.extend(missing)
            self.unsaved.append(vectors)
            return vectors

        out = self.cache.encode(list(texts), fresh)
        if self.unsaved:
            self.save()
        return out if out is not None else ContextEncoder.encode(self, [])

    def save(self) -> None:
        parts = ([self.matrix] if self.matrix is not None else []) + self.unsaved
        self.matrix = np.concatenate(parts).astype(np.float32)
        self.unsaved = []
        npy, names = self.store.with_suffix(".npy"), self.store.with_suffix(".json")
        with open(npy.with_suffix(".npy.tmp"), "wb") as fh:
            np.save(fh, self.matrix, allow_pickle=False)
        names.with_suffix(".json.tmp").write_text(json.dumps(self.texts), encoding="utf-8")
        os.replace(npy.with_suffix(".npy.tmp"), npy)
        os.replace(names.with_suffix(".json.tmp"), names)


def prepare(name: str, src: Path, work: Path, split: str) -> dict[str, Any]:
    """The catalog, the pool examples are drawn from, and the rows that are scored."""
    folder = work / "data" / name
    IMPORTERS[name](src, folder)  # every run: the bundled workflow texts may have changed
    workflows = load_catalog(folder / "workflows.jsonl")
    train = load_queries(folder / "train.jsonl")
    if split == "val":
        pool, scored = carve_validation(train, VAL_FRACTION, seed=0)
    else:
        pool, scored = train, load_queries(folder / "test.jsonl")
    return {"workflows": workflows, "pool": pool, "scored": scored}


def condition(
    name: str,
    data: dict[str, Any],
    shots: int | None,
    seed: int,
    encoder: CachedEncoder,
    work: Path,
    with_ranker: bool,
) -> dict[str, Any]:
    """Build the index for one (shots, seed), evaluate it, optionally train and judge a ranker."""
    settings = Settings.from_env()
    workflows: list[Workflow] = data["workflows"]
    examples = data["pool"] if shots is None else sample_shots(data["pool"], shots, seed)
    labelled = [q for q in examples if q.label is not None]
    scored: list[LabelledQuery] = data["scored"]
    idx = work / "indexes" / f"{name}-{shots if shots is not None else FULL}-{seed}"
    t0 = time.perf_counter()
    build_index(workflows, idx, examples=labelled, encoder=encoder, settings=settings)
    built = time.perf_counter() - t0
    suggester = Suggester(WorkflowIndex.load(idx), encoder=encoder, settings=settings)
    t0 = time.perf_counter()
    report = evaluate_suggester(suggester, scored)
    out: dict[str, Any] = {
        "examples": len(labelled),
        "prototype_weight": suggester.index.prototype_weight,
        "build_s": round(built, 1),
        "eval_s": round(time.perf_counter() - t0, 1),
        "index": {k: report[k] for k in ("top1", "recall@5", "mrr@10", "n")},
    }
    if not (with_ranker and labelled):
        return out
    rk = work / "rankers" / idx.name
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train_ranker(idx, examples, rk, seed=seed, encoder=encoder, settings=settings)
    except FrontdeskError as exc:
        out["ranker"] = {"error": str(exc)}
        return out
    trained = time.perf_counter() - t0
    suggester.attach_ranker(rk)
    report = evaluate_suggester(suggester, scored)
    keys = ("top1", "recall@5", "mrr@10", "n", "in_scope_accuracy", "oos_recall", "threshold")
    out["ranker"] = {k: report[k] for k in keys if k in report}
    out["ranker"]["train_s"] = round(trained, 1)
    out["ranker"]["warnings"] = sorted({str(w.message)[:200] for w in caught})
    return out


def finetuned(
    name: str, data: dict[str, Any], shots: int | None, seed: int, args: Any, work: Path
) -> tuple[CachedEncoder, dict[str, Any]]:
    """The encoder fine-tuned on one sample's examples (``--finetune`` epochs), kept in
    ``WORK/encoders`` so a rerun reuses it, and its provenance."""
    base = ContextEncoder(args.model).fingerprint[:12]  # what was fine-tuned, and how
    folder = (
        work
        / "encoders"
        / (
            f"{name}-{shots if shots is not None else FULL}-{seed}-{base}"
            f"-e{args.finetune}-lr{args.finetune_lr:g}"
        )
    )
    provenance = folder / "frontdesk-finetune.json"
    if not provenance.is_file():
        examples = data["pool"] if shots is None else sample_shots(data["pool"], shots, seed)
        finetune_encoder(
            examples, data["workflows"], folder, base=args.model, epochs=args.finetune,
            learning_rate=args.finetune_lr, seed=seed,
        )  # fmt: skip
    info = json.loads(provenance.read_text())
    keep = ("epochs", "learning_rate", "rows", "batches", "seconds", "loss_first", "loss_last")
    return CachedEncoder(args.work, str(folder)), {k: info[k] for k in keep}


def same_finetune(saved: dict[str, Any], args: Any, shots: int | None) -> bool:
    """Whether a saved condition was measured with the fine-tuning this run asks for (none
    at 0 examples), so that a rerun under the same ``--tag`` never reuses another's."""
    want = (
        {"epochs": args.finetune, "learning_rate": args.finetune_lr}
        if args.finetune and shots != 0
        else None
    )
    got = saved.get("finetune")
    have = {k: got.get(k) for k in ("epochs", "learning_rate")} if got else None
    return have == want


def mean_sd(values: Sequence[float]) -> str:
    """``mean ± sd`` in percent (sd over seeds; none for a single value)."""
    if not values:
        return "–"
    m = 100 * statistics.fmean(values)
    if len(values) == 1:
        return f"{m:.2f}"
    return f"{m:.2f} ± {100 * statistics.stdev(values):.2f}"


def table(results: dict[str, Any], names: Sequence[str], shots: Sequence[str]) -> str:
    """Markdown: one row per (dataset, shots), mean ± sd over the seeds measured."""
    lines = [
        "| dataset | examples per workflow | seeds | index top-1 | ranker top-1 "
        "| ranker in-scope accuracy | ranker OOS recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        for n in shots:
            runs = [r for k, r in results.items() if k.startswith(f"{name}/{n}/")]
            if not runs:
                continue
            ranked = [r["ranker"] for r in runs if "ranker" in r and "error" not in r["ranker"]]

            def col(key: str, rows: list[dict[str, Any]] = ranked) -> str:
                return mean_sd([r[key] for r in rows if key in r])

            lines.append(
                f"| {name} | {n} | {len(runs)} | {mean_sd([r['index']['top1'] for r in runs])} "
                f"| {col('top1')} | {col('in_scope_accuracy')} | {col('oos_recall')} |"
            )
    return "\n".join(lines)


def side_by_side(
    before: dict[str, Any], after: dict[str, Any], names: Sequence[str], shots: Sequence[str]
) -> str:
    """Markdown: index top-1 (mean ± sd over seeds) of two runs, and the change of the means."""
    lines = [
        "| dataset | examples per workflow | before | after | change |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        for n in shots:
            a, b = (
                [r["index"]["top1"] for k, r in res.items() if k.startswith(f"{name}/{n}/")]
                for res in (before, after)
            )
            if a and b:
                delta = 100 * (statistics.fmean(b) - statistics.fmean(a))
                lines.append(f"| {name} | {n} | {mean_sd(a)} | {mean_sd(b)} | {delta:+.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--work", type=Path, default=Path("runs/few_shot"))
    ap.add_argument("--split", choices=("val", "test"), default="test")
    ap.add_argument("--only", choices=DATASETS)
    ap.add_argument("--shots", default="0,1,5,10,full")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--no-ranker", action="store_true")
    ap.add_argument("--full-ranker-seeds", default="", help="seeds for the all-examples ranker")
    ap.add_argument("--model", help="another sentence-transformers or fast-encoder folder")
    ap.add_argument(
        "--finetune", type=int, default=0, metavar="EPOCHS",
        help="fine-tune the encoder on each sample's examples first (EPOCHS epochs)",
    )  # fmt: skip
    ap.add_argument("--finetune-lr", type=float, default=2e-5, help="its learning rate")
    ap.add_argument("--tag", default="default", help="names the results file")
    ap.add_argument("--fresh", action="store_true", help="recompute conditions already saved")
    ap.add_argument("--compare", type=Path, help="another results JSON to print beside this one")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    encoder = CachedEncoder(args.work, args.model)
    names = [args.only] if args.only else list(DATASETS)
    shots = [s.strip() for s in args.shots.split(",") if s.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    full_ranker = {int(s) for s in args.full_ranker_seeds.split(",") if s.strip()}
    results_file = args.work / f"results-{args.split}-{args.tag}.json"
    results: dict[str, Any] = {}
    if results_file.is_file() and not args.fresh:
        results = json.loads(results_file.read_text())
    for name in names:
        data = prepare(name, args.datasets / name, args.work, args.split)
        for n in shots:
            count = None if n == FULL else int(n)
            if count == 0:  # no sample, no rows to train on: once, index only
                runs = [(seeds[0], False)]
            elif count is None:  # every example: the seed matters to the ranker alone
                runs = [(s, s in full_ranker) for s in sorted({seeds[0], *full_ranker})]
            else:
                runs = [(s, True) for s in seeds]
            for seed, ranker in runs:
                key = f"{name}/{n}/{seed}"
                if key in results and same_finetune(results[key], args, count):
                    continue
                t0 = time.perf_counter()
                tuned = (
                    finetuned(name, data, count, seed, args, args.work / args.split)
                    if args.finetune and count != 0
                    else None
                )
                results[key] = condition(
                    name,
                    data,
                    count,
                    seed,
                    tuned[0] if tuned else encoder,
                    args.work / args.split,
                    ranker and not args.no_ranker,
                )
                r = results[key]
                if tuned:
                    r["finetune"] = tuned[1]
                extra = ""
                if "ranker" in r:
                    rk = r["ranker"]
                    extra = (
                        f", ranker {rk['error']}"
                        if "error" in rk
                        else f", ranker {100 * rk['top1']:.2f}"
                        + (
                            f" (OOS recall {100 * rk['oos_recall']:.1f})"
                            if "oos_recall" in rk
                            else ""
                        )
                    )
                print(
                    f"{key}: index {100 * r['index']['top1']:.2f}{extra} "
                    f"[{time.perf_counter() - t0:.0f}s]",
                    file=sys.stderr,
                    flush=True,
                )
                results_file.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\n{args.split} split, {results_file}")
    print(table(results, names, shots))
    if args.compare:
        print(f"\nindex top-1: {args.compare} -> {results_file}")
        print(side_by_side(json.loads(args.compare.read_text()), results, names, shots))


if __name__ == "__main__":
    main()
