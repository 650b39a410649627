"""``frontdesk demo``: build the bundled demo index and suggest for example conversations.

It reports top-1 on the test half of the bundled demo questions only, with the
index ``frontdesk index build`` makes by default; nothing is chosen on the
questions, and the tune half is left for a user's own tuning (docs/demo.md).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._common import (
    JsonOpt,
    build,
    bundled,
    errors_and_warnings,
    out,
    print_json,
)

DEMO_SPLIT_RULE = (
    "stratified by label (out of scope as one label): each label's questions shuffled "
    "with random.Random(f'halves:0:{label}') and dealt alternately to test and tune, "
    "an odd one to test (frontdesk.datasets.splits.split_halves); the test half is for "
    "reporting only"
)


def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to build the demo index.")] = Path(
        "demo-index"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Build the bundled demo catalog's index and suggest for example conversations."""
    from ..eval import evaluate_suggester
    from ..loaders import load_conversations, load_queries
    from ..suggester import Suggester

    with errors_and_warnings():
        t0 = time.perf_counter()
        manifest = build(bundled("demo_catalog.jsonl"), out_dir, None, None, False, as_json)
        build_s = time.perf_counter() - t0
        suggester = Suggester.load(out_dir)
        convs = load_conversations(bundled("demo_conversations.jsonl"))
        results = suggester.suggest_many(convs, k=3)
        ids = set(suggester.index.workflow_ids)
        tune = load_queries(bundled("demo_queries_tune.jsonl"), workflow_ids=ids)
        test = load_queries(bundled("demo_queries_test.jsonl"), workflow_ids=ids)
        report = evaluate_suggester(suggester, test)
    split = {"tune": len(tune), "test": len(test), "rule": DEMO_SPLIT_RULE}
    if as_json:
        print_json(
            {
                "index": str(out_dir),
                "build_seconds": round(build_s, 2),
                "counts": manifest["counts"],
                "conversations": [
                    {"id": c.id, "text": c.text, "suggestions": [s.model_dump() for s in r]}
                    for c, r in zip(convs, results, strict=True)
                ],
                "demo_queries": report,
                "demo_split": split,
            }
        )
        return
    c = manifest["counts"]
    out.print(
        f"[bold]frontdesk demo[/]: indexed {c['workflows']} workflows, {c['documents']} documents "
        f"into {out_dir} in {build_s:.1f}s ({suggester.mode} retrieval)\n"
    )
    table = Table(show_lines=True, title="Suggestions for example conversations")
    table.add_column("conversation", ratio=3)
    table.add_column("profile", ratio=1)
    table.add_column("top suggestions", ratio=3)
    for conv, res in zip(convs, results, strict=True):
        history = "\n".join(f"[dim]{t.role}: {t.text}[/]" for t in conv.turns)
        said = (
            f"{history}\n[bold]user: {conv.text}[/]" if history else f"[bold]user: {conv.text}[/]"
        )
        prof = ", ".join(f"{k}={v}" for k, v in conv.user.fields().items() if v is not None)
        sugg = "\n".join(
            f"{s.rank}. {s.title} [dim]({s.workflow_id}, {s.score:.2f})[/]" for s in res
        )
        table.add_row(said, prof, sugg)
    out.print(table)
    out.print(
        f"\nHeld-out demo questions ({report['n']} labelled, never used for tuning; default "
        f"index, {report['mode']} retrieval): top-1 {report['top1']:.1%}, "
        f"recall@3 {report['recall@3']:.1%}, MRR@10 {report['mrr@10']:.3f}"
    )
    if report.get("n_unlabelled"):
        out.print(
            f"[dim]Its {report['n_unlabelled']} out-of-scope questions are not scored: scores "
            "here are retrieval similarities, and an index without a trained ranker always "
            "suggests something (a ranker trained with out-of-scope rows abstains).[/]"
        )
    out.print(
        f"[dim]The other {len(tune)} questions ({sum(q.label is not None for q in tune)} "
        f"labelled) are the tune half, for your own tuning while "
        f"you edit the catalog: frontdesk eval {out_dir} "
        f"{bundled('demo_queries_tune.jsonl')}[/]"
    )
    out.print(f'Try: frontdesk suggest {out_dir} "my payout never showed up" -k 3')
