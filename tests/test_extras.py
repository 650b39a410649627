"""Optional parts: a missing extra is one clear error naming what to install, before any write."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from frontdesk.eval.report import write_report
from frontdesk.extras import MissingExtraError, require


def test_a_missing_plotting_extra_names_it_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an absent package looks like
    with pytest.raises(MissingExtraError, match=r"pip install 'frontdesk\[report\]'"):
        write_report({}, [], [], tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_a_missing_static_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "model2vec", None)
    with pytest.raises(
        MissingExtraError,
        match=r"static distillation needs model2vec\.distill.*frontdesk\[static\]",
    ):
        require("model2vec.distill", "static distillation")
    assert require("json", "anything").dumps([]) == "[]"  # an installed module is returned


def test_the_cli_prints_the_extra_s_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from frontdesk.cli import app

    monkeypatch.setitem(sys.modules, "model2vec", None)
    monkeypatch.setitem(sys.modules, "model2vec.distill", None)
    res = CliRunner().invoke(
        app, ["train", "distill", "--kind", "static", "--out", str(tmp_path / "s")]
    )
    assert res.exit_code == 2
    assert "pip install 'frontdesk[static]'" in res.stderr  # not eaten as console markup
