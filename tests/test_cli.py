"""The CLI through Typer's runner: build, info, suggest, eval, import, errors."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from frontdesk.cli import app

from .conftest import write_jsonl

runner = CliRunner()


def run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_lists_commands() -> None:
    res = run("--help")
    assert res.exit_code == 0
    for cmd in ("index", "suggest", "eval", "datasets", "demo"):
        assert cmd in res.output


def test_build_suggest_eval_json(tmp_path: Path, tiny_catalog: Path) -> None:
    idx = tmp_path / "idx"
    res = run("index", "build", str(tiny_catalog), "--out", str(idx), "--json")
    assert res.exit_code == 0, res.output
    built = json.loads(res.stdout)
    assert built["counts"]["workflows"] == 6 and built["dense"]["dim"] == 384

    res = run("suggest", str(idx), "my payout bounced back", "--k", "2", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["mode"] == "hybrid"
    assert [s["rank"] for s in out["suggestions"]] == [1, 2]
    assert out["suggestions"][0]["workflow_id"] == "payout-failed"

    res = run(
        "suggest",
        str(idx),
        "any update?",
        "--turn",
        "user: my customer's refund never came",
        "--profile",
        '{"segment": "smb"}',
        "--json",
    )
    answer = json.loads(res.stdout)
    assert answer["suggestions"][0]["workflow_id"] == "refund-not-received"
    assert answer["query_from"] == "earlier"  # the gate read "any update?" as a follow-up
    res = run("suggest", str(idx), "any update?", "--turn", "user: my customer's refund never came")
    assert "query: the earlier turns (the latest message reads as a follow-up)" in res.stdout
    # a bad setting is the user's to fix: one error line naming the variable, exit 2
    bad = runner.invoke(app, ["suggest", str(idx), "hi"], env={"FRONTDESK_CONTEXT": "bogus"})
    assert bad.exit_code == 2
    assert bad.stderr.strip().startswith("error: FRONTDESK_CONTEXT: 'bogus': ")

    queries = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"text": "bank rejected my payout", "label": "payout-failed"},
            {"text": "lost my authenticator", "label": "login-2fa"},
            {"text": "what's the weather", "label": None},
        ],
    )
    res = run("eval", str(idx), str(queries), "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert {"top1", "recall@3", "recall@5", "recall@10", "mrr@10", "ndcg@10", "n"} <= set(report)
    assert report["n"] == 2 and report["n_unlabelled"] == 1
    assert report["context"] == "gated" and report["context_gate"] == "bundled"  # what ran
    assert all(0.0 <= report[k] <= 1.0 for k in ("top1", "recall@5", "mrr@10", "ndcg@10"))

    res = run("index", "info", str(idx), "--json")
    assert json.loads(res.stdout)["counts"]["documents"] == 23  # 14 workflow texts, 9 examples

    res = run("suggest", str(idx), "refund a customer", "--mode", "sparse")
    assert res.exit_code == 0 and "refund-issue" in res.stdout and "(sparse)" in res.stdout


def test_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "title": ""}\n')
    res = run("index", "build", str(bad), "--out", str(tmp_path / "idx"))
    assert res.exit_code == 2
    assert f"error: {bad}:1: title: must not be empty" in " ".join(res.stderr.split())
    assert not (tmp_path / "idx").exists()

    res = run("suggest", str(tmp_path / "missing"), "hi")
    assert res.exit_code == 2 and "folder not found" in res.stderr

    res = run("suggest", str(tmp_path), "hi", "--mode", "fuzzy")
    assert res.exit_code == 2 and "--mode" in res.output + res.stderr


def test_eval_rejects_labels_outside_the_catalog(tmp_path: Path, tiny_catalog: Path) -> None:
    idx = tmp_path / "idx"
    assert (
        run("index", "build", str(tiny_catalog), "--out", str(idx), "--sparse-only").exit_code == 0
    )
    q = write_jsonl(tmp_path / "q.jsonl", [{"text": "x", "label": "not-a-workflow"}])
    res = run("eval", str(idx), str(q))
    assert res.exit_code == 2
    assert "q.jsonl:1: label: unknown workflow id 'not-a-workflow'" in " ".join(res.stderr.split())


def test_datasets_import_json(tmp_path: Path, datasets_dir: Path) -> None:
    res = run(
        "datasets", "import", "abcd", str(datasets_dir / "abcd"), "--out", str(tmp_path), "--json"
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["counts"] == {"workflows": 55, "test": 3}
    res = run("datasets", "import", "nope", str(tmp_path), "--out", str(tmp_path))
    assert res.exit_code == 2


@pytest.mark.slow
def test_demo_json(tmp_path: Path) -> None:
    res = run("demo", "--out", str(tmp_path / "demo"), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["counts"]["workflows"] >= 60
    assert len(out["conversations"]) == 8
    # top-1 is reported on the test half only; the tune half is counted, never scored
    data = Path(str(resources.files("frontdesk") / "data"))
    rows = {
        half: [
            json.loads(x) for x in (data / f"demo_queries_{half}.jsonl").read_text().splitlines()
        ]
        for half in ("tune", "test")
    }
    assert out["demo_queries"]["n"] == sum(r["label"] is not None for r in rows["test"])
    assert out["demo_queries"]["n_unlabelled"] == sum(r["label"] is None for r in rows["test"])
    split = out["demo_split"]
    assert (split["tune"], split["test"]) == (len(rows["tune"]), len(rows["test"]))
    assert "stratified by label" in split["rule"]


@pytest.mark.slow
def test_demo_says_its_numbers_are_held_out(tmp_path: Path) -> None:
    res = run("demo", "--out", str(tmp_path / "demo"))
    assert res.exit_code == 0, res.output
    said = " ".join(res.stdout.split())
    assert "Held-out demo questions (" in said and "never used for tuning" in said
    assert "demo_queries_tune.jsonl" in said


def test_python_m_entry_point_starts_without_loading_the_model() -> None:
    import subprocess
    import sys

    code = (
        "import sys, runpy; sys.argv = ['frontdesk', '--help'];\n"
        "try:\n    runpy.run_module('frontdesk', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0\n"
        "assert 'sentence_transformers' not in sys.modules and 'torch' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "suggest" in done.stdout


def test_multiturn_cli_is_deterministic(tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "q.jsonl",
        [{"text": f"question {i}", "label": "x"} for i in range(20)]
        + [{"text": "a show on broadway", "label": None}],
    )
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        res = run(
            "datasets",
            "multiturn",
            str(src),
            "--kind",
            "distractor_first",
            "--seed",
            "7",
            "--distractors",
            str(src),
            "--out",
            str(tmp_path / name),
            "--json",
        )
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["rows"] == 20
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]


@pytest.mark.slow
def test_train_encoder_cli_takes_out_of_scope_negatives(tmp_path: Path, tiny_catalog: Path) -> None:
    rows = write_jsonl(
        tmp_path / "rows.jsonl",
        [
            {"text": "my payout is late", "label": "payout-delayed"},
            {"text": "payout still not here", "label": "payout-delayed"},
            {"text": "payout bounced back", "label": "payout-failed"},
            {"text": "the bank rejected my payout", "label": "payout-failed"},
            {"text": "what's the weather like", "label": None},
        ],
    )
    out = tmp_path / "enc"
    res = run(
        "train", "encoder", str(rows), "--catalog", str(tiny_catalog), "--out", str(out),
        "--batch-size", "2", "--oos-negatives", "3", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["oos_negatives"] == 3 and info["out_of_scope_rows"] == 1
    assert info["out_of_scope_negatives_per_batch"] == 1 and info["rows"] == 4
    assert (out / "frontdesk-finetune.json").is_file()


@pytest.mark.slow
def test_train_ranker_then_eval_with_it(tmp_path: Path, tiny_catalog: Path) -> None:
    from .ranking.test_ranker import PHRASES, rows

    labelled = write_jsonl(
        tmp_path / "rows.jsonl",
        [{"text": t, "label": label} for label, texts in PHRASES.items() for t in texts],
    )
    idx, model = tmp_path / "idx", tmp_path / "rk"
    assert run("index", "build", str(tiny_catalog), "--out", str(idx), "--json").exit_code == 0
    queries = write_jsonl(  # validation for training, then the file evaluated
        tmp_path / "q.jsonl",
        [
            {"text": "the bank bounced my payout", "label": "payout-failed"},
            {"text": "rotate my api key", "label": "api-key-rotate"},
            {"text": "best lasagne recipe", "label": None},
            {"text": "who won the football", "label": None},
        ],
    )
    res = run(
        "train", "ranker", str(idx), str(labelled), "--out", str(model), "--folds", "3",
        "--top-n", "6", "--cold-start", "0.2", "--min-in-scope-accuracy", "0.9",
        "--val", str(queries), "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["cold_start"] == 0.2 and info["folds"] == 3 and info["top_n"] == 6
    assert (
        info["min_in_scope_accuracy"] == 0.9
        and "in-scope accuracy >= 0.9" in (info["abstention_goal"])
    )
    assert info["training"]["rows"] == len(rows()) and (model / "classifier.npy").is_file()
    res = run("eval", str(idx), str(queries), "--ranker", str(model), "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["n"] == 2 and 0.0 <= report["in_scope_accuracy"] <= 1.0
    assert report["threshold"] == info["threshold"] and "oos_recall" in report
    # another goal on the same booster, from the outcomes saved with it: no retraining;
    # evaluating the validation file at the new threshold gives what validation gave
    res = run(
        "train", "threshold", str(model), "--out", str(tmp_path / "rk2"),
        "--min-oos-recall", "1.0", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    changed = json.loads(res.stdout)
    assert changed["before"]["threshold"] == info["threshold"]
    assert changed["after"]["val_oos_recall"] == 1.0 and changed["after"]["missed"] == []
    assert "abstain on >= 1 of out-of-scope" in changed["after"]["abstention_goal"]
    res = run("eval", str(idx), str(queries), "--ranker", str(tmp_path / "rk2"), "--json")
    assert res.exit_code == 0, res.output
    again = json.loads(res.stdout)
    assert again["threshold"] == changed["after"]["threshold"] and again["oos_recall"] == 1.0
    assert again["in_scope_accuracy"] == changed["after"]["val_in_scope_accuracy"]
    res = run("train", "threshold", str(tmp_path / "rk2"), "--out", str(tmp_path / "rk2"))
    assert res.exit_code == 0 and "maximise accuracy" in " ".join(res.output.split()), res.output
    before = (model / "ranker.json").read_bytes()
    res = run("train", "threshold", str(model), "--out", str(model / "goal"))
    assert res.exit_code == 2 and "inside the ranker folder" in res.output
    assert (model / "ranker.json").read_bytes() == before and not (model / "goal").exists()
    res = run("train", "ranker", str(idx), str(labelled), "--out", str(model), "--cold-start", "2")
    assert res.exit_code != 0 and "cold-start" in res.output
    res = run(
        "train", "ranker", str(idx), str(labelled), "--out", str(model),
        "--min-in-scope-accuracy", "2",
    )  # fmt: skip
    assert res.exit_code != 0 and "min-in-scope-accuracy" in res.output
    # a recall goal needs out-of-scope rows in validation (the carved 10 % has none here)
    res = run(
        "train", "ranker", str(idx), str(labelled), "--out", str(model), "--min-oos-recall", "0.8"
    )
    assert res.exit_code != 0 and "needs out-of-scope rows" in res.output
    res = run(
        "train", "ranker", str(idx), str(labelled), "--out", str(model), "--min-oos-recall", "2"
    )
    assert res.exit_code != 0 and "min-oos-recall" in res.output


def test_a_usage_error_is_one_line_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from frontdesk.cli import main

    monkeypatch.setattr(sys, "argv", ["frontdesk", "suggest", "some-index"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: Missing argument 'text'. (see 'frontdesk suggest -h')"
    ]


def test_version_and_flags_shown_as_flags() -> None:
    from frontdesk import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"frontdesk {__version__}"
    help_text = runner.invoke(app, ["suggest", "--help"]).output
    assert "-k, --k" in help_text
    assert "--json " in help_text and "<bool>" not in help_text


def test_progress_off_a_terminal_logs_one_line_per_stage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pipe or a log file gets no bar but, once a job has run a while, a line per stage
    (and one per LOG_EVERY_S within a stage); a quiet (--json) job gets neither."""
    from frontdesk.cli import _common

    monkeypatch.setattr(_common.StageProgress, "QUIET_FIRST_S", 0.0)
    monkeypatch.setattr(_common.StageProgress, "LOG_EVERY_S", 3600.0)
    with _common.progress() as bar:
        tick = _common.stage_ticker(bar, "training")
        for done in range(3):
            tick("out-of-fold features", done, 3)
        tick("final model", 0, 0)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["out-of-fold features 0/3", "final model"]
    with _common.progress() as bar:  # a bar driven by advance(), its description changing
        task = bar.add_task("fine-tuning", total=4)
        for loss in (0.9, 0.5):
            bar.update(task, description=f"fine-tuning (loss {loss})")
            bar.advance(task)
    logged = capsys.readouterr().err.splitlines()
    assert len(logged) == 1 and logged[0].endswith("] fine-tuning (loss 0.9) 0/4")
    with _common.progress() as bar:  # numbers in a description do not make a new stage
        tick = _common.stage_ticker(bar, "eval")
        for day in range(3):
            tick(f"simulating rule, day {day}", day, 3)
    logged = capsys.readouterr().err.splitlines()
    assert len(logged) == 1 and logged[0].endswith("] simulating rule, day 0 0/3")
    with _common.progress(quiet=True) as bar:
        _common.stage_ticker(bar, "training")("out-of-fold features", 0, 3)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_common.StageProgress, "QUIET_FIRST_S", 3600.0)
    with _common.progress() as bar:  # a short job: its output stays its result
        _common.stage_ticker(bar, "training")("out-of-fold features", 0, 3)
    assert capsys.readouterr().err == ""
