"""Deterministic two-turn benchmarks from single-turn labelled questions.

``distractor_first``: an earlier user turn of small talk, or an out-of-scope
line (from the source's null-labelled rows when given), then the real
question. ``vague_follow_up``: the real question as an earlier user turn, an
agent acknowledgement, then a short follow-up that names no workflow. The
label stays the real question's; the same seed gives the same file.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..schema import LabelledQuery

SMALL_TALK = (
    "hi there",
    "hello!",
    "good morning",
    "hey, hope you're well",
    "thanks for getting back to me",
    "I have a quick question",
    "sorry to bother you again",
    "ok so",
    "hi, it's me again",
    "morning! long day already",
)
FOLLOW_UPS = (
    "yes please",
    "it's been two weeks",
    "any update?",
    "can you help with that?",
    "ok, what now?",
    "still waiting on this",
    "please hurry",
    "and?",
    "is that possible?",
    "what should I do?",
    "thanks, go ahead",
    "it happened again today",
)
ACKS = (
    "Thanks, let me look into that.",
    "Sure, I can help with that.",
    "Got it, one moment please.",
    "Thanks for the details.",
)
KINDS = ("distractor_first", "vague_follow_up")


def make_multiturn(
    rows: Sequence[LabelledQuery],
    kind: str,
    seed: int = 0,
    distractors: Sequence[str] = (),
) -> list[LabelledQuery]:
    """Two-turn versions of ``rows`` (labelled rows only), in input order."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    rng = random.Random(f"{kind}:{seed}")
    pool = list(SMALL_TALK) + list(distractors)
    out = []
    for i, q in enumerate(r for r in rows if r.label is not None):
        user = q.context.user.model_dump(exclude_defaults=True)
        if kind == "distractor_first":
            turns = [{"role": "user", "text": rng.choice(pool)}]
            text = q.text
        else:
            turns = [{"role": "user", "text": q.text}, {"role": "agent", "text": rng.choice(ACKS)}]
            text = rng.choice(FOLLOW_UPS)
        out.append(
            LabelledQuery(
                id=f"{kind}-{q.id or i}",
                text=text,
                context={"turns": turns, "user": user},
                label=q.label,
            )
        )
    return out
