"""Catalog scale benchmark (issue 7): 10k, 100k and 1M workflows on this machine.

Catalog: the 77 BANKING77 workflows (the project's titles and descriptions,
with the 10,003 training questions as examples) plus synthetic workflows up
to the size asked for. A synthetic workflow's title is a real CLINC150
question and its description 1-3 more (seeded), so BM25 and the encoder see
real tokens and real sentence geometry; CLINC150 texts only, so a BANKING77
question's right answer stays one of the 77.

Vectors (say which, the issue asks): ``--vectors composed`` (default) encodes
every distinct CLINC150 question once with the encoder and gives a synthetic
workflow the normalised mean of its questions' vectors; the BANKING77 texts
and all queries go through the encoder itself. ``--vectors encoded`` runs the
encoder over every document (hours for MiniLM at 1M on two cores; fine with
the static encoder). Encoder throughput is measured separately on 2,000
synthetic documents, so build time is reported with and without encoding.

Per size: build seconds (index only, and with encoding at the measured
rate), documents/s, size on disk by part, then in a fresh process: load
seconds, resident memory (index alone; with the encoder), single-query
``suggest`` p50/p99 for dense, BM25, hybrid and hybrid + ranker on
pre-encoded queries (so, excluding the encoder), and end to end (encoder
included, no cache hits: every query text distinct). Dense recall@10 vs
exact: FAISS's top-10 documents for 500 real encoded BANKING77 test
questions against exact search over the same float vectors. The ranker is
trained once, on the smallest catalog (3 folds, 3,000 training questions),
and attached to the larger ones with the same retrieval settings (its
latency, not its accuracy, is what is measured there).

    python benchmarks/scale.py catalog --datasets ../shared/datasets \\
        [--sizes 10000,100000,1000000] [--model ENCODER_DIR] [--work /tmp/frontdesk-scale]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from frontdesk import ContextEncoder, Settings, Suggester
from frontdesk.datasets.importers import import_banking77
from frontdesk.index import WorkflowIndex, build_index
from frontdesk.index.builder import collect_documents
from frontdesk.index.dense import exact_neighbours, read_dense, recall_at
from frontdesk.loaders import load_catalog, load_queries
from frontdesk.schema import Conversation, Workflow

TAGS = ["payments", "account", "travel", "work", "home", "auto", "credit", "smalltalk"]


def clinc_texts(datasets: Path) -> list[str]:
    data = json.loads((datasets / "clinc150" / "data_full.json").read_text())
    seen = dict.fromkeys(t for split in data.values() for t, _ in split)
    return list(seen)


def synthetic(
    texts: list[str], n: int, seed: int = 0
) -> tuple[list[Workflow], dict[str, list[int]]]:
    """``n`` workflows composed of CLINC150 questions, and each one's document -> question ids."""
    rng = random.Random(seed)
    wfs, parts_of = [], {}
    for i in range(n):
        parts = rng.sample(range(len(texts)), rng.randint(2, 4))
        wf = Workflow(
            id=f"syn-{i:07d}",
            title=texts[parts[0]],
            description=". ".join(texts[p] for p in parts[1:]),
            tags=[rng.choice(TAGS)],
        )
        wfs.append(wf)
        parts_of[wf.document()] = parts
    return wfs, parts_of


class ComposedEncoder:
    """The real encoder for real texts; synthetic documents get their questions' mean vector."""

    def __init__(self, inner: ContextEncoder, part_vectors: np.ndarray, texts: list[str]) -> None:
        self.inner = inner
        self.part_vectors = part_vectors
        self.part_index = {t: i for i, t in enumerate(texts)}
        self.parts_of: dict[str, list[int]] = {}
        self.real_seconds = 0.0
        self.last: np.ndarray | None = None
        self.seen: dict[str, np.ndarray] = {}  # real texts already encoded (several kinds per size)

    name = property(lambda self: self.inner.name)
    fingerprint = property(lambda self: self.inner.fingerprint)
    path = property(lambda self: self.inner.path)

    def encode(self, texts, progress=None):  # type: ignore[no-untyped-def]
        out = np.zeros((len(texts), self.part_vectors.shape[1]), dtype=np.float32)
        real = []
        for i, t in enumerate(texts):
            if t in self.parts_of:
                out[i] = self.part_vectors[self.parts_of[t]].mean(axis=0)
            elif t in self.part_index:
                out[i] = self.part_vectors[self.part_index[t]]
            elif t in self.seen:
                out[i] = self.seen[t]
            else:
                real.append(i)
        if real:
            t0 = time.perf_counter()
            out[real] = self.inner.encode([texts[i] for i in real])
            self.real_seconds += time.perf_counter() - t0
            self.seen.update((texts[i], out[i].copy()) for i in real)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        self.last = out
        return out


def disk_usage(root: Path) -> dict[str, float]:
    sizes: dict[str, float] = {}
    for p in root.rglob("*"):
        if p.is_file():
            part = p.relative_to(root).parts[0]
            sizes[part] = sizes.get(part, 0) + p.stat().st_size / 1e6
    sizes["total"] = sum(sizes.values())
    return {k: round(v, 1) for k, v in sizes.items()}


def catalog_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="scale.py catalog")
    ap.add_argument("--datasets", type=Path, required=True)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--model", default=None, help="encoder folder (default: bundled MiniLM)")
    ap.add_argument("--vectors", choices=["composed", "encoded"], default="composed")
    ap.add_argument(
        "--kinds", default="auto", help="dense index kinds to build per size, e.g. auto,hnsw"
    )
    ap.add_argument("--work", type=Path, default=Path("/tmp/frontdesk-scale"))
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    ap.add_argument(
        "--serve-only",
        type=Path,
        default=None,
        help="rows JSON of an earlier run: re-measure serving on its indexes in --work, no build",
    )
    args = ap.parse_args(argv)
    work = args.work
    if args.serve_only:
        rows = json.loads(args.serve_only.read_text())
        for row in rows:
            root = work / f"index-{row['workflows']}-{row.get('requested', 'auto')}"
            weight = row.get("prototype_weight")
            if weight is None:
                weight = json.loads((work / "ranker" / "ranker.json").read_text())["retrieval"][
                    "prototype_weight"
                ]
            row.update(serve(root, work / "queries.jsonl", work / "ranker", weight, args.model))
            if row["vectors"] == "composed":  # distinct texts at the measured rate
                texts_encoded = row.get("distinct_texts", row["documents"] + row["workflows"])
                row["build_with_encoding_s"] = round(
                    row["build_index_s"] + texts_encoded / row["encode_docs_per_s"], 1
                )
            print(json.dumps(row), file=sys.stderr, flush=True)
        if args.out:
            args.out.write_text(json.dumps(rows, indent=2))
        print_tables(rows)
        return
    work.mkdir(parents=True, exist_ok=True)
    import_banking77(args.datasets / "banking77", work / "b77")
    b77 = load_catalog(work / "b77" / "workflows.jsonl")
    train = load_queries(work / "b77" / "train.jsonl")
    test = load_queries(work / "b77" / "test.jsonl")
    queries = random.Random(1).sample(test, args.queries)
    qfile = work / "queries.jsonl"
    qfile.write_text("".join(q.model_dump_json() + "\n" for q in queries))

    encoder = ContextEncoder(args.model)
    texts = clinc_texts(args.datasets)
    sample_wfs, _ = synthetic(texts, 2000, seed=99)
    sample = [wf.document() for wf in sample_wfs]
    encoder.encode(sample[:64])  # load and warm up
    t0 = time.perf_counter()
    encoder.encode(sample)
    enc_rate = len(sample) / (time.perf_counter() - t0)
    print(f"encoder {encoder.name}: {enc_rate:.0f} docs/s", file=sys.stderr)
    t0 = time.perf_counter()
    composed = args.vectors == "composed"
    part_vectors = encoder.encode(texts) if composed else np.zeros((0, encoder.dim), np.float32)
    print(
        f"  {len(texts)} CLINC150 questions encoded in {time.perf_counter() - t0:.0f}s",
        file=sys.stderr,
    )
    query_vectors = encoder.encode_contexts([q.text for q in queries]).vectors

    rows: list[dict[str, Any]] = []
    ranker_dir = work / "ranker"
    prototype_weight: float | None = None
    runs = [(int(s), k) for s in args.sizes.split(",") for k in args.kinds.split(",")]
    enc: ComposedEncoder | None = None
    parts_of: dict[str, list[int]] = {}
    wfs: list[Workflow] = []
    for n, kind in sorted(runs):
        if not parts_of or len(wfs) != n - len(b77):
            wfs, parts_of = synthetic(texts, n - len(b77))
        root = work / f"index-{n}-{kind}"
        # encoded: every text goes through the encoder (timed); composed: only the real ones
        if enc is None or enc.parts_of is not parts_of:
            enc = ComposedEncoder(encoder, part_vectors, texts if composed else [])
        enc.parts_of = parts_of if composed else {}
        enc.real_seconds = 0.0
        t0 = time.perf_counter()
        settings = Settings.from_env(dense_index=kind)
        manifest = build_index(b77 + wfs, root, examples=train, encoder=enc, settings=settings)
        build_s = time.perf_counter() - t0
        docs = manifest["counts"]["documents"]
        index_only_s = build_s - enc.real_seconds
        params = manifest["dense"]["index"]
        dense = read_dense(root / manifest["dense"]["file"], params)
        found = dense.search(query_vectors, 10)[1]
        # the documents' float vectors in index order (the build encoded each distinct
        # text once, so its last call is not in document order)
        titles = manifest["layout"] == "text+title"
        doc_texts = collect_documents(b77 + wfs, train, titles)[0]
        assert len(doc_texts) == docs
        truth = exact_neighbours(enc.encode(doc_texts), query_vectors, 10)
        distinct_texts = len(set(doc_texts) | {wf.title for wf in b77 + wfs})
        del doc_texts
        recall = recall_at(found, truth)
        del dense
        row: dict[str, Any] = {
            "workflows": n,
            "requested": kind,
            "documents": docs,
            "dense_index": params["type"],
            "dense_params": {k: v for k, v in params.items() if k not in {"tuning", "metric"}},
            "build_index_s": round(index_only_s, 1),
            "build_docs_per_s": round(docs / index_only_s),
            "encode_docs_per_s": round(enc_rate),
            # composed: documents and titles encoded at the measured rate; encoded: as it ran
            "build_with_encoding_s": round(
                index_only_s + distinct_texts / enc_rate if composed else build_s, 1
            ),
            "distinct_texts": distinct_texts,
            "vectors": args.vectors,
            "disk_mb": disk_usage(root),
            "recall_at_10": round(recall, 4),
        }
        if prototype_weight is None:
            prototype_weight = manifest["dense"]["prototypes"]["weight"]
            from frontdesk.ranking.training import train_ranker

            t0 = time.perf_counter()
            train_ranker(
                root,
                random.Random(2).sample(train, 3000),
                ranker_dir,
                folds=3,
                encoder=encoder,
                settings=Settings.from_env(prototype_weight=prototype_weight),
            )
            row["ranker_train_s"] = round(time.perf_counter() - t0, 1)
        row["prototype_weight"] = prototype_weight
        row.update(serve(root, qfile, ranker_dir, prototype_weight, args.model))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        if args.out:
            args.out.write_text(json.dumps(rows, indent=2))
    print_tables(rows)


def serve(
    root: Path, qfile: Path, ranker: Path, prototype_weight: float, model: str | None
) -> dict[str, Any]:
    """The serving measurements of ``serve_main``, in a fresh process (clean memory figures)."""
    cmd = [sys.executable, str(Path(__file__).with_name("scale.py")), "serve"]
    cmd += ["--index", str(root), "--queries", str(qfile), "--ranker", str(ranker)]
    cmd += ["--prototype-weight", str(prototype_weight)] + (["--model", model] if model else [])
    served = subprocess.run(cmd, capture_output=True, text=True)
    if served.returncode != 0:
        sys.exit(served.stderr)
    return json.loads(served.stdout)


def print_tables(rows: list[dict[str, Any]]) -> None:
    print(
        "| workflows | documents | dense index | recall@10 vs exact | build s (index / +encoding) | docs/s (index) | disk MB | load s | RSS MB (index / +encoder) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["dense_params"]
        knob = {
            "ivf": f"({p.get('lists')} lists, nprobe {p.get('nprobe')})",
            "hnsw": f"(M {p.get('m')}, efSearch {p.get('ef_search')})",
        }.get(r["dense_index"], "")
        print(
            f"| {r['workflows']:,} | {r['documents']:,} | {r['dense_index']} {knob} | {r['recall_at_10']:.3f} | "
            f"{r['build_index_s']:.0f} / {r['build_with_encoding_s']:.0f} | {r['build_docs_per_s']:,} | "
            f"{r['disk_mb']['total']:,.0f} | {r['load_s']:.1f} | {r['rss_index_mb']:,.0f} / {r['rss_serving_mb']:,.0f} |"
        )
    print()
    print(
        "| workflows | dense index | dense p50 / p99 ms | BM25 | hybrid | hybrid, prototypes 0.3 "
        "| hybrid + ranker "
        "| end to end (hybrid, encoder included) | end to end, cached query |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t = r["latency_ms"]
        cells = [
            f"{t[m]['p50']:.2f} / {t[m]['p99']:.2f}"
            for m in (
                "dense",
                "sparse",
                "hybrid",
                "hybrid_prototypes",
                "ranker",
                "end_to_end",
                "end_to_end_cached",
            )
            if m in t
        ]
        print(f"| {r['workflows']:,} | {r['dense_index']} | " + " | ".join(cells) + " |")


def vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve_main(argv: list[str]) -> None:
    """In a fresh process: load, memory, and single-query latency per mode (JSON on stdout)."""
    ap = argparse.ArgumentParser(prog="scale.py serve")
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--ranker", type=Path, default=None)
    ap.add_argument("--prototype-weight", type=float, default=None)
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)
    queries = [Conversation(text=q.text) for q in load_queries(args.queries)]
    rss0 = vm_rss_mb()
    t0 = time.perf_counter()
    index = WorkflowIndex.load(args.index)
    load_s = time.perf_counter() - t0
    rss_index = vm_rss_mb() - rss0
    settings = Settings.from_env(prototype_weight=args.prototype_weight, model=args.model)
    hybrid = Suggester(index, settings=settings)
    encoded = hybrid.encode(queries)
    assert encoded is not None
    searchers = {
        "dense": Suggester(index, settings=settings, encoder=hybrid.encoder, mode="dense"),
        "sparse": Suggester(index, settings=settings, mode="sparse"),
        "hybrid": hybrid,
        # the prototype blend on (this catalog tunes its weight to 0): full scan up to
        # exact_max workflows, candidate rescoring above
        "hybrid_prototypes": Suggester(
            index,
            settings=settings.model_copy(update={"prototype_weight": 0.3}),
            encoder=hybrid.encoder,
        ),
    }
    if args.ranker:
        ranked = Suggester(index, settings=settings, encoder=hybrid.encoder)
        ranked.attach_ranker(args.ranker)
        searchers["ranker"] = ranked
    latency: dict[str, dict[str, float]] = {}
    for name, s in searchers.items():
        times = []
        for i, q in enumerate(queries):
            one = encoded.take([i])
            t0 = time.perf_counter()
            s.suggest_many([q], k=5, encoded=one)
            times.append(time.perf_counter() - t0)
        latency[name] = summarise(times[20:])  # the first few warm caches
    hybrid.query_cache.clear()
    for name in ("end_to_end", "end_to_end_cached"):  # cold: every text distinct; then all hits
        times = []
        for q in queries:
            t0 = time.perf_counter()
            hybrid.suggest(q, k=5)
            times.append(time.perf_counter() - t0)
        latency[name] = summarise(times[20:])
    print(
        json.dumps(
            {
                "load_s": round(load_s, 2),
                "rss_index_mb": round(rss_index),
                "rss_serving_mb": round(vm_rss_mb() - rss0),
                "latency_ms": latency,
            }
        )
    )


def summarise(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50": round(float(np.median(ms)), 3), "p99": round(float(np.percentile(ms, 99)), 3)}
