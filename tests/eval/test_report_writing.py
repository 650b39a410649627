"""A report is written whole or not at all; rows with nothing to report on are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontdesk import Workflow
from frontdesk.errors import DataError
from frontdesk.eval import report as report_module
from frontdesk.eval.report import RowResult, write_report

WFS = [Workflow(id="a", title="A"), Workflow(id="b", title="B")]
OOS_RANKED = [
    RowResult("1", None, ["a", "b"], None, 0.2, True, {}),
    RowResult("2", None, ["b", "a"], None, 0.7, False, {}),
]


def test_rows_all_out_of_scope_without_confidence_are_refused(tmp_path: Path) -> None:
    rows = [RowResult("1", None, ["a"], None, None, False, {})]
    with pytest.raises(DataError, match="q.jsonl: label: no row to report on"):
        write_report({"queries": "q.jsonl"}, rows, WFS, tmp_path / "report")
    assert list(tmp_path.iterdir()) == []


def test_out_of_scope_rows_with_a_ranker_report_without_a_recall_plot(tmp_path: Path) -> None:
    files = write_report({"queries": "q.jsonl", "n": 0}, OOS_RANKED, WFS, tmp_path / "report")
    names = sorted(f.name for f in files)
    assert "recall_at_k.png" not in names and "confidence_hist.png" in names
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == names
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temporary folder left


def test_a_failure_while_writing_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(report_module, "md_to_html", broken)
    with pytest.raises(OSError, match="disk full"):
        write_report({"queries": "q.jsonl"}, OOS_RANKED, WFS, tmp_path / "report")
    assert list(tmp_path.iterdir()) == []
