"""index add --from-feedback: agents' confirmed questions become their workflows' examples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from frontdesk import Conversation, Suggester
from frontdesk.artifacts import sha256_file
from frontdesk.cli import app
from frontdesk.decisions.feedback import read_feedback
from frontdesk.errors import FrontdeskError
from frontdesk.index import WorkflowIndex, update_index

from ..conftest import TINY_CATALOG
from ..feedback_logs import Served, joined_feedback
from .test_update import CountingEncoder

IDS = [w["id"] for w in TINY_CATALOG]
# api-key-rotate has a title and nothing else: no examples, and the index ranks login-2fa
# first for both of these questions before the update.
LEAKED = "my secret token leaked, I need a fresh one"
EXPOSED = "the integration credentials were exposed"


def traffic() -> list[Served]:
    top = ["login-2fa", "api-key-rotate", "payout-delayed"]
    return [
        Served(LEAKED, top, "api-key-rotate"),
        Served(LEAKED.upper(), top, "api-key-rotate"),  # the same question again: one example
        Served(EXPOSED, top, "api-key-rotate"),
        Served("Where is my  payout", top, "payout-delayed"),  # already a catalog example
        Served("gift card balance", top, "gift-cards"),  # not in the index
        Served("any news?", top, None),  # the agent used nothing
    ]


@pytest.fixture
def index_dir(tmp_path: Path, tiny_index: Path) -> Path:
    shutil.copytree(tiny_index, tmp_path / "index")
    return tmp_path / "index"


def _top(index_dir: Path, encoder, text: str) -> str:  # type: ignore[no-untyped-def]
    return (
        Suggester.load(index_dir, encoder=encoder).suggest(Conversation(text=text))[0].workflow_id
    )


def test_a_workflow_without_examples_gains_them_and_is_found_for_them(
    tmp_path: Path, index_dir: Path, encoder
) -> None:
    assert _top(index_dir, encoder, LEAKED) == _top(index_dir, encoder, EXPOSED) == "login-2fa"
    before = WorkflowIndex.load(index_dir)
    fb = read_feedback(joined_feedback(tmp_path, traffic()), before.workflow_ids)
    counting = CountingEncoder(encoder)
    summary = update_index(
        index_dir, examples=fb.examples(), examples_source=fb.summary(), encoder=counting
    )
    assert summary["examples_added"] == 2 and summary["example_duplicates"] == 1
    assert summary["examples_per_workflow"] == {"api-key-rotate": 2}
    assert summary["added"] == summary["replaced"] == summary["removed"] == 0
    assert sorted(counting.texts) == sorted([LEAKED, EXPOSED])  # nothing else re-encoded
    after = WorkflowIndex.load(index_dir)
    counts = after.manifest["counts"]
    assert counts["documents"] == before.manifest["counts"]["documents"] + 2
    assert counts["labelled_examples"] == before.manifest["counts"]["labelled_examples"] + 2
    update = after.manifest["updates"][-1]
    assert update["examples_added"] == 2
    assert update["examples_source"]["manifest_sha256"] == fb.manifest_sha256
    assert (
        _top(index_dir, encoder, LEAKED) == _top(index_dir, encoder, EXPOSED) == ("api-key-rotate")
    )
    # the same feedback again changes nothing: every question is already an example
    again = update_index(index_dir, examples=fb.examples(), encoder=encoder)
    assert again["examples_added"] == 0 and again["example_duplicates"] == 3
    assert WorkflowIndex.load(index_dir).manifest["created_at"] == after.manifest["created_at"]
    assert len(WorkflowIndex.load(index_dir).manifest["updates"]) == len(after.manifest["updates"])


def test_examples_for_an_unknown_workflow_are_refused(index_dir: Path, encoder) -> None:
    with pytest.raises(FrontdeskError, match="examples for unknown workflow id gift-cards"):
        update_index(index_dir, examples=[("gift-cards", "balance?")], encoder=encoder)


def test_cli_add_from_feedback_counts_what_it_did_and_what_it_skipped(
    tmp_path: Path, index_dir: Path
) -> None:
    logs = joined_feedback(tmp_path, traffic())
    runner = CliRunner()
    res = runner.invoke(app, ["index", "add", str(index_dir)])
    assert res.exit_code == 2 and "give a CATALOG, --from-feedback LOGS, or both" in res.output
    res = runner.invoke(app, ["index", "add", str(index_dir), str(tmp_path / "c.jsonl"),
                              "--min-count", "2"])  # fmt: skip
    assert res.exit_code == 2 and "only with --from-feedback LOGS" in res.output
    manifest = sha256_file(index_dir / "manifest.json")
    res = runner.invoke(app, ["index", "add", str(index_dir), "--from-feedback", str(logs),
                              "--min-count", "2", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # only LEAKED was confirmed twice
    assert out["examples_added"] == 1 and out["examples_per_workflow"] == {"api-key-rotate": 1}
    f = out["feedback"]
    assert f["skipped"] == {"no_workflow_used": 1, "unknown_workflow": 1, "no_text": 0}
    assert f["rows"] == 6 and f["used"] == 4 and f["below_min_count"] == 2
    assert f["distinct_examples"] == 1 and f["min_count"] == 2
    assert sha256_file(index_dir / "manifest.json") != manifest
    source = WorkflowIndex.load(index_dir).manifest["updates"][-1]["examples_source"]
    assert source["min_count"] == 2 and source["used"] == 4
    res = runner.invoke(app, ["index", "add", str(index_dir), "--from-feedback", str(logs)])
    assert res.exit_code == 0, res.output
    assert "1 examples added to 1 workflows (api-key-rotate +1); 2 already examples" in res.stdout
    assert "1 with a workflow not in the index" in res.stdout
    res = runner.invoke(app, ["index", "add", str(index_dir), "--from-feedback",
                              str(tmp_path / "nope")])  # fmt: skip
    assert res.exit_code == 2 and "nope: folder not found" in res.output


def test_min_count_counts_contacts_not_decisions(tmp_path: Path) -> None:
    top = ["login-2fa", "api-key-rotate", "payout-delayed"]
    lists = [
        Served(LEAKED, top, "api-key-rotate", contact="alice"),
        Served(LEAKED, top, "api-key-rotate", contact="alice"),  # the same contact again
        Served(EXPOSED, top, "api-key-rotate", contact="alice"),
        Served(EXPOSED.upper(), top, "api-key-rotate", contact="bob"),
    ]
    fb = read_feedback(joined_feedback(tmp_path, lists), IDS)
    assert fb.examples(2) == [("api-key-rotate", EXPOSED)]
    assert len(fb.examples(1)) == 2


def test_examples_can_be_read_under_the_lock_for_the_updated_ids(index_dir: Path, encoder) -> None:
    seen: list[list[str]] = []

    def examples(ids: list[str]) -> tuple[list[tuple[str, str]], dict[str, str]]:
        seen.append(ids)
        return [("api-key-rotate", LEAKED)], {"path": "here"}

    summary = update_index(index_dir, examples=examples, encoder=encoder)
    assert summary["examples_added"] == 1 and sorted(seen[0]) == sorted(IDS)
    update = WorkflowIndex.load(index_dir).manifest["updates"][-1]
    assert update["examples_source"] == {"path": "here"}
    with pytest.raises(FrontdeskError, match="a blank example text for workflow login-2fa"):
        update_index(index_dir, examples=[("login-2fa", "  ")], encoder=encoder)


def test_the_index_records_the_decisions_it_learned_from_and_simulate_refuses_them(
    tmp_path: Path, index_dir: Path, encoder
) -> None:
    from frontdesk.lineage import (
        FEEDBACK_LINEAGE_FILE,
        FeedbackLineage,
        TrainingOverlapError,
        feedback_training_overlap,
    )
    from frontdesk.ope.slate import SuggestionLogs

    from ..feedback_logs import did

    logs = joined_feedback(tmp_path, traffic())
    fb = read_feedback(logs, WorkflowIndex.load(index_dir).workflow_ids)

    def learned(ids: list[str]):  # type: ignore[no-untyped-def]
        return fb.examples(), {"path": str(logs)}, fb.example_decisions()

    update_index(index_dir, examples=learned, encoder=encoder)
    manifest = json.loads((index_dir / "manifest.json").read_text())
    assert FEEDBACK_LINEAGE_FILE in manifest["files"]
    lineage = FeedbackLineage.load(index_dir)
    assert lineage is not None and len(lineage.decisions) == 3  # the two texts added: 3 rows
    with pytest.raises(TrainingOverlapError, match=r"the index .* learned from 3 of the 6 rows"):
        feedback_training_overlap([("index", index_dir)], SuggestionLogs.open(logs))
    warned = feedback_training_overlap([("index", index_dir)], SuggestionLogs.open(logs), True)
    assert "--allow-training-overlap" in warned[0]
    # a second add (other logs) accumulates; a catalog-only update carries it along
    more = [Served("my api secret is public", ["login-2fa", "api-key-rotate"], "api-key-rotate")]
    logs2 = joined_feedback(tmp_path, more, "logs2")
    fb2 = read_feedback(logs2, WorkflowIndex.load(index_dir).workflow_ids)
    update_index(
        index_dir,
        examples=lambda ids: (fb2.examples(), {"path": str(logs2)}, fb2.example_decisions()),
        encoder=encoder,
    )
    after = FeedbackLineage.load(index_dir)
    assert after is not None and len(after.sources) == 2
    assert len(after.decisions) == 3  # did(0) of logs2 is did(0) of logs: the same hash
    assert set(lineage.decisions.tolist()) <= set(after.decisions.tolist())
    assert did(0)
    # tampering with the lineage is caught
    np.save(index_dir / "feedback_decisions.npy", np.zeros(1, dtype=np.uint64))
    with pytest.raises(FrontdeskError, match="not as its manifest lists it"):
        FeedbackLineage.load(index_dir)


def test_a_raw_decision_log_is_refused_by_index_add_and_simulate(
    tmp_path: Path, index_dir: Path
) -> None:
    joined_feedback(tmp_path, traffic())
    dlog = tmp_path / "logs-dlog"
    runner = CliRunner()
    for args in (
        ["index", "add", str(index_dir), "--from-feedback", str(dlog)],
        ["simulate", "suggestions", str(dlog), "--index", str(index_dir)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert f"{dlog} is a decision log (serve --decision-log); join it first" in " ".join(
            result.stderr.split()
        )
