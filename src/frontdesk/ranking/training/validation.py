"""The validation set: a file, or 10 % carved from the training rows; and what early
stopping, calibration and the threshold read of it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ...datasets.splits import carve_validation
from ...errors import FrontdeskError
from ...schema import LabelledQuery
from ..abstention import check_goal_for
from ..features import CandidateSet
from .candidates import WholeIndexScorer
from .config import RankerTrainingConfig
from .folds import OutOfFoldFeatures
from .groups import Groups, group_weights, ranking_groups
from .rows import TrainingRows, two_turn_forms

CARVED_FRACTION = 0.1
CARVED_SOURCE = "carved from training rows (10 %, out-of-fold features)"
# the fewest rows (contacts) of one label a carved 10 % takes one from: round(0.1 n) >= 1
MIN_CARVED_PER_LABEL = next(n for n in range(2, 100) if min(n - 1, round(n * CARVED_FRACTION)))


@dataclass(frozen=True)
class ValidationSplit:
    """Validation's rows: a file's (``file``), or given rows carved out (``carved``)."""

    file: list[LabelledQuery] | None
    carved: list[int]  # positions in the given rows; empty with a file

    @property
    def carved_set(self) -> set[int]:
        return set(self.carved)

    def questions(self, data: TrainingRows) -> list[LabelledQuery]:
        """Validation's rows as given (calibration and the threshold read these)."""
        return list(self.file) if self.file is not None else [data.rows[i] for i in self.carved]

    def trains(self, data: TrainingRows) -> list[int]:
        """The rows that train the trees: all but the carved ones and their two-turn forms."""
        carved = self.carved_set
        return [i for i in range(len(data.rows)) if data.parent[i] not in carved]


def split_validation(
    data: TrainingRows,
    val_rows: Sequence[LabelledQuery] | None,
    config: RankerTrainingConfig,
    carve_from: Sequence[int] | None = None,
) -> ValidationSplit:
    """``val_rows``, or a seeded 10 % of every label of the given rows (``carve_from``: of
    those given rows only, e.g. the logged feedback among a file's rows), whole groups at a
    time when ``data.group`` is set (a group is carved only if all its rows may be, and is
    counted under its first row's label).

    A carved validation is chosen before the folds: its rows get features as
    at inference (nothing of theirs treated as new), while the other rows
    train with cold-start folds. Refused, before any encoding, is validation
    without labelled rows (calibration and the threshold need in-scope
    questions), and a goal it cannot judge (``check_goal_for``).
    """
    carved: list[int] = []
    if val_rows is None:
        pool = list(range(data.n_given)) if carve_from is None else sorted(set(carve_from))
        members = _carvable_groups(data, pool)
        first = [rows[0] for rows in members]
        if carve_from is not None:
            _refuse_small_carve([data.given[i] for i in first], len(pool))
        _, val_part = carve_validation(
            [data.given[i] for i in first], fraction=CARVED_FRACTION, seed=config.seed
        )
        of_first = {id(data.given[i]): rows for i, rows in zip(first, members, strict=True)}
        carved = sorted(i for q in val_part for i in of_first[id(q)])
    split = ValidationSplit(list(val_rows) if val_rows is not None else None, carved)
    checked = split.questions(data)
    if not any(q.label is not None for q in checked):
        raise FrontdeskError(
            "validation has no labelled rows (a --val file without them, or a carved 10 % "
            "too small to hold any): calibration and the threshold need in-scope questions; "
            "pass a --val FILE with labelled rows, or give more training rows (a carved "
            f"validation needs at least {MIN_CARVED_PER_LABEL} rows of one workflow)"
        )
    check_goal_for(
        any(q.label is None for q in checked), config.min_in_scope_accuracy, config.min_oos_recall
    )
    return split


def _refuse_small_carve(firsts: Sequence[LabelledQuery], rows: int) -> None:
    """Refuse, before any encoding, feedback too small to carve a labelled validation from
    (``firsts``: the first row of each carvable group): no workflow has
    ``MIN_CARVED_PER_LABEL`` groups (contacts)."""
    per_label: dict[str, int] = {}
    for q in firsts:
        if q.label is not None:
            per_label[q.label] = per_label.get(q.label, 0) + 1
    most = max(per_label.values(), default=0)
    if most < MIN_CARVED_PER_LABEL:
        raise FrontdeskError(
            f"too few feedback rows to carve a validation from ({rows} usable rows; the most "
            f"contacts any workflow has is {most}): a carved validation takes 10 % of each "
            f"workflow's contacts, so it needs at least {MIN_CARVED_PER_LABEL} feedback rows "
            f"of one workflow, from {MIN_CARVED_PER_LABEL} different contacts; pass --val "
            "FILE (labelled questions of other traffic), or log more lists and join them again"
        )


def _carvable_groups(data: TrainingRows, pool: Sequence[int]) -> list[list[int]]:
    """The given rows of ``pool`` by group (each row alone without ``data.group``), less the
    groups with a row outside ``pool`` (a labelled file's row is never validation)."""
    if data.group is None:
        return [[i] for i in pool]
    by_group: dict[int, list[int]] = {}
    for i in range(data.n_given):
        by_group.setdefault(data.group[i], []).append(i)
    allowed = set(pool)
    return [rows for rows in by_group.values() if allowed.issuperset(rows)]


@dataclass(frozen=True)
class ValidationSet:
    """Validation's candidates and features, and the extra rows early stopping reads.

    Early stopping reads validation's questions and two-turn forms of the
    same share of them as training has (and, for a carved validation, the rows
    of each fold's new workflows once more, scored as new), so the trees are
    kept for every kind of conversation training serves; calibration and the
    threshold read validation as given.
    """

    questions: list[LabelledQuery]
    candidates: list[CandidateSet]
    features: list[np.ndarray]
    # early stopping's extra rows: two-turn forms, then ``cold`` cold copies
    extra_questions: list[LabelledQuery]
    extra_candidates: list[CandidateSet]
    extra_features: list[np.ndarray]
    cold: int
    source: str  # in words, for ranker.json

    def stopping_groups(self, positions: dict[str, int]) -> Groups:
        """The query groups early stopping reads: validation's, then the extra rows'."""
        return ranking_groups(
            self.questions + self.extra_questions,
            self.candidates + self.extra_candidates,
            self.features + self.extra_features,
            positions,
        )

    def stopping_weights(
        self, positions: dict[str, int], weight: Callable[[LabelledQuery], float | None]
    ) -> np.ndarray:
        """Per candidate row of ``stopping_groups``, its question's ``weight`` (e.g. the
        position-bias weight of a feedback row), the groups averaging 1."""
        questions = self.questions + self.extra_questions
        return group_weights(
            questions,
            self.candidates + self.extra_candidates,
            [weight(q) for q in questions],
            positions,
        )


def validation_set(
    split: ValidationSplit,
    data: TrainingRows,
    oof: OutOfFoldFeatures,
    outside: WholeIndexScorer,
    config: RankerTrainingConfig,
) -> ValidationSet:
    """A file's rows and their two-turn forms scored against the whole index (``outside``);
    carved rows with the out-of-fold features they already have, and their copies'."""
    if split.file is not None:
        questions = split.questions(data)
        cands, feats = outside(questions)
        # early stopping also reads two-turn forms of validation's questions, so the trees
        # are not cut back to what single turns need (BENCHMARKS.md, seventh session)
        turns = [
            v
            for _, v in two_turn_forms(
                questions, config.augment_context, config.seed, data.distractors
            )
        ]
        turn_c, turn_x = outside(turns)
        return ValidationSet(questions, cands, feats, turns, turn_c, turn_x, 0, "file")
    carved = split.carved_set
    turn_rows = [i for i in range(data.n_given, len(data.rows)) if data.parent[i] in carved]
    copies = oof.cold_copies
    return ValidationSet(
        split.questions(data),
        [oof.candidates[i] for i in split.carved],
        [oof.features[i] for i in split.carved],
        [data.rows[i] for i in turn_rows] + [data.rows[i] for i in copies],
        [oof.candidates[i] for i in turn_rows] + [c for c, _ in copies.values()],
        [oof.features[i] for i in turn_rows] + [x for _, x in copies.values()],
        len(copies),
        CARVED_SOURCE,
    )
