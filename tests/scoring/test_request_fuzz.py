"""Property-based fuzzing of the server's request parsers and checks (no model, no HTTP).

For any body: a clear error (DataError or ProtocolError, one line naming where) or
a valid request, never another exception; a request cut into parts joins back to
the whole.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontdesk.errors import DataError
from frontdesk.limits import Limits, loads_json
from frontdesk.scoring import InferenceRequest, InferenceResponse, Scorer, Tensor
from frontdesk.scoring.base import (
    check_conversations,
    conversation_cost,
    split_conversations,
    text_units,
)
from frontdesk.scoring.protocol import ProtocolError, join_rows, parse_request
from frontdesk.scoring.runtimes.router import check_agent
from frontdesk.scoring.settings import ModelSettings

from .strategies import agents, v1_bodies, v2_bodies

LIMITS = Limits(texts=4, turns=3, request_turns=5, text_chars=30)  # small: limits get reached
SCORER = Scorer(ModelSettings(implementation="x", name="fuzz", version="1"))
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def clear(exc: Exception) -> None:
    """A refusal a client can act on: one non-empty line."""
    message = str(exc)
    assert message and "\n" not in message and "Traceback" not in message, message


def checked(body: Any) -> InferenceRequest | None:
    """``body`` through the server's V2 path: parsed, then a text runtime's checks."""
    try:
        request = parse_request(body)
        check_conversations(SCORER, request, LIMITS)
    except (ProtocolError, DataError) as exc:
        clear(exc)
        return None
    return request


@FAST
@given(body=v2_bodies())
def test_v2_body_is_refused_clearly_or_valid(body: Any) -> None:
    request = checked(body)
    if request is None:
        return
    convs = request.parsed["conversations"]
    assert len(convs) <= LIMITS.texts
    assert all(c.text.strip() and len(c.turns) <= LIMITS.turns for c in convs)
    assert sum(len(c.turns) for c in convs) <= LIMITS.request_turns
    texts = [c.text for c in convs] + [t.text for c in convs for t in c.turns]
    assert conversation_cost(request) == sum(text_units(t) for t in texts) >= len(texts)


@FAST
@given(body=v2_bodies() | v1_bodies)
def test_body_bytes_parse_clearly_or_give_the_value(body: Any) -> None:
    text = json.dumps(body)
    try:
        value = loads_json(text.encode(), "body")
    except DataError as exc:  # an integer of more than 30 digits, or nested past 32
        clear(exc)
        assert "digits" in str(exc) or "nested" in str(exc)
        return
    assert value == json.loads(text)


@FAST
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_parse_clearly_or_give_json(data: bytes) -> None:
    try:
        loads_json(data, "body")
    except DataError as exc:
        clear(exc)


@FAST
@given(body=v1_bodies)
def test_v1_conversation_is_refused_clearly_or_valid(body: Any) -> None:
    from pydantic import ValidationError

    from frontdesk.loaders import check_conversation
    from frontdesk.schema import Conversation

    if not isinstance(body, dict):
        return  # the route answers 400 "the body must be a Conversation JSON object"
    body = {k: v for k, v in body.items() if k not in ("agents", "wait_min")}
    try:
        conv = Conversation.model_validate(body)
    except ValidationError as exc:
        e = exc.errors()[0]
        assert e["msg"]  # the route answers 400 "<loc>: <msg>"
        return
    try:
        check_conversation(conv, "body", limits=LIMITS)
    except DataError as exc:
        clear(exc)
        return
    assert conv.text.strip() and len(conv.turns) <= LIMITS.turns


@FAST
@given(agent_list=agents)
def test_agents_are_refused_clearly_or_well_typed(agent_list: Any) -> None:
    for i, a in enumerate(agent_list):
        try:
            check_agent(a, f"parameters.agents[{i}]")
        except ProtocolError as exc:
            clear(exc)
            assert f"agents[{i}]" in str(exc)
            continue
        assert isinstance(a, str) or isinstance(a.get("agent_id"), str)


@FAST
@given(body=v2_bodies(), size=st.integers(min_value=1, max_value=6))
def test_a_request_cut_into_parts_joins_back_to_the_whole(body: Any, size: int) -> None:
    request = checked(body)
    if request is None:
        return
    parts = split_conversations(request, size) or [request]
    texts = [t for p in parts for t in p.input("text").data]
    assert texts == request.input("text").data
    for p in parts:  # a part passes the size only when it is one text with its turns
        convs = p.parsed["conversations"]
        assert len(convs) == len(p.input("text").data)
        assert conversation_cost(p) <= size or len(convs) == 1
        if "contexts" in request.parameters:
            assert len(p.parameters["contexts"]) == len(convs)

    def answer(p: InferenceRequest) -> InferenceResponse:  # what a text runtime would say
        data = p.input("text").data
        return InferenceResponse(
            "m", "1", [Tensor("echo", [len(data), 1], "BYTES", list(data))], log=[{}] * len(data)
        )

    joined = join_rows(request, [answer(p) for p in parts])
    whole = answer(request)
    assert [t.to_json() for t in joined.outputs] == [t.to_json() for t in whole.outputs]
    assert joined.log == whole.log
