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
