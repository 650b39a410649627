"""Property-based fuzzing of what users hand frontdesk: catalogs and query files (JSON Lines
and YAML, as bytes and as records), JSON and YAML text, ``--profile``, the command line's
conversation, and the Python API's queries. Every input gives a valid result or a clear
error (a DataError, or at the command line a Typer usage error), never another exception.

The default run tries a few dozen examples per property (``FRONTDESK_FUZZ_EXAMPLES``
changes that); the ``slow`` tests try thousands.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontdesk.errors import DataError
from frontdesk.limits import Limits, check_value, json_depth, loads_json, loads_yaml
from frontdesk.loaders import (
    check_queries,
    load_catalog,
    load_conversations,
    load_queries,
    parse_profile,
)
from frontdesk.schema import Conversation, Workflow

from .conftest import TINY_CATALOG, write_jsonl

EXAMPLES = int(os.environ.get("FRONTDESK_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis folder in the working tree
    derandomize=True,  # the default run tries the same inputs every time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(FUZZ, max_examples=2_000, derandomize=False)

# -- strategies ---------------------------------------------------------------------------------

ODD_TEXT = st.lists(
    st.sampled_from(list("ab Z1.,'\"\\\t\n\r\x00é中\ud800") + ["\U0001f600", "the", "of"]),
    max_size=12,
).map("".join)
TEXT = st.one_of(st.text(max_size=30), ODD_TEXT)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),  # NaN and infinities included
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=25,
)
FIELDS = ("id", "title", "description", "steps", "tags", "examples", "metadata", "updated_at")
RECORD = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), TEXT),
    st.one_of(JSON_VALUES, st.lists(TEXT, max_size=3), TEXT),
    max_size=6,
)
TURN = st.fixed_dictionaries({"role": st.sampled_from(["user", "agent", "bot", ""]), "text": TEXT})
CONVERSATION = st.fixed_dictionaries(
    {"text": st.one_of(TEXT, JSON_VALUES)},
    optional={
        "label": st.one_of(st.none(), st.sampled_from(["refund-issue", "nope", " "]), JSON_VALUES),
        "id": st.one_of(TEXT, JSON_VALUES),
        "context": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "turns": st.one_of(st.lists(TURN, max_size=4), JSON_VALUES),
                    "user": st.one_of(
                        JSON_VALUES,
                        st.dictionaries(
                            st.sampled_from(["tenure_days", "segment", "language"]),
                            JSON_VALUES,
                            max_size=3,
                        ),
                    ),
                },
            ),
            JSON_VALUES,
        ),
        "metadata": JSON_VALUES,
    },
)
YAMLISH = st.lists(
    st.sampled_from(list("-:&*[]{}!,|>'\"\n #ab1.\t\\%@`?") + ["id", "title", "\x00", "é", "  "]),
    max_size=60,
).map("".join)


_FOLDER = tempfile.TemporaryDirectory(prefix="frontdesk-fuzz-")  # removed at exit


def _write(suffix: str, content: bytes) -> Path:
    """The input as a file (one per suffix, rewritten by each example)."""
    path = Path(_FOLDER.name) / f"input{suffix}"
    path.write_bytes(content)
    return path


def _jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode(
        "utf-8", "surrogatepass"
    )


def _clear_error_or(fn: Any, *args: Any) -> Any:
    """``fn(*args)``, or None when it refused with a DataError (with a message that says where)."""
    try:
        return fn(*args)
    except DataError as exc:
        assert exc.reason and str(exc).strip()
        assert "Traceback" not in str(exc)
        return None


# -- catalogs -----------------------------------------------------------------------------------


def _catalog_holds(path: Path) -> None:
    workflows = _clear_error_or(load_catalog, path)
    if workflows is None:
        return
    lim = Limits.from_env()
    assert workflows and all(isinstance(w, Workflow) for w in workflows)
    assert len({w.id for w in workflows}) == len(workflows)
    for w in workflows:
        assert w.title.strip() and len(w.title) <= lim.title_chars
        check_value(w.model_dump(), "accepted")  # no NUL, NaN or over-long text got in
        json.dumps(w.model_dump(), allow_nan=False)  # and it can be written as JSON


@FUZZ
@given(st.lists(RECORD, min_size=1, max_size=4))
def test_a_catalog_of_any_records_loads_or_is_refused(rows: list[dict[str, Any]]) -> None:
    _catalog_holds(_write(".jsonl", _jsonl(rows)))


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([".jsonl", ".yaml"]))
def test_a_catalog_of_any_bytes_loads_or_is_refused(content: bytes, suffix: str) -> None:
    _catalog_holds(_write(suffix, content))


@FUZZ
@given(YAMLISH)
def test_a_yaml_catalog_of_any_text_loads_or_is_refused(text: str) -> None:
    _catalog_holds(_write(".yaml", text.encode("utf-8")))


@FUZZ
@given(st.lists(RECORD, min_size=1, max_size=3))
def test_a_yaml_catalog_of_any_records_loads_or_is_refused(rows: list[dict[str, Any]]) -> None:
    import yaml

    try:
        text = yaml.safe_dump(rows, allow_unicode=True)
    except (yaml.YAMLError, UnicodeEncodeError):
        return  # not every record can be written as YAML (lone surrogates)
    _catalog_holds(_write(".yaml", text.encode("utf-8", "surrogatepass")))


# -- queries and conversations ------------------------------------------------------------------


@FUZZ
@given(st.lists(CONVERSATION, min_size=1, max_size=3), st.sampled_from([".jsonl", ".yaml"]))
def test_query_files_load_or_are_refused(rows: list[dict[str, Any]], suffix: str) -> None:
    import yaml

    try:
        content = (
            _jsonl(rows)
            if suffix == ".jsonl"
            else yaml.safe_dump(rows, allow_unicode=True).encode("utf-8", "surrogatepass")
        )
    except (yaml.YAMLError, UnicodeEncodeError):
        return
    path = _write(suffix, content)
    lim = Limits.from_env()
    for loaded in (
        _clear_error_or(load_queries, path, {"refund-issue"}),
        _clear_error_or(load_conversations, path),
    ):
        for conv in loaded or []:
            assert isinstance(conv, Conversation)
            assert conv.text.strip() and len(conv.text) <= lim.text_chars
            assert len(conv.turns) <= lim.turns and all(t.text.strip() for t in conv.turns)


# -- JSON, YAML and profiles --------------------------------------------------------------------


@FUZZ
@given(st.one_of(st.text(max_size=80), JSON_VALUES.map(lambda v: json.dumps(v))))
def test_json_text_parses_or_is_refused(text: str) -> None:
    value = _clear_error_or(loads_json, text, "input")
    if value is not None:
        assert json_depth(value) <= Limits().json_depth
        json.dumps(value, allow_nan=False)


@FUZZ
@given(YAMLISH)
def test_yaml_text_parses_or_is_refused(text: str) -> None:
    parsed = _clear_error_or(loads_yaml, text, "input")
    if parsed is not None:
        json_depth(parsed[0])


@FUZZ
@given(
    st.one_of(
        TEXT,
        JSON_VALUES.map(lambda v: json.dumps(v)),
        st.dictionaries(
            st.sampled_from(["tenure_days", "segment", "plan", "x"]), JSON_VALUES, max_size=3
        ).map(lambda v: json.dumps(v)),
    )
)
def test_a_profile_parses_or_is_refused(text: str) -> None:
    from frontdesk.schema import UserProfile

    profile = _clear_error_or(parse_profile, text)
    if profile is not None:
        assert isinstance(profile, dict)
        user = UserProfile.model_validate(profile)
        assert user.tenure_days is None or user.tenure_days >= 0


@FUZZ
@given(TEXT, st.lists(TEXT, max_size=4), st.one_of(st.none(), TEXT, JSON_VALUES.map(json.dumps)))
def test_the_command_lines_conversation_parses_or_is_refused(
    text: str, turns: list[str], profile: str | None
) -> None:
    from frontdesk.cli._common import conversation

    try:
        conv = conversation(text, turns, profile)
    except (DataError, typer.BadParameter):
        return
    assert isinstance(conv, Conversation) and conv.text.strip()


@FUZZ
@given(
    st.lists(
        st.one_of(TEXT, TEXT.map(lambda t: Conversation.model_construct(text=t)), JSON_VALUES),
        max_size=3,
    )
)
def test_api_queries_are_checked_or_refused(queries: list[Any]) -> None:
    convs = _clear_error_or(check_queries, queries)
    if convs is not None:
        assert len(convs) == len(queries)
        assert all(c.text.strip() and "\x00" not in c.text for c in convs)


@pytest.fixture(scope="module")
def sparse_suggester(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from frontdesk import Suggester, build_index

    root = tmp_path_factory.mktemp("fuzz-index")
    build_index(write_jsonl(root / "catalog.jsonl", TINY_CATALOG), root / "index", dense=False)
    return Suggester.load(root / "index", mode="sparse")


@FUZZ
@given(
    st.one_of(TEXT, JSON_VALUES), st.one_of(st.integers(min_value=-5, max_value=2_000), JSON_VALUES)
)
def test_the_suggester_answers_or_refuses(sparse_suggester, query: Any, k: Any) -> None:  # type: ignore[no-untyped-def]
    result = _clear_error_or(sparse_suggester.suggest, query, k)
    if result is not None:
        assert len(result) <= len(TINY_CATALOG)
        assert all(s.workflow_id for s in result)


# -- longer runs --------------------------------------------------------------------------------


@pytest.mark.slow
@LONG
@given(st.binary(max_size=2_000), st.sampled_from([".jsonl", ".yaml"]))
def test_long_catalog_bytes(content: bytes, suffix: str) -> None:
    _catalog_holds(_write(suffix, content))


@pytest.mark.slow
@LONG
@given(YAMLISH)
def test_long_yaml_text(text: str) -> None:
    _catalog_holds(_write(".yaml", text.encode("utf-8")))


@pytest.mark.slow
@LONG
@given(st.lists(RECORD, min_size=1, max_size=6))
def test_long_catalog_records(rows: list[dict[str, Any]]) -> None:
    _catalog_holds(_write(".jsonl", _jsonl(rows)))


@pytest.mark.slow
@LONG
@given(st.one_of(TEXT, JSON_VALUES.map(lambda v: json.dumps(v))))
def test_long_profiles(text: str) -> None:
    _clear_error_or(parse_profile, text)
