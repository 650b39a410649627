"""The README as a reader meets it: short, and its Quickstart runs as written."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from .conftest import DATASETS

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"


def quickstart_block() -> str:
    """The first ```bash block under the heading that contains "Quickstart"."""
    text = README.read_text()
    section = re.search(r"^## [^\n]*Quickstart[^\n]*\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "README has no Quickstart section"
    block = re.search(r"```bash\n(.*?)```", section.group(1), re.S)
    assert block, "the Quickstart section has no ```bash block"
    return block.group(1)


def test_readme_is_a_short_guide() -> None:
    assert len(README.read_text().splitlines()) <= 300
    for doc in [README, REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md"))]:
        assert "/tmp/" not in doc.read_text(), f"{doc.name} points at /tmp"


def test_quickstart_touches_every_capability() -> None:
    block = quickstart_block()
    for command in (
        "datasets import", "index build", "suggest", "eval", "--report", "train ranker",
        "simulate org", "train router", "route", "simulate policy", "serve", "curl",
    ):  # fmt: skip
        assert f"frontdesk {command}" in block or command in block, command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    """The block, run by bash -e in a folder laid out like a clone beside ../shared/datasets.

    The one change: port 8080 becomes a free port, so a busy machine cannot fail it.
    """
    if not DATASETS.is_dir():
        pytest.skip(f"datasets folder {DATASETS} is absent (set FRONTDESK_DATASETS)")
    venv = REPO / ".venv"
    if not (venv / "bin" / "activate").is_file():
        pytest.skip("no .venv in the repository (the Quickstart starts after `make demo`)")
    clone = tmp_path / "frontdesk"
    clone.mkdir()
    (clone / ".venv").symlink_to(venv)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "datasets").symlink_to(DATASETS.resolve())
    script = quickstart_block().replace("8080", str(_free_port()))
    proc = subprocess.Popen(
        ["bash", "-e", "-c", script],
        cwd=clone,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    try:
        output, _ = proc.communicate(timeout=1500)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the background server, if a step failed
            os.killpg(proc.pid, signal.SIGTERM)
    assert proc.returncode == 0, output[-3000:]
    for expected in (
        "imported banking77 -> runs/b77: workflows 77, train 10003, test 3080",
        "built runs/idx: 77 workflows",
        "context gate: fitted from 9999 labelled questions",
        "report: runs/report/report.md, report.html",
        "trained runs/ranker",
        "wrote router to runs/router: 4000 logged decisions",
        "encoder calls: 1",
        "utility under router(router, argmax",
        "policy rule-fallback",  # 4,000 contacts: the held-out check leaves it to the rule
        "exact value of runs/router on runs/org-new",
        "2 of 2 model versions ready: route/1, suggest/1",
        '"workflow_id":"card_arrival"',
    ):
        assert expected in output, f"{expected!r} not in the output:\n{output[-3000:]}"
    assert (clone / "runs" / "report" / "report.html").is_file()
