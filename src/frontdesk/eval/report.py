"""Offline evaluation reports: markdown, HTML and PNG plots from one evaluation run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..extras import require
from ..schema import Workflow
from .markdown import md_table, md_to_html
from .metrics import evaluate_ranks

SUMMARY_KEYS = (
    "top1", "recall@3", "recall@5", "recall@10", "mrr@10", "ndcg@10",
    "in_scope_accuracy", "oos_recall", "oos_precision", "auroc", "threshold", "abstained_rate",
)  # fmt: skip


@dataclass
class RowResult:
    """What happened to one evaluated row."""

    id: str | None
    label: str | None
    ranked: list[str]
    rank: int | None
    confidence: float | None
    abstained: bool
    profile: dict[str, Any] = field(default_factory=dict)
    text: str = ""  # the latest user message
    query_from: str = "latest"  # which turns made the query (Suggestions.query_from)

    @property
    def top1(self) -> str | None:
        return self.ranked[0] if self.ranked else None


def gate_words(name: str) -> str:
    """An eval's ``context_gate`` in words: the index's own, the bundled one, or a file."""
    return {"index": "the index's own gate", "bundled": "bundled gate"}.get(name, f"gate {name}")


SLICES_OF_THE_QUERY = {"query_from": "query_from", "latest": "text"}
"""Slices by the query rather than the profile: which turns made it (``latest``, ``mixed``,
``earlier``), and the latest message's text (how each phrasing of a follow-up fares)."""


def _slice_keys(row: RowResult, name: str, tags_of: dict[str, list[str]]) -> list[str]:
    if name == "tag":
        if row.label is None:
            return ["(out of scope)"]
        return tags_of.get(row.label) or ["(no tag)"]
    if name in SLICES_OF_THE_QUERY:
        return [getattr(row, SLICES_OF_THE_QUERY[name])]
    value = row.profile.get(name)
    return [str(value) if value is not None else "(none)"]


def slice_metrics(
    rows: Sequence[RowResult], name: str, workflows: Sequence[Workflow]
) -> dict[str, dict[str, float]]:
    """Metrics per value of a profile field (``segment``, ``plan``, …), per workflow ``tag``,
    per ``query_from`` or per ``latest`` message text."""
    tags_of = {w.id: w.tags for w in workflows}
    groups: dict[str, list[RowResult]] = defaultdict(list)
    for r in rows:
        for key in _slice_keys(r, name, tags_of):
            groups[key].append(r)
    out = {}
    for key in sorted(groups):
        g = groups[key]
        labelled = [r for r in g if r.label is not None]
        m = evaluate_ranks([r.rank for r in labelled])
        entry = {"n": len(g), "top1": m["top1"], "recall@5": m["recall@5"], "mrr@10": m["mrr@10"]}
        if any(r.confidence is not None for r in g):
            entry["in_scope_accuracy"] = (
                float(np.mean([r.rank == 1 and not r.abstained for r in labelled]))
                if labelled
                else 0.0
            )
            oos = [r for r in g if r.label is None]
            if oos:
                entry["oos_recall"] = float(np.mean([r.abstained for r in oos]))
        out[key] = entry
    return out


def _plots(rows: Sequence[RowResult], out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: dict[str, str] = {}
    labelled = [r for r in rows if r.label is not None]

    if labelled:  # out-of-scope rows alone have no recall
        ks = list(range(1, 11))
        recall = [
            float(np.mean([r.rank is not None and r.rank <= k for r in labelled])) for k in ks
        ]
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(ks, recall, marker="o")
        ax.set(
            xlabel="k (suggestions shown)",
            ylabel="recall@k (share of queries)",
            title="Recall@k",
            ylim=(min(recall + [1.0]) - 0.02, 1.0),
        )
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "recall_at_k.png", dpi=110)
        plt.close(fig)
        files["recall@k"] = "recall_at_k.png"

    per = _per_workflow(labelled)[:15]
    if per:
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(per) + 1))
        ax.barh([p[0] for p in per][::-1], [p[1] for p in per][::-1])
        ax.set(xlabel="top-1 accuracy (share of its queries)", title="Worst workflows", xlim=(0, 1))
        fig.tight_layout()
        fig.savefig(out / "worst_workflows.png", dpi=110)
        plt.close(fig)
        files["worst workflows"] = "worst_workflows.png"

    conf = [r for r in rows if r.confidence is not None]
    if conf:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        right = [r.confidence for r in conf if r.label is not None and r.rank == 1]
        wrong = [r.confidence for r in conf if r.label is not None and r.rank != 1]
        oos = [r.confidence for r in conf if r.label is None]
        bins = np.linspace(0, 1, 21)
        for data, name in (
            (right, "in scope, right"),
            (wrong, "in scope, wrong"),
            (oos, "out of scope"),
        ):
            if data:
                ax.hist(data, bins=bins, alpha=0.55, label=name)
        ax.set(
            xlabel="confidence (calibrated P(top suggestion right))",
            ylabel="queries",
            title="Confidence of the top suggestion",
        )
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "confidence_hist.png", dpi=110)
        plt.close(fig)
        files["confidence histogram"] = "confidence_hist.png"
        if oos and (right or wrong):
            c = np.asarray([r.confidence for r in conf])
            is_oos = np.asarray([r.label is None for r in conf])
            ts = np.unique(c)
            prec, rec = [], []
            for t in ts:
                flagged = c < t
                if flagged.any():
                    prec.append(float(is_oos[flagged].mean()))
                    rec.append(float(flagged[is_oos].mean()))
            fig, ax = plt.subplots(figsize=(5, 3.2))
            ax.plot(rec, prec)
            ax.set(
                xlabel="OOS recall (share of out-of-scope queries flagged)",
                ylabel="OOS precision (share of flags right)",
                title="Out-of-scope detection",
                xlim=(0, 1),
                ylim=(0, 1.02),
            )
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(out / "oos_pr_curve.png", dpi=110)
            plt.close(fig)
            files["OOS precision/recall"] = "oos_pr_curve.png"
    return files


def _per_workflow(labelled: Sequence[RowResult]) -> list[tuple[str, float, int]]:
    by: dict[str, list[bool]] = defaultdict(list)
    for r in labelled:
        by[r.label or ""].append(r.rank == 1)
    return sorted(
        ((w, float(np.mean(v)), len(v)) for w, v in by.items()), key=lambda t: (t[1], t[0])
    )


def confusion_pairs(rows: Sequence[RowResult], top: int = 15) -> list[tuple[str, str, int]]:
    """(true workflow, predicted instead, count), most frequent first."""
    c = Counter((r.label, r.top1) for r in rows if r.label is not None and r.top1 != r.label)
    return [(a or "", b or "(nothing)", n) for (a, b), n in c.most_common(top)]


def write_report(
    report: dict[str, Any],
    rows: Sequence[RowResult],
    workflows: Sequence[Workflow],
    out_dir: str | Path,
    slices: Sequence[str] = (),
) -> list[Path]:
    """Write report.md, report.html, report.json and the plots into ``out_dir``.

    They are written into a temporary sibling folder first and moved into ``out_dir``
    only once all are complete: a failure leaves neither a half report nor a new
    empty folder. Refused (DataError) when ``rows`` has nothing to report on.
    """
    require("matplotlib", "--report (its plots)")  # before anything is written
    if not any(r.label is not None or r.confidence is not None for r in rows):
        raise DataError(
            str(report.get("queries") or "queries"),
            None,
            "label",
            "no row to report on: every label is null (out of scope), and those are "
            "judged only with a ranker (--ranker)",
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(str(out), None, None, "exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        names = _write_report_into(tmp, report, rows, workflows, slices)
        out.mkdir(exist_ok=True)
        for name in names:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / name for name in names]


def _write_report_into(
    out: Path,
    report: dict[str, Any],
    rows: Sequence[RowResult],
    workflows: Sequence[Workflow],
    slices: Sequence[str],
) -> list[str]:
    plots = _plots(rows, out)
    labelled = [r for r in rows if r.label is not None]
    sliced = {name: slice_metrics(rows, name, workflows) for name in slices}

    md = [
        f"# Evaluation: {report.get('queries', '')}",
        "",
        f"Index `{report.get('index', '')}`, retrieval `{report.get('mode', '')}`, "
        f"context `{report.get('context', '')}`"
        + (f" ({gate_words(report['context_gate'])})" if report.get("context_gate") else "")
        + ".",
        "",
    ]
    keys = [
        k
        for k in (
            "n",
            "n_unlabelled",
            "top1",
            "recall@3",
            "recall@5",
            "recall@10",
            "mrr@10",
            "ndcg@10",
            "in_scope_accuracy",
            "oos_recall",
            "oos_precision",
            "auroc",
            "threshold",
            "abstained_rate",
        )
        if k in report
    ]
    md += ["## Metrics", "", *md_table(["metric", "value"], [(k, report[k]) for k in keys]), ""]
    worst = _per_workflow(labelled)[:15]
    md += [
        "## Worst workflows (top-1 accuracy)",
        "",
        *md_table(["workflow", "top-1", "n"], worst),
        "",
    ]
    md += [
        "## Most frequent confusions",
        "",
        *md_table(["true workflow", "suggested first", "count"], confusion_pairs(rows)),
        "",
    ]
    for name, table in sliced.items():
        cols = sorted({c for v in table.values() for c in v}, key=lambda c: (c != "n", c))
        md += [
            f"## By {name}",
            "",
            *md_table(
                [name, *cols], [(k, *(v.get(c, "") for c in cols)) for k, v in table.items()]
            ),
            "",
        ]
    md += ["## Plots", ""] + [f"![{name}]({f})" for name, f in plots.items()] + [""]
    (out / "report.md").write_text("\n".join(md))
    (out / "report.json").write_text(json.dumps({**report, "slices": sliced}, indent=2) + "\n")
    (out / "report.html").write_text(md_to_html(md, base=out))
    return ["report.md", "report.html", "report.json", *plots.values()]


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Numeric keys present in both runs: ``{key: {"a": .., "b": .., "delta": b - a}}``."""
    out = {}
    for key in a:
        va, vb = a.get(key), b.get(key)
        if (
            isinstance(va, (int, float))
            and isinstance(vb, (int, float))
            and not isinstance(va, bool)
        ):
            out[key] = {"a": va, "b": vb, "delta": vb - va}
    return out
