"""Bad input fails with ``file:line: field: reason``; good input keeps unknown fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontdesk import DataError, load_catalog, load_queries

OK = '{"id": "a", "title": "A"}'

# (file name, raw content, expected message after "<path>")
CATALOG_CASES = [
    ("empty", "catalog.jsonl", b"", ": file is empty"),
    ("blank lines only", "catalog.jsonl", b"\n  \n", ": file is empty"),
    (
        "invalid json",
        "catalog.jsonl",
        f"{OK}\n{{oops\n".encode(),
        ":2: invalid JSON: Expecting property name enclosed in double quotes",
    ),
    ("not an object", "catalog.jsonl", b"[1, 2]\n", ":1: expected an object, got list"),
    ("missing id", "catalog.jsonl", b'{"title": "A"}\n', ":1: id: is required"),
    ("missing title", "catalog.jsonl", b'{"id": "a"}\n', ":1: title: is required"),
    (
        "blank title",
        "catalog.jsonl",
        b'{"id": "a", "title": "   "}\n',
        ":1: title: must not be empty",
    ),
    (
        "title not a string",
        "catalog.jsonl",
        b'{"id": "a", "title": 12}\n',
        ":1: title: input should be a valid string",
    ),
    (
        "steps not a list",
        "catalog.jsonl",
        b'{"id": "a", "title": "A", "steps": "do it"}\n',
        ":1: steps: input should be a valid list",
    ),
    (
        "step not a string",
        "catalog.jsonl",
        b'{"id": "a", "title": "A", "steps": ["x", 3]}\n',
        ":1: steps.1: input should be a valid string",
    ),
    (
        "duplicate id",
        "catalog.jsonl",
        f'{OK}\n{{"id": "b", "title": "B"}}\n{OK}\n'.encode(),
        ":3: id: duplicate id 'a' (first on line 1)",
    ),
    (
        "bad utf-8",
        "catalog.jsonl",
        OK.encode() + b'\n{"id": "b", "title": "\xff"}\n',
        ":2: invalid UTF-8 (byte 23 of the line)",
    ),
    (
        "whitespace in id",
        "catalog.jsonl",
        b'{"id": "a b", "title": "A"}\n',
        ":1: id: must not contain whitespace",
    ),
    (
        "yaml not a list",
        "catalog.yaml",
        b"id: a\ntitle: A\n",
        ":1: expected a list of workflows (or a 'workflows:' key)",
    ),
    (
        "yaml syntax",
        "catalog.yaml",
        b"- id: a\n  title: [A\n",
        ":3: invalid YAML: expected ',' or ']', but got '<stream end>'",
    ),
    (
        "yaml item line",
        "catalog.yaml",
        b"workflows:\n  - id: a\n    title: A\n  - id: b\n",
        ":4: title: is required",
    ),
    ("yaml empty", "catalog.yml", b"\n", ": file is empty"),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [(c[1], c[2], c[3]) for c in CATALOG_CASES],
    ids=[c[0] for c in CATALOG_CASES],
)
def test_bad_catalog_is_reported_with_file_line_field(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_catalog(path)
    assert str(info.value) == f"{path}{expected}"


def test_missing_catalog_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found$"):
        load_catalog(tmp_path / "nope.jsonl")


QUERY_CASES = [
    ("label missing", b'{"text": "hi"}\n', ":1: label: is required"),
    (
        "label unknown",
        b'{"text": "hi", "label": "a"}\n{"text": "yo", "label": "nope"}\n',
        ":2: label: unknown workflow id 'nope'",
    ),
    ("label blank", b'{"text": "hi", "label": " "}\n', ":1: label: must be a workflow id or null"),
    ("text missing", b'{"label": "a"}\n', ":1: text: is required"),
    (
        "bad role",
        b'{"text": "hi", "label": null, "context": {"turns": [{"role": "bot", "text": "x"}]}}\n',
        ":1: context.turns.0.role: input should be 'user', 'agent' or 'system'",
    ),
    (
        "negative tenure",
        b'{"text": "hi", "label": null, "context": {"user": {"tenure_days": -3}}}\n',
        ":1: context.user.tenure_days: input should be greater than or equal to 0",
    ),
    (
        "duplicate query id",
        b'{"id": "q", "text": "a", "label": null}\n{"id": "q", "text": "b", "label": null}\n',
        ":2: id: duplicate id 'q' (first on line 1)",
    ),
]


@pytest.mark.parametrize(
    ("content", "expected"), [(c[1], c[2]) for c in QUERY_CASES], ids=[c[0] for c in QUERY_CASES]
)
def test_bad_queries_are_reported(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_queries(path, workflow_ids={"a"})
    assert str(info.value) == f"{path}{expected}"


def test_unknown_fields_are_kept_in_metadata(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "title": "A", "owner": "payments-team", "sla_hours": 4}\n')
    (wf,) = load_catalog(path)
    assert wf.metadata == {"owner": "payments-team", "sla_hours": 4}


def test_yaml_catalog_and_bom_and_blank_lines(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("- id: a\n  title: A\n  steps: [one, two]\n- id: b\n  title: B\n")
    assert [w.id for w in load_catalog(y)] == ["a", "b"]
    j = tmp_path / "c.jsonl"
    j.write_bytes(b"\xef\xbb\xbf" + OK.encode() + b"\n\n")
    assert [w.id for w in load_catalog(j)] == ["a"]


def test_null_label_means_out_of_scope(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"text": "weather?", "label": null}\n')
    (q,) = load_queries(path, workflow_ids={"a"})
    assert q.label is None
