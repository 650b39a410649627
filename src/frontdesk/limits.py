"""Input limits applied alike by the CLI, the Python API and the server.

Oversized or malformed input is refused before any work starts, with an error
that names where it came from. Each limit is overridable by an environment
variable ``FRONTDESK_MAX_<NAME IN CAPITALS>`` (``FRONTDESK_MAX_TURNS=200``).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, fields, replace
from typing import Any

import yaml

from frontdesk.errors import DataError

ENV_PREFIX = "FRONTDESK_MAX_"


@dataclass(frozen=True)
class Limits:
    """The largest input frontdesk accepts, per kind of input."""

    json_depth: int = 32
    """Nesting of JSON objects and arrays (a catalog record, a profile, a request)."""
    int_digits: int = 30
    """Digits of an integer in JSON or YAML input (Python refuses 4,300 with a traceback)."""
    line_bytes: int = 4_000_000
    """One line of a JSON Lines file, or one item (a workflow, a query) of a YAML list."""
    text_chars: int = 20_000
    """One query text or conversation turn."""
    title_chars: int = 500
    """A workflow's title."""
    field_chars: int = 200_000
    """Any other text field of a catalog record (description, steps, an example)."""
    turns: int = 100
    """Turns in one conversation."""
    texts: int = 256
    """Texts (or conversations) in one request or batch call."""
    request_turns: int = 1_000
    """Turns across all conversations of one server request (each one a text to encode)."""
    request_units: int = 2_000
    """Encoding work of one server request, texts and turns together: a text costs 1 unit
    plus 1 per full 80 characters, at most 17 (where the encoder stops reading). The default
    is what 2 CPU cores encode well within the 30 s request deadline while serving others."""
    agents: int = 1_000
    """Available agents listed in one routing request."""
    k: int = 1_000
    """Suggestions asked for at once (also bounded by the catalog's size)."""
    yaml_aliases: int = 0
    """YAML aliases in one file: 0 refuses anchors and aliases outright."""
    yaml_nodes: int = 1_000_000
    """Values in one YAML file once its aliases are expanded (with ``yaml_aliases`` above 0)."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Limits:
        """Defaults, overridden by ``FRONTDESK_MAX_*`` variables."""
        env = os.environ if environ is None else environ
        overrides: dict[str, int] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            try:
                value = int(raw)
            except ValueError:
                raise DataError(
                    ENV_PREFIX + f.name.upper(), None, None, f"must be an integer, got {raw!r}"
                ) from None
            if value < 0:
                raise DataError(ENV_PREFIX + f.name.upper(), None, None, "must be 0 or more")
            overrides[f.name] = value
        return replace(cls(), **overrides)


def current() -> Limits:
    """The limits in force for this process (read from the environment each call)."""
    return Limits.from_env()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(digits: str) -> float:
    value = float(digits)
    if not math.isfinite(value):  # 1e400 parses as infinity
        raise ValueError(f"{digits[:40]} is too large for a number")
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    depth = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            depth = max(depth, level + 1)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            depth = max(depth, level + 1)
            stack.extend((v, level + 1) for v in item)
    return depth


def loads_json(
    text: str | bytes,
    where: str,
    line: int | None = None,
    *,
    limits: Limits | None = None,
    reject_duplicate_keys: bool = True,
    allow_nan: bool = False,
) -> Any:
    """Parse JSON from an untrusted source, refusing what frontdesk will not take.

    Refused, with a :class:`DataError` naming ``where`` (and ``line``): invalid
    JSON, nesting deeper than ``limits.json_depth``, integers longer than
    ``limits.int_digits``, ``NaN``/``Infinity`` and numbers too large for a float
    (unless ``allow_nan``: frontdesk's own outputs may hold NaN), and (by default)
    duplicate keys.
    """
    lim = limits or current()
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(where, line, None, f"not UTF-8 (byte {exc.start})") from None

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > lim.int_digits:
            raise ValueError(
                f"an integer of {len(digits):,} digits ({limit_note(lim, 'int_digits')})"
            )
        return int(digits)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if reject_duplicate_keys and len(out) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    raise ValueError(f"duplicate key {key!r}")
                seen.add(key)
        return out

    try:
        value = json.loads(
            text,
            parse_int=parse_int,
            parse_float=float if allow_nan else _finite_float,
            parse_constant=float if allow_nan else _refuse_constant,
            object_pairs_hook=pairs,
        )
    except RecursionError:
        raise DataError(
            where,
            line,
            None,
            f"JSON nested too deeply ({limit_note(lim, 'json_depth', ' levels')})",
        ) from None
    except json.JSONDecodeError as exc:
        at = f" (column {exc.colno})" if line is None and exc.lineno == 1 else ""
        if exc.lineno > 1:
            at = f" (line {exc.lineno}, column {exc.colno})"
        raise DataError(where, line, None, f"invalid JSON: {exc.msg}{at}") from None
    except ValueError as exc:  # the hooks' refusals
        raise DataError(where, line, None, f"invalid JSON: {exc}") from None
    nests = text.count("[") + text.count("{")  # at least the depth; brackets in strings too
    if nests > lim.json_depth and json_depth(value) > lim.json_depth:
        raise DataError(
            where,
            line,
            None,
            f"JSON nested too deeply ({limit_note(lim, 'json_depth', ' levels')})",
        )
    return value


def check_finite(value: float, where: str, field: str, line: int | None = None) -> float:
    """Refuse NaN and infinities where a number is required."""
    if not math.isfinite(value):
        raise DataError(where, line, field, f"must be a finite number, got {value}")
    return value


def check_text(
    text: Any,
    where: str,
    field: str | None = "text",
    line: int | None = None,
    *,
    limits: Limits | None = None,
    max_chars: int | None = None,
    limit: str = "text_chars",
) -> str:
    """A query text or turn: a string, not blank, no NUL or undecodable bytes, within
    the length limit (``limits.<limit>``, or ``max_chars``).

    Blank text is refused rather than answered: a suggestion for nothing would be a
    confident guess (documented in docs/limits.md).
    """
    lim = limits or current()
    bound = getattr(lim, limit) if max_chars is None else max_chars
    if not isinstance(text, str):
        raise DataError(where, line, field, f"must be a string, got {type(text).__name__}")
    if not text.strip():
        raise DataError(where, line, field, "is empty or only whitespace")
    if len(text) > bound:
        raise DataError(
            where,
            line,
            field,
            f"is {len(text):,} characters long ({_note(bound, limit, max_chars)})",
        )
    _check_characters(text, where, field, line)
    return text


def limit_note(limits: Limits, name: str, unit: str = "") -> str:
    """How a refusal names its bound: ``limit 1,000, set by FRONTDESK_MAX_K``."""
    return f"limit {getattr(limits, name):,}{unit}, set by {ENV_PREFIX}{name.upper()}"


def _note(bound: int, name: str, explicit: int | None) -> str:
    if explicit is not None:
        return f"limit {bound:,}"
    return f"limit {bound:,}, set by {ENV_PREFIX}{name.upper()}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_characters(text: str, where: str, field: str | None, line: int | None) -> None:
    """Refuse NUL and the lone surrogates that undecodable bytes (or ``\\ud800``) leave."""
    if "\x00" in text:
        raise DataError(where, line, field, "contains a NUL character")
    if not text.isascii() and _SURROGATE.search(text):
        raise DataError(where, line, field, "is not valid UTF-8 text (undecodable bytes)")


def _field_name(parent: str | None, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{parent or ''}[{key}]"
    name = str(key)
    name = name if len(name) <= 60 else name[:57] + "..."
    return f"{parent}.{name}" if parent else name


def check_value(
    value: Any,
    where: str,
    line: int | None = None,
    field: str | None = None,
    *,
    limits: Limits | None = None,
    max_chars: int | None = None,
    limit: str = "field_chars",
) -> None:
    """Every string and number inside a parsed record: no NUL or undecodable text, no
    string longer than ``max_chars`` (default ``limits.field_chars``), no NaN or infinity.

    The error names the offending field by its path (``metadata.notes[2]``). The walk
    is iterative, so the nesting the parsers let through cannot exhaust the stack.
    """
    lim = limits or current()
    bound = getattr(lim, limit) if max_chars is None else max_chars
    if _clean(value, bound):  # the common case, without building any field's name
        return
    stack: list[tuple[Any, str | None]] = [(value, field)]
    while stack:
        item, name = stack.pop()
        if isinstance(item, str):
            if len(item) > bound:
                raise DataError(
                    where,
                    line,
                    name,
                    f"is {len(item):,} characters long ({_note(bound, limit, max_chars)})",
                )
            _check_characters(item, where, name, line)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise DataError(where, line, name, f"must be a finite number, got {item}")
        elif isinstance(item, dict):
            for key, sub in item.items():
                child = _field_name(name, key)
                if isinstance(key, str):
                    stack.append((key, child))  # a key is text like any other
                stack.append((sub, child))
        elif isinstance(item, list | tuple):
            stack.extend((sub, _field_name(name, i)) for i, sub in enumerate(item))


def _clean(value: Any, bound: int) -> bool:
    """Whether :func:`check_value` would pass ``value`` (a fast walk that names nothing)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if len(item) > bound or "\x00" in item:
                return False
            if not item.isascii() and _SURROGATE.search(item):
                return False
        elif kind is dict:
            stack.extend(item.values())
            stack.extend(item.keys())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif isinstance(item, str | float | dict | list | tuple):
            return False  # a subclass: let the named walk judge it
    return True


def loads_yaml(text: str, where: str, *, limits: Limits | None = None) -> tuple[Any, Any]:
    """Parse one YAML document from an untrusted source into JSON's types.

    Returns the value and its composed node (whose marks give each item's line).
    Refused, with a :class:`DataError` naming ``where`` and the line: invalid YAML,
    anchors and aliases (with ``limits.yaml_aliases`` 0; above 0, more aliases than
    that, or an expansion past ``limits.yaml_nodes`` values), nesting deeper than
    ``limits.json_depth``, integers longer than ``limits.int_digits``, duplicate keys,
    and the tags JSON has no type for (``!!binary``, ``!!set``, ...). Dates and times
    stay the strings they were written as. Refusals happen while the document is
    composed, before anything is expanded.
    """
    lim = limits or current()
    try:
        loader = _LimitedLoader(text, lim, where)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, ...)
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise DataError(
            where, line, None, f"invalid YAML: character {exc.character:#06x} is not allowed"
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if loader.aliases:
            _check_expansion(node, lim, where)
        return loader.construct_document(node), node
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        if context and problem.startswith("but "):  # "expected a single document ..., but ..."
            problem = f"{context}, {problem}"
        raise DataError(where, line, None, f"invalid YAML: {problem}") from None
    except RecursionError:
        raise DataError(
            where,
            None,
            None,
            f"YAML nested too deeply ({limit_note(lim, 'json_depth', ' levels')})",
        ) from None
    finally:
        loader.dispose()


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses, while composing, what :func:`loads_yaml` refuses."""

    def __init__(self, stream: str, limits: Limits, where: str) -> None:
        super().__init__(stream)
        self.limits = limits
        self.where = where
        self.aliases = 0
        self.depth = 0

    def _refuse(self, mark: Any, reason: str, field: str | None = None) -> DataError:
        return DataError(self.where, mark.line + 1 if mark is not None else None, field, reason)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        lim = self.limits
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if lim.yaml_aliases == 0:
                raise self._refuse(
                    event.start_mark,
                    f"YAML aliases (*name) are not allowed ({ENV_PREFIX}YAML_ALIASES is 0)",
                )
            if self.aliases > lim.yaml_aliases:
                raise self._refuse(
                    event.start_mark, f"too many YAML aliases ({limit_note(lim, 'yaml_aliases')})"
                )
        elif event.anchor is not None and lim.yaml_aliases == 0:
            raise self._refuse(
                event.start_mark,
                f"YAML anchors (&name) are not allowed ({ENV_PREFIX}YAML_ALIASES is 0)",
            )
        nests = isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent)
        if nests:
            self.depth += 1
            if self.depth > lim.json_depth:
                raise self._refuse(
                    event.start_mark,
                    f"YAML nested too deeply ({limit_note(lim, 'json_depth', ' levels')})",
                )
        try:
            return super().compose_node(parent, index)
        finally:
            if nests:
                self.depth -= 1

    def construct_yaml_int(self, node: Any) -> int:
        digits = sum(c.isalnum() for c in str(node.value))
        if digits > self.limits.int_digits:
            raise self._refuse(
                node.start_mark,
                f"an integer of {digits:,} digits ({limit_note(self.limits, 'int_digits')})",
            )
        return int(super().construct_yaml_int(node))

    def construct_yaml_timestamp(self, node: Any) -> Any:  # type: ignore[override]
        return self.construct_scalar(node)

    def refuse_tag(self, node: Any) -> Any:
        raise self._refuse(node.start_mark, f"YAML tag {node.tag} is not allowed")

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if (key.tag, key.value) in seen:
                    raise self._refuse(key.start_mark, "duplicate key", str(key.value)[:60])
                seen.add((key.tag, key.value))
        return super().construct_mapping(node, deep=deep)


_LimitedLoader.add_constructor("tag:yaml.org,2002:int", _LimitedLoader.construct_yaml_int)
_LimitedLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", _LimitedLoader.construct_yaml_timestamp
)
for _tag in ("binary", "set", "omap", "pairs"):
    _LimitedLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _LimitedLoader.refuse_tag)


def _check_expansion(root: Any, limits: Limits, where: str) -> None:
    """Refuse a document whose aliases expand past ``limits.yaml_nodes`` values, or loop."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > limits.yaml_nodes:
                raise DataError(
                    where,
                    node.start_mark.line + 1,
                    None,
                    f"YAML aliases expand past {limit_note(limits, 'yaml_nodes', ' values')}",
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise DataError(where, node.start_mark.line + 1, None, "a YAML alias refers to itself")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_count(
    count: int,
    bound: int,
    where: str,
    field: str | None,
    what: str,
    line: int | None = None,
    *,
    limit: str | None = None,
) -> None:
    """Refuse ``count`` items of ``what`` when more than ``bound`` (``limit``: the
    :class:`Limits` field it comes from, named in the message)."""
    if count > bound:
        note = f"limit {bound:,}" + (f", set by {ENV_PREFIX}{limit.upper()}" if limit else "")
        raise DataError(where, line, field, f"{count:,} {what} ({note})")


def check_k(k: Any, catalog_size: int | None, where: str, *, limits: Limits | None = None) -> int:
    """A number of suggestions: a positive integer within the limit, capped at the catalog."""
    lim = limits or current()
    if isinstance(k, bool) or not isinstance(k, int):
        raise DataError(where, None, "k", f"must be an integer, got {k!r}")
    if k < 1:
        raise DataError(where, None, "k", f"must be at least 1, got {k}")
    if k > lim.k:
        raise DataError(where, None, "k", f"{k:,} is too many ({limit_note(lim, 'k')})")
    return k if catalog_size is None else min(k, max(catalog_size, 1))
