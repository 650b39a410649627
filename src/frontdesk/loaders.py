"""Read catalogs (JSONL or YAML) and labelled queries, failing with ``file:line: field: reason``."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import DataError
from .schema import Conversation, LabelledQuery, Workflow

T = TypeVar("T", bound=BaseModel)

_FRIENDLY = {
    "string_too_short": "must not be empty",
    "missing": "is required",
    "extra_forbidden": "is not allowed",
}


def _reason(err: dict[str, Any]) -> str:
    friendly = _FRIENDLY.get(err["type"])
    if friendly:
        return friendly
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg[:1].lower() + msg[1:]


def _validate(model: type[T], obj: Any, path: str, line: int) -> T:
    if not isinstance(obj, dict):
        raise DataError(path, line, None, f"expected an object, got {type(obj).__name__}")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or None
        raise DataError(path, line, loc, _reason(err)) from None


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(str(path), None, None, "file not found") from None
    except IsADirectoryError:
        raise DataError(str(path), None, None, "is a directory, expected a file") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            yield number, chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                str(path), number, None, f"invalid UTF-8 (byte {exc.start + 1} of the line)"
            ) from None


def _jsonl_objects(path: Path) -> Iterator[tuple[int, Any]]:
    seen_any = False
    for number, text in _decoded_lines(path):
        if not text.strip():
            continue
        seen_any = True
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(str(path), number, None, f"invalid JSON: {exc.msg}") from None
    if not seen_any:
        raise DataError(str(path), None, None, "file is empty")


def _yaml_objects(path: Path) -> Iterator[tuple[int, Any]]:
    text = "\n".join(line for _, line in _decoded_lines(path))
    if not text.strip():
        raise DataError(str(path), None, None, "file is empty")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise DataError(str(path), line, None, f"invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    items_node = node
    if isinstance(data, dict) and "workflows" in data:
        data = data["workflows"]
        items_node = next(v for k, v in node.value if k.value == "workflows")
    if not isinstance(data, list):
        raise DataError(str(path), 1, None, "expected a list of workflows (or a 'workflows:' key)")
    if not data:
        raise DataError(str(path), None, None, "file is empty")
    for obj, item in zip(data, items_node.value, strict=True):
        yield item.start_mark.line + 1, obj


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    if path.suffix.lower() in {".yaml", ".yml"}:
        return _yaml_objects(path)
    return _jsonl_objects(path)


def load_catalog(path: str | os.PathLike[str]) -> list[Workflow]:
    """Load a workflow catalog (``.jsonl``, ``.yaml``/``.yml``); ids must be unique."""
    p = Path(path)
    workflows: list[Workflow] = []
    first_line: dict[str, int] = {}
    for line, obj in _records(p):
        wf = _validate(Workflow, obj, str(p), line)
        if wf.id in first_line:
            raise DataError(
                str(p), line, "id", f"duplicate id '{wf.id}' (first on line {first_line[wf.id]})"
            )
        first_line[wf.id] = line
        workflows.append(wf)
    return workflows


def load_queries(
    path: str | os.PathLike[str], workflow_ids: set[str] | None = None
) -> list[LabelledQuery]:
    """Load labelled queries (``label`` required, ``null`` meaning out of scope).

    With ``workflow_ids``, a label naming no workflow of the catalog is an error.
    """
    p = Path(path)
    out: list[LabelledQuery] = []
    seen: dict[str, int] = {}
    for line, obj in _records(p):
        q = _validate(LabelledQuery, obj, str(p), line)
        if q.id is not None:
            if q.id in seen:
                raise DataError(
                    str(p), line, "id", f"duplicate id '{q.id}' (first on line {seen[q.id]})"
                )
            seen[q.id] = line
        if workflow_ids is not None and q.label is not None and q.label not in workflow_ids:
            raise DataError(str(p), line, "label", f"unknown workflow id '{q.label}'")
        out.append(q)
    return out


def load_conversations(path: str | os.PathLike[str]) -> list[Conversation]:
    """Load unlabelled conversations (a ``label`` field, if present, is kept in metadata)."""
    p = Path(path)
    return [_validate(Conversation, obj, str(p), line) for line, obj in _records(p)]


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[BaseModel | dict[str, Any]]) -> int:
    """Write rows as JSON Lines atomically (temp file + rename); returns the row count."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                obj = row.model_dump(exclude_defaults=True) if isinstance(row, BaseModel) else row
                fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
