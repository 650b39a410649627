"""The rows the ranker trains on: the given ones, multi-turn forms of some, every row's fold."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...datasets.multiturn import ALL_KINDS, make_multiturn
from ...index.builder import document_key
from ...schema import LabelledQuery
from ..classifier import WorkflowClassifier
from .config import RankerTrainingConfig


@dataclass(frozen=True)
class TrainingRows:
    """The given rows, then the multi-turn forms of some of them, each with its fold.

    A multi-turn form shares the fold of the row it came from (``parent``), so a
    question and its copies are never on both sides of a fold boundary; so do
    the given rows of one ``group`` (e.g. one contact's decisions).
    """

    rows: list[LabelledQuery]
    parent: list[int]  # the given row each row came from (itself, for a given row)
    fold: list[int]
    n_given: int
    distractors: list[str]  # the given out-of-scope texts: two-turn forms' first turns
    group: list[int] | None = None  # per given row, its group (None: each row its own)

    @property
    def given(self) -> list[LabelledQuery]:
        """The rows as given, without their two-turn forms."""
        return self.rows[: self.n_given]

    def key(self, i: int) -> tuple[str | None, str]:
        """Row ``i``'s question as an index example would hold it: its label and the
        document key of the text it came from (a two-turn form's is its parent's)."""
        return self.rows[i].label, document_key(self.rows[self.parent[i]].text)


def two_turn_forms(
    rows: Sequence[LabelledQuery],
    share: float,
    seed: int,
    distractors: Sequence[str],
    fold_of: Mapping[int, int] | None = None,
) -> list[tuple[int, LabelledQuery]]:
    """Multi-turn versions (every kind in ``ALL_KINDS``) of a seeded ``share`` of the
    labelled ``rows``, each with the position of the row it came from; phrases from the
    training pool.

    ``topic_shift`` forms take their earlier requests from other picked rows of other
    workflows (no form where there are none); with ``fold_of`` (row -> fold), from rows
    of the same fold, so that out of fold the index holds neither the question nor the
    earlier requests, as at inference.
    """
    if share <= 0:
        return []
    labelled = [i for i, q in enumerate(rows) if q.label is not None]
    picked = sorted(random.Random(seed + 1).sample(labelled, int(len(labelled) * share)))
    out: list[tuple[int, LabelledQuery]] = []
    for kind in ALL_KINDS:
        groups: dict[int, list[int]] = {}
        for i in picked:
            key = fold_of[i] if kind == "topic_shift" and fold_of is not None else 0
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            variants = make_multiturn(
                [rows[i] for i in members], kind, seed=seed, distractors=distractors,
                phrases="train",
            )  # fmt: skip
            # a topic shift needs an earlier request of another workflow
            out.extend((i, v) for i, v in zip(members, variants, strict=True) if v.context.turns)
    return out


def expand_rows(
    rows: Sequence[LabelledQuery],
    config: RankerTrainingConfig,
    groups: Sequence[int] | None = None,
) -> TrainingRows:
    """The given rows in seeded folds (round robin over a shuffle of their ``groups``, one
    per row: rows of a group share a fold; None: each row its own), then their two-turn
    forms (``config.augment_context``), each in its parent's fold."""
    given = list(rows)
    if groups is not None and len(groups) != len(given):
        raise ValueError(f"{len(groups)} groups for {len(given)} rows")
    unit = list(groups) if groups is not None else list(range(len(given)))
    order = list(dict.fromkeys(unit))
    random.Random(config.seed).shuffle(order)
    fold_of_unit = {u: n % config.folds for n, u in enumerate(order)}
    fold_of = {i: fold_of_unit[u] for i, u in enumerate(unit)}
    out = list(given)
    parent = list(range(len(given)))
    distractors = [q.text for q in given if q.label is None]
    for i, v in two_turn_forms(given, config.augment_context, config.seed, distractors, fold_of):
        fold_of[len(parent)] = fold_of[i]
        parent.append(i)
        out.append(v)
    return TrainingRows(
        out,
        parent,
        [fold_of[i] for i in range(len(out))],
        len(given),
        distractors,
        list(groups) if groups is not None else None,
    )


def fit_classifier(
    rows: Sequence[LabelledQuery], vectors: np.ndarray, members: Iterable[int]
) -> WorkflowClassifier | None:
    """The classifier on the labelled rows among ``members`` (``vectors``: the rows'
    conversation vectors); None with fewer than two workflows."""
    keep = [i for i in members if rows[i].label is not None]
    return WorkflowClassifier.fit(vectors[keep], [str(rows[i].label) for i in keep])
