"""Deterministic two-turn benchmarks from single-turn labelled questions.

``distractor_first``: an earlier user turn of small talk, or an out-of-scope
line (from the source's null-labelled rows when given), then the real
question. ``vague_follow_up``: the real question as an earlier user turn, an
agent acknowledgement, then a short follow-up that names no workflow. The
label stays the real question's; the same seed gives the same file.
``topic_shift``: one or two complete earlier exchanges about *other*
workflows (a user request phrased as another workflow's question from the
same rows, an agent answer, a user thanks), then the real question.
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
KINDS = ("distractor_first", "vague_follow_up")  # the two-turn kinds
ALL_KINDS = (*KINDS, "topic_shift")  # ranker training augments its rows with every one
# topic_shift: the agent's answer to an earlier request, and the user's thanks
ANSWERS = (
    "Here is how to do that: you'll find it under Settings in the app.",
    "That's done for you now.",
    "I've sorted that out; it should show within a day.",
    "You can do this yourself from the account page.",
)
THANKS = ("thanks!", "great, thank you", "perfect, cheers", "ok thanks for that")

# Disjoint phrasings for training the ranker, so that benchmarks built with the
# default ("eval") phrases never show it a follow-up it was trained on.
TRAIN_SMALL_TALK = (
    "hey",
    "hello there, quick one",
    "good afternoon",
    "hi team",
    "thanks again for earlier",
    "I hope someone can help",
    "quick question for you",
    "evening, all",
    "howdy",
    "hi, hope you are having a good week",
    "greetings",
    "hello, it's been a while",
    "sorry, me again",
    "right then",
    "hey there, thanks for picking up",
    "good day to you",
    "one more thing",
    "morning all",
)
TRAIN_FOLLOW_UPS = (
    "any news?",
    "so what happens next?",
    "it's been a week now",
    "could you sort that?",
    "ok great, please do",
    "hello? still there?",
    "how long will that take?",
    "right, and then?",
    "can you check again?",
    "that's what I need",
    "is it done yet?",
    "did it go through?",
    "where are we with this?",
    "what's going on with it?",
    "nothing has changed",
    "it's been three days",
    "yes, that one",
    "no, the other thing I said",
    "same problem as before",
    "can you do it now?",
    "please, it's urgent",
    "I already tried that",
    "when will I hear back?",
    "thanks, waiting",
    "great, let me know",
    "what do you need from me?",
    "is there anything else I should do?",
    "hm, still the same",
)
TRAIN_ACKS = ("I understand, let me check.", "Okay, looking into it now.", "Noted, thank you.")
TRAIN_ANSWERS = (
    "All fixed on our side.",
    "I've updated that for you.",
    "The steps are in the help centre; I've sent you the link.",
    "That should work now, please try again.",
    "Yes, that is possible, I have arranged it.",
)
TRAIN_THANKS = (
    "thank you so much",
    "brilliant, thanks",
    "cool, ta",
    "that helps, thanks",
    "ok cheers",
)
# A third disjoint pool, for choosing settings on validation questions without
# touching either the training or the benchmark phrasings.
VAL_SMALL_TALK = (
    "hiya",
    "hello, hope your day is going well",
    "good evening",
    "thanks for waiting",
    "so, um",
    "hi again, me once more",
)
VAL_FOLLOW_UPS = (
    "any progress?",
    "what's the status?",
    "please sort it out",
    "it still isn't fixed",
    "how much longer?",
    "sure, do that",
    "ok and now?",
    "you there?",
)
VAL_ACKS = ("Thank you, checking now.", "Understood, give me a second.")
VAL_ANSWERS = ("Done, you're all set.", "I've explained the steps in an email to you.")
VAL_THANKS = ("many thanks", "super, thanks a lot")
PHRASES = {
    "eval": (SMALL_TALK, FOLLOW_UPS, ACKS, ANSWERS, THANKS),
    "train": (TRAIN_SMALL_TALK, TRAIN_FOLLOW_UPS, TRAIN_ACKS, TRAIN_ANSWERS, TRAIN_THANKS),
    "val": (VAL_SMALL_TALK, VAL_FOLLOW_UPS, VAL_ACKS, VAL_ANSWERS, VAL_THANKS),
}


def make_multiturn(
    rows: Sequence[LabelledQuery],
    kind: str,
    seed: int = 0,
    distractors: Sequence[str] = (),
    phrases: str = "eval",
) -> list[LabelledQuery]:
    """Multi-turn versions of ``rows`` (labelled rows only), in input order.

    ``phrases="train"`` draws small talk, follow-ups, acknowledgements,
    answers and thanks from a pool disjoint from the default one used for
    benchmarks; ``"val"`` from a third, for choosing settings. ``topic_shift``
    draws its earlier requests from ``rows`` themselves (other labels only),
    so train rows give train-phrased requests and test rows test-phrased ones.
    """
    if kind not in ALL_KINDS:
        raise ValueError(f"kind must be one of {', '.join(ALL_KINDS)}")
    small_talk, follow_ups, acks, answers, thanks = PHRASES[phrases]
    rng = random.Random(f"{kind}:{phrases}:{seed}")
    pool = list(small_talk) + list(distractors)
    labelled = [r for r in rows if r.label is not None]
    out = []
    for i, q in enumerate(labelled):
        user = q.context.user.model_dump(exclude_defaults=True)
        if kind == "distractor_first":
            turns = [{"role": "user", "text": rng.choice(pool)}]
            text = q.text
        elif kind == "topic_shift":
            turns = _earlier_exchanges(labelled, q.label, rng, answers, thanks)
            text = q.text
        else:
            turns = [{"role": "user", "text": q.text}, {"role": "agent", "text": rng.choice(acks)}]
            text = rng.choice(follow_ups)
        out.append(
            LabelledQuery(
                id=f"{kind}-{q.id or i}",
                text=text,
                context={"turns": turns, "user": user},
                label=q.label,
            )
        )
    return out


def _earlier_exchanges(
    rows: Sequence[LabelledQuery],
    label: str | None,
    rng: random.Random,
    answers: Sequence[str],
    thanks: Sequence[str],
) -> list[dict[str, str]]:
    """One or two finished exchanges about workflows other than ``label`` (none if no other)."""
    if all(r.label == label for r in rows):
        return []
    turns: list[dict[str, str]] = []
    for _ in range(rng.randint(1, 2)):
        other = rng.choice(rows)
        while other.label == label:
            other = rng.choice(rows)
        turns += [
            {"role": "user", "text": other.text},
            {"role": "agent", "text": rng.choice(answers)},
            {"role": "user", "text": rng.choice(thanks)},
        ]
    return turns
