"""The demo questions' tune/test halves: disjoint, complete, stratified, and the documented rule."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path

from frontdesk import LabelledQuery, load_queries
from frontdesk.datasets.splits import split_halves

DATA = Path(str(resources.files("frontdesk") / "data"))
TUNE = load_queries(DATA / "demo_queries_tune.jsonl")
TEST = load_queries(DATA / "demo_queries_test.jsonl")

ROWS = [
    LabelledQuery(id=f"{label}-{i}", text=f"{label} question {i}", label=label)
    for label, n in (("a", 4), ("b", 3), ("c", 2))
    for i in range(n)
] + [
    LabelledQuery(id="d-0", text="only one of d", label="d"),
    LabelledQuery(id="oos-0", text="what is the meaning of life", label=None),
    LabelledQuery(id="oos-1", text="how tall is everest", label=None),
]


def test_split_halves_deals_each_label_alternately_odd_one_to_test() -> None:
    tune, test = split_halves(ROWS)
    assert Counter(q.label for q in test) == {"a": 2, "b": 2, "c": 1, "d": 1, None: 1}
    assert Counter(q.label for q in tune) == {"a": 2, "b": 1, "c": 1, None: 1}
    assert [q.id for q in tune] == [q.id for q in ROWS if q in tune]  # input order kept
    assert split_halves(ROWS) == (tune, test)  # deterministic
    seeds = {tuple(q.id for q in split_halves(ROWS, seed=s)[1]) for s in range(8)}
    assert len(seeds) > 1  # the seed decides which rows of a label go where


def test_demo_halves_are_disjoint_and_cover_every_question_once() -> None:
    tune_ids = [q.id for q in TUNE]
    test_ids = [q.id for q in TEST]
    assert None not in tune_ids + test_ids
    assert len(set(tune_ids)) == len(tune_ids) and len(set(test_ids)) == len(test_ids)
    assert not set(tune_ids) & set(test_ids)
    assert not {q.text for q in TUNE} & {q.text for q in TEST}
    # ids dq1..dqN number the questions in writing order: the union has no gap
    numbers = sorted(int(i.removeprefix("dq")) for i in tune_ids + test_ids)
    assert numbers == list(range(1, len(numbers) + 1))


def test_demo_halves_are_stratified_by_label() -> None:
    tune, test = Counter(q.label for q in TUNE), Counter(q.label for q in TEST)
    for label in tune.keys() | test.keys():
        total = tune[label] + test[label]
        if total >= 2:
            assert tune[label] >= 1 and test[label] >= 1, label
        assert test[label] - tune[label] in (0, 1), label


def test_demo_halves_are_the_documented_rule_applied_in_writing_order() -> None:
    every = sorted(TUNE + TEST, key=lambda q: int(q.id.removeprefix("dq")))  # type: ignore[union-attr]
    tune, test = split_halves(every)
    assert [q.id for q in tune] == [q.id for q in TUNE]
    assert [q.id for q in test] == [q.id for q in TEST]


def test_demo_files_hold_only_id_text_label() -> None:
    for name in ("demo_queries_tune.jsonl", "demo_queries_test.jsonl"):
        for line in (DATA / name).read_text().splitlines():
            assert set(json.loads(line)) == {"id", "text", "label"}, name
