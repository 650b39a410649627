"""Training rows from logged agents' choices (``train ranker --feedback LOGS``).

Each suggestion row of a joined log folder whose ``workflow_used`` is in the
index becomes a labelled query (``decisions.feedback``), weighted against
position bias (``position_bias``) by where in the shown list it was taken.
What was used is recorded in ``ranker.json`` under ``training.feedback``: the
folder and its manifest's sha256, the rows used and skipped, θ and the weights;
and, row by row, in ``feedback_lineage.json`` (``FeedbackRows.lineage``: hashes
of their decision and contact ids), which ``simulate suggestions`` checks.

Validation is never a training row: without ``--val`` it is carved from the
feedback rows only (``carve_from``), whole groups at a time (``groups``: the
decisions of one contact, and every row with the same label and text, are one
group, never split between validation and training nor between folds); a
``--val`` file holding feedback questions (same decision or contact id, or the
same label and text) is warned about, loudly, since the ranker would be judged
on what it learned from.

Known gap: the position weights reach the trees, their early stopping and the
classifier's weight in their starting score; the popularity and profile priors
and the classifier are fitted on the rows unweighted (their APIs take no
weights), and calibration and the threshold read validation unweighted
(``UNWEIGHTED`` in ``ranker.json``).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...decisions.feedback import Feedback, read_feedback
from ...index.builder import document_key
from ...lineage import FeedbackLineage
from ...schema import LabelledQuery
from .position_bias import DEFAULT_MAX_WEIGHT, PositionBias, estimate_position_bias

FEEDBACK_VAL_SOURCE = "carved from the feedback rows (10 % of their contacts, out-of-fold features)"
UNWEIGHTED = ["priors", "classifier", "calibration", "threshold"]  # fitted without the weights


@dataclass(frozen=True)
class FeedbackRows:
    """Labelled queries from a log folder, each with its position-bias weight."""

    feedback: Feedback
    bias: PositionBias
    weights: list[float]  # one per row of ``rows``

    @property
    def rows(self) -> list[LabelledQuery]:
        """The usable rows as labelled queries, in the order of ``weights``."""
        return self.feedback.queries

    def lineage(self) -> FeedbackLineage:
        """The hashes of the decision and contact ids of every usable row (validation's too:
        the threshold was tuned on them), saved beside the ranker."""
        rows = self.feedback.rows
        contacts = [r.group for r in rows if r.group != r.query.id]  # group: contact id, if any
        source = {k: v for k, v in self.feedback.summary().items() if k != "files"}
        return FeedbackLineage.of_rows([str(r.query.id) for r in rows], contacts, source)

    def record(self) -> dict[str, Any]:
        """What ``ranker.json`` says of the feedback it learned from."""
        by_rank: dict[str, int] = {}
        for r in self.feedback.rows:
            key = str(r.shown.accepted_rank) if r.shown.accepted_rank else "not shown"
            by_rank[key] = by_rank.get(key, 0) + 1
        return {
            **self.feedback.summary(),
            "accepted_rank": dict(sorted(by_rank.items())),
            "position_bias": self.bias.to_json(),
            "weight_mean": sum(self.weights) / len(self.weights) if self.weights else None,
            "contacts": len({r.group for r in self.feedback.rows}),
            "unweighted": UNWEIGHTED if self.bias.corrects else [],
        }


def feedback_rows(
    path: str | Path,
    workflow_ids: Iterable[str],
    *,
    correct: bool = True,
    max_weight: float = DEFAULT_MAX_WEIGHT,
) -> FeedbackRows:
    """The usable rows of ``path`` and their weights (1 each without a correction)."""
    fb = read_feedback(path, workflow_ids)
    bias = estimate_position_bias(fb.lists, max_weight=max_weight, correct=correct)
    return FeedbackRows(fb, bias, [bias.weight(r.shown.accepted_rank) for r in fb.rows])


def combine(
    labelled: Sequence[LabelledQuery], feedback: FeedbackRows | None
) -> tuple[list[LabelledQuery], list[float | None], list[int] | None, list[int] | None]:
    """The training rows (a file's, then feedback's), a weight per row (None for a file's:
    1, not rescaled with the feedback's), the positions validation may be carved from
    (feedback's; None: any) and each row's group (``conversation_groups``; None: its own)."""
    rows = list(labelled)
    weights: list[float | None] = [None] * len(rows)
    if feedback is None:
        return rows, weights, None, None
    carve_from = list(range(len(rows), len(rows) + len(feedback.rows)))
    groups = conversation_groups(rows, feedback)
    return rows + feedback.rows, weights + list(feedback.weights), carve_from, groups


def conversation_groups(labelled: Sequence[LabelledQuery], feedback: FeedbackRows) -> list[int]:
    """Per row of ``labelled`` then of ``feedback``, its group (numbered in first-seen
    order): rows of one contact, and rows with the same label and ``document_key`` text,
    are one group, transitively."""
    n = len(labelled) + len(feedback.rows)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[Hashable, int] = {}
    keys: list[tuple[int, Hashable]] = [
        (i, ("text", q.label, document_key(q.text)))
        for i, q in enumerate([*labelled, *feedback.rows])
        if q.label is not None
    ]
    keys += [(i, ("contact", r.group)) for i, r in enumerate(feedback.feedback.rows, len(labelled))]
    for i, key in keys:
        parent[root(i)] = root(first.setdefault(key, i))
    numbers: dict[int, int] = {}
    return [numbers.setdefault(root(i), len(numbers)) for i in range(n)]


def warn_if_validation_overlaps(
    feedback: FeedbackRows | None, val_rows: Sequence[LabelledQuery] | None
) -> int:
    """How many ``val_rows`` are feedback questions (same label and text, or an id that is a
    feedback row's decision or contact id); a warning when any is."""
    if feedback is None or not val_rows:
        return 0
    ids = {q.id for q in feedback.rows} | {r.group for r in feedback.feedback.rows}
    keys = {(q.label, document_key(q.text)) for q in feedback.rows}
    n = sum(1 for q in val_rows if q.id in ids or (q.label, document_key(q.text)) in keys)
    if n:
        warnings.warn(
            f"VALIDATION OVERLAPS TRAINING: {n} of the {len(val_rows)} --val rows are feedback "
            f"rows of {feedback.feedback.path} the ranker trains on; its validation scores, "
            "calibration and threshold are optimistic. Give a --val of other traffic, or "
            "leave --val out to carve validation from the feedback",
            stacklevel=2,
        )
    return n
