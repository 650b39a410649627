"""Hypothesis strategies for the server's requests: V2 inference bodies and /v1 conversations.

Each mixes well-formed parts (so answers are reached) with arbitrary JSON in
any place (so every check is reached), and body bytes for the JSON parser.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from frontdesk.scoring.protocol import DATATYPES

GOOD_TEXTS = ["where is my payout", "refund never arrived", "card declined", "reset password"]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**35), max_value=10**35)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
texts = st.sampled_from(GOOD_TEXTS) | st.text(max_size=40)
maybe = lambda good: good | json_values  # noqa: E731 - a value of the right kind, or anything

turns = st.fixed_dictionaries(
    {},
    optional={
        "role": maybe(st.sampled_from(["user", "agent", "system", "robot"])),
        "text": maybe(texts),
    },
)
users = st.fixed_dictionaries(
    {},
    optional={
        "segment": maybe(st.sampled_from(["individual", "business"])),
        "tenure_days": maybe(st.integers(min_value=-5, max_value=10**6)),
        "language": maybe(st.sampled_from(["en", "fr"])),
        "plan": json_values,
    },
)
contexts = st.fixed_dictionaries(
    {},
    optional={
        "turns": maybe(st.lists(maybe(turns), max_size=4)),
        "user": maybe(users),
        "metadata": json_values,
    },
)
agents = st.lists(
    st.sampled_from(["agent-001", "agent-002", "nobody"])
    | st.fixed_dictionaries(
        {"agent_id": maybe(st.sampled_from(["agent-001", "agent-003", "x"]))},
        optional={
            "load": maybe(st.integers(min_value=-2, max_value=5)),
            "capacity": maybe(st.integers(min_value=-1, max_value=5)),
            "channels": maybe(st.lists(st.sampled_from(["chat", "phone", "email"]), max_size=3)),
            "languages": maybe(st.lists(st.sampled_from(["en", "fr"]), max_size=2)),
            "cost_per_minute": maybe(st.floats(min_value=-1, max_value=10)),
            "skills": maybe(st.dictionaries(st.text(max_size=4), st.floats(0, 1), max_size=2)),
        },
    )
    | json_values,
    max_size=4,
)


@st.composite
def text_tensors(draw: Any) -> dict[str, Any]:
    """A tensor named ``text`` whose shape usually matches its data."""
    data = draw(st.lists(maybe(texts), min_size=0, max_size=5))
    shape = draw(st.just([len(data)]) | st.lists(st.integers(-1, 6), max_size=2) | json_values)
    datatype = draw(st.just("BYTES") | st.sampled_from(sorted(DATATYPES)) | json_values)
    tensor = {"name": draw(st.just("text") | maybe(st.sampled_from(["input", "x"]))),
              "shape": shape, "datatype": datatype, "data": data}  # fmt: skip
    for key in draw(st.sets(st.sampled_from(["name", "shape", "datatype", "data"]), max_size=1)):
        del tensor[key]
    if draw(st.booleans()):
        tensor["parameters"] = draw(json_values)
    return tensor


@st.composite
def v2_bodies(draw: Any) -> Any:
    """A V2 inference request body: mostly request-shaped, sometimes any JSON."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    inputs = draw(st.lists(text_tensors(), min_size=0, max_size=2) | json_values)
    first = inputs[0] if isinstance(inputs, list) and inputs else None
    data = first.get("data") if isinstance(first, dict) else None
    n = len(data) if isinstance(data, list) else 1
    params = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "k": maybe(st.integers(min_value=-2, max_value=2000)),
                "contexts": maybe(st.lists(maybe(contexts), min_size=n, max_size=n)),
                "agents": maybe(agents),
                "waits": maybe(st.lists(st.floats(-1, 100), min_size=n, max_size=n)),
                "contact_ids": maybe(st.lists(st.text(max_size=6), min_size=n, max_size=n)),
            },
        )
        | json_values
    )
    body: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        body["parameters"] = params
    if draw(st.booleans()):
        body["id"] = draw(json_values)
    return body


v1_bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "text": maybe(texts),
            "context": maybe(contexts),
            "id": maybe(st.text(max_size=8)),
            "metadata": json_values,
            "agents": maybe(agents),
            "wait_min": maybe(st.floats(min_value=-1, max_value=100)),
        },
    )
    | json_values
)
