"""BANKING77, CLINC150 and ABCD -> ``workflows.jsonl`` + ``train/val/test.jsonl``.

Workflow ids are the sources' own intent names. Intent datasets have no
workflow text: BANKING77 workflows get the project's own title, one-line
description and topic per intent (``data/banking77_workflows.jsonl``),
CLINC150 workflows the project's own title and one-line description
(``data/clinc150_workflows.jsonl``) and their domain as a tag. Examples stay
in the query files, to be attached to the index with ``--examples``. ABCD's
guidelines are real agent workflows: each subflow becomes a workflow with its
action steps.

Provenance of the BANKING77 texts: written the way a payments support team
would describe its workflow for each intent, from the intent names alone (as
listed in ``categories.json``) and general knowledge of how a card / e-money
app's support works; no customer question from the dataset was read. 14 of
them were revised after a zero-shot run on the *train* split used as
validation, reading only per-intent accuracy and confusion counts. Intent
names keep the dataset's spelling, including ``Refund_not_showing_up`` and
``reverted_card_payment?``.

Provenance of the CLINC150 texts: written the same way for a voice
assistant's 150 intents, from the intent and domain names alone (as listed in
``domains.json``) and general knowledge of what such an assistant is asked; no
question from the dataset was read, none was revised after a measurement.
Without them CLINC150 workflows would be their intent names alone.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..loaders import load_queries, write_jsonl
from ..schema import Workflow
from .splits import sample_shots


def _bundled_texts(name: str) -> dict[str, dict[str, str]]:
    path = Path(str(resources.files("frontdesk") / "data" / f"{name}_workflows.jsonl"))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {row["intent"]: row for row in rows}


def banking77_workflow_texts() -> dict[str, dict[str, str]]:
    """Per BANKING77 intent: its ``title``, ``description`` and ``topic``, from the bundled file."""
    return _bundled_texts("banking77")


def clinc150_workflow_texts() -> dict[str, dict[str, str]]:
    """Per CLINC150 intent: its ``title`` and ``description``, from the bundled file."""
    return _bundled_texts("clinc150")


def _title(intent: str) -> str:
    words = intent.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(str(path), None, None, "file not found (is SRC_DIR the dataset folder?)")
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_require(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(str(path), exc.lineno, None, f"invalid JSON: {exc.msg}") from None


def import_banking77(src: Path, out: Path) -> dict[str, int]:
    """``train.csv``/``test.csv`` (text,category) -> 77 workflows, train and test queries."""
    counts: dict[str, int] = {}
    intents: list[str] = []
    cats = src / "categories.json"
    if cats.is_file():
        intents = list(_read_json(cats))
    splits: dict[str, list[dict[str, Any]]] = {}
    for split in ("train", "test"):
        path = _require(src / f"{split}.csv")
        rows = []
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
                raise DataError(str(path), 1, None, "expected the columns text,category")
            for line, row in enumerate(reader, start=2):
                text, cat = (row.get("text") or "").strip(), (row.get("category") or "").strip()
                if not text or not cat:
                    raise DataError(str(path), line, "text" if not text else "category", "empty")
                if cat not in intents:
                    intents.append(cat)
                rows.append({"id": f"b77-{split}-{len(rows) + 1}", "text": text, "label": cat})
        splits[split] = rows
    texts = banking77_workflow_texts()
    workflows = []
    for i in intents:
        t = texts.get(i, {})
        workflows.append(
            Workflow(
                id=i,
                title=t.get("title", _title(i)),
                description=t.get("description", ""),
                tags=["banking", t.get("topic", "other")],
            )
        )
    counts["workflows"] = write_jsonl(out / "workflows.jsonl", workflows)
    for split, rows in splits.items():
        counts[split] = write_jsonl(out / f"{split}.jsonl", rows)
    return counts


def import_clinc150(src: Path, out: Path) -> dict[str, int]:
    """``data_full.json`` -> 150 workflows (the project's titles and descriptions); ``oos_*``
    rows labelled null in their split."""
    path = src / "data_full.json"
    data = _read_json(path)
    domains = _read_json(src / "domains.json") if (src / "domains.json").is_file() else {}
    domain_of = {intent: d for d, intents in domains.items() for intent in intents}
    intents: list[str] = []
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for split in ("train", "val", "test"):
        for key, label_oos in ((split, False), (f"oos_{split}", True)):
            for i, item in enumerate(data.get(key, [])):
                if not (isinstance(item, list) and len(item) == 2):
                    raise DataError(str(path), None, f"{key}[{i}]", "expected [text, intent]")
                text, intent = item
                label = None if label_oos or intent == "oos" else intent
                if label is not None and label not in intents:
                    intents.append(label)
                rows = splits[split]
                rows.append({"id": f"clinc-{split}-{len(rows) + 1}", "text": text, "label": label})
    texts = clinc150_workflow_texts()
    workflows = [
        Workflow(
            id=i,
            title=texts.get(i, {}).get("title", _title(i)),
            description=texts.get(i, {}).get("description", ""),
            tags=[domain_of[i]] if i in domain_of else [],
        )
        for i in sorted(intents)
    ]
    counts = {"workflows": write_jsonl(out / "workflows.jsonl", workflows)}
    for split, rows in splits.items():
        counts[split] = write_jsonl(out / f"{split}.jsonl", rows)
    return counts


_BUTTON = re.compile(r"\[([^\]]+)\]")


def _step(action: dict[str, Any]) -> str:
    text = " ".join(str(action.get("text", "")).split())
    subtext = [" ".join(str(s).split()) for s in action.get("subtext") or [] if str(s).strip()]
    if subtext:
        text = f"{text} {'; '.join(subtext)}".strip()
    return text or str(action.get("button", ""))


def import_abcd(src: Path, out: Path) -> dict[str, int]:
    """``guidelines.json`` subflows -> 55 workflows; sample dialogues -> labelled conversations."""
    guidelines = _read_json(src / "guidelines.json")
    ontology = _read_json(src / "ontology.json")["intents"]["subflows"]
    workflows: list[Workflow] = []
    for flow_name, flow in guidelines.items():
        flow_id = flow_name.lower().replace("-", "_").replace(" ", "_")
        ids = ontology.get(flow_id)
        names = list(flow["subflows"])
        if ids is None or len(ids) != len(names):
            raise DataError(
                str(src / "ontology.json"),
                None,
                f"intents.subflows.{flow_id}",
                "does not list the subflows of guidelines.json in the same order",
            )
        for sub_id, sub_name in zip(ids, names, strict=True):
            sub = flow["subflows"][sub_name]
            instructions = [" ".join(s.split()) for s in sub.get("instructions", []) if s.strip()]
            buttons = [a.get("button") for a in sub.get("actions", []) if a.get("button")]
            workflows.append(
                Workflow(
                    id=sub_id,
                    title=f"{flow_name}: {sub_name}",
                    description=" ".join(instructions[:1]) or str(flow.get("description", "")),
                    steps=[_step(a) for a in sub.get("actions", [])],
                    tags=[flow_id],
                    channels=["chat"],
                    metadata={"flow": flow_id, "actions": buttons, "instructions": instructions},
                )
            )
    known = {wf.id for wf in workflows}
    rows = []
    sample_path = src / "abcd_sample.json"
    for i, convo in enumerate(_read_json(sample_path) if sample_path.is_file() else []):
        sub = re.sub(r"_\d+$", "", convo["scenario"]["subflow"])
        turns = [
            {"role": "user" if who == "customer" else "agent", "text": text}
            for who, text in convo["original"]
            if who in {"customer", "agent"}
        ]
        first_user = next((j for j, t in enumerate(turns) if t["role"] == "user"), None)
        if first_user is None:
            continue
        member = convo["scenario"].get("personal", {}).get("member_level")
        rows.append(
            {
                "id": f"abcd-{convo.get('convo_id', i)}",
                "text": turns[first_user]["text"],
                "context": {
                    "turns": turns[:first_user],
                    "user": {"plan": member} if member else {},
                    "metadata": {"full_dialogue": turns},
                },
                "label": sub if sub in known else None,
            }
        )
    counts = {"workflows": write_jsonl(out / "workflows.jsonl", workflows)}
    counts["test"] = write_jsonl(out / "test.jsonl", rows)
    return counts


IMPORTERS: dict[str, Callable[[Path, Path], dict[str, int]]] = {
    "banking77": import_banking77,
    "clinc150": import_clinc150,
    "abcd": import_abcd,
}


def import_dataset(
    name: str, src: Path, out: Path, *, shots: int | None = None, seed: int = 0
) -> dict[str, int]:
    """Run the importer ``name``; with ``shots``, keep that many train rows per workflow.

    The few-shot train file is ``splits.sample_shots`` of the full one (seeded,
    out-of-scope rows all kept); val and test stay whole. ``shots`` 0 leaves
    only out-of-scope rows: a catalog described by its workflow texts alone.
    """
    if name not in IMPORTERS:
        raise ValueError(f"unknown dataset {name!r}: must be one of {', '.join(IMPORTERS)}")
    if shots is not None and shots < 0:
        raise ValueError("shots must be >= 0")
    counts = IMPORTERS[name](src, out)
    train = out / "train.jsonl"
    if shots is not None and train.is_file():
        counts["train"] = write_jsonl(train, sample_shots(load_queries(train), shots, seed))
    return counts
