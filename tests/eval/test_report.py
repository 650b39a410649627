"""Evaluation reports are written, non-empty, and sliced; runs compare with deltas."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from frontdesk import Workflow
from frontdesk.cli import app
from frontdesk.eval.report import (
    RowResult,
    compare_reports,
    confusion_pairs,
    slice_metrics,
    write_report,
)

from ..conftest import write_jsonl

WFS = [Workflow(id="a", title="A", tags=["payouts"]), Workflow(id="b", title="B", tags=["refunds"])]
ROWS = [
    RowResult("1", "a", ["a", "b"], 1, 0.9, False, {"segment": "smb"}),  # right
    RowResult("2", "a", ["b", "a"], 2, 0.4, True, {"segment": "smb"}),  # confused a -> b
    RowResult("3", "b", ["b", "a"], 1, 0.8, False, {"segment": "enterprise"}),  # right
    RowResult("4", None, ["a", "b"], None, 0.2, True, {}),  # out of scope, abstained
]


def test_slices_and_confusions() -> None:
    by_seg = slice_metrics(ROWS, "segment", WFS)
    assert by_seg["smb"]["n"] == 2 and by_seg["smb"]["top1"] == 0.5
    assert by_seg["enterprise"]["top1"] == 1.0
    assert by_seg["(none)"]["oos_recall"] == 1.0
    by_tag = slice_metrics(ROWS, "tag", WFS)
    assert set(by_tag) == {"payouts", "refunds", "(out of scope)"}
    assert confusion_pairs(ROWS) == [("a", "b", 1)]


def test_slices_by_the_query_which_turns_made_it_and_the_latest_text(tiny_index: Path) -> None:
    rows = [
        RowResult("1", "a", ["a"], 1, None, False, {}, "any update?", "earlier"),
        RowResult("2", "a", ["b", "a"], 2, None, False, {}, "any update?", "latest"),
        RowResult("3", "b", ["b"], 1, None, False, {}, "refund please", "latest"),
    ]
    by_source = slice_metrics(rows, "query_from", WFS)
    assert by_source["earlier"] == {**by_source["earlier"], "n": 1, "top1": 1.0}
    assert by_source["latest"]["n"] == 2 and by_source["latest"]["top1"] == 0.5
    by_text = slice_metrics(rows, "latest", WFS)
    assert by_text["any update?"]["top1"] == 0.5 and by_text["refund please"]["top1"] == 1.0
    # evaluate_suggester records both for every row
    from frontdesk import Conversation, LabelledQuery, Suggester
    from frontdesk.eval import evaluate_suggester

    conv = Conversation(text="any update?", context={"turns": [{"role": "user", "text": "x"}]})
    details: list[RowResult] = []
    evaluate_suggester(
        Suggester.load(tiny_index),
        [LabelledQuery(text="where is my refund", label="refund-not-received"),
         LabelledQuery(text=conv.text, context=conv.context, label="refund-not-received")],
        details=details,
    )  # fmt: skip
    assert [d.text for d in details] == ["where is my refund", "any update?"]
    assert details[0].query_from == "latest"
    assert details[1].query_from in {"latest", "mixed", "earlier"}


def test_report_files_written_and_non_empty(tmp_path: Path) -> None:
    files = write_report(
        {"top1": 0.67, "n": 3, "queries": "q.jsonl"}, ROWS, WFS, tmp_path, slices=["segment", "tag"]
    )
    names = {f.name for f in files}
    assert {
        "report.md",
        "report.html",
        "report.json",
        "recall_at_k.png",
        "worst_workflows.png",
        "confidence_hist.png",
        "oos_pr_curve.png",
    } <= names
    for f in files:
        assert f.stat().st_size > 100, f
    md = (tmp_path / "report.md").read_text()
    assert "## By segment" in md and "## By tag" in md and "| a | b | 1 |" in md
    assert (tmp_path / "recall_at_k.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "report.html").read_text()
    assert "<table>" in page
    # one file can be mailed: every plot is inside the page, none is linked
    assert page.count('src="data:image/png;base64,') == 4 and 'src="recall_at_k.png"' not in page


def test_compare_two_runs(tmp_path: Path) -> None:
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps({"top1": 0.90, "n": 10, "mode": "hybrid"}))
    b.write_text(json.dumps({"top1": 0.95, "n": 10, "mode": "hybrid+ranker"}))
    assert (
        compare_reports(json.loads(a.read_text()), json.loads(b.read_text()))["top1"]["delta"] > 0
    )
    res = CliRunner().invoke(app, ["eval", "--compare", str(a), str(b), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)["metrics"]
    assert round(out["top1"]["delta"], 6) == 0.05 and "mode" not in out
    assert json.loads(res.stdout)["b_label"] == f"{b}: hybrid+ranker"
    res = CliRunner().invoke(app, ["eval", "--compare", str(a), str(b)])
    assert "+0.0500" in res.stdout
    assert "A = " in res.stdout and "hybrid+ranker" in res.stdout  # which run is which


def test_eval_cli_writes_report(tmp_path: Path, tiny_index: Path) -> None:
    q = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {
                "text": "bank rejected my payout",
                "label": "payout-failed",
                "context": {"user": {"segment": "smb"}},
            },
            {"text": "lost my authenticator", "label": "login-2fa"},
        ],
    )
    res = CliRunner().invoke(
        app,
        [
            "eval",
            str(tiny_index),
            str(q),
            "--report",
            str(tmp_path / "r"),
            "--slice",
            "segment",
            "--slice",
            "tag",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "report.md").stat().st_size > 0
    assert "By segment" in (tmp_path / "r" / "report.md").read_text()
