"""Read catalogs (JSONL or YAML), labelled queries and conversations, failing with
``file:line: field: reason``; every input is held to the limits of :mod:`frontdesk.limits`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import DataError
from .limits import (
    Limits,
    check_count,
    check_text,
    check_value,
    current,
    limit_note,
    loads_json,
    loads_yaml,
)
from .schema import Conversation, LabelledQuery, UserProfile, Workflow

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


def _validate(model: type[T], obj: Any, path: str, line: int | None) -> T:
    if not isinstance(obj, dict):
        raise DataError(path, line, None, f"expected an object, got {type(obj).__name__}")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or None
        raise DataError(path, line, loc, _reason(err)) from None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true or false"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(str(path), None, None, "file not found") from None
    except IsADirectoryError:
        raise DataError(str(path), None, None, "is a directory, expected a file") from None
    except PermissionError:
        raise DataError(str(path), None, None, "permission denied") from None
    except OSError as exc:
        raise DataError(str(path), None, None, f"cannot read: {exc.strerror or exc}") from None


def _decoded_lines(path: Path, limits: Limits) -> Iterator[tuple[int, str]]:
    raw = _read_bytes(path)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        if len(chunk) > limits.line_bytes:
            raise DataError(
                str(path),
                number,
                None,
                f"line is {len(chunk):,} bytes long ({limit_note(limits, 'line_bytes')})",
            )
        try:
            yield number, chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                str(path), number, None, f"invalid UTF-8 (byte {exc.start + 1} of the line)"
            ) from None


Record = tuple[int, Any, bool]
"""A parsed record: its line, its value, and whether its text is plain (see _plain)."""


def _plain(text: str, limits: Limits) -> bool:
    """Whether every string parsed from this JSON text is sure to pass ``check_value``:
    no longer than the text, without escapes (the only way JSON text spells a NUL or a
    lone surrogate), and its numbers already finite (the parser refuses the others)."""
    return len(text) <= limits.field_chars and "\\u" not in text


def _jsonl_objects(path: Path, limits: Limits) -> Iterator[Record]:
    seen_any = False
    for number, text in _decoded_lines(path, limits):
        if not text.strip():
            continue
        seen_any = True
        value = loads_json(text, str(path), number, limits=limits)
        yield number, value, _plain(text, limits)
    if not seen_any:
        raise DataError(str(path), None, None, "file is empty")


def _yaml_objects(path: Path, limits: Limits) -> Iterator[Record]:
    text = "\n".join(line for _, line in _decoded_lines(path, limits))
    if not text.strip():
        raise DataError(str(path), None, None, "file is empty")
    data, node = loads_yaml(text, str(path), limits=limits)
    items_node = node
    if isinstance(data, dict) and "workflows" in data:
        data = data["workflows"]
        items_node = next(v for k, v in node.value if k.value == "workflows")
    if not isinstance(data, list):
        raise DataError(str(path), 1, None, "expected a list of workflows (or a 'workflows:' key)")
    if not data:
        raise DataError(str(path), None, None, "file is empty")
    for obj, item in zip(data, items_node.value, strict=True):
        line = item.start_mark.line + 1
        size = len(text[item.start_mark.index : item.end_mark.index].encode("utf-8"))
        if size > limits.line_bytes:
            raise DataError(
                str(path),
                line,
                None,
                f"record is {size:,} bytes long ({limit_note(limits, 'line_bytes')})",
            )
        yield line, obj, False


def _records(path: Path, limits: Limits) -> Iterator[Record]:
    if path.suffix.lower() in {".yaml", ".yml"}:
        return _yaml_objects(path, limits)
    return _jsonl_objects(path, limits)


def check_workflow_record(
    obj: Any,
    where: str,
    line: int | None = None,
    *,
    limits: Limits | None = None,
    plain: bool = False,
) -> Workflow:
    """One parsed catalog record as a :class:`Workflow`, within the limits: a title of
    at most ``title_chars``, every other text at most ``field_chars``, no NUL or
    undecodable text, no NaN or infinity anywhere (metadata included). ``plain``: the
    record's JSON text showed it has none of these, so its values are not walked."""
    lim = limits or current()
    if isinstance(obj, dict) and isinstance(obj.get("title"), str):
        title = obj["title"]
        if len(title) > lim.title_chars:
            raise DataError(
                where,
                line,
                "title",
                f"is {len(title):,} characters long ({limit_note(lim, 'title_chars')})",
            )
    if not plain:
        check_value(obj, where, line, limits=lim)
    return _validate(Workflow, obj, where, line)


def check_conversation(
    conv: Conversation,
    where: str,
    line: int | None = None,
    *,
    limits: Limits | None = None,
    field: str = "text",
) -> Conversation:
    """A conversation frontdesk will answer: its text and each turn's text not blank,
    without NUL, at most ``text_chars`` long; at most ``turns`` earlier turns.

    Blank text is refused, never answered: suggestions for nothing would be a
    confident guess (docs/limits.md).
    """
    lim = limits or current()
    check_text(conv.text, where, field, line, limits=lim)
    turns = conv.context.turns
    check_count(len(turns), lim.turns, where, "context.turns", "turns", line, limit="turns")
    for i, turn in enumerate(turns):
        check_text(turn.text, where, f"context.turns[{i}].text", line, limits=lim)
    return conv


def check_queries(
    queries: Sequence[Any], where: str = "queries", *, limits: Limits | None = None
) -> list[Conversation]:
    """Texts or conversations given to the Python API, as checked conversations.

    A text is checked as given (before the whitespace around it is stripped);
    anything else than a text or a :class:`Conversation` is refused.
    """
    lim = limits or current()
    out: list[Conversation] = []
    for i, q in enumerate(queries):
        name = f"{where}[{i}]" if len(queries) > 1 else where
        if isinstance(q, str):
            check_text(q, name, "text", limits=lim)
            q = Conversation(text=q)
        elif not isinstance(q, Conversation):
            raise DataError(
                name, None, None, f"must be a text or a Conversation, not {type(q).__name__}"
            )
        out.append(check_conversation(q, name, limits=lim))
    return out


def parse_profile(
    text: str | bytes, where: str = "--profile", *, limits: Limits | None = None
) -> dict[str, Any]:
    """A user profile given as JSON text: an object whose declared fields have their
    types and ranges (``tenure_days`` an integer >= 0); unknown fields are kept."""
    lim = limits or current()
    value = loads_json(text, where, limits=lim)
    if not isinstance(value, dict):
        raise DataError(where, None, None, f"must be a JSON object, got {_json_type(value)}")
    check_value(value, where, limits=lim, limit="text_chars")
    _validate(UserProfile, value, where, None)
    return value


def load_catalog(path: str | os.PathLike[str]) -> list[Workflow]:
    """Load a workflow catalog (``.jsonl``, ``.yaml``/``.yml``); ids must be unique."""
    p = Path(path)
    lim = current()
    workflows: list[Workflow] = []
    first_line: dict[str, int] = {}
    for line, obj, plain in _records(p, lim):
        wf = check_workflow_record(obj, str(p), line, limits=lim, plain=plain)
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
    lim = current()
    out: list[LabelledQuery] = []
    seen: dict[str, int] = {}
    for line, obj, plain in _records(p, lim):
        q = _conversation_record(LabelledQuery, obj, str(p), line, lim, plain)
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
    lim = current()
    return [
        _conversation_record(Conversation, obj, str(p), line, lim, plain)
        for line, obj, plain in _records(p, lim)
    ]


def _conversation_record(
    model: type[T], obj: Any, path: str, line: int, limits: Limits, plain: bool
) -> T:
    if not plain:
        check_value(obj, path, line, limits=limits)
    conv = _validate(model, obj, path, line)
    assert isinstance(conv, Conversation)
    check_conversation(conv, path, line, limits=limits)
    return conv


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
