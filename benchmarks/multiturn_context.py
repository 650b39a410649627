"""Which turns should make a conversation's query? Top-1 per context mode, no ranker.

For BANKING77 and CLINC150 (in-scope rows), the README Quickstart's index
(workflows + train questions as examples) is built once; TEST phrasings are
turned into single-turn, distractor_first, vague_follow_up and topic_shift
conversations (``frontdesk datasets multiturn``'s generator, seed 0, the
"eval" phrase pools) and answered by the Suggester with
``FRONTDESK_CONTEXT=latest`` (the latest user text alone: context weight 0,
BM25 on it alone), ``mixed`` (the latest text and the earlier turns) and
``gated`` (the default: the learned context gate, ``encoding/context_gate.py``).

With ``--fit-gate``, the gate is first fitted and tuned without touching
test phrasings: 20% of each intent's train questions (``carve_validation``,
seeded) are held out of a *tuning* index built from the rest; half of them
become fitting conversations (the "train" phrase pools), half validation ones
(the "val" pools). The fitted
gate's thresholds are chosen on validation so that no (dataset, kind) is below
latest-only; it is written to ``src/frontdesk/data/context_gate.jsonl``. The
"own thresholds" column uses the same weights with thresholds tuned on that
dataset's validation alone (``WORK/gate-NAME.jsonl``): what tuning the gate
per catalog buys.

Every text is encoded once: vectors are kept in ``WORK/vectors.*`` and reused
by every index build and query. ``--description-only`` adds the index of
workflow texts alone (no examples). ``--ranker`` also answers with a ranker on
the examples index, each context mode with its own (a ranker is tied to the
mode it was trained with): ``train_ranker`` on the train questions, 2 folds,
as the README Quickstart, trained once into ``WORK/NAME/ranker-MODE`` (delete
those after changing the code or the gate: they are reused as found).

    python benchmarks/multiturn_context.py --datasets ../shared/datasets --work runs/mtc \
        [--fit-gate] [--only banking77] [--description-only] [--ranker]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from frontdesk.config import Settings
from frontdesk.datasets import IMPORTERS
from frontdesk.datasets.multiturn import make_multiturn
from frontdesk.datasets.splits import carve_validation
from frontdesk.encoding import ContextEncoder
from frontdesk.encoding.context_gate import (
    ContextGate,
    accuracy,
    fit_gate,
    gate_inputs,
    tune_thresholds,
)
from frontdesk.index import WorkflowIndex
from frontdesk.index.builder import build_index
from frontdesk.loaders import load_catalog, load_queries
from frontdesk.ranking.training.pipeline import train_ranker
from frontdesk.schema import LabelledQuery
from frontdesk.suggester import Suggester

KINDS = ("distractor_first", "vague_follow_up", "topic_shift")
CONDITIONS = ("single_turn", *KINDS)
MODES = ("latest", "mixed", "gated")
GATE_FILE = Path(__file__).resolve().parents[1] / "src/frontdesk/data/context_gate.jsonl"
HELD_OUT = 0.2  # of each intent's train questions, held out of the tuning index


class CachedEncoder(ContextEncoder):
    """A ContextEncoder that encodes each distinct text once per work folder (kept on disk)."""

    def __init__(self, work: Path) -> None:
        super().__init__()
        self.store = work / "vectors"
        self.rows: dict[str, int] = {}
        self.matrix = np.zeros((0, 384), np.float32)
        if self.store.with_suffix(".json").is_file():
            texts = json.loads(self.store.with_suffix(".json").read_text())
            self.matrix = np.load(self.store.with_suffix(".npy"))
            self.rows = {t: i for i, t in enumerate(texts)}

    def encode(self, texts: Sequence[str], progress=None) -> np.ndarray:  # noqa: ANN001
        missing = sorted({t for t in texts if t not in self.rows})
        if missing:
            fresh = super().encode(missing)
            self.rows.update({t: len(self.rows) + i for i, t in enumerate(missing)})
            self.matrix = np.concatenate([self.matrix, fresh]) if len(self.matrix) else fresh
            self.save()
        return self.matrix[[self.rows[t] for t in texts]] if texts else self.matrix[:0]

    def save(self) -> None:
        np.save(self.store.with_suffix(".npy"), self.matrix)
        self.store.with_suffix(".json").write_text(json.dumps(list(self.rows)))


def conversation_sets(
    rows: list[LabelledQuery], phrases: str, distractors: list[str]
) -> dict[str, list[LabelledQuery]]:
    """Single-turn rows and the three multi-turn kinds made from them (seed 0)."""
    sets = {"single_turn": rows}
    for kind in KINDS:
        sets[kind] = make_multiturn(rows, kind, seed=0, distractors=distractors, phrases=phrases)
    return sets


def prepare(name: str, src: Path, work: Path, encoder: CachedEncoder, zero: bool) -> dict:
    """Import, build the indexes (full, tuning, optionally description-only), make the sets."""
    d = work / name
    if not (d / "workflows.jsonl").is_file():
        IMPORTERS[name](src, d)
    workflows = load_catalog(d / "workflows.jsonl")
    train = [q for q in load_queries(d / "train.jsonl") if q.label is not None]
    test_all = load_queries(d / "test.jsonl")
    test = [q for q in test_all if q.label is not None]
    oos = [q.text for q in test_all if q.label is None]
    rest, held = carve_validation(train, HELD_OUT, seed=0)
    fit_rows, val_rows = carve_validation(held, 0.5, seed=1)
    indexes = {"examples": (d / "idx", train), "tuning": (d / "tune-idx", rest)}
    if zero:
        indexes["description-only"] = (d / "zero-idx", [])
    for path, examples in indexes.values():
        if not (path / "manifest.json").is_file():
            t0 = time.perf_counter()
            build_index(workflows, path, examples=examples, encoder=encoder)
            print(f"built {path} in {time.perf_counter() - t0:.0f}s", flush=True)
    return {
        "train": train,
        "indexes": {k: v[0] for k, v in indexes.items()},
        "test": conversation_sets(test, "eval", oos),
        "fit": conversation_sets(fit_rows, "train", []),
        "val": conversation_sets(val_rows, "val", []),
    }


def variant_correct(suggester: Suggester, rows: list[LabelledQuery]) -> tuple:
    """The gate's inputs for these rows and whether each variant's top-1 is the label."""
    pos = {w: i for i, w in enumerate(suggester.index.workflow_ids)}
    convs = list(rows)
    encoded = suggester.encode(convs)
    assert encoded is not None and suggester.hybrid is not None
    inputs = gate_inputs(suggester.hybrid, encoded, convs, suggester.index.tokenizer)
    labels = np.array([pos[q.label] for q in rows])
    return inputs, inputs.top == labels[:, None]


def top1(suggester: Suggester, rows: list[LabelledQuery]) -> float:
    """Top-1 accuracy of the Suggester itself (its configured context mode)."""
    res = suggester.suggest_many(rows, k=1)
    return float(
        np.mean(
            [len(r) > 0 and r[0].workflow_id == q.label for r, q in zip(res, rows, strict=True)]
        )
    )


def fit(prepared: dict[str, dict], encoder: CachedEncoder, work: Path) -> ContextGate:
    """Fit on the tuning indexes' fitting conversations; thresholds from validation ones.

    Besides the joint gate (returned, to be bundled), writes ``WORK/gate-NAME.jsonl``
    per dataset: the same weights, thresholds tuned on that dataset's validation alone.
    """
    parts: dict[str, list] = {"fit": [], "val": []}
    groups = []
    for name, p in prepared.items():
        s = Suggester(
            WorkflowIndex.load(p["indexes"]["tuning"]),
            encoder=encoder,
            settings=Settings.from_env(context="mixed"),
        )
        for split in ("fit", "val"):
            for kind in KINDS:
                parts[split].append(variant_correct(s, p[split][kind]))
                if split == "val":
                    groups += [f"{name}:{kind}"] * len(p[split][kind])

    def stack(items: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.concatenate([i.features for i, _ in items]),
            np.concatenate([c for _, c in items]),
            np.concatenate([i.available for i, _ in items]),
        )

    fx, fc, fa = stack(parts["fit"])
    vx, vc, va = stack(parts["val"])
    gate = fit_gate(fx, fc, fa)
    g = np.array(groups)
    own = {}
    for name in prepared:
        m = np.char.startswith(g, f"{name}:")
        own[name] = tune_thresholds(gate, vx[m], vc[m], va[m], g[m])
    gate.thresholds = tune_thresholds(gate, vx, vc, va, g)
    chosen = gate.choose(vx, va)
    print(
        "\nvalidation (tuning index, val phrasings), top-1 %: "
        "latest / mixed / earlier / gated / gated, own thresholds"
    )
    for grp in sorted(set(groups)):
        m = g == grp
        mixed = np.where(va[m, 1], vc[m, 1], vc[m, 0])
        mine = gate.choose(vx[m], va[m], own[grp.split(":")[0]])
        print(
            f"  {grp:28s} {100 * vc[m, 0].mean():5.1f} {100 * mixed.mean():5.1f} "
            f"{100 * vc[m, 2].mean():5.1f} {100 * accuracy(chosen[m], vc[m]):5.1f} "
            f"{100 * accuracy(mine, vc[m]):5.1f}"
        )
    print(f"  thresholds (mixed, earlier): joint {gate.thresholds.tolist()}; ", end="")
    print("; ".join(f"{k} {v.tolist()}" for k, v in own.items()))
    for name, t in own.items():
        ContextGate(gate.mean, gate.scale, gate.weights, gate.bias, t).save(
            work / f"gate-{name}.jsonl"
        )
    gate.lineage = {
        "fit": "BANKING77 + CLINC150 train questions held out of a tuning index, train phrases",
        "val": "another held-out part of train, val phrases; thresholds keep every kind >= latest",
        "fit_rows": int(len(fx)),
        "val_rows": int(len(vx)),
        "datasets": sorted(prepared),
    }
    return gate


def trained_ranker(
    idx: Path, train: list[LabelledQuery], encoder: CachedEncoder, settings: Settings
) -> Path:
    """The index's ranker for this context mode (a ranker is tied to the mode it was
    trained with): trained once on the train questions, 2 folds, then reused."""
    out = idx.parent / f"ranker-{settings.context}"
    if not (out / "manifest.json").is_file():
        t0 = time.perf_counter()
        train_ranker(idx, train, out, folds=2, encoder=encoder, settings=settings)
        print(f"trained {out} in {time.perf_counter() - t0:.0f}s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("runs/multiturn_context"))
    ap.add_argument("--only", choices=("banking77", "clinc150"))
    ap.add_argument("--fit-gate", action="store_true")
    ap.add_argument("--gate-out", type=Path, default=GATE_FILE)
    ap.add_argument("--description-only", action="store_true")
    ap.add_argument("--ranker", action="store_true", help="also each mode with a ranker")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    encoder = CachedEncoder(args.work)
    names = [args.only] if args.only else ["banking77", "clinc150"]
    prepared = {
        n: prepare(n, args.datasets / n, args.work, encoder, args.description_only) for n in names
    }
    gate_path: Path | None = args.gate_out if args.gate_out.is_file() else None
    if args.fit_gate:
        gate = fit(prepared, encoder, args.work)
        gate.save(args.gate_out)
        gate_path = args.gate_out
        print(f"  wrote {args.gate_out}")
    modes = MODES if gate_path else MODES[:2]
    print("\ntest phrasings, top-1 % (no ranker): " + " / ".join(modes), end="")
    print(" / gated, own thresholds" if gate_path else "")
    results: dict[str, dict] = {}
    for name, p in prepared.items():
        for label, idx in p["indexes"].items():
            if label == "tuning":
                continue
            index = WorkflowIndex.load(idx)
            sugg = {
                m: Suggester(
                    index,
                    encoder=encoder,
                    settings=Settings.from_env(
                        context=m, context_model=str(gate_path) if gate_path else None
                    ),
                )
                for m in modes
            }
            own = args.work / f"gate-{name}.jsonl"
            if gate_path and own.is_file():
                sugg["own"] = Suggester(
                    index,
                    encoder=encoder,
                    settings=Settings.from_env(context="gated", context_model=str(own)),
                )
            if args.ranker and label == "examples":
                for m in modes:
                    settings = Settings.from_env(
                        context=m, context_model=str(gate_path) if gate_path else None
                    )
                    s = Suggester(index, encoder=encoder, settings=settings)
                    s.attach_ranker(trained_ranker(idx, p["train"], encoder, settings))
                    sugg[f"{m}+ranker"] = s
            print(f"  {name} {label}: " + " / ".join(sugg), flush=True)
            for cond in CONDITIONS:
                rows = p["test"][cond]
                accs = {m: 100 * top1(s, rows) for m, s in sugg.items()}
                results[f"{name}/{label}/{cond}"] = {"rows": len(rows), **accs}
                print(
                    f"  {name:9s} {label:16s} {cond:16s} n={len(rows):5d}  "
                    + " ".join(f"{a:5.1f}" for a in accs.values()),
                    flush=True,
                )
    (args.work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
