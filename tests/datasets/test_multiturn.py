"""The two-turn benchmark generator is deterministic and keeps labels."""

from __future__ import annotations

import pytest

from frontdesk import LabelledQuery
from frontdesk.datasets.multiturn import FOLLOW_UPS, SMALL_TALK, make_multiturn

ROWS = [
    LabelledQuery(id="a", text="freeze my card", label="freeze_account"),
    LabelledQuery(
        id="b", text="what's my balance", label="balance", context={"user": {"segment": "smb"}}
    ),
    LabelledQuery(id="c", text="how tall is everest", label=None),  # out of scope: skipped
]


def test_same_seed_same_rows_other_seed_differs() -> None:
    many = [LabelledQuery(id=str(i), text=f"question {i}", label="x") for i in range(50)]
    a = make_multiturn(many, "vague_follow_up", seed=3)
    assert a == make_multiturn(many, "vague_follow_up", seed=3)
    assert a != make_multiturn(many, "vague_follow_up", seed=4)


def test_distractor_first_keeps_question_last() -> None:
    out = make_multiturn(ROWS, "distractor_first", seed=0, distractors=["a show on broadway"])
    assert [q.id for q in out] == ["distractor_first-a", "distractor_first-b"]
    assert [q.text for q in out] == ["freeze my card", "what's my balance"]
    assert [q.label for q in out] == ["freeze_account", "balance"]
    for q in out:
        (turn,) = q.turns
        assert turn.role == "user" and turn.text in (*SMALL_TALK, "a show on broadway")
    assert out[1].user.segment == "smb"


def test_vague_follow_up_moves_question_to_earlier_turn() -> None:
    out = make_multiturn(ROWS, "vague_follow_up", seed=0)
    q = out[0]
    assert q.text in FOLLOW_UPS and q.label == "freeze_account"
    assert [t.role for t in q.turns] == ["user", "agent"] and q.turns[0].text == "freeze my card"


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        make_multiturn(ROWS, "three_turns")


def test_training_validation_and_benchmark_phrases_are_disjoint() -> None:
    from frontdesk.datasets.multiturn import PHRASES

    for a, b in (("train", "eval"), ("val", "eval"), ("val", "train")):
        for first, second in zip(PHRASES[a], PHRASES[b], strict=True):
            assert not set(first) & set(second), (a, b)
    out = make_multiturn(ROWS, "vague_follow_up", seed=0, phrases="train")
    assert all(q.text not in FOLLOW_UPS for q in out)


# three workflows, so a topic shift always has another one to come from
SHIFT_ROWS = [
    LabelledQuery(id="p", text="freeze my card", label="freeze"),
    LabelledQuery(id="q", text="block my card now", label="freeze"),  # same label as p
    LabelledQuery(id="r", text="what's my balance", label="balance"),
    LabelledQuery(id="s", text="change my pin", label="pin"),
    LabelledQuery(id="t", text="is the bank open", label=None),  # out of scope: skipped
]


def test_topic_shift_earlier_exchanges_are_about_other_workflows() -> None:
    from frontdesk.datasets.multiturn import ANSWERS, THANKS

    by_text = {r.text: r.label for r in SHIFT_ROWS}
    out = make_multiturn(SHIFT_ROWS, "topic_shift", seed=1)
    assert [q.id for q in out] == [
        "topic_shift-p",
        "topic_shift-q",
        "topic_shift-r",
        "topic_shift-s",
    ]
    assert [q.text for q in out] == [r.text for r in SHIFT_ROWS[:4]]  # the new request comes last
    for q in out:
        roles = [t.role for t in q.turns]
        assert roles in (["user", "agent", "user"], ["user", "agent", "user"] * 2)
        for j in range(0, len(q.turns), 3):
            request, answer, thanks = q.turns[j : j + 3]
            assert by_text[request.text] not in (q.label, None)  # another workflow, in scope
            assert answer.text in ANSWERS and thanks.text in THANKS
    assert out == make_multiturn(SHIFT_ROWS, "topic_shift", seed=1)
    many = [LabelledQuery(id=str(i), text=f"q {i}", label=str(i % 5)) for i in range(40)]
    a, b = (make_multiturn(many, "topic_shift", seed=s) for s in (1, 2))
    assert a != b
    assert {len(q.turns) for q in a} == {3, 6}  # one or two earlier exchanges


def test_topic_shift_phrase_pools_and_single_label() -> None:
    from frontdesk.datasets.multiturn import ANSWERS, THANKS

    out = make_multiturn(SHIFT_ROWS, "topic_shift", seed=0, phrases="val")
    assert all(t.text not in (*ANSWERS, *THANKS) for q in out for t in q.turns[1:3])
    alone = make_multiturn(SHIFT_ROWS[:2], "topic_shift", seed=0)  # no other workflow at hand
    assert [q.turns for q in alone] == [[], []]


def test_cli_multiturn_topic_shift(tmp_path) -> None:
    from typer.testing import CliRunner

    from frontdesk.cli import app
    from frontdesk.loaders import load_queries, write_jsonl

    src, dst = tmp_path / "q.jsonl", tmp_path / "shift.jsonl"
    write_jsonl(src, SHIFT_ROWS)
    args = ["datasets", "multiturn", str(src), "--kind", "topic_shift", "--out", str(dst)]
    res = CliRunner().invoke(app, [*args, "--seed", "1", "--phrases", "train"])
    assert res.exit_code == 0, res.output
    rows = load_queries(dst)
    assert rows == make_multiturn(SHIFT_ROWS, "topic_shift", seed=1, phrases="train")
    res = CliRunner().invoke(app, [*args, "--phrases", "nope"])
    assert res.exit_code != 0
