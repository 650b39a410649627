"""Target policies: the spec language, its errors, and the probabilities it gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from frontdesk.ope.policies import Batch, PolicyError, load_policy
from frontdesk.routing import AgentRecord

ROSTER = {
    "a1": AgentRecord("a1", ["phone", "chat"], ["en"], 2, 1.0, {"payouts": 0.9, "refunds": 0.2}),
    "a2": AgentRecord("a2", ["chat", "email"], ["en"], 2, 0.6, {"payouts": 0.3, "refunds": 0.8}),
}

# Two logged rows. Row 0 (enterprise) can go to phone/a1, chat/a1, chat/a2; row 1 (individual)
# has no phone pair at all, so a rule that forces phone cannot apply to it.
ROWS = pd.DataFrame(
    {
        "contact_id": ["c000-00000", "c000-00001"],
        "segment": ["enterprise", "individual"],
        "topic": ["payouts", "refunds"],
        "wait_min": [2.0, 7.0],
        "eligible_channels": [["phone", "chat", "chat"], ["chat", "email"]],
        "eligible_agents": [["a1", "a1", "a2"], ["a2", "a2"]],
        "eligible_propensities": [[0.2, 0.5, 0.3], [0.6, 0.4]],
    }
)


def probs(spec) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    return load_policy(spec).probabilities(Batch(ROWS, ROSTER, ["phone", "chat", "email"]))


def test_builtins() -> None:
    assert [p.tolist() for p in probs("logging")] == [[0.2, 0.5, 0.3], [0.6, 0.4]]
    assert [p.tolist() for p in probs("uniform")] == [[1 / 3] * 3, [0.5, 0.5]]
    # The rule: 2 * listed skill on the topic + segment's channel preference - 0.1 * cost.
    assert [p.tolist() for p in probs("rule")] == [[1.0, 0.0, 0.0], [1.0, 0.0]]


def test_rules_first_match_channel_and_within_policy() -> None:
    spec = {
        "rules": [
            {"when": {"segment": "enterprise", "wait_min": {"lt": 5}}, "channel": {"chat": 1.0}},
            {"when": {"segment": ["individual"]}, "policy": "uniform"},
        ],
        "default": "logging",
    }
    p = probs(spec)
    # chat pairs of row 0 by the logging policy renormalised: 0.5 / 0.8 and 0.3 / 0.8
    assert p[0] == pytest.approx([0.0, 0.625, 0.375])
    assert p[1] == pytest.approx([0.5, 0.5])


def test_mixture_is_the_weighted_sum() -> None:
    spec = {"mixture": [{"weight": 0.25, "policy": "rule"}, {"weight": 0.75, "policy": "logging"}]}
    p = probs(spec)
    assert p[0] == pytest.approx([0.25 + 0.75 * 0.2, 0.75 * 0.5, 0.75 * 0.3])


def test_unavailable_channel_errors_or_falls_through() -> None:
    force = {"rules": [{"when": {}, "channel": "phone"}], "default": "uniform"}
    with pytest.raises(
        PolicyError, match=r"contact c000-00001: rules\[0\] puts probability on channel 'phone'"
    ):
        probs(force)
    force["rules"][0]["unavailable"] = "skip"
    p = probs(force)
    assert p[0].tolist() == [1.0, 0.0, 0.0] and p[1] == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("greedy", "unknown policy 'greedy'"),
        (
            {"mixture": [{"weight": 1.0, "policy": "greedy"}]},
            r"mixture\[0\]\.policy: unknown policy",
        ),
        ({"mixture": [{"weight": 0.5, "policy": "rule"}]}, "weights sum to 0.5, not 1"),
        (
            {"rules": [{"when": {"wait_min": {"above": 3}}, "channel": "phone"}]},
            "unknown comparison 'above'",
        ),
        ({"rules": [{"when": {}, "channel": {"phone": 0.5}}]}, "probabilities sum to 0.5"),
        ({"rules": [{"when": {}}]}, "exactly one of 'channel' or 'policy'"),
        (
            {"rules": [{"when": {"router.confidence": {"lt": 0.6}}, "channel": "phone"}]},
            "need a top-level 'router: DIR'",
        ),
        (
            {"rules": [{"when": {}, "channel": "phone", "unavailable": "ignore"}]},
            "'error' or 'skip'",
        ),
        ({"foo": 1}, "needs 'router', 'mixture' or 'rules'"),
    ],
)
def test_bad_specs_name_the_place(spec, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyError, match=message):
        load_policy(spec)


def test_spec_files(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text(
        "rules:\n  - when: {segment: enterprise}\n    channel: phone\ndefault: logging\n"
    )
    assert load_policy(good).probabilities(Batch(ROWS.iloc[:1], ROSTER, ["phone"]))[0].tolist() == [
        1,
        0,
        0,
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - when: {segment: [enterprise\n")
    with pytest.raises(PolicyError, match=r"bad\.yaml:\d+: not valid yaml"):
        load_policy(bad)
    nested = tmp_path / "n.yaml"
    nested.write_text("rules:\n  - when: {}\n    channel: {phone: 2}\n")
    with pytest.raises(PolicyError, match=r"n\.yaml\.rules\[0\]\.channel"):
        load_policy(nested)
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match="not a router"):
        load_policy(tmp_path)


def test_policies_name_the_trained_models_they_act_with(tmp_path: Path) -> None:
    """A rules file or mixture that uses a router inherits its lineage; built-ins have none."""
    for name in ("logging", "uniform", "rule"):
        assert load_policy(name).learned_from() == []
    rules = {"rules": [{"when": {"segment": "enterprise"}, "channel": "phone"}], "default": "rule"}
    assert load_policy(rules).learned_from() == []
    r1, r2 = str(tmp_path / "r1"), str(tmp_path / "r2")
    assert load_policy({"router": r1}).learned_from() == [r1]
    scored = {**rules, "router": r1}  # a router for its scores only: still acting with it
    assert load_policy(scored).learned_from() == [r1]
    nested = {
        "mixture": [
            {
                "weight": 0.5,
                "policy": {"rules": [{"when": {"segment": "x"}, "policy": {"router": r2}}]},
            },
            {"weight": 0.5, "policy": {"router": r1, "temperature": 0.1}},
        ]
    }
    assert load_policy(nested).learned_from() == [r2, r1]


@pytest.mark.parametrize(
    ("policy", "note"),
    [
        ({"overall": "router", "segments": {}}, ""),
        ({"overall": "rule-fallback", "segments": {}}, "; rule-fallback for every contact"),
        (
            {"overall": "router", "segments": {"platform": "rule-fallback", "b": "router"}},
            "; rule-fallback for platform, unlisted segments",
        ),
        ("rule-fallback", ""),  # malformed: Router.load says why when the policy is used
        ([1], ""),
    ],
)
def test_a_router_policy_names_where_it_defers_to_the_rule(
    tmp_path: Path, policy: object, note: str
) -> None:
    import json

    from frontdesk.ope.policies import RouterPolicy

    folder = tmp_path / "router"
    folder.mkdir()
    (folder / "router.json").write_text(json.dumps({"policy": policy}))
    assert RouterPolicy(str(folder)).name == f"router(router, argmax{note})"
